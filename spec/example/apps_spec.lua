-- Issue 17 in the OpenResty example app: each workspace brings its own
-- TikTok app (the no-code block's "Custom OAuth Provider Configuration"):
-- configure -> check -> connect -> post -> edit the secret -> refresh still
-- works, for two workspaces with two sandbox apps, every bad input with a
-- sentence that names the field, access control on configurations, and no
-- client secret in any answer, log line or store file. The app runs without
-- a TikTok app of its own (APP_ENV_APP=0), with a store key (encryption at
-- rest), on a real nginx against the sandbox.
local sandbox = require "helpers.sandbox"
local example = require "helpers.example"
local media = require "helpers.media"
local cjson = require "cjson.safe"

local STORE_KEY = ("5a"):rep(32)

describe("examples/openresty: TikTok app configurations (issue 17)", function()
    local ex, sb
    local A, B                 -- the sandbox apps of workspaces acme and globex
    local a_id, b_id           -- their configurations in the example app
    local alice_open_id, bob_open_id
    local answers = {}         -- every raw answer, checked for secrets at the end
    local secrets = {}

    local ALICE = { user = "alice", workspace = "acme" }
    local CAROL = { user = "carol", workspace = "acme" }
    local BOB = { user = "bob", workspace = "globex" }

    local function app(method, path, who, opts)
        opts = opts or {}
        local o = { json = opts.json, headers = opts.headers }
        if who then o.user, o.workspace = who.user, who.workspace end
        local status, body, h, raw = ex:app(method, path, o)
        answers[#answers + 1] = raw or ""
        for _, v in pairs(h or {}) do answers[#answers + 1] = tostring(v) end
        return status, body, h, raw
    end

    local function sandbox_app(name)
        local a = sb:add_app({ name = name, redirect_uris = { ex.env.APP_URL .. "/tiktok/callback" },
                               audited = true })
        secrets[#secrets + 1] = a.client_secret
        return a
    end

    local function configure(who, sapp, extra)
        local body = { name = sapp.name, client_key = sapp.client_key, client_secret = sapp.client_secret,
                       audited = true }
        for k, v in pairs(extra or {}) do body[k] = v end
        return app("POST", "/tiktok/apps", who, { json = body })
    end

    local function check_named(report, name)
        for _, c in ipairs(report.checks) do if c.name == name then return c end end
        error("no check " .. name .. " in " .. cjson.encode(report))
    end

    lazy_setup(function()
        ex = example.start({ env = "APP_ENV_APP=0 APP_STORE_KEY=" .. STORE_KEY .. " " })
        sb = ex.sb
        media.mp4(sb.env.TIKTOK_MEDIA_DIR, { seconds = 2 })
        A = sandbox_app("Acme posting")
        B = sandbox_app("Globex posting")
    end)

    lazy_teardown(function()
        if ex then ex:stop() end
    end)

    it("says what to do first when no TikTok app is configured, in the block's order", function()
        local status, body, _, raw = app("GET", "/tiktok/apps", ALICE)
        assert.equal(200, status, raw)
        assert.same({}, body.apps)
        assert.equal("configure", body.next)
        assert.equal(cjson.null, body.default)
        assert.equal(ex.env.APP_URL .. "/tiktok/callback", body.redirect_uri)
        -- connecting before configuring: the answer says to configure first
        status, body = app("GET", "/tiktok/connect", ALICE)
        assert.equal(404, status)
        assert.equal("not_found", body.error.code)
        assert.matches("add your TikTok app's Client key and Client secret in Settings", body.error.message, 1, true)
        status, body = app("POST", "/tiktok/posts", ALICE, { json = { video_url = "https://x.example/a.mp4",
                                                                       privacy = "SELF_ONLY" } })
        assert.equal(404, status)
        assert.equal("not_found", body.error.code)
    end)

    describe("bad input: a sentence that names the field, and nothing saved", function()
        local function refused(body_fields, status_want, field, pattern, code)
            local body = { name = "x", client_key = A.client_key, client_secret = A.client_secret }
            for k, v in pairs(body_fields) do body[k] = v end
            for k, v in pairs(body) do if v == false then body[k] = nil end end
            local status, res, _, raw = app("POST", "/tiktok/apps", ALICE, { json = body })
            assert.equal(status_want, status, raw)
            assert.equal(code or "invalid_argument", res.error.code, raw)
            assert.matches(pattern, res.error.message, 1, true)
            assert.equal(field == nil and cjson.null or field, res.error.fields[1], raw)
            return res
        end

        it("a wrong secret: TikTok refused it, copy both again", function()
            refused({ client_secret = "not-the-secret" }, 403, "client_secret",
                    "TikTok refused this Client key and Client secret, so nothing was saved", "invalid_client")
        end)

        it("an unknown client key", function()
            refused({ client_key = "sbxnosuchkey00000" }, 403, "client_secret", "copy both again", "invalid_client")
        end)

        it("a redirect URL with a query string, http to a public host, another URL", function()
            refused({ redirect_uri = ex.env.APP_URL .. "/tiktok/callback?x=1" }, 400, "redirect_uri",
                    "TikTok refuses query parameters")
            refused({ redirect_uri = "http://app.example.com/tiktok/callback" }, 400, "redirect_uri",
                    "must use https")
            refused({ redirect_uri = "https://elsewhere.example/cb" }, 400, "redirect_uri",
                    "it must be this app's callback URL, " .. ex.env.APP_URL .. "/tiktok/callback")
        end)

        it("a missing client key or secret, a wrong type, an unknown field, not JSON", function()
            refused({ client_key = false }, 400, "client_key", "Client key is required")
            refused({ client_secret = false }, 400, "client_secret", "Client secret is required")
            refused({ client_secret = "" }, 400, "client_secret", "Client secret is required")
            refused({ scopes = "video.publish" }, 400, "scopes", "Scopes must be a list of scopes")
            refused({ scopes = { "video publish" } }, 400, "scopes", "Scopes must be TikTok scope names")
            refused({ access = "everyone" }, 400, "access", "Who can use it must be only_me or workspace")
            refused({ colour = "red" }, 400, nil, "unknown field 'colour'")
            local status, res = app("POST", "/tiktok/apps", ALICE, { headers = { ["Content-Type"] = "text/plain" } })
            assert.equal(400, status)
            assert.matches("JSON", res.error.message, 1, true)
        end)

        it("saved nothing", function()
            local _, body = app("GET", "/tiktok/apps", ALICE)
            assert.same({}, body.apps)
        end)
    end)

    describe("configure -> check -> connect -> post", function()
        it("saves each workspace's app; the secret is write-only (its hint only)", function()
            local status, body, h, raw = configure(ALICE, A)
            local _
            assert.equal(201, status, raw)
            a_id = body.id
            assert.matches("^app%-%x+$", a_id)
            assert.equal("/tiktok/apps/" .. a_id, h.location)
            assert.equal(A.client_key, body.client_key)
            assert.equal("..." .. A.client_secret:sub(-4), body.secret_hint)
            assert.is_nil(body.client_secret)
            assert.equal("workspace", body.access)
            assert.equal("acme", body.workspace)
            assert.equal(ex.env.APP_URL .. "/tiktok/callback", body.redirect_uri)
            assert.is_number(body.checked_at)
            status, body, _, raw = configure(BOB, B, { access = "only_me" })
            assert.equal(201, status, raw)
            b_id = body.id
            assert.equal("only_me", body.access)
            status, body = app("GET", "/tiktok/apps", ALICE)
            assert.equal(200, status)
            assert.equal(1, #body.apps)
            assert.equal(a_id, body.apps[1].id)
            assert.is_nil(body.apps[1].client_secret)
        end)

        it("checks the app: each part in plain words, and the Redirect URL to copy", function()
            local status, rep, _, raw = app("POST", "/tiktok/apps/" .. a_id .. "/check", ALICE)
            assert.equal(200, status, raw)
            assert.is_true(rep.ok, raw)
            assert.equal(ex.env.APP_URL .. "/tiktok/callback", rep.redirect_uri)
            assert.matches("TikTok accepted the Client key and Client secret", check_named(rep, "credentials").message,
                           1, true)
            assert.matches(rep.redirect_uri, check_named(rep, "redirect_uri").message, 1, true)
            assert.is_true(check_named(rep, "scopes").ok)
            assert.is_string(check_named(rep, "audit").message)
        end)

        it("keeps each configuration from other workspaces: neither seen nor used", function()
            local _, body = app("GET", "/tiktok/apps", BOB)
            assert.equal(1, #body.apps)
            assert.equal(b_id, body.apps[1].id)
            for _, try in ipairs({
                { "POST", "/tiktok/apps/" .. a_id .. "/check" },
                { "POST", "/tiktok/apps/" .. a_id, { name = "mine now" } },
                { "DELETE", "/tiktok/apps/" .. a_id },
                { "GET", "/tiktok/connect?app=" .. a_id },
            }) do
                local status, res, _, raw = app(try[1], try[2], BOB, { json = try[3] })
                assert.equal(403, status, try[2] .. " " .. tostring(raw))
                assert.equal("forbidden", res.error.code)
            end
            -- a workspace configuration is the workspace's: carol (acme) sees and uses it
            local status, list = app("GET", "/tiktok/apps", CAROL)
            assert.equal(200, status)
            assert.equal(a_id, list.apps[1].id)
            -- an only_me configuration is not even the workspace's
            status = app("POST", "/tiktok/apps/" .. b_id .. "/check", { user = "dan", workspace = "globex" })
            assert.equal(403, status)
            -- unknown ids
            status = app("POST", "/tiktok/apps/app-000000000000/check", ALICE)
            assert.equal(404, status)
        end)

        it("connects accounts with each workspace's app; the callback knows which app the state is for", function()
            local loc = ex:begin_connect("alice", "?app=" .. a_id, "acme")
            assert.equal(A.client_key, sandbox.parse_query(loc).client_key)
            alice_open_id = ex:connect("alice", nil, { app = a_id, workspace = "acme" })
            bob_open_id = ex:connect("bob", nil, { app = b_id, workspace = "globex" })
            -- the same creator has a different open_id in each app
            assert.are_not.equal(alice_open_id, bob_open_id)
            local status, body, _, raw = app("GET", "/tiktok/accounts", ALICE)
            assert.equal(200, status, raw)
            assert.equal(1, #body.accounts)
            assert.equal(alice_open_id, body.accounts[1].open_id)
            assert.same({ id = a_id, name = "Acme posting", client_key = A.client_key }, body.accounts[1].app)
            _, body = app("GET", "/tiktok/accounts", BOB)
            assert.equal(1, #body.accounts)
            assert.equal(b_id, body.accounts[1].app.id)
            -- with one app configured, connect needs no ?app=
            loc = ex:begin_connect("bob", "", "globex")
            assert.equal(B.client_key, sandbox.parse_query(loc).client_key)
        end)

        it("posts through the account's own app only", function()
            for who, sapp in pairs({ [ALICE] = A, [BOB] = B }) do
                local status, body, _, raw = app("POST", "/tiktok/posts", who, { json = {
                    video_url = sb.env.TIKTOK_MEDIA_BASE .. "clip-2s.mp4", privacy = "SELF_ONLY",
                    caption = "from " .. who.workspace } })
                assert.equal(202, status, raw)
                assert.is_string(body.publish_id, raw)
                local job = ex:wait_job(body.job.id, who)
                assert.equal("published", job.state, cjson.encode(job))
                local p = sb:post(body.publish_id)
                assert.equal(sapp.client_key, p.client_key)
            end
            -- every request for alice's account went with app A's key, bob's with B's
            for _, e in ipairs(sb:log()) do
                if e.open_id == alice_open_id and e.client_key then assert.equal(A.client_key, e.client_key) end
                if e.open_id == bob_open_id and e.client_key then assert.equal(B.client_key, e.client_key) end
            end
            -- the post of another workspace's account: not even found
            local status = app("POST", "/tiktok/posts", BOB, { json = { account = alice_open_id,
                video_url = sb.env.TIKTOK_MEDIA_BASE .. "clip-2s.mp4", privacy = "SELF_ONLY" } })
            assert.equal(404, status)
        end)
    end)

    describe("edit the secret", function()
        it("keeps the old secret until a new one is accepted, and refreshes with the new one", function()
            -- the developer rotates the secret in TikTok's portal
            local new_secret = "rotated" .. A.client_secret:sub(8)
            secrets[#secrets + 1] = new_secret
            local _, st = sb:admin("PATCH", "/apps/" .. A.client_key, { client_secret = new_secret })
            assert.equal(200, st)
            -- the check now says the saved credentials are refused
            local status, rep = app("POST", "/tiktok/apps/" .. a_id .. "/check", ALICE)
            assert.equal(200, status)
            assert.is_false(rep.ok)
            assert.is_false(check_named(rep, "credentials").ok)
            assert.matches("copy both again", check_named(rep, "credentials").message, 1, true)
            -- a mistyped new secret is refused; the saved one stays
            local body, raw
            status, body, _, raw = app("POST", "/tiktok/apps/" .. a_id, ALICE,
                                       { json = { client_secret = new_secret .. "x" } })
            assert.equal(403, status, raw)
            assert.equal("client_secret", body.error.fields[1])
            assert.matches("the saved ones stay in use", body.error.message, 1, true)
            local _, list = app("GET", "/tiktok/apps", ALICE)
            assert.equal("..." .. A.client_secret:sub(-4), list.apps[1].secret_hint)
            -- the right one replaces it (an edit without a secret keeps the saved one)
            status, body, _, raw = app("POST", "/tiktok/apps/" .. a_id, ALICE, { json = { client_secret = new_secret } })
            assert.equal(200, status, raw)
            A.client_secret = new_secret
            assert.equal("..." .. new_secret:sub(-4), body.secret_hint)
            status, body, _, raw = app("POST", "/tiktok/apps/" .. a_id, ALICE, { json = { name = "Acme (rotated)" } })
            assert.equal(200, status, raw)
            assert.equal("..." .. new_secret:sub(-4), body.secret_hint)
            _, rep = app("POST", "/tiktok/apps/" .. a_id .. "/check", ALICE)
            assert.is_true(rep.ok)
            -- the account's access token expires: the refresh goes with the new secret
            local _, est = sb:admin("POST", "/tokens/expire", { open_id = alice_open_id, kind = "access" })
            assert.equal(200, est)
            local refreshes = 0
            for _, e in ipairs(sb:log({ endpoint = "oauth.token" })) do if e.status == 200 then refreshes = refreshes + 1 end end
            status, _, _, raw = app("GET", "/tiktok/creator?account=" .. alice_open_id, ALICE)
            assert.equal(200, status, raw)
            local after = 0
            for _, e in ipairs(sb:log({ endpoint = "oauth.token" })) do if e.status == 200 then after = after + 1 end end
            assert.is_true(after > refreshes, "no refresh reached the sandbox")
            local accs
            _, accs = app("GET", "/tiktok/accounts", ALICE)
            assert.equal("Acme (rotated)", accs.accounts[1].app.name)
        end)
    end)

    it("offers only \"Only me\" while the app is not audited", function()
        local status, body, _, raw = app("POST", "/tiktok/apps/" .. a_id, ALICE, { json = { audited = false } })
        assert.equal(200, status, raw)
        assert.is_false(body.audited)
        local ci
        status, ci, _, raw = app("GET", "/tiktok/creator?account=" .. alice_open_id, ALICE)
        assert.equal(200, status, raw)
        assert.same({ "SELF_ONLY" }, ci.creator.privacy_level_options)
        assert.is_true(ci.unaudited)
        local _, rep = app("POST", "/tiktok/apps/" .. a_id .. "/check", ALICE)
        assert.matches("has not passed TikTok's audit", check_named(rep, "audit").message, 1, true)
        status = app("POST", "/tiktok/apps/" .. a_id, ALICE, { json = { audited = true } })
        assert.equal(200, status)
        _, ci = app("GET", "/tiktok/creator?account=" .. alice_open_id, ALICE)
        assert.is_true(#ci.creator.privacy_level_options > 1)
        assert.is_nil(ci.unaudited)
    end)

    describe("more bad input", function()
        it("a missing scope: the check names it and what it is for", function()
            local status, body, _, raw = configure({ user = "erin" }, A, { scopes = { "user.info.basic" },
                                                                         name = "Erin's" })
            assert.equal(201, status, raw)
            assert.equal("only_me", body.access)
            local rep
            status, rep = app("POST", "/tiktok/apps/" .. body.id .. "/check", { user = "erin" })
            assert.equal(200, status)
            assert.is_false(rep.ok)
            local sc = check_named(rep, "scopes")
            assert.is_false(sc.ok)
            assert.matches("video.publish", sc.message, 1, true)
            assert.matches("Content Posting API", sc.message, 1, true)
        end)

        it("a permission the person did not grant: the account check explains it", function()
            sb:admin("POST", "/users", { username = "frank" })
            local id = ex:connect("alice", "frank", { app = a_id, workspace = "acme",
                consent = { granted_scopes = "user.info.basic,video.upload" } })
            local status, rep, _, raw = app("GET", "/tiktok/accounts/" .. id .. "/check", ALICE)
            assert.equal(200, status, raw)
            assert.is_false(rep.ok)
            local vp = check_named(rep, "video.publish")
            assert.is_false(vp.ok)
            assert.matches("did not grant video.publish", vp.message, 1, true)
            -- someone else cannot check it
            status = app("GET", "/tiktok/accounts/" .. id .. "/check", BOB)
            assert.equal(404, status)
        end)

        it("a disabled app: the check says TikTok refuses its credentials", function()
            sb:admin("PATCH", "/apps/" .. B.client_key, { disabled = true })
            local status, rep = app("POST", "/tiktok/apps/" .. b_id .. "/check", BOB)
            sb:admin("PATCH", "/apps/" .. B.client_key, { disabled = false })
            assert.equal(200, status)
            assert.is_false(rep.ok)
            local c = check_named(rep, "credentials")
            assert.is_false(c.ok)
            assert.matches("a disabled or deleted app is refused too", c.message, 1, true)
        end)
    end)

    it("removes a configuration (its owner's workspace only)", function()
        local status, body = app("DELETE", "/tiktok/apps/" .. b_id, BOB)
        local _
        assert.equal(200, status)
        assert.is_true(body.deleted)
        _, body = app("GET", "/tiktok/apps", BOB)
        assert.same({}, body.apps)
        _, body = app("GET", "/tiktok/accounts", BOB)
        assert.same({}, body.accounts)
        status = app("DELETE", "/tiktok/apps/" .. b_id, BOB, { headers = { Origin = "https://evil.example" } })
        assert.equal(403, status)
    end)

    it("shows no client secret in any answer, log line or store file", function()
        local logs = ex:error_log() .. ex:access_log()
        local files = sandbox.exec("cat " .. sandbox.shell_quote(ex.dir) .. "/app/data/*.json")
        assert.matches("tiktok%-aead:v1:", files)     -- the store is encrypted at rest
        for _, s in ipairs(secrets) do
            for i, a in ipairs(answers) do
                assert.is_nil(a:find(s, 1, true), "answer " .. i .. " shows a client secret")
            end
            assert.is_nil(logs:find(s, 1, true), "a log shows a client secret")
            assert.is_nil(files:find(s, 1, true), "the store shows a client secret")
        end
    end)
end)
