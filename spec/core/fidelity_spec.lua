-- What real TikTok does (tiktok-api.md §15), through the library against
-- the sandbox, which does each by default; where a sandbox setting changes
-- it, both settings run.
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

describe("real TikTok's behaviour (§15) through the library", function()
    local sb, dir

    sandbox.use(function(s, d) sb, dir = s, d end, { tmpdir = true })

    describe("15.1/15.2 PKCE on web authorize", function()
        it("is on by default: a hex S256 challenge, and the verifier makes the exchange work", function()
            local conn = tt.connect(sb)
            local url, state, verifier = conn:authorize_url()
            assert.is_string(verifier)
            assert.truthy(url:find("code_challenge=" .. tiktok.core.sha256_hex(verifier), 1, true))
            assert.truthy(url:find("code_challenge_method=S256", 1, true))
            local cb = assert(conn:sandbox_approve(url))
            assert(conn:exchange({ code = cb.code, state = cb.state, expected_state = state,
                                   code_verifier = verifier }))
        end)

        it("without the verifier TikTok refuses the exchange, and nothing is stored", function()
            local conn = tt.connect(sb)
            local url, state = conn:authorize_url()
            local cb = assert(conn:sandbox_approve(url))
            local acc, err = conn:exchange({ code = cb.code, state = cb.state, expected_state = state })
            assert.is_nil(acc)
            assert.is_string(err.code)
            assert.equal(0, #conn:accounts())
        end)

        it("pkce = false is refused by an app that requires PKCE, accepted by one that does not", function()
            local conn = tt.connect(sb)
            local url = conn:authorize_url({ pkce = false })
            local cb, err = conn:sandbox_approve(url)
            assert.is_nil(cb)
            assert.equal(400, err.http_status)
            sb:admin("PATCH", "/apps/default", { pkce_required = false })
            local state
            url, state = conn:authorize_url({ pkce = false })
            cb = assert(conn:sandbox_approve(url))
            assert(conn:exchange({ code = cb.code, state = cb.state, expected_state = state }))
        end)
    end)

    describe("15.4 OAuth errors, with their 4xx status and with HTTP 200", function()
        for _, as_200 in ipairs({ false, true }) do
            it("are read from the body (oauth_errors_http_200 = " .. tostring(as_200) .. ")", function()
                sb:admin("PATCH", "/apps/default", { oauth_errors_http_200 = as_200 })
                local conn = tt.connect(sb)
                local url, state, verifier = conn:authorize_url()
                local cb = assert(conn:sandbox_approve(url))
                local acc, err = conn:exchange({ code = cb.code .. "x", state = cb.state, expected_state = state,
                                                 code_verifier = verifier })
                assert.is_nil(acc)
                assert.equal("invalid_grant", err.code)
                assert.equal(as_200 and 200 or 400, err.http_status)
                assert.is_nil(tostring(err):find(cb.code, 1, true))
                -- a refresh TikTok refuses: the account must be connected again
                acc = tt.account(conn)
                sb:admin("POST", "/tokens/expire", { open_id = acc.open_id, kind = "both" })
                local res
                res, err = conn:refresh(acc.open_id)
                assert.is_nil(res)
                assert.equal("reauthorize", err.code)
                -- a wrong client secret
                local bad = tt.connect(sb, { client_secret = "not-the-secret" })
                res, err = bad:client_token()
                assert.is_nil(res)
                assert.equal("invalid_client", err.code)
                assert.is_nil(tostring(err):find("not-the-secret", 1, true))
            end)
        end
    end)

    it("15.5 a user_info field whose scope was not granted is scope_not_authorized (401)", function()
        local conn = tt.connect(sb, { scopes = { "user.info.basic", "video.publish" } })
        local acc = tt.account(conn)
        local info, err = conn:user_info(acc.open_id, { fields = { "open_id", "follower_count" } })
        assert.is_nil(info)
        assert.equal("scope_not_authorized", err.code)
        assert.equal(401, err.http_status)
        assert.equal("reconnect", err.class)
        assert(conn:user_info(acc.open_id, { fields = { "open_id", "display_name" } }))
    end)

    it("15.6 a creator's own duration limit (3600 s) is used, and named in the message", function()
        local clip = media.mp4(dir, { seconds = 2 })
        local conn = tt.connect(sb, { store = tiktok.store.memory() })
        local acc = tt.account(conn)
        sb:admin("PATCH", "/users/" .. sb.env.TIKTOK_SANDBOX_USER, { max_video_post_duration_sec = 3600 })
        local info = assert(conn:creator_info(acc.open_id))
        assert.equal(3600, info.max_video_post_duration_sec)
        assert(tiktok.post({ connection = conn, video_file = clip, privacy = "SELF_ONLY", wait = false }))
        sb:admin("PATCH", "/users/" .. sb.env.TIKTOK_SANDBOX_USER, { max_video_post_duration_sec = 1 })
        local res, err = tiktok.post({ connection = conn, video_file = clip, privacy = "SELF_ONLY" })
        assert.is_nil(res)
        assert.equal("invalid_settings", err.code)
        assert.truthy(err.problems[1]:find("at most 1 s", 1, true), err.problems[1])
        assert.is_nil(err.message:find("10 minutes", 1, true))
    end)

    it("15.7 a FAILED status (error.code ok, no ids, no byte counts) is the post's failure", function()
        sb:configure({ delays = { processing_ms = 20 } })
        sb:admin("POST", "/faults", { endpoint = "post.processing", fail_reason = "file_format_check_failed" })
        local conn = tt.connect(sb)
        tt.account(conn)
        local res, err = tiktok.post({ connection = conn, video_file = media.mp4(dir, { seconds = 2 }),
                                       privacy = "SELF_ONLY" })
        assert.is_nil(res)
        assert.equal("file_format_check_failed", err.code)
        assert.equal("file_format_check_failed", err.fail_reason)
        local st = assert(tiktok.status({ connection = conn, publish_id = err.publish_id }))
        assert.equal("FAILED", st.status)
        assert.same({}, st.post_ids)
        assert.is_nil(st.uploaded_bytes)
    end)

    it("15.8 an invalid access token (401, data {}) is refreshed once and the call repeated", function()
        local conn = tt.connect(sb)
        local acc = tt.account(conn)
        sb:admin("POST", "/tokens/expire", { open_id = acc.open_id, kind = "access" })
        local before = tt.count(sb, "oauth.token")
        assert(conn:creator_info(acc.open_id))
        assert.equal(before + 1, tt.count(sb, "oauth.token"))
    end)

    it("15.9 open_ids that start with '-' or '_' work everywhere", function()
        local conn = tt.connect(sb)
        local a = tt.account(conn)
        local b = tt.account(conn, { username = "sandbox_private" })
        assert.equal("-", a.open_id:sub(1, 1))
        assert.equal("_", b.open_id:sub(1, 1))
        assert.equal(35, #a.open_id)
        for _, id in ipairs({ a.open_id, b.open_id }) do
            assert.equal(id, conn:account(id).open_id)
            assert(conn:creator_info(id))
            local res = assert(tiktok.post({ connection = conn, account = id, privacy = "SELF_ONLY",
                                             video_file = media.mp4(dir, { seconds = 2 }), wait = false }))
            assert.matches("^v_pub_file~v2[-.%d]*%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d$", res.publish_id)
        end
    end)

    describe("15.10 token lifetimes come from each answer", function()
        for _, ttl in ipairs({ { 7200, 15552000 }, { 86400, 31536000 } }) do
            it(("expires_in %d / refresh_expires_in %d"):format(ttl[1], ttl[2]), function()
                sb:configure({ tokens = { access_ttl_sec = ttl[1], refresh_ttl_sec = ttl[2] } })
                local conn = tt.connect(sb)
                local acc = tt.account(conn)
                local now = os.time()
                assert.is_true(math.abs(acc.expires_at - (now + ttl[1])) <= 5)
                assert.is_true(math.abs(acc.refresh_expires_at - (now + ttl[2])) <= 5)
                local again = assert(conn:refresh(acc.open_id))
                assert.is_true(math.abs(again.expires_at - (os.time() + ttl[1])) <= 5)
                -- the refresh token keeps its original deadline (it counts down)
                assert.is_true(again.refresh_expires_at <= acc.refresh_expires_at + 2)
            end)
        end
    end)
end)
