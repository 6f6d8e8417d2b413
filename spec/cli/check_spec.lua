-- `tiktok check` (the app's setup: credentials, redirect URI, scopes,
-- audit) and `tiktok check --account` (what a connected account granted),
-- bin/tiktok run as a process against the sandbox. The client secret is
-- never printed, right or wrong.
local sandbox = require "helpers.sandbox"
local H = require "cli.helper"

describe("tiktok check (command line)", function()
    local sb, store, n_store = nil, nil, 0
    local secrets = {}

    local function tk(args, opts)
        opts = opts or {}
        local full = { "--env-file", sb.dir .. "/env" }
        for _, c in ipairs(opts.configs or {}) do full[#full + 1] = "--config"; full[#full + 1] = c end
        for _, a in ipairs(args) do full[#full + 1] = a end
        local env = { TIKTOK_STORE = store }
        for k, v in pairs(opts.env or {}) do env[k] = v end
        return H.run(full, { env = env })
    end

    sandbox.use(function(s)
        sb = s
        secrets[#secrets + 1] = sb.env.TIKTOK_CLIENT_SECRET
    end)
    before_each(function()
        n_store = n_store + 1
        store = H.TMP .. "/check-store-" .. n_store .. "/accounts.json"
    end)
    lazy_teardown(H.cleanup)

    it("the sandbox's default app is in order: exit 0, each sentence, the redirect URI to register", function()
        local r = tk({ "check" })
        assert.equal(0, r.code, r.out .. r.err)
        assert.equal("", r.err)
        assert.matches("^TikTok app " .. sb.env.TIKTOK_CLIENT_KEY .. ":\n", r.out)
        assert.matches("\n  ok        TikTok accepted the Client key and Client secret.\n", r.out, 1, true)
        assert.matches("\nRedirect URI to register: " .. sb.env.TIKTOK_REDIRECT_URI .. "\n", r.out, 1, true)
        assert.matches("The app is ready: connect an account with `tiktok connect`.\n$", r.out)
        assert.not_matches("FAIL", r.out, 1, true)
        local v = H.json(tk({ "--json", "check" }))
        assert.is_true(v.ok)
        assert.equal(0, v.exit_code)
        assert.equal(sb.env.TIKTOK_REDIRECT_URI, v.redirect_uri)
        local names = {}
        for i, c in ipairs(v.checks) do
            names[i] = c.name
            assert.is_true(c.ok)
            assert.is_string(c.message)
        end
        assert.same({ "credentials", "redirect_uri", "scopes", "audit" }, names)
        -- an unaudited app: advice, still ok
        r = tk({ "check" }, { env = { TIKTOK_AUDITED = "no" } })
        assert.equal(0, r.code)
        assert.matches("SELF_ONLY", r.out, 1, true)
    end)

    it("a wrong client secret: exit 3, the sentence names the Client secret, no secret printed", function()
        local wrong = "wrong-secret-" .. tostring(os.time()) .. "-abcdef"
        secrets[#secrets + 1] = wrong
        local cfg = H.write(H.TMP .. "/wrong-secret.env", "TIKTOK_CLIENT_SECRET=" .. wrong .. "\n")
        local r = tk({ "check" }, { configs = { cfg } })
        assert.equal(3, r.code, r.out .. r.err)
        assert.matches("\n  FAIL      TikTok refused the Client key and Client secret (invalid_client)", r.out, 1, true)
        assert.matches("Fix what is marked FAIL, then run `tiktok check` again.\n$", r.out)
        local v = H.json(tk({ "--json", "check" }, { configs = { cfg } }))
        assert.is_false(v.ok)
        assert.equal(3, v.exit_code)
        assert.equal("credentials", v.checks[1].name)
        assert.is_false(v.checks[1].ok)
        assert.equal("invalid_client", v.checks[1].code)
        assert.matches("Client secret", v.checks[1].message, 1, true)
    end)

    it("an unknown client key: exit 3; a redirect URI TikTok refuses: exit 2 naming the setting", function()
        local cfg = H.write(H.TMP .. "/unknown-key.env", "TIKTOK_CLIENT_KEY=unknownkey123\n")
        local r = tk({ "check" }, { configs = { cfg } })
        assert.equal(3, r.code, r.out .. r.err)
        assert.matches("TikTok app unknownkey123:\n  FAIL      TikTok refused the Client key", r.out, 1, true)
        for uri, why in pairs({ ["https://app.example/cb?from=tiktok"] = "must be static",
                                ["http://app.example/cb"] = "must use https" }) do
            cfg = H.write(H.TMP .. "/bad-uri.env", "TIKTOK_REDIRECT_URI=" .. uri .. "\n")
            r = tk({ "check" }, { configs = { cfg } })
            assert.equal(2, r.code, r.out .. r.err)
            assert.matches("redirect_uri (TIKTOK_REDIRECT_URI) " .. why, r.err, 1, true)
        end
    end)

    it("a disabled app is refused (exit 3)", function()
        local _, status = sb:admin("PATCH", "/apps/default", { disabled = true })
        assert.equal(200, status)
        local r = tk({ "--json", "check" })
        assert.equal(3, r.code)
        local v = H.json(r)
        assert.is_false(v.ok)
        assert.equal("invalid_client", v.checks[1].code)
        assert.matches("a disabled or deleted app is refused too", v.checks[1].message, 1, true)
    end)

    it("scopes without what posting needs: exit 3 naming video.publish", function()
        local r = tk({ "check" }, { env = { TIKTOK_SCOPES = "user.info.basic" } })
        assert.equal(3, r.code, r.out .. r.err)
        assert.matches("FAIL      The app does not ask for what posting needs", r.out, 1, true)
        assert.matches("video.publish", r.out, 1, true)
    end)

    it("TikTok out of reach: exit 4", function()
        local cfg = H.write(H.TMP .. "/down.env", "TIKTOK_API_BASE=https://127.0.0.1:9\n")
        local r = tk({ "--json", "check" }, { configs = { cfg } })
        assert.equal(4, r.code, r.out .. r.err)
        assert.is_false(H.json(r).ok)
    end)

    describe("--account", function()
        -- Connects through the consent page, granting only `granted`.
        local function connect(granted)
            local j = H.json(tk({ "--json", "connect" }))
            local query = sandbox.parse_query(j.authorize_url)
            local status, cb, location = sb:authorize({ scope = query.scope, state = query.state,
                                                        redirect_uri = query.redirect_uri,
                                                        code_challenge = query.code_challenge,
                                                        code_challenge_method = query.code_challenge_method,
                                                        granted_scopes = granted })
            assert.equal(302, status)
            secrets[#secrets + 1] = cb.code
            local r = tk({ "--json", "connect", "--callback", location })
            assert.equal(0, r.code, r.out .. r.err)
            return H.json(r).connected.open_id
        end

        it("an account that granted everything: exit 0", function()
            local open_id = connect()
            local r = tk({ "check", "--account", open_id })
            assert.equal(0, r.code, r.out .. r.err)
            assert.matches("^TikTok account " .. open_id:gsub("%p", "%%%0") .. " %(app ", r.out)
            assert.matches("video.publish granted", r.out, 1, true)
            assert.matches("The account granted what posting needs.\n$", r.out)
        end)

        it("an account that unticked video.publish: exit 3, explained", function()
            local open_id = connect("user.info.basic,video.upload")
            local r = tk({ "--json", "check", "--account", open_id })
            assert.equal(3, r.code, r.out .. r.err)
            local v = H.json(r)
            assert.is_false(v.ok)
            assert.equal(open_id, v.account)
            local failed
            for _, c in ipairs(v.checks) do if not c.ok then failed = c end end
            assert.equal("video.publish", failed.name)
            assert.matches("did not grant video.publish", failed.message, 1, true)
            assert.matches("Connect the account again", failed.message, 1, true)
        end)

        it("an account that is not connected: exit 5", function()
            local r = tk({ "check", "--account", "no-such-account" })
            assert.equal(5, r.code)
            assert.matches("(not_found)", r.err, 1, true)
        end)
    end)

    it("never printed a secret", function()
        local all = table.concat(H.transcript, "\n")
        assert.is_true(#secrets >= 2)
        for _, s in ipairs(secrets) do
            assert.is_nil(all:find(s, 1, true), "a secret was printed")
        end
    end)
end)
