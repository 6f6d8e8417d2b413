-- Several machines on one PostgreSQL store, against the sandbox: 3
-- "machines" (separate processes, each machine its own working folder and
-- application_name, every process its own connection) x N processes x M
-- operations on two shared accounts whose access tokens expire every 2
-- seconds, tokens encrypted at rest. Every operation succeeds, exactly one
-- refresh reaches the sandbox per expiry (per account, no two refreshes of
-- one access token), no refresh token is lost (no invalid_grant, both still
-- refresh afterwards), and the table holds no token in clear.
-- Then refresh faults: PostgreSQL stopped mid-refresh and restarted, the
-- refreshing session terminated, a SIGKILLed client mid-refresh, a statement
-- timeout.
-- Size: TIKTOK_MACHINES x TIKTOK_MACHINE_PROCS x TIKTOK_MACHINE_OPS (default
-- 3 x 4 x 20; make reliability runs 3 x 8 x 100).
local sandbox = require "helpers.sandbox"
local pghelper = require "helpers.postgres"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

local INTERP = (os.getenv("TIKTOK_CHILD_PREFIX") or "") .. " " .. (jit and "luajit" or "lua5.4")
local MACHINES = tonumber(os.getenv("TIKTOK_MACHINES") or "3")
local PROCS = tonumber(os.getenv("TIKTOK_MACHINE_PROCS") or "4")
local OPS = tonumber(os.getenv("TIKTOK_MACHINE_OPS") or "20")
local TTL = 2
local KEY = ("9e"):rep(32)

-- Successful refreshes (oauth.token answers after `since`) per open_id, in order.
local function refreshes(sb, since)
    local by, n, invalid = {}, 0, 0
    for _, e in ipairs(sb:log({ since = since })) do
        if e.endpoint == "oauth.token" then
            if e.status == 200 and e.open_id then
                by[e.open_id] = by[e.open_id] or {}
                table.insert(by[e.open_id], e.time)
                n = n + 1
            elseif e.error_code == "invalid_grant" then
                invalid = invalid + 1
            end
        end
    end
    return by, n, invalid
end

