-- The store interface (lua/tiktok/store.lua, notes "Store interface"): one
-- spec body run against every store: memory, file, file with a key,
-- PostgreSQL (a real server started here, spec/helpers/postgres.lua) and
-- PostgreSQL with a key.
local tiktok = require "tiktok"
local store_mod = require "tiktok.store"
local pghelper = require "helpers.postgres"
local sandbox = require "helpers.sandbox"

local INTERP = (os.getenv("TIKTOK_CHILD_PREFIX") or "") .. " " .. (jit and "luajit" or "lua5.4")
local KEY = ("5a"):rep(32)
local KEY2 = ("c3"):rep(32)

local pg, dir
local counter = 0

-- Each kind: make(opts) -> a fresh, empty store; code(opts) -> Lua source
-- that makes a store on the same data in another process.
local KINDS = {
    { name = "memory", memory = true,
      make = function() return tiktok.store.memory() end },
    { name = "file",
      new = function() counter = counter + 1; return { path = dir .. "/store" .. counter .. ".json" } end,
      make = function(o) return tiktok.store.file{ path = o.path, key = o.key } end,
      code = function(o)
          return ("require('tiktok.store').file{ path = %q, key = %s }"):format(o.path, o.key and ("%q"):format(o.key) or "nil")
      end },
    { name = "file with a key", key = true,
      new = function() counter = counter + 1; return { path = dir .. "/store" .. counter .. ".json", key = KEY } end,
      make = function(o) return tiktok.store.file{ path = o.path, key = o.key } end,
      code = function(o)
          return ("require('tiktok.store').file{ path = %q, key = %s }"):format(o.path, o.key and ("%q"):format(o.key) or "nil")
      end },
    { name = "postgres", pg = true,
      new = function() counter = counter + 1; return { schema = "spec" .. counter } end,
      make = function(o) return tiktok.store.postgres{ conninfo = pg.conninfo, schema = o.schema, key = o.key } end,
      code = function(o)
          return ("require('tiktok.store.postgres'){ conninfo = %q, schema = %q, key = %s }")
              :format(pg.conninfo, o.schema, o.key and ("%q"):format(o.key) or "nil")
      end },
    { name = "postgres with a key", pg = true, key = true,
      new = function() counter = counter + 1; return { schema = "spec" .. counter, key = KEY } end,
      make = function(o) return tiktok.store.postgres{ conninfo = pg.conninfo, schema = o.schema, key = o.key } end,
      code = function(o)
          return ("require('tiktok.store.postgres'){ conninfo = %q, schema = %q, key = %s }")
              :format(pg.conninfo, o.schema, o.key and ("%q"):format(o.key) or "nil")
      end },
}

local function rec(id, extra)
    local r = { open_id = id, client_key = "ck", access_token = "act." .. id .. ".1",
                refresh_token = "rft." .. id .. ".1", expires_at = 2000000000, refresh_expires_at = 2100000000,
                scopes = { "user.info.basic", "video.publish" } }
    for k, v in pairs(extra or {}) do r[k] = v end
    return r
end

-- Everything the store holds at rest, as text (the file, or a dump of the schema).
local function at_rest(kind, o)
    if kind.pg then
        return pg:psql(("SELECT string_agg(t::text, E'\\n') FROM (SELECT data::text AS t FROM %s.accounts "
                        .. "UNION ALL SELECT data::text FROM %s.records) x"):format(o.schema, o.schema))
    end
    return sandbox.read_file(o.path) or ""
end

