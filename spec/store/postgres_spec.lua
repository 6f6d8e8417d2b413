-- tiktok.store.postgres against a real server (spec/helpers/postgres.lua):
-- TLS through sslmode, the schema created once by many processes starting
-- together, and the store's own faults: a terminated session, a restart, a
-- lock held elsewhere (lock_timeout), a SIGKILLed lock holder, a statement
-- timeout. Clear errors, no token in them, and the next call recovers by
-- itself.
local tiktok = require "tiktok"
local pgcore = require "tiktok.store.pgcore"
local pghelper = require "helpers.postgres"
local sandbox = require "helpers.sandbox"

local INTERP = (os.getenv("TIKTOK_CHILD_PREFIX") or "") .. " " .. (jit and "luajit" or "lua5.4")

local function rec(id)
    return { open_id = id, access_token = "act." .. id, refresh_token = "rft." .. id, expires_at = 2000000000 }
end

local function wait_for(fn, what)
    for _ = 1, 300 do
        if fn() then return end
        tiktok.core.sleep_ms(50)
    end
    error("timed out waiting for " .. what)
end

describe("tiktok.store.postgres", function()
    local pg, dir
    local n = 0
    local function fresh(opts)
        n = n + 1
        local o = { conninfo = pg.conninfo, schema = "pg" .. n }
        for k, v in pairs(opts or {}) do o[k] = v end
        return tiktok.store.postgres(o), o.schema
    end

    setup(function()
        assert(pghelper.available())
        pg = pghelper.start{ tls = true }
        dir = (sandbox.exec("mktemp -d /tmp/tiktok-pg-spec.XXXXXX"):gsub("%s+$", ""))
    end)
    teardown(function()
        if pg then pg:stop() end
        if dir then sandbox.exec("rm -rf " .. sandbox.shell_quote(dir)) end
    end)

    it("raises on programmer errors", function()
        assert.has_error(function() tiktok.store.postgres{} end)
        assert.has_error(function() tiktok.store.postgres{ conninfo = pg.conninfo, shcema = "x" } end)
        assert.has_error(function() tiktok.store.postgres{ conninfo = pg.conninfo, schema = "Bad-Name" } end)
        assert.has_error(function() tiktok.store.postgres{ conninfo = pg.conninfo, schema = 'x"; drop' } end)
        assert.has_error(function() pgcore.connect(pg.conninfo):exec("SELECT $1", {}) end)
    end)

    it("gives a clear error when the server cannot be reached", function()
        local s = tiktok.store.postgres{ conninfo = "host=" .. dir .. "/nothing port=5432 user=postgres" }
        local r, err = s:get("a")
        assert.is_nil(r)
        assert.equal("store", err.code)
        assert.is_true(err.retryable)
        assert.truthy(err.message:find("cannot connect", 1, true), err.message)
    end)

    it("connects with TLS through sslmode in conninfo (require, verify-full), and refuses what it must",
       function()
        local s = tiktok.store.postgres{ conninfo = pg.tcp_conninfo, schema = "tls" }
        assert.is_true(s:put(rec("a")))
        assert.equal("rft.a", s:get("a").refresh_token)
        assert.is_true(s._c:ssl())
        assert.equal("t", pg:psql("SELECT ssl FROM pg_stat_ssl WHERE pid = " .. s._c:backend_pid()))
        s:close()
        local plain = tiktok.store.postgres{ conninfo = pg.tcp_conninfo:gsub("sslmode=require", "sslmode=disable"),
                                             schema = "tls" }
        local r, err = plain:get("a")
        assert.is_nil(r)
        assert.truthy(err.message:find("no encryption", 1, true), err.message)
        -- verify-full: the server's certificate checked against sslrootcert, and its name
        local url = "postgresql://postgres@%s:" .. pg.port .. "/postgres?sslmode=verify-full&sslrootcert=%s"
        local verified = tiktok.store.postgres{ conninfo = url:format("localhost", pg.dir .. "/server.crt"),
                                                schema = "tls" }
        assert.equal("rft.a", verified:get("a").refresh_token)
        verified:close()
        local r2, err2 = tiktok.store.postgres{ conninfo = url:format("localhost", "/etc/ssl/certs/ca-certificates.crt"),
                                                schema = "tls" }:get("a")
        assert.is_nil(r2)
        assert.truthy(err2.message:find("certificate verify failed", 1, true), err2.message)
        local r3, err3 = tiktok.store.postgres{ conninfo = url:format("127.0.0.1", pg.dir .. "/server.crt"),
                                                schema = "tls" }:get("a")
        assert.is_nil(r3)
        assert.truthy(err3.message:find("does not match host name", 1, true), err3.message)
    end)

    it("creates and migrates its schema once when 8 processes start at once", function()
        local script = dir .. "/migrate.lua"
        sandbox.write_file(script, ([[
local s = require("tiktok.store.postgres"){ conninfo = %q, schema = "many" }
assert(s:put({ open_id = "p" .. arg[1], access_token = "x", refresh_token = "y" }))
]]):format(pg.conninfo))
        local cmd = ""
        for i = 1, 8 do cmd = cmd .. ("%s %s %d > %s/m%d.out 2>&1 & "):format(INTERP, script, i, dir, i) end
        os.execute(cmd .. "wait")
        for i = 1, 8 do assert.equal("", sandbox.read_file(dir .. "/m" .. i .. ".out")) end
        assert.equal("1,2", pg:psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM many.schema_version"))
        assert.equal("8", pg:psql("SELECT count(*) FROM many.accounts"))
    end)

    it("migrates a schema of an older version in place, keeping its data", function()
        local s, schema = fresh()
        assert.is_true(s:put(rec("a")))
        s:close()
        pg:psql(("DROP TABLE %s.lease; DELETE FROM %s.schema_version WHERE version > 1"):format(schema, schema))
        local again = tiktok.store.postgres{ conninfo = pg.conninfo, schema = schema }
        assert.equal("ok", again:locked(function() return "ok" end))
        assert.equal("rft.a", again:get("a").refresh_token)
        assert.equal("1,2", pg:psql(("SELECT string_agg(version::text, ',' ORDER BY version) FROM %s.schema_version")
                                    :format(schema)))
        again:close()
    end)

    it("reconnects by itself after its session was terminated (pg_terminate_backend)", function()
        local s = fresh()
        assert.is_true(s:put(rec("a")))
        local pid = s._c:backend_pid()
        assert.equal("t", pg:psql("SELECT pg_terminate_backend(" .. pid .. ")"))
        tiktok.core.sleep_ms(100)
        assert.equal("rft.a", s:get("a").refresh_token)       -- dead before sending: sent again
        assert.are_not.equal(pid, s._c:backend_pid())
        s:close()
    end)

    it("terminated while holding the lock: the write inside locked() reconnects, takes the lock again and lands",
       function()
        local s, schema = fresh()
        assert.is_true(s:put(rec("a")))
        local ok = s:locked(function()
            pg:psql("SELECT pg_terminate_backend(" .. s._c:backend_pid() .. ")")
            tiktok.core.sleep_ms(100)
            local r = rec("a")
            r.refresh_token = "rft.rotated"
            assert(s:put(r))
            -- the lock is held again, by the new session
            assert.equal("1", pg:psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                      .. "AND pid = " .. s._c:backend_pid()))
            return true
        end)
        assert.is_true(ok)
        assert.equal("0", pg:psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))
        assert.equal("rft.rotated", tiktok.store.postgres{ conninfo = pg.conninfo, schema = schema }
                                        :get("a").refresh_token)
        s:close()
    end)

    it("a restart of the server: calls fail clearly while it is down, the next one recovers by itself", function()
        local s = fresh()
        assert.is_true(s:put(rec("a")))
        pg:stop_server()
        local r, err = s:get("a")
        assert.is_nil(r)
        assert.equal("store", err.code)
        assert.is_true(err.retryable)
        assert.is_nil(tostring(err):find("rft.", 1, true))
        pg:start_server()
        assert.equal("rft.a", s:get("a").refresh_token)
        s:close()
    end)

    it("a write while the server is down waits for it to come back (reconnect_ms)", function()
        local s, schema = fresh()
        assert.is_true(s:put(rec("a")))
        pg:stop_server()
        -- started again in the background a second from now
        os.execute("(sleep 1; " .. pg:start_command() .. ") >/dev/null 2>&1 &")
        local r = rec("a")
        r.refresh_token = "rft.after-restart"
        assert.is_true(s:put(r))
        assert.equal("rft.after-restart", pg:psql("SELECT data->>'refresh_token' FROM " .. schema
                                                   .. ".accounts WHERE open_id = 'a'"))
        s:close()
    end)

    it("a lock held elsewhere past lock_timeout_ms gives busy; once released, locked() works", function()
        local holder, schema = fresh()
        local waiter = tiktok.store.postgres{ conninfo = pg.conninfo, schema = schema, lock_timeout_ms = 300 }
        holder:locked(function()
            local r, err = waiter:locked(function() return "never" end)
            assert.is_nil(r)
            assert.equal("busy", err.code)
            assert.truthy(err.message:find("lock", 1, true))
            -- the waiter's other calls still work meanwhile
            assert.is_true(waiter:put(rec("w")))
            -- a statement timeout shorter than the lock timeout: busy too
            local short = tiktok.store.postgres{ conninfo = pg.conninfo, schema = schema, lock_timeout_ms = 5000,
                                                 statement_timeout_ms = 200 }
            local r2, err2 = short:locked(function() return "never" end)
            assert.is_nil(r2)
            assert.equal("busy", err2.code)
            short:close()
        end)
        assert.equal("yes", waiter:locked(function() return "yes" end))
        holder:close(); waiter:close()
    end)

    it("locked(fn, open_id) locks one account: others' accounts do not wait, the same account does", function()
        local holder, schema = fresh()
        local other = tiktok.store.postgres{ conninfo = pg.conninfo, schema = schema, lock_timeout_ms = 300 }
        holder:locked(function()
            assert.equal("b", other:locked(function() return "b" end, "acct-b"))
            local r, err = other:locked(function() return "a" end, "acct-a")
            assert.is_nil(r)
            assert.equal("busy", err.code)
        end, "acct-a")
        assert.equal("a", other:locked(function() return "a" end, "acct-a"))
        assert.has_error(function() other:locked(function() end, 42) end)
        holder:close(); other:close()
    end)

    it("a SIGKILLed process holding the lock releases it with its connection", function()
        local s, schema = fresh({ lock_timeout_ms = 10000 })
        local script = dir .. "/holder.lua"
        sandbox.write_file(script, ([[
local tiktok = require "tiktok"
local s = require("tiktok.store.postgres"){ conninfo = %q, schema = %q }
s:locked(function()
    local f = io.open(%q, "w"); f:write("held"); f:close()
    tiktok.core.sleep_ms(120000)
end)
]]):format(pg.conninfo, schema, dir .. "/held"))
        local pid = sandbox.exec(("%s %s > %s/holder.out 2>&1 & echo $!"):format(INTERP, script, dir)):match("%d+")
        wait_for(function() return sandbox.read_file(dir .. "/held") end, "the child to take the lock")
        os.execute("kill -9 " .. pid)
        assert.equal("after", s:locked(function() return "after" end))
        s:close()
    end)

    it("a holder cut off by a server restart keeps the lock (lease) until it has written, then releases it",
       function()
        local s1, schema = fresh()
        local s2 = tiktok.store.postgres{ conninfo = pg.conninfo, schema = schema, lock_timeout_ms = 500 }
        assert.is_true(s2:put(rec("a")))
        local r = s1:locked(function()
            pg:stop_server()
            pg:start_server()
            -- the others wait: s1 may hold tokens TikTok just rotated
            local x, err = s2:locked(function() return "too early" end)
            assert.is_nil(x)
            assert.equal("busy", err.code)
            assert.truthy(err.message:find("restarted", 1, true), err.message)
            local new = rec("a")
            new.refresh_token = "rft.rotated"
            assert.is_true(s1:put(new))      -- reconnects, takes the lock again, writes
            return "written"
        end)
        assert.equal("written", r)
        assert.equal("rft.rotated", s2:locked(function() return s2:get("a").refresh_token end))
        s1:close(); s2:close()
    end)

    it("a holder lost in a restart that never comes back: the lock is free again after its grace", function()
        local s, schema = fresh({ lock_timeout_ms = 10000 })
        local script = dir .. "/lost.lua"
        sandbox.write_file(script, ([[
local tiktok = require "tiktok"
local s = require("tiktok.store.postgres"){ conninfo = %q, schema = %q, reconnect_ms = 1000 }
s:locked(function()
    local f = io.open(%q, "w"); f:write("held"); f:close()
    tiktok.core.sleep_ms(120000)
end)
]]):format(pg.conninfo, schema, dir .. "/lost-held"))
        local pid = sandbox.exec(("%s %s > %s/lost.out 2>&1 & echo $!"):format(INTERP, script, dir)):match("%d+")
        wait_for(function() return sandbox.read_file(dir .. "/lost-held") end, "the child to take the lock")
        pg:stop_server()
        os.execute("kill -9 " .. pid)
        pg:start_server()
        assert.equal("after", s:locked(function() return "after" end))
        s:close()
    end)

    it("a statement timeout: a clear error, no token in it, and the next call works", function()
        local s, schema = fresh({ statement_timeout_ms = 300 })
        assert.is_true(s:put(rec("a")))
        local blocker = assert(pgcore.connect(pg.conninfo))
        assert(blocker:exec("BEGIN"))
        assert(blocker:exec("LOCK TABLE " .. schema .. ".accounts IN ACCESS EXCLUSIVE MODE"))
        local r, err = s:get("a")
        assert.is_nil(r)
        assert.equal("store", err.code)
        assert.is_true(err.retryable)
        assert.truthy(err.message:find("statement timeout", 1, true), err.message)
        local w, werr = s:put(rec("a"))
        assert.is_nil(w)
        assert.is_nil(tostring(werr):find("act.", 1, true))
        assert.is_nil(tostring(werr):find("rft.", 1, true))
        assert(blocker:exec("ROLLBACK"))
        blocker:close()
        assert.equal("rft.a", s:get("a").refresh_token)
        s:close()
    end)

    -- (LuaJIT only: fork() through the FFI)
    local fork_it = jit and it or pending
    fork_it("after fork(), the child opens its own connection and the parent's keeps working", function()
        local ffi = require "ffi"
        pcall(ffi.cdef, "int fork(void); int waitpid(int pid, int *status, int options); void _exit(int status);")
        local s = fresh()
        assert.is_true(s:put(rec("a")))
        local parent_pid = s._c:backend_pid()
        local pid = ffi.C.fork()
        if pid == 0 then
            local ok = pcall(function()
                local r = s:get("a")
                local f = io.open(dir .. "/fork.out", "w")
                f:write(tostring(r and r.refresh_token), " ", s._c:backend_pid() ~= parent_pid and "new" or "same")
                f:close()
            end)
            ffi.C._exit(ok and 0 or 1)
        end
        local status = ffi.new("int[1]")
        ffi.C.waitpid(pid, status, 0)
        assert.equal("rft.a new", sandbox.read_file(dir .. "/fork.out"))
        assert.equal(parent_pid, s._c:backend_pid())
        assert.equal("rft.a", s:get("a").refresh_token)       -- the parent's connection is unharmed
        assert.equal(parent_pid, s._c:backend_pid())
        s:close()
    end)

    it("closes idempotently, and works again after close (a new connection)", function()
        local s = fresh()
        assert.is_true(s:put(rec("a")))
        s:close(); s:close()
        assert.equal("act.a", s:get("a").access_token)
        local c = assert(pgcore.connect(pg.conninfo))
        c:close(); c:close()
        local r, kind = c:exec("SELECT 1")
        assert.is_nil(r)
        assert.equal("connection", kind)
        assert.equal("closed", c:status())
        s:close()
    end)

    it("returns typed rows and NULLs through parameters only", function()
        local c = assert(pgcore.connect(pg.conninfo))
        local rows = assert(c:exec("SELECT $1::int AS i, $2::text AS t, $3::bool AS b, $4::text AS n, "
                                   .. "$5::float8 AS f", 42, "it's \"quoted\"; DROP TABLE x", true, nil, 1.5))
        assert.equal(42, rows[1].i)
        assert.equal("it's \"quoted\"; DROP TABLE x", rows[1].t)
        assert.is_true(rows[1].b)
        assert.is_nil(rows[1].n)
        assert.equal(1.5, rows[1].f)
        local r, kind, msg, state = c:exec("SELECT * FROM no_such_table")
        assert.is_nil(r)
        assert.equal("query", kind)
        assert.truthy(msg:find("no_such_table", 1, true))
        assert.equal("42P01", state)
        c:close()
    end)
end)
