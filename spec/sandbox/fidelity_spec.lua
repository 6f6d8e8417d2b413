-- What real TikTok does (tiktok-api.md §15, issue 11 points 1-8) and the
-- sandbox does by default, each with the setting that changes it, tried on
-- both settings. Plain HTTP against the sandbox.
local sandbox = require "spec.helpers.sandbox"

describe("sandbox fidelity to production TikTok (§15)", function()
  local sb, env, AUTH, API, media

  sandbox.use(function(s)
    sb, env = s, s.env
    AUTH = env.TIKTOK_AUTH_BASE .. "/v2/auth/authorize/"
    API = env.TIKTOK_API_BASE
    media = env.TIKTOK_MEDIA_DIR
    sandbox.write_file(media .. "/text.mp4", string.rep("not a video ", 500))
    -- 601 s of black at 24 fps, 360x640: over 10 minutes, about 1 MB.
    sandbox.exec("ffmpeg -loglevel error -y -f lavfi -i color=c=black:size=360x640:rate=24 -t 1 -c:v libx264 " ..
      "-preset ultrafast -pix_fmt yuv420p " .. sandbox.shell_quote(media .. "/one.mp4") ..
      " && ffmpeg -loglevel error -y -stream_loop 600 -i " .. sandbox.shell_quote(media .. "/one.mp4") ..
      " -c copy " .. sandbox.shell_quote(media .. "/long.mp4"))
  end, { config = { delays = { processing_ms = 20, moderation_ms = 20 } } })

  local FINAL = { PUBLISH_COMPLETE = true, FAILED = true, SEND_TO_USER_INBOX = true }

  local function page(params)
    local p = { client_key = env.TIKTOK_CLIENT_KEY, response_type = "code", scope = "user.info.basic,video.publish",
      redirect_uri = env.TIKTOK_REDIRECT_URI, state = "s" }
    for k, v in pairs(params or {}) do p[k] = v end
    return sb:http("GET", AUTH .. "?" .. sandbox.form_encode(p))
  end

  local function exchange(code, verifier, extra)
    local form = { grant_type = "authorization_code", code = code, redirect_uri = env.TIKTOK_REDIRECT_URI,
      code_verifier = verifier }
    for k, v in pairs(extra or {}) do form[k] = v end
    return sb:token(form)
  end

  describe("1. PKCE on web authorize (§15.1, §15.2)", function()
    it("is required by default: without code_challenge the page is an error naming it", function()
      local status, h, body = page({})
      assert.equal(400, status)
      assert.is_nil(h.location)
      assert.equal("invalid_request", h["x-sandbox-error"])
      assert.truthy(body:find('<code id="param">code_challenge</code>', 1, true))
      assert.truthy(body:find("code_challenge is required", 1, true))
      -- the approve path too
      local st = sb:authorize({})
      assert.equal(400, st)
    end)

    it("is required for apps registered through the control API too", function()
      local app = sb:add_app({ name = "Second" })
      assert.equal(true, app.pkce_required)
      assert.equal(400, (page({ client_key = app.client_key })))
    end)

    it("takes the lower-case hex SHA-256 of the verifier, not base64url", function()
      local b64 = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
      local status, _, body = page({ code_challenge = b64, code_challenge_method = "S256" })
      assert.equal(400, status)
      assert.truthy(body:find("Code verifier or code challenge is invalid.", 1, true))
      local _, challenge = sandbox.pkce_pair()
      assert.equal(200, (page({ code_challenge = challenge, code_challenge_method = "S256" })))
      assert.equal(400, (page({ code_challenge = challenge })))  -- S256 must be named
    end)

    it("then needs the matching code_verifier at the exchange", function()
      local verifier, challenge = sandbox.pkce_pair()
      local status, q = sb:authorize({ code_challenge = challenge, code_challenge_method = "S256" })
      assert.equal(302, status)
      local st, err = exchange(q.code, nil)
      assert.equal(400, st)
      assert.equal("invalid_request", err.error)
      assert.matches("^Code verifier or code challenge is invalid%.", err.error_description)
      local other = sandbox.pkce_pair()
      st, err = exchange(q.code, other)
      assert.equal(400, st)
      assert.equal("invalid_grant", err.error)
      assert.equal("Code verifier or code challenge is invalid.", err.error_description)
      local st2, tok = exchange(q.code, verifier)
      assert.equal(200, st2)
      assert.matches("^act%.", tok.access_token)
    end)

    it("pkce_required = false turns the requirement off (and a verifier is then not needed)", function()
      local _, st = sb:admin("PATCH", "/apps/default", { pkce_required = false })
      assert.equal(200, st)
      assert.equal(200, (page({})))
      local status, q = sb:authorize({})
      assert.equal(302, status)
      local st2, tok = exchange(q.code, nil)
      assert.equal(200, st2)
      assert.truthy(tok.access_token)
      -- a challenge sent anyway is still enforced
      local verifier, challenge = sandbox.pkce_pair()
      local _, q2 = sb:authorize({ code_challenge = challenge, code_challenge_method = "S256" })
      assert.equal(400, (exchange(q2.code, nil)))
      local _, q3 = sb:authorize({ code_challenge = challenge, code_challenge_method = "S256" })
      assert.equal(200, (exchange(q3.code, verifier)))
    end)
  end)

  describe("2. Content Posting validation errors are invalid_params (§15.3)", function()
    local token
    before_each(function()
      sb:configure({ rate_limits = { ["video.init"] = 1000, ["inbox.init"] = 1000 } })
      token = sb:login_pkce({}).access_token
    end)

    local function init(path, body)
      local status, v, raw = sb:api("POST", path, token, body)
      return status, v, raw
    end

    local cases = {
      { "a chunk size under 5 MB", "/v2/post/publish/video/init/",
        { post_info = { privacy_level = "SELF_ONLY" }, source_info = { source = "FILE_UPLOAD",
          video_size = 30000000, chunk_size = 1000000, total_chunk_count = 30 } }, "^The chunk size is invalid" },
      { "a wrong total chunk count", "/v2/post/publish/video/init/",
        { post_info = { privacy_level = "SELF_ONLY" }, source_info = { source = "FILE_UPLOAD",
          video_size = 30000000, chunk_size = 10000000, total_chunk_count = 4 } }, "^total chunk count is invalid" },
      { "a missing post_info", "/v2/post/publish/video/init/",
        { source_info = { source = "FILE_UPLOAD", video_size = 1000, chunk_size = 1000, total_chunk_count = 1 } },
        "^The request post info is empty or incorrect" },
      { "a post_info field of the wrong type", "/v2/post/publish/video/init/",
        { post_info = { privacy_level = "SELF_ONLY", disable_duet = "no" }, source_info = { source = "FILE_UPLOAD",
          video_size = 1000, chunk_size = 1000, total_chunk_count = 1 } }, "^The request post info is empty or incorrect" },
      { "an inbox chunk size over 64 MB", "/v2/post/publish/inbox/video/init/",
        { source_info = { source = "FILE_UPLOAD", video_size = 200000000, chunk_size = 70000000,
          total_chunk_count = 2 } }, "^The chunk size is invalid" },
    }
    for _, c in ipairs(cases) do
      it("answers 400 invalid_params with TikTok's text for " .. c[1], function()
        local status, v, raw = init(c[2], c[3])
        assert.equal(400, status)
        assert.equal("invalid_params", v.error.code)
        assert.matches(c[4], v.error.message)
        assert.truthy(raw:find('"data":{}', 1, true))
      end)
    end

    it("accepts 70 MB in 7 chunks of 10 MB and 64 MB in one PUT (§15.14)", function()
      local status = init("/v2/post/publish/video/init/", { post_info = { privacy_level = "SELF_ONLY" },
        source_info = { source = "FILE_UPLOAD", video_size = 70000000, chunk_size = 10000000, total_chunk_count = 7 } })
      assert.equal(200, status)
      status = init("/v2/post/publish/video/init/", { post_info = { privacy_level = "SELF_ONLY" },
        source_info = { source = "FILE_UPLOAD", video_size = 64000000, chunk_size = 64000000, total_chunk_count = 1 } })
      assert.equal(200, status)
    end)
  end)

  describe("3. OAuth errors with HTTP 200 (§15.4, app setting oauth_errors_http_200)", function()
    local function revoke(form)
      local f = { client_key = env.TIKTOK_CLIENT_KEY, client_secret = env.TIKTOK_CLIENT_SECRET }
      for k, v in pairs(form) do f[k] = v end
      local status, _, body = sb:http("POST", API .. "/v2/oauth/revoke/", { form = f })
      return status, sandbox.json_decode(body)
    end

    local function failures()
      local out = {}
      local st, v = sb:token({ grant_type = "client_credentials", client_secret = "wrong" })
      out[#out + 1] = { "wrong secret", st, v, "invalid_client" }
      st, v = sb:token({ grant_type = "client_credentials", client_key = "awnotregistered" })
      out[#out + 1] = { "unknown client_key", st, v, "invalid_client" }
      st, v = sb:token({ grant_type = "authorization_code", code = "nope", redirect_uri = env.TIKTOK_REDIRECT_URI })
      out[#out + 1] = { "unknown code", st, v, "invalid_grant" }
      st, v = sb:token({ grant_type = "refresh_token", refresh_token = "rft.nope" })
      out[#out + 1] = { "unknown refresh token", st, v, "invalid_grant" }
      st, v = sb:token({ grant_type = "password" })
      out[#out + 1] = { "unsupported grant", st, v, "unsupported_grant_type" }
      st, v = revoke({ client_secret = "wrong", token = "act.x" })
      out[#out + 1] = { "revoke with a wrong secret", st, v, "invalid_client" }
      return out
    end

    it("by default answers 400/401", function()
      for _, f in ipairs(failures()) do
        assert.is_true(f[2] == 400 or f[2] == 401, f[1] .. ": " .. tostring(f[2]))
        assert.equal(f[4], f[3].error, f[1])
      end
    end)

    it("with the setting answers HTTP 200 and the same {error, error_description, log_id} body", function()
      local _, st = sb:admin("PATCH", "/apps/default", { oauth_errors_http_200 = true })
      assert.equal(200, st)
      for _, f in ipairs(failures()) do
        assert.equal(200, f[2], f[1])
        assert.equal(f[4], f[3].error, f[1])
        assert.is_string(f[3].error_description, f[1])
        assert.is_string(f[3].log_id, f[1])
        assert.is_nil(f[3].access_token, f[1])
      end
      -- success is unchanged
      local tok = sb:login_pkce({})
      assert.matches("^act%.", tok.access_token)
      -- a wrong method stays 405
      assert.equal(405, (sb:http("GET", API .. "/v2/oauth/token/")))
    end)

    it("is per app: app B's errors are 200, the default app's stay 4xx", function()
      local b = sb:add_app({ name = "B", oauth_errors_http_200 = true })
      assert.equal(true, b.oauth_errors_http_200)
      local st, v = sb:token({ grant_type = "client_credentials", client_key = b.client_key, client_secret = "wrong" })
      assert.equal(200, st)
      assert.equal("invalid_client", v.error)
      st, v = sb:token({ grant_type = "client_credentials", client_secret = "wrong" })
      assert.equal(401, st)
      assert.equal("invalid_client", v.error)
    end)
  end)

  describe("4. user info asking for a field whose scope was not granted (§15.5)", function()
    it("is 401 scope_not_authorized", function()
      local t = sb:login_pkce({ scope = "user.info.basic" })
      local status, v, raw = sb:api("GET", "/v2/user/info/?fields=open_id,follower_count", t.access_token)
      assert.equal(401, status)
      assert.equal("scope_not_authorized", v.error.code)
      assert.matches("^The user did not authorize the scope required", v.error.message)
      assert.truthy(raw:find('"data":{}', 1, true))
      assert.equal(200, (sb:api("GET", "/v2/user/info/?fields=open_id", t.access_token)))
    end)
  end)

  describe("5. the creator's own max_video_post_duration_sec (§15.6)", function()
    local function pull_long(token)
      local status, v = sb:api("POST", "/v2/post/publish/video/init/", token, {
        post_info = { title = "long", privacy_level = "SELF_ONLY" },
        source_info = { source = "PULL_FROM_URL", video_url = env.TIKTOK_MEDIA_BASE .. "long.mp4" } })
      assert.equal(200, status, v and v.error and v.error.message)
      return sb:wait_status(token, v.data.publish_id, FINAL, 30)
    end

    it("3600: a 601-second video is published (no fixed 600 s cap)", function()
      sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { max_video_post_duration_sec = 3600 })
      local token = sb:login_pkce({}).access_token
      local _, ci = sb:api("POST", "/v2/post/publish/creator_info/query/", token, {})
      assert.equal(3600, ci.data.max_video_post_duration_sec)
      local v = pull_long(token)
      assert.equal("PUBLISH_COMPLETE", v.data.status)
    end)

    it("300 (the default creator's): the same video fails duration_check_failed", function()
      local token = sb:login_pkce({}).access_token
      local _, ci = sb:api("POST", "/v2/post/publish/creator_info/query/", token, {})
      assert.equal(300, ci.data.max_video_post_duration_sec)
      local v = pull_long(token)
      assert.equal("FAILED", v.data.status)
      assert.equal("duration_check_failed", v.data.fail_reason)
    end)
  end)

  describe("6. bodies as TikTok writes them (§15.7, §15.8)", function()
    it("a FAILED status is only fail_reason and status, with error.code ok", function()
      local token = sb:login_pkce({}).access_token
      local _, v = sb:api("POST", "/v2/post/publish/video/init/", token, {
        post_info = { privacy_level = "SELF_ONLY" },
        source_info = { source = "PULL_FROM_URL", video_url = env.TIKTOK_MEDIA_BASE .. "text.mp4" } })
      local id = v.data.publish_id
      local last = sb:wait_status(token, id, FINAL)
      assert.equal("FAILED", last.data.status)
      local status, body, raw = sb:api("POST", "/v2/post/publish/status/fetch/", token, { publish_id = id })
      assert.equal(200, status)
      assert.same({ fail_reason = "file_format_check_failed", status = "FAILED" }, body.data)
      assert.equal("ok", body.error.code)
      assert.equal("", body.error.message)
      assert.is_string(body.error.log_id)
      assert.matches('^{"data":{"fail_reason":"file_format_check_failed","status":"FAILED"},"error":{', raw)
      assert.is_nil(raw:find("publicaly_available_post_id", 1, true))
      assert.is_nil(raw:find("_bytes", 1, true))
    end)

    it("a bad access token: 401 access_token_invalid, TikTok's message, data {}", function()
      local t = sb:login_pkce({})
      sb:admin("POST", "/tokens/expire", { access_token = t.access_token })
      for _, tok in ipairs({ "act.unknown", t.access_token, false }) do
        local status, v, raw = sb:api("POST", "/v2/post/publish/creator_info/query/", tok or nil, {})
        assert.equal(401, status)
        assert.equal("access_token_invalid", v.error.code)
        assert.equal("The access token is invalid or not found in the request.", v.error.message)
        assert.truthy(raw:find('"data":{}', 1, true))
      end
    end)
  end)

  describe("7. ids shaped like TikTok's (§15.9)", function()
    it("open_ids are 35 base64url characters; the default creator's starts with '-', the private one's with '_'", function()
      local a = sb:login_pkce({})
      local b = sb:login_pkce({ username = "sandbox_private" })
      assert.equal(35, #a.open_id)
      assert.equal(35, #b.open_id)
      assert.matches("^%-[%w_%-]+$", a.open_id)
      assert.matches("^_[%w_%-]+$", b.open_id)
      local _, v = sb:api("GET", "/v2/user/info/?fields=open_id", a.access_token)
      assert.equal(a.open_id, v.data.user.open_id)
      sb:admin("POST", "/users", { username = "third_user" })
      local c = sb:login_pkce({ username = "third_user" })
      assert.matches("^[%w_%-]+$", c.open_id)
      assert.equal(35, #c.open_id)
    end)

    it("publish ids end in 19 digits", function()
      local token = sb:login_pkce({}).access_token
      local _, v = sb:api("POST", "/v2/post/publish/inbox/video/init/", token, {
        source_info = { source = "FILE_UPLOAD", video_size = 1000, chunk_size = 1000, total_chunk_count = 1 } })
      assert.matches("^v_inbox_file~v2%.7" .. string.rep("%d", 18) .. "$", v.data.publish_id)
      _, v = sb:api("POST", "/v2/post/publish/video/init/", token, { post_info = { privacy_level = "SELF_ONLY" },
        source_info = { source = "PULL_FROM_URL", video_url = env.TIKTOK_MEDIA_BASE .. "one.mp4" } })
      assert.matches("^v_pub_url~v2%.7" .. string.rep("%d", 18) .. "$", v.data.publish_id)
    end)
  end)

  describe("8. token lifetimes (§15.10)", function()
    for _, life in ipairs({ { 86400, 31536000 }, { 7200, 15552000 } }) do
      local access, refresh = life[1], life[2]
      it(("expires_in %d / refresh_expires_in %d, counting down from the grant after refreshes"):format(access, refresh), function()
        if access ~= 7200 then sb:configure({ tokens = { access_ttl_sec = access, refresh_ttl_sec = refresh } }) end
        local t1 = sb:login_pkce({})
        assert.equal(access, t1.expires_in)
        assert.equal(refresh, t1.refresh_expires_in)
        sb:admin("POST", "/clock", { advance_sec = access + 1 })
        assert.equal(401, (sb:api("GET", "/v2/user/info/?fields=open_id", t1.access_token)))
        local st, t2 = sb:token({ grant_type = "refresh_token", refresh_token = t1.refresh_token })
        assert.equal(200, st)
        assert.equal(access, t2.expires_in)
        assert.truthy(t2.refresh_expires_in <= refresh - access - 1 and t2.refresh_expires_in >= refresh - access - 4,
          tostring(t2.refresh_expires_in))
        assert.equal(200, (sb:api("GET", "/v2/user/info/?fields=open_id", t2.access_token)))
        -- the refresh token expires at the original grant's deadline, however recently it rotated
        sb:admin("POST", "/clock", { advance_sec = t2.refresh_expires_in - 10 })
        local st3, t3 = sb:token({ grant_type = "refresh_token", refresh_token = t2.refresh_token })
        assert.equal(200, st3)
        assert.truthy(t3.refresh_expires_in <= 10)
        sb:admin("POST", "/clock", { advance_sec = 11 })
        local st4, err = sb:token({ grant_type = "refresh_token", refresh_token = t3.refresh_token })
        assert.equal(400, st4)
        assert.equal("invalid_grant", err.error)
      end)
    end
  end)
end)