describe("store interface", function()
    setup(function()
        dir = (sandbox.exec("mktemp -d /tmp/tiktok-store-spec.XXXXXX"):gsub("%s+$", ""))
        local ok, why = pghelper.available()
        assert(ok, why)
        pg = pghelper.start()
    end)
    teardown(function()
        if pg then pg:stop() end
        if dir then sandbox.exec("rm -rf " .. sandbox.shell_quote(dir)) end
    end)

    for _, kind in ipairs(KINDS) do
        describe(kind.name, function()
            local s, o
            before_each(function()
                o = kind.new and kind.new() or {}
                s = kind.make(o)
            end)
            after_each(function()
                if s.close then s:close() end
            end)

            it("puts, gets, lists and deletes accounts with owner, workspace and access", function()
                assert.is_nil(s:get("a"))
                assert.same({}, s:list())
                assert.is_true(s:put(rec("b", { owner = "bob", workspace = "acme", access = "workspace" })))
                assert.is_true(s:put(rec("a", { owner = "alice", access = "only_me" })))
                assert.is_true(s:put(rec("-000hLNeFCu7aluBmIBS1XngRBeXaEt0mpSu")))
                local a = s:get("a")
                assert.equal("act.a.1", a.access_token)
                assert.equal("rft.a.1", a.refresh_token)
                assert.equal("alice", a.owner)
                assert.equal("only_me", a.access)
                assert.equal(2000000000, a.expires_at)
                assert.same({ "user.info.basic", "video.publish" }, a.scopes)
                local b = s:get("b")
                assert.equal("acme", b.workspace)
                assert.equal("workspace", b.access)
                local list = s:list()
                assert.equal(3, #list)
                assert.same({ "-000hLNeFCu7aluBmIBS1XngRBeXaEt0mpSu", "a", "b" },
                            { list[1].open_id, list[2].open_id, list[3].open_id })
                assert.equal("rft.b.1", list[3].refresh_token)
                -- replace, then delete
                assert.is_true(s:put(rec("a", { access_token = "act.a.2", owner = "alice" })))
                assert.equal("act.a.2", s:get("a").access_token)
                assert.is_true(s:delete("a"))
                assert.is_nil(s:get("a"))
                assert.is_true(s:delete("a"))   -- deleting what is not there is fine
                assert.equal(2, #s:list())
            end)

            it("hands out copies: changing a record read does not change the store", function()
                local r = rec("a")
                s:put(r)
                r.access_token = "changed"
                local got = s:get("a")
                got.refresh_token = "changed"
                assert.equal("act.a.1", s:get("a").access_token)
                assert.equal("rft.a.1", s:get("a").refresh_token)
            end)

            it("journals uploads", function()
                assert.is_nil(s:get_upload("v_pub_file~2"))
                assert.is_true(s:put_upload({ publish_id = "v_pub_file~2", open_id = "a", next = 0, size = 10 }))
                assert.is_true(s:put_upload({ publish_id = "v_pub_file~1", open_id = "a", next = 1, size = 10 }))
                assert.is_true(s:put_upload({ publish_id = "v_pub_file~2", open_id = "a", next = 3, size = 10 }))
                assert.equal(3, s:get_upload("v_pub_file~2").next)
                local list = s:list_uploads()
                assert.equal(2, #list)
                assert.equal("v_pub_file~1", list[1].publish_id)
                assert.is_true(s:delete_upload("v_pub_file~1"))
                assert.is_nil(s:get_upload("v_pub_file~1"))
                assert.equal(1, #s:list_uploads())
            end)

            it("claims a key once until it expires", function()
                local now = os.time()
                assert.is_true(s:claim_once("delivery-1", now + 60))
                assert.is_false(s:claim_once("delivery-1", now + 60))
                assert.is_true(s:claim_once("delivery-2", now + 60))
                assert.is_true(s:claim_once("delivery-old", now - 1))   -- already expired when claimed
                assert.is_true(s:claim_once("delivery-old", now + 60))
            end)

            it("takes from a sliding-window budget and says when one frees up", function()
                for _ = 1, 3 do assert.is_true(s:budget("status:a", 3, 60)) end
                local ok, retry = s:budget("status:a", 3, 60)
                assert.is_false(ok)
                assert.is_true(retry > 0 and retry <= 60, tostring(retry))
                assert.is_true(s:budget("status:b", 3, 60))          -- keys are independent
                assert.is_true(s:budget("inbox:a", 1, 86400))
                local ok2, retry2 = s:budget("inbox:a", 1, 86400)
                assert.is_false(ok2)
                assert.is_true(retry2 > 86000 and retry2 <= 86400, tostring(retry2))
                -- a short window frees up again
                assert.is_true(s:budget("short", 1, 0.3))
                assert.is_false((s:budget("short", 1, 0.3)))
                tiktok.core.sleep_ms(400)
                assert.is_true(s:budget("short", 1, 0.3))
            end)

            it("raises on a budget called wrongly", function()
                assert.has_error(function() s:budget(nil, 3, 60) end)
                assert.has_error(function() s:budget("k", 0, 60) end)
                assert.has_error(function() s:budget("k", 3, -1) end)
            end)

            it("runs fn under locked(), re-entrant, and releases the lock when fn raises", function()
                local a, b = s:locked(function()
                    return s:locked(function()
                        s:put(rec("a"))
                        return "x", 2
                    end)
                end)
                assert.equal("x", a)
                assert.equal(2, b)
                assert.has_error(function() s:locked(function() error("boom") end) end, "boom")
                assert.equal("y", s:locked(function() return "y" end))
                local n, err = s:locked(function() return nil, "fn's error" end)
                assert.is_nil(n)
                assert.equal("fn's error", err)
            end)

            if not kind.memory then
                it("locked() is exclusive across processes (4 x 25 read-modify-writes lose nothing)", function()
                    local script = dir .. "/locker" .. counter .. ".lua"
                    sandbox.write_file(script, ([[
local tiktok = require "tiktok"
local s = %s
for _ = 1, tonumber(arg[1]) do
    assert(s:locked(function()
        local r = s:get_upload("counter")
        tiktok.core.sleep_ms(1)
        return s:put_upload({ publish_id = "counter", n = (r and r.n or 0) + 1 })
    end))
end
]]):format(kind.code(o)))
                    local cmd = ""
                    for i = 1, 4 do
                        cmd = cmd .. ("%s %s 25 > %s/lock%d.out 2>&1 & "):format(INTERP, script, dir, i)
                    end
                    os.execute(cmd .. "wait")
                    local errs = ""
                    for i = 1, 4 do errs = errs .. (sandbox.read_file(dir .. "/lock" .. i .. ".out") or "") end
                    assert.equal("", errs)
                    assert.equal(100, s:get_upload("counter").n)
                end)

                it("shares a budget across processes: 4 x 6 takes of a budget of 10 give exactly 10", function()
                    local script = dir .. "/budget" .. counter .. ".lua"
                    sandbox.write_file(script, ([[
local s = %s
local n = 0
for _ = 1, 6 do
    local ok, retry = s:budget("init:shared", 10, 60)
    assert(ok ~= nil, retry)
    if ok then n = n + 1 else assert(retry > 0 and retry <= 60) end
end
io.write(n)
]]):format(kind.code(o)))
                    local cmd = ""
                    for i = 1, 4 do
                        cmd = cmd .. ("%s %s > %s/budget%d.out 2>&1 & "):format(INTERP, script, dir, i)
                    end
                    os.execute(cmd .. "wait")
                    local taken = 0
                    for i = 1, 4 do
                        local out = sandbox.read_file(dir .. "/budget" .. i .. ".out") or ""
                        assert.truthy(out:match("^%d+$"), out)
                        taken = taken + tonumber(out)
                    end
                    assert.equal(10, taken)
                    assert.is_false((s:budget("init:shared", 10, 60)))
                end)

                it("sees what another process wrote", function()
                    local other = kind.make(o)
                    assert.is_true(other:put(rec("shared", { owner = "alice" })))
                    assert.equal("rft.shared.1", s:get("shared").refresh_token)
                    assert.is_true(s:delete("shared"))
                    assert.is_nil(other:get("shared"))
                    if other.close then other:close() end
                end)
            end

            if kind.key then
                it("keeps no token in clear at rest, and reads them back", function()
                    s:put(rec("a"))
                    s:put(rec("b"))
                    local text = at_rest(kind, o)
                    assert.is_nil(text:find("act%."), text)
                    assert.is_nil(text:find("rft%."), text)
                    assert.truthy(text:find("tiktok-aead:v1:", 1, true))
                    assert.equal("rft.b.1", s:get("b").refresh_token)
                end)

                it("says clearly when the key is wrong or missing, without a token in the error", function()
                    s:put(rec("a"))
                    local wrong = kind.make({ path = o.path, schema = o.schema, key = KEY2 })
                    local r, err = wrong:get("a")
                    assert.is_nil(r)
                    assert.equal("store", err.code)
                    local id = tiktok.core.sha256_hex(KEY:gsub("%x%x", function(h)
                        return string.char(tonumber(h, 16)) end)):sub(1, 8)
                    assert.truthy(err.message:find("written with key " .. id, 1, true), err.message)
                    assert.is_nil(tostring(err):find("act.", 1, true))
                    local none = kind.make({ path = o.path, schema = o.schema })
                    local r2, err2 = none:get("a")
                    assert.is_nil(r2)
                    assert.truthy(err2.message:find("no key was given", 1, true), err2.message)
                    if wrong.close then wrong:close(); none:close() end
                end)

                it("moves a sealed token to another account: refused", function()
                    s:put(rec("a"))
                    s:put(rec("b"))
                    if kind.pg then
                        pg:psql(("UPDATE %s.accounts SET data = jsonb_set(data, '{refresh_token}', "
                                 .. "(SELECT data->'refresh_token' FROM %s.accounts WHERE open_id = 'a')) "
                                 .. "WHERE open_id = 'b'"):format(o.schema, o.schema))
                    else
                        local doc = require("tiktok.util").json_decode(sandbox.read_file(o.path))
                        doc.accounts.b.refresh_token = doc.accounts.a.refresh_token
                        sandbox.write_file(o.path, require("tiktok.util").json_encode(doc))
                    end
                    local r, err = s:get("b")
                    assert.is_nil(r)
                    assert.truthy(err.message:find("altered or belongs to another record", 1, true), err.message)
                end)

                it("rekeys every account; the old key no longer reads them, the new one does", function()
                    for i = 1, 5 do s:put(rec("acc" .. i)) end
                    assert.is_true(s:rekey(KEY2))
                    assert.equal("rft.acc3.1", s:get("acc3").refresh_token)
                    local text = at_rest(kind, o)
                    assert.is_nil(text:find("rft%."))
                    local id2 = tiktok.core.sha256_hex(KEY2:gsub("%x%x", function(h)
                        return string.char(tonumber(h, 16)) end)):sub(1, 8)
                    assert.truthy(text:find("tiktok-aead:v1:" .. id2, 1, true))
                    local old = kind.make({ path = o.path, schema = o.schema, key = KEY })
                    assert.is_nil(old:get("acc1"))
                    local fresh = kind.make({ path = o.path, schema = o.schema, key = KEY2 })
                    assert.equal(5, #fresh:list())
                    -- during a rotation: the new key encrypts, both read
                    local both = kind.make({ path = o.path, schema = o.schema, key = { KEY2, KEY } })
                    assert.equal("act.acc5.1", both:get("acc5").access_token)
                    for _, x in ipairs({ old, fresh, both }) do if x.close then x:close() end end
                end)

                it("seals an app's client secret too, and rekeys it", function()
                    assert.is_true(s:put_app({ id = "acme", client_key = "ck1", client_secret = "sec.top-secret-1" }))
                    assert.is_nil(at_rest(kind, o):find("top-secret", 1, true))
                    assert.equal("sec.top-secret-1", s:get_app("acme").client_secret)
                    assert.equal("sec.top-secret-1", s:list_apps()[1].client_secret)
                    assert.is_true(s:rekey(KEY2))
                    assert.is_nil(at_rest(kind, o):find("top-secret", 1, true))
                    local fresh = kind.make({ path = o.path, schema = o.schema, key = KEY2 })
                    assert.equal("sec.top-secret-1", fresh:get_app("acme").client_secret)
                    local old = kind.make({ path = o.path, schema = o.schema, key = KEY })
                    local r, err = old:get_app("acme")
                    assert.is_nil(r)
                    assert.truthy(err.message:find("client secret of app acme cannot be decrypted", 1, true),
                                  err.message)
                    assert.is_nil(err.message:find("top-secret", 1, true))
                    for _, x in ipairs({ old, fresh }) do if x.close then x:close() end end
                end)

                it("reads tokens written in clear before the key was set, and seals them on the next write", function()
                    local plain = kind.make({ path = o.path, schema = o.schema })
                    plain:put(rec("a"))
                    assert.equal("rft.a.1", s:get("a").refresh_token)
                    s:put(s:get("a"))
                    assert.is_nil(at_rest(kind, o):find("rft%."))
                    if plain.close then plain:close() end
                end)
            end
        end)
    end

    it("raises on a malformed key", function()
        assert.has_error(function() tiktok.store.file{ path = dir .. "/x.json", key = "short" } end)
        assert.has_error(function()
            tiktok.store.postgres{ conninfo = pg.conninfo, key = ("zz"):rep(32) }
        end)
        assert.has_error(function() tiktok.store.file{ path = dir .. "/x.json", key = {} } end)
    end)

    it("loads tiktok.store.postgres lazily from tiktok.store", function()
        assert.equal(require("tiktok.store.postgres"), store_mod.postgres)
    end)
end)
