-- Bring your own TikTok app: configurations in the store per workspace,
-- checked before connecting, accounts bound to the app they were connected
-- with. Two workspaces, each with its own sandbox app.
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

local ACME = { user = "alice", workspace = "acme" }
local ACME_BOB = { user = "bob", workspace = "acme" }
local OTHER = { user = "eve", workspace = "globex" }

describe("tiktok.apps (bring your own TikTok app)", function()
    local sb, dir, store, apps, app_a, app_b

    sandbox.use(function(s, d) sb, dir = s, d end, { tmpdir = true })

    before_each(function()
        store = tiktok.store.file({ path = dir .. "/apps-" .. math.random(1e9) .. ".json" })
        local e = sb.env
        apps = tiktok.apps({ store = store, connect = { api_base = e.TIKTOK_API_BASE, auth_base = e.TIKTOK_AUTH_BASE,
                                                         ca_file = e.TIKTOK_CA_FILE, poll_ms = 100 } })
        app_a = sb:add_app({ name = "Acme app", redirect_uris = { e.TIKTOK_REDIRECT_URI } })
        app_b = sb:add_app({ name = "Globex app", redirect_uris = { e.TIKTOK_REDIRECT_URI } })
    end)

    local function save(app, as, extra)
        local o = { id = app.name:lower():gsub(" ", "-"), client_key = app.client_key,
                    client_secret = app.client_secret, redirect_uri = sb.env.TIKTOK_REDIRECT_URI, audited = true,
                    as = as, access = "workspace" }
        for k, v in pairs(extra or {}) do o[k] = v end
        return apps:save(o)
    end

    local function connect_account(conn, as)
        local url, state, verifier = conn:authorize_url()
        local cb = assert(conn:sandbox_approve(url))
        return assert(conn:exchange({ code = cb.code, state = cb.state, expected_state = state,
                                      code_verifier = verifier, as = as, access = "workspace" }))
    end

    it("walks the block's order: configure, check, connect, post, change the secret, refresh", function()
        local saved = assert(save(app_a, ACME))
        assert.is_nil(saved.client_secret)
        assert.equal("..." .. app_a.client_secret:sub(-4), saved.secret_hint)
        assert.is_number(saved.checked_at)
        local rep = assert(apps:check(saved.id, { as = ACME_BOB }))
        assert.is_true(rep.ok, require("cjson").encode(rep))
        assert.equal(sb.env.TIKTOK_REDIRECT_URI, rep.redirect_uri)
        local conn = assert(apps:connect(saved.id, { as = ACME_BOB }))
        local acc = connect_account(conn, ACME_BOB)
        assert.truthy(assert(conn:check_account(acc.open_id, { as = ACME })).ok)
        assert(tiktok.post({ connection = conn, account = acc.open_id, as = ACME,
                             video_file = media.mp4(dir, { seconds = 2 }), privacy = "SELF_ONLY" }))
        -- the developer rotates the secret in TikTok's portal and saves the new one
        local new = sb:admin("PATCH", "/apps/" .. app_a.client_key, { client_secret = "rotated-secret-0123456789" })
        assert.is_table(new)
        assert(save(app_a, ACME, { client_secret = "rotated-secret-0123456789" }))
        conn = assert(apps:connect(saved.id, { as = ACME }))
        assert(conn:refresh(acc.open_id, { as = ACME }))
        -- the secret never comes back, in any answer
        for _, a in ipairs(apps:list({ as = ACME })) do
            assert.is_nil(require("cjson").encode(a):find("rotated-secret", 1, true))
        end
    end)

    it("keeps workspaces apart: another workspace neither sees nor uses a configuration", function()
        assert(save(app_a, ACME))
        assert(save(app_b, OTHER))
        assert.equal(1, #apps:list({ as = ACME }))
        assert.equal("acme-app", apps:list({ as = ACME })[1].id)
        assert.equal("globex-app", apps:list({ as = OTHER })[1].id)
        local res, err = apps:get("acme-app", { as = OTHER })
        assert.is_nil(res)
        assert.equal("forbidden", err.code)
        res, err = apps:connect("acme-app", { as = OTHER })
        assert.is_nil(res)
        assert.equal("forbidden", err.code)
        res, err = apps:save({ id = "acme-app", client_key = app_b.client_key, client_secret = app_b.client_secret,
                               redirect_uri = sb.env.TIKTOK_REDIRECT_URI, as = OTHER })
        assert.is_nil(res)
        assert.equal("forbidden", err.code)
        assert.is_nil(apps:delete("acme-app", { as = OTHER }))
        assert(apps:delete("acme-app", { as = ACME_BOB }))
    end)

    it("an account connected through app A is never refreshed or posted with through app B", function()
        assert(save(app_a, ACME))
        assert(save(app_b, ACME, { id = "second" }))
        local conn_a = assert(apps:connect("acme-app", { as = ACME }))
        local conn_b = assert(apps:connect("second", { as = ACME }))
        local acc = connect_account(conn_a, ACME)
        assert.equal(0, #conn_b:accounts({ as = ACME }))
        local before = tt.count(sb, "oauth.token")
        for _, call in ipairs({
            function() return conn_b:refresh(acc.open_id, { as = ACME }) end,
            function() return conn_b:creator_info(acc.open_id, { as = ACME }) end,
            function() return tiktok.post({ connection = conn_b, account = acc.open_id, as = ACME,
                                            video_url = sb.env.TIKTOK_MEDIA_BASE .. "x.mp4", privacy = "SELF_ONLY" }) end,
        }) do
            local res, err = call()
            assert.is_nil(res)
            assert.equal("forbidden", err.code)
        end
        assert.equal(before, tt.count(sb, "oauth.token"))
        assert(conn_a:refresh(acc.open_id, { as = ACME }))
    end)

    describe("bad input gets a sentence naming the field and the fix, and nothing half-saved", function()
        it("a wrong secret is not saved, and the old one stays in use", function()
            assert(save(app_a, ACME))
            local conn = assert(apps:connect("acme-app", { as = ACME }))
            local acc = connect_account(conn, ACME)
            local res, err = save(app_a, ACME, { client_secret = "wrong-secret-value" })
            assert.is_nil(res)
            assert.equal("invalid_client", err.code)
            assert.truthy(err.message:find("nothing was saved", 1, true))
            assert.truthy(err.message:find("saved ones stay in use", 1, true))
            assert.is_nil(tostring(err):find("wrong-secret-value", 1, true))
            conn = assert(apps:connect("acme-app", { as = ACME }))
            assert(conn:refresh(acc.open_id, { as = ACME }))
        end)

        it("an unknown client key, a disabled app", function()
            local res, err = save({ name = "Nope", client_key = "unknown_key_123", client_secret = "x" }, ACME)
            assert.is_nil(res)
            assert.equal("invalid_client", err.code)
            assert.equal(0, #apps:list({ as = ACME }))
            assert(save(app_a, ACME))
            sb:admin("PATCH", "/apps/" .. app_a.client_key, { disabled = true })
            local rep = assert(apps:check("acme-app", { as = ACME }))
            assert.is_false(rep.ok)
            assert.is_false(rep.checks[1].ok)
            assert.truthy(rep.checks[1].message:find("Client key and Client secret", 1, true))
        end)

        it("a redirect URI with a query string, or http to a public host", function()
            local res, err = save(app_a, ACME, { redirect_uri = "https://app.example/cb?x=1" })
            assert.is_nil(res)
            assert.equal("invalid_argument", err.code)
            assert.same({ "redirect_uri" }, err.problems)
            assert.truthy(err.message:find("query", 1, true))
            res, err = save(app_a, ACME, { redirect_uri = "http://app.example/cb" })
            assert.is_nil(res)
            assert.truthy(err.message:find("https", 1, true))
            assert.equal(0, #apps:list({ as = ACME }))
        end)

        it("scopes that cannot post, and an unaudited app's limits", function()
            assert(save(app_a, ACME, { scopes = { "user.info.basic" }, audited = false }))
            local rep = assert(apps:check("acme-app", { as = ACME }))
            assert.is_false(rep.ok)
            local by = {}
            for _, c in ipairs(rep.checks) do by[c.name] = c end
            assert.is_false(by.scopes.ok)
            assert.truthy(by.scopes.message:find("video.publish", 1, true))
            assert.is_true(by.audit.ok)
            assert.truthy(by.audit.message:find("SELF_ONLY", 1, true))
        end)

        it("a permission the user did not grant is explained after the connect", function()
            assert(save(app_a, ACME))
            local conn = assert(apps:connect("acme-app", { as = ACME }))
            local url, state, verifier = conn:authorize_url()
            local cb = assert(conn:sandbox_approve(url, { granted_scopes = { "user.info.basic", "video.upload" } }))
            local acc = assert(conn:exchange({ code = cb.code, state = cb.state, expected_state = state,
                                               code_verifier = verifier, as = ACME }))
            local rep = assert(conn:check_account(acc.open_id, { as = ACME }))
            assert.is_false(rep.ok)
            local missing
            for _, c in ipairs(rep.checks) do if not c.ok then missing = c end end
            assert.equal("video.publish", missing.name)
            assert.truthy(missing.message:find("did not grant video.publish", 1, true))
        end)
    end)
end)