local function last_seq(sb)
    local log = sb:log()
    return log[#log] and log[#log].seq or 0
end

local function wait_for(fn, what)
    for _ = 1, 400 do
        local v = fn()
        if v then return v end
        tiktok.core.sleep_ms(50)
    end
    error("timed out waiting for " .. what)
end

local CONNECT = [[
local tiktok = require "tiktok"
-- the sandbox is configured with high limits: so are the budgets (still taken in the store)
RATE_LIMITS = { init = 100000, creator_info = 100000, status = 100000 }
local function connect(schema, appname, extra)
    local sopts = { conninfo = %q, schema = schema, key = %q, application_name = appname }
    for k, v in pairs(extra or {}) do sopts[k] = v end
    return assert(tiktok.connect{ client_key = %q, client_secret = %q, redirect_uri = %q, api_base = %q,
        auth_base = %q, ca_file = %q, store = tiktok.store.postgres(sopts), refresh_skew_ms = 0, poll_ms = 20,
        rate_limits = RATE_LIMITS })
end
]]

describe("several machines on one PostgreSQL store", function()
    local sb, dir, pg

    sandbox.use(function(s, d)
        sb, dir = s, d
        assert(pghelper.available())
        pg = pghelper.start()
    end, { tmpdir = true, reset = false })
    teardown(function()
        if pg then pg:stop() end
    end)

    local function connect_code()
        local e = sb.env
        return CONNECT:format(pg.conninfo, KEY, e.TIKTOK_CLIENT_KEY, e.TIKTOK_CLIENT_SECRET, e.TIKTOK_REDIRECT_URI,
                              e.TIKTOK_API_BASE, e.TIKTOK_AUTH_BASE, e.TIKTOK_CA_FILE)
    end

    local function connect(schema, extra)
        local sopts = { conninfo = pg.conninfo, schema = schema, key = KEY }
        for k, v in pairs(extra or {}) do sopts[k] = v end
        return tt.connect(sb, { store = tiktok.store.postgres(sopts), refresh_skew_ms = 0,
                                rate_limits = { init = 100000, creator_info = 100000, status = 100000 } })
    end

    it(MACHINES .. " machines x " .. PROCS .. " processes x " .. OPS .. " operations", function()
        sb:reset()
        sb:configure({ tokens = { access_ttl_sec = TTL },
                       delays = { processing_ms = 10, moderation_ms = 10 },
                       rate_limits = { ["video.init"] = 100000, creator_info = 100000, ["status.fetch"] = 100000,
                                       ["user.info"] = 100000 } })
        for _, u in ipairs({ sb.env.TIKTOK_SANDBOX_USER, sb.env.TIKTOK_SANDBOX_PRIVATE_USER }) do
            sb:admin("PATCH", "/users/" .. u, { daily_post_cap = 100000 })
        end
        local conn = connect("machines")
        local a = tt.account(conn, { username = sb.env.TIKTOK_SANDBOX_USER })
        local b = tt.account(conn, { username = sb.env.TIKTOK_SANDBOX_PRIVATE_USER })
        local clip = media.mp4(dir, { seconds = 2 })
        os.execute("cp '" .. clip .. "' '" .. sb.env.TIKTOK_MEDIA_DIR .. "/c.mp4'")
        local since = last_seq(sb)
        local worker = dir .. "/machine-worker.lua"
        sandbox.write_file(worker, connect_code() .. ([[
local machine, id, ops = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
local conn = connect("machines", "machine" .. machine)
local accounts = { %q, %q }
math.randomseed(machine * 7919 + id * 104729)
local counts = { ok = 0 }
for _ = 1, ops do
    local acc = accounts[math.random(1, 2)]
    local r = math.random(1, 100)
    local res, err
    if r <= 70 then
        res, err = conn:creator_info(acc)
    elseif r <= 95 then
        res, err = tiktok.post{ connection = conn, account = acc, video_url = %q, privacy = "SELF_ONLY",
                                wait = false }
    else
        res, err = conn:user_info(acc)
    end
    if res then counts.ok = counts.ok + 1 else
        counts[err.code] = (counts[err.code] or 0) + 1
        io.stderr:write(tostring(err), "\n")
    end
    tiktok.core.sleep_ms(math.random(50, 250))   -- spread the run over several token lifetimes
end
for k, v in pairs(counts) do io.write(k, "=", v, "\n") end
]]):format(a.open_id, b.open_id, sb.env.TIKTOK_MEDIA_BASE .. "c.mp4"))
        local t0 = os.time()
        local cmd = ""
        for m = 1, MACHINES do
            local mdir = dir .. "/machine" .. m
            os.execute("mkdir -p " .. mdir)
            for p = 1, PROCS do
                cmd = cmd .. ("(cd %s && %s %s %d %d %d > out%d 2> err%d) & "):format(mdir, INTERP, worker, m, p,
                                                                                     OPS, p, p)
            end
        end
        os.execute(cmd .. "wait")
        local elapsed = math.max(1, os.time() - t0)
        local total_ok, failures, errs = 0, {}, ""
        for m = 1, MACHINES do
            for p = 1, PROCS do
                local base = dir .. "/machine" .. m .. "/"
                local out = sandbox.read_file(base .. "out" .. p) or ""
                for k, v in out:gmatch("(%S+)=(%d+)") do
                    if k == "ok" then total_ok = total_ok + tonumber(v) else failures[k] = (failures[k] or 0) + v end
                end
                errs = errs .. (sandbox.read_file(base .. "err" .. p) or "")
            end
        end
        local summary = ""
        for k, v in pairs(failures) do summary = summary .. k .. "=" .. v .. " " end
        assert.equal(MACHINES * PROCS * OPS, total_ok, "failed operations (" .. summary .. "): " .. errs:sub(1, 2000))
        local by, n, invalid = refreshes(sb, since)
        assert.equal(0, invalid, "a refresh token was used after it was rotated away")
        -- exactly one refresh per expiry: no two refreshes of one account
        -- closer than a token's life (a duplicate would follow within ms)
        local closest = math.huge
        for _, times in pairs(by) do
            for i = 2, #times do closest = math.min(closest, times[i] - times[i - 1]) end
        end
        assert.is_true(closest >= 0.5, "two refreshes of one account " .. closest .. " s apart")
        local windows = math.ceil((elapsed + 1) / (TTL - 1)) + 1
        assert.is_true(n <= 2 * windows, n .. " refreshes for " .. windows .. " windows x 2 accounts")
        -- no token lost: both accounts still refresh; none in clear in the table
        assert(conn:refresh(a.open_id))
        assert(conn:refresh(b.open_id))
        local dump = pg:psql("SELECT string_agg(data::text, ' ') FROM machines.accounts")
        assert.is_nil(dump:find("act%."))
        assert.is_nil(dump:find("rft%."))
        io.write(("\nmachines: %d machines x %d processes x %d ops = %d ok in %d s; %d refreshes (%s), "
                  .. "closest two of one account %.2f s apart, 0 invalid_grant\n")
                 :format(MACHINES, PROCS, OPS, total_ok, elapsed, n,
                         (function()
                             local parts = {}
                             for id, times in pairs(by) do parts[#parts + 1] = id:sub(1, 6) .. ":" .. #times end
                             table.sort(parts)
                             return table.concat(parts, " ")
                         end)(), closest == math.huge and 0 or closest))
    end)

    it("budgets held for every machine: 3 machines x 4 processes x 5 creator_info, TikTok's 20 a minute", function()
        sb:reset()     -- the sandbox's real limits
        local conn = connect("budgets")
        local acc = tt.account(conn, { username = sb.env.TIKTOK_SANDBOX_USER })
        local since = last_seq(sb)
        local script = dir .. "/budget-worker.lua"
        sandbox.write_file(script, connect_code() .. ([[
RATE_LIMITS = nil
local conn = connect("budgets", "machine" .. arg[1])
local ok, limited = 0, 0
for _ = 1, 5 do
    local res, err = conn:creator_info(%q)
    if res then ok = ok + 1
    elseif err.code == "rate_limit_exceeded" and err.retry_after and err.retry_after > 0 then limited = limited + 1
    else io.stderr:write(tostring(err), "\n") end
end
io.write(ok, " ", limited, "\n")
]]):format(acc.open_id))
        local cmd = ""
        for m = 1, 3 do
            for p = 1, 4 do
                cmd = cmd .. ("%s %s %d > %s/b%d-%d.out 2>&1 & "):format(INTERP, script, m, dir, m, p)
            end
        end
        os.execute(cmd .. "wait")
        local ok, limited = 0, 0
        for m = 1, 3 do
            for p = 1, 4 do
                local out = sandbox.read_file(("%s/b%d-%d.out"):format(dir, m, p)) or ""
                local o, l = out:match("^(%d+) (%d+)%s*$")
                assert.truthy(o, out)
                ok, limited = ok + tonumber(o), limited + tonumber(l)
            end
        end
        assert.equal(20, ok)
        assert.equal(40, limited)
        local reached, too_many = 0, 0
        for _, e in ipairs(sb:log({ since = since })) do
            if e.endpoint == "creator_info" then
                reached = reached + 1
                if e.status == 429 then too_many = too_many + 1 end
            end
        end
        assert.equal(20, reached)
        assert.equal(0, too_many)
    end)

    describe("refresh faults", function()
        local conn, acc, schema_n = nil, nil, 0

        before_each(function()
            sb:reset()
            schema_n = schema_n + 1
            conn = connect("fault" .. schema_n)
            acc = tt.account(conn, { username = sb.env.TIKTOK_SANDBOX_USER })
        end)

        -- A child process that refreshes the account (the sandbox holds the
        -- answer for delay_ms) and prints ok or the error.
        local function refresher(delay_ms)
            sb:admin("POST", "/faults", { endpoint = "oauth.token", delay_ms = delay_ms })
            local script = dir .. "/refresher.lua"
            sandbox.write_file(script, connect_code() .. ([[
local conn = connect(%q, "fault-child")
local acct, err = conn:refresh(%q)
io.write(acct and "ok" or ("error: " .. tostring(err)), "\n")
]]):format("fault" .. schema_n, acc.open_id))
            local pid = sandbox.exec(("%s %s > %s/refresher.out 2>&1 & echo $!"):format(INTERP, script, dir))
                :match("(%d+)%s*$")
            -- wait until it holds the lock (its refresh is then at the sandbox)
            wait_for(function()
                return pg:psql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                               .. "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'fault-child'")
                       == "1"
            end, "the child to hold the lock: " .. (sandbox.read_file(dir .. "/refresher.out") or ""))
            return pid
        end

        local function child_result(pid)
            wait_for(function()
                local r = os.execute("kill -0 " .. pid .. " 2>/dev/null")
                return not (r == true or r == 0)
            end, "the child to finish")
            return (sandbox.read_file(dir .. "/refresher.out") or ""):gsub("%s+$", "")
        end

        local function no_token_lost()
            local since = last_seq(sb)
            local a2 = assert(conn:refresh(acc.open_id))
            assert.equal(acc.open_id, a2.open_id)
            assert(conn:creator_info(acc.open_id))
            local _, _, invalid = refreshes(sb, since)
            assert.equal(0, invalid)
        end

        it("PostgreSQL stopped mid-refresh and restarted: the new tokens land, nothing lost", function()
            local pid = refresher(1500)
            pg:stop_server()
            -- while it is down: a clear error, no token in it
            local r, err = conn:account(acc.open_id)
            assert.is_nil(r)
            assert.equal("store", err.code)
            assert.is_true(err.retryable)
            assert.is_nil(tostring(err):find("act.", 1, true))
            tiktok.core.sleep_ms(2000)       -- TikTok has answered; the child keeps trying to write
            pg:start_server()
            -- Another machine wanting the account right away waits for the
            -- child's lease instead of refreshing with the rotated token.
            local since = last_seq(sb)
            local t0 = tiktok.core.monotonic_ms()
            assert(conn:refresh(acc.open_id))
            local waited = tiktok.core.monotonic_ms() - t0
            assert.equal("ok", child_result(pid))
            io.write(("\nfault: PostgreSQL restarted mid-refresh: the child wrote its rotated tokens; another "
                      .. "machine's refresh right after the restart waited %.0f ms for the child's lease\n")
                     :format(waited))
            local _, _, invalid = refreshes(sb, since)
            assert.equal(0, invalid)
            no_token_lost()
        end)

        it("the refreshing session terminated (pg_terminate_backend): the child reconnects and writes", function()
            local pid = refresher(1000)
            assert.equal("t", pg:psql("SELECT bool_and(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                      .. "WHERE application_name = 'fault-child'"))
            assert.equal("ok", child_result(pid))
            no_token_lost()
        end)

        it("a SIGKILLed client mid-refresh releases the lock; the next call recovers by itself", function()
            local pid = refresher(3000)
            os.execute("kill -9 " .. pid)
            -- The killed client's refresh is still held by the sandbox; ours
            -- takes the lock at once and rotates first.
            local since = last_seq(sb)
            local t0 = tiktok.core.monotonic_ms()
            assert(conn:refresh(acc.open_id))
            io.write(("\nfault: SIGKILLed client mid-refresh: the next refresh took %.0f ms (lock free at once)\n")
                     :format(tiktok.core.monotonic_ms() - t0))
            assert(conn:creator_info(acc.open_id))
            local by = refreshes(sb, since)
            assert.equal(1, #(by[acc.open_id] or {}))
        end)

        it("a statement timeout: a clear error, no token in it, the next call works", function()
            local slow = connect("fault" .. schema_n, { statement_timeout_ms = 300 })
            local blocker = assert(require("tiktok.store.pgcore").connect(pg.conninfo))
            assert(blocker:exec("BEGIN"))
            assert(blocker:exec("LOCK TABLE fault" .. schema_n .. ".accounts IN ACCESS EXCLUSIVE MODE"))
            local r, err = slow:creator_info(acc.open_id)
            assert.is_nil(r)
            assert.equal("store", err.code)
            assert.truthy(err.message:find("statement timeout", 1, true), err.message)
            assert.is_nil(tostring(err):find("act.", 1, true))
            assert(blocker:exec("ROLLBACK"))
            blocker:close()
            assert(slow:creator_info(acc.open_id))
            no_token_lost()
        end)
    end)
end)
