-- The command line's stores, bin/tiktok run as a process against the
-- sandbox: TIKTOK_STORE_KEY (tokens encrypted at rest, a wrong or missing
-- key refused with its id, never the key), `tiktok store rekey` (from
-- --new-key-file or TIKTOK_STORE_NEW_KEY), --store over TIKTOK_STORE, and
-- a postgresql:// store (a real server from spec/helpers/postgres.lua).
local sandbox = require "helpers.sandbox"
local pghelper = require "helpers.postgres"
local H = require "cli.helper"

local KEY_A = ("0123456789abcdef"):rep(4)
local KEY_B = ("fedcba9876543210"):rep(4)

describe("tiktok stores (command line)", function()
    local sb, store, n_store = nil, nil, 0

    local function tk(args, opts)
        opts = opts or {}
        local full = { "--env-file", sb.dir .. "/env" }
        for _, a in ipairs(args) do full[#full + 1] = a end
        local env = { TIKTOK_STORE = store }
        for k, v in pairs(opts.env or {}) do env[k] = v end
        return H.run(full, { env = env })
    end

    local function key_id(hex)
        local raw = hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
        return sandbox.sha256_hex(raw):sub(1, 8)
    end

    sandbox.use(function(s) sb = s end)
    before_each(function()
        n_store = n_store + 1
        store = H.TMP .. "/stores-" .. n_store .. "/accounts.json"
    end)
    lazy_teardown(H.cleanup)

    it("TIKTOK_STORE_KEY keeps the tokens encrypted; without it or with another key: a clear error", function()
        local r = tk({ "--json", "connect", "--approve" }, { env = { TIKTOK_STORE_KEY = KEY_A } })
        assert.equal(0, r.code, r.out .. r.err)
        local text = H.read(store)
        assert.matches("tiktok-aead:v1:" .. key_id(KEY_A) .. ":", text, 1, true)
        assert.not_matches('"act.', text, 1, true)
        assert.not_matches('"rft.', text, 1, true)
        r = tk({ "--json", "creator" }, { env = { TIKTOK_STORE_KEY = KEY_A } })
        assert.equal(0, r.code, r.out .. r.err)
        r = tk({ "creator" })
        assert.equal(5, r.code, r.out .. r.err)
        assert.matches("this store was written with key " .. key_id(KEY_A), r.err, 1, true)
        r = tk({ "creator" }, { env = { TIKTOK_STORE_KEY = KEY_B:upper() } })
        assert.equal(5, r.code, r.out .. r.err)
        assert.matches("the key given is " .. key_id(KEY_B), r.err, 1, true)
        for _, out in ipairs(H.transcript) do
            assert.not_matches(KEY_A, out, 1, true)
            assert.not_matches(KEY_B, out:lower(), 1, true)
        end
    end)

    it("a key that is not 64 hex digits is a configuration error (exit 2) that does not show it", function()
        local r = tk({ "accounts" }, { env = { TIKTOK_STORE_KEY = "not-a-key-but-a-secret" } })
        assert.equal(2, r.code)
        assert.matches("TIKTOK_STORE_KEY (environment) must be 64 hex digits", r.err, 1, true)
        assert.not_matches("not-a-key-but-a-secret", r.err, 1, true)
    end)

    it("store rekey --new-key-file re-encrypts every account; the old key no longer reads them", function()
        assert.equal(0, tk({ "connect", "--approve" }, { env = { TIKTOK_STORE_KEY = KEY_A } }).code)
        assert.equal(0, tk({ "connect", "--approve", "--username", sb.env.TIKTOK_SANDBOX_PRIVATE_USER },
                           { env = { TIKTOK_STORE_KEY = KEY_A } }).code)
        local file = H.write(H.TMP .. "/new.key", KEY_B .. "\n")
        local r = tk({ "store", "rekey", "--new-key-file", file }, { env = { TIKTOK_STORE_KEY = KEY_A } })
        assert.equal(0, r.code, r.out .. r.err)
        assert.matches("^Re%-encrypted the tokens of 2 accounts in " .. store:gsub("%p", "%%%0") .. " with key "
                       .. key_id(KEY_B) .. " %(before: key " .. key_id(KEY_A) .. "%)%.\n", r.out)
        assert.not_matches(KEY_B, r.out .. r.err, 1, true)
        local text = H.read(store)
        assert.matches("tiktok-aead:v1:" .. key_id(KEY_B) .. ":", text, 1, true)
        assert.not_matches("tiktok-aead:v1:" .. key_id(KEY_A) .. ":", text, 1, true)
        r = tk({ "--json", "accounts" }, { env = { TIKTOK_STORE_KEY = KEY_A } })
        assert.equal(5, r.code)
        -- the new key works with TikTok: the tokens are intact
        local open_id = H.json(tk({ "--json", "accounts" }, { env = { TIKTOK_STORE_KEY = KEY_B } })).accounts[1].open_id
        r = tk({ "--json", "creator", "--account", open_id }, { env = { TIKTOK_STORE_KEY = KEY_B } })
        assert.equal(0, r.code, r.out .. r.err)
        -- rekey needs the current key
        r = tk({ "store", "rekey", "--new-key-file", file })
        assert.equal(5, r.code)
        assert.matches("cannot be decrypted", r.err, 1, true)
    end)

    it("store rekey with TIKTOK_STORE_NEW_KEY encrypts a store kept in clear (--json)", function()
        assert.equal(0, tk({ "connect", "--approve" }).code)
        assert.matches('"act.', H.read(store), 1, true)
        local r = tk({ "--json", "store", "rekey" }, { env = { TIKTOK_STORE_NEW_KEY = KEY_A } })
        assert.equal(0, r.code, r.out .. r.err)
        local v = H.json(r)
        assert.equal(1, v.rekeyed)
        assert.equal(key_id(KEY_A), v.key_id)
        assert.equal(store, v.store)
        assert.not_matches('"act.', H.read(store), 1, true)
        assert.equal(0, tk({ "creator" }, { env = { TIKTOK_STORE_KEY = KEY_A } }).code)
    end)

    it("store rekey refuses a missing or malformed new key (exit 2)", function()
        local r = tk({ "store", "rekey" })
        assert.equal(2, r.code)
        assert.matches("give the new key: --new-key-file FILE", r.err, 1, true)
        local bad = H.write(H.TMP .. "/bad.key", "short-key-secret\n")
        r = tk({ "store", "rekey", "--new-key-file", bad })
        assert.equal(2, r.code)
        assert.matches("must hold 64 hex digits", r.err, 1, true)
        assert.not_matches("short-key-secret", r.err, 1, true)
        r = tk({ "store", "rekey", "--new-key-file", H.TMP .. "/none.key" })
        assert.equal(2, r.code)
        assert.matches("cannot read the key file", r.err, 1, true)
        assert.equal(2, tk({ "store" }).code)
        assert.equal(2, tk({ "store", "shred" }).code)
    end)

    it("--store wins over TIKTOK_STORE", function()
        local other = H.TMP .. "/other-store/accounts.json"
        assert.equal(0, tk({ "--store", other, "connect", "--approve" }).code)
        assert.is_string(H.read(other))
        assert.is_nil(H.read(store))
        local v = H.json(tk({ "--json", "accounts", "--store", other }))
        assert.equal(other, v.store)
        assert.equal(1, #v.accounts)
    end)

    describe("postgresql://", function()
        local pg
        lazy_setup(function()
            local ok, why = pghelper.available()
            assert(ok, why)
            pg = pghelper.start()
        end)
        lazy_teardown(function() if pg then pg:stop() end end)

        it("connects and lists accounts from a PostgreSQL store, its URL shown without the password", function()
            local dir, port = pg.conninfo:match("host=(%S+) port=(%d+)")
            local url = "postgresql://postgres:pw-not-shown@/postgres?host=" .. dir .. "&port=" .. port
            local r = tk({ "--json", "connect", "--approve" }, { env = { TIKTOK_STORE = url, TIKTOK_STORE_KEY = KEY_A } })
            assert.equal(0, r.code, r.out .. r.err)
            local open_id = H.json(r).connected.open_id
            r = tk({ "accounts", "--store", url }, { env = { TIKTOK_STORE_KEY = KEY_A } })
            assert.equal(0, r.code, r.out .. r.err)
            assert.matches("^1 connected account %(store: postgresql://postgres@/postgres%?host=", r.out)
            assert.matches("\n  " .. open_id .. "\n", r.out, 1, true)
            assert.not_matches("pw-not-shown", r.out .. r.err, 1, true)
            local rows = pg:psql("SELECT count(*) FROM tiktok.accounts")
            assert.equal("1", rows:gsub("%s+", ""))
            assert.not_matches("act%.", pg:psql("SELECT data::text FROM tiktok.accounts"))
            -- rekey in the database too
            local file = H.write(H.TMP .. "/pg-new.key", KEY_B)
            r = tk({ "store", "rekey", "--new-key-file", file, "--store", url }, { env = { TIKTOK_STORE_KEY = KEY_A } })
            assert.equal(0, r.code, r.out .. r.err)
            assert.matches("^Re%-encrypted the tokens of 1 account in postgresql://postgres@/postgres%?host=", r.out)
            assert.matches("tiktok-aead:v1:" .. key_id(KEY_B) .. ":", pg:psql("SELECT data::text FROM tiktok.accounts"),
                           1, true)
            r = tk({ "--json", "creator", "--store", url }, { env = { TIKTOK_STORE_KEY = KEY_B } })
            assert.equal(0, r.code, r.out .. r.err)
            assert.not_matches("pw-not-shown", r.out .. r.err, 1, true)
        end)

        it("connect in two steps keeps its pending file in the state folder, named after the URL", function()
            local dir, port = pg.conninfo:match("host=(%S+) port=(%d+)")
            local url = "postgresql:///postgres?host=" .. dir .. "&port=" .. port .. "&user=postgres"
            local env = { env = { TIKTOK_STORE_KEY = KEY_B } }   -- the key the test above left the store with
            local j = H.json(tk({ "--json", "connect", "--store", url }, env))
            assert.matches("^" .. (H.TMP .. "/home/.local/state/lua-tiktok/pending-"):gsub("%p", "%%%0") .. "%x+%.json$",
                           j.pending_file)
            assert.equal("600", sandbox.exec("stat -c %a " .. H.q(j.pending_file)):gsub("%s+$", ""))
            local query = sandbox.parse_query(j.authorize_url)
            local status, _, location = sb:authorize({ scope = query.scope, state = query.state,
                                                       redirect_uri = query.redirect_uri,
                                                       code_challenge = query.code_challenge,
                                                       code_challenge_method = query.code_challenge_method })
            assert.equal(302, status)
            local r = tk({ "--json", "connect", "--callback", location, "--store", url }, env)
            assert.equal(0, r.code, r.out .. r.err)
            assert.is_nil(H.read(j.pending_file))
            local ids = {}
            for _, a in ipairs(H.json(tk({ "--json", "accounts", "--store", url }, env)).accounts) do
                ids[a.open_id] = true
            end
            assert.is_true(ids[H.json(r).connected.open_id])
        end)
    end)
end)
