-- POST /v2/post/publish/status/fetch/ and /v2/post/publish/cancel/.
local sandbox = require "spec.helpers.sandbox"

describe("sandbox status fetch and cancel", function()
  local sb, env, token

  sandbox.use(function(s)
    sb, env = s, s.env
    sandbox.make_video(env.TIKTOK_MEDIA_DIR .. "/clip.mp4", { seconds = 2 })
  end)

  before_each(function()
    sb:configure({ rate_limits = { ["video.init"] = 10000, ["status.fetch"] = 10000 },
      delays = { processing_ms = 50, moderation_ms = 50 } })
    token = sb:login_pkce({}).access_token
  end)

  local FINAL = { PUBLISH_COMPLETE = true, FAILED = true, SEND_TO_USER_INBOX = true }

  local function file_init(tok)
    local status, v = sb:api("POST", "/v2/post/publish/video/init/", tok or token, {
      post_info = { privacy_level = "SELF_ONLY" },
      source_info = { source = "FILE_UPLOAD", video_size = 1000, chunk_size = 1000, total_chunk_count = 1 } })
    assert.equal(200, status)
    return v.data.publish_id, v.data.upload_url
  end

  local function pull_init(tok)
    local status, v = sb:api("POST", "/v2/post/publish/video/init/", tok or token, {
      post_info = { privacy_level = "SELF_ONLY" },
      source_info = { source = "PULL_FROM_URL", video_url = env.TIKTOK_MEDIA_BASE .. "clip.mp4" } })
    assert.equal(200, status)
    return v.data.publish_id
  end

  local function fetch(id, tok)
    return sb:api("POST", "/v2/post/publish/status/fetch/", tok or token, id == nil and {} or { publish_id = id })
  end

  local function cancel(id, tok)
    return sb:api("POST", "/v2/post/publish/cancel/", tok or token, { publish_id = id })
  end

  describe("status fetch", function()
    it("answers PROCESSING_UPLOAD with uploaded_bytes for a fresh FILE_UPLOAD", function()
      local id = file_init()
      local status, v, raw = fetch(id)
      assert.equal(200, status)
      assert.equal("ok", v.error.code)
      assert.equal("PROCESSING_UPLOAD", v.data.status)
      assert.equal(0, v.data.uploaded_bytes)
      assert.is_nil(v.data.fail_reason)
      assert.truthy(raw:find('"publicaly_available_post_id":[]', 1, true))
    end)

    it("refuses an unknown publish_id with 400 invalid_publish_id", function()
      local status, v = fetch("v_pub_file~v2-1.1234567890")
      assert.equal(400, status)
      assert.equal("invalid_publish_id", v.error.code)
    end)

    it("refuses a missing or non-string publish_id with 400 invalid_params", function()
      local status, v = fetch(nil)
      assert.equal(400, status)
      assert.equal("invalid_params", v.error.code)
      status, v = sb:api("POST", "/v2/post/publish/status/fetch/", token, { publish_id = 123 })
      assert.equal(400, status)
      assert.equal("invalid_params", v.error.code)
    end)

    it("refuses another user's or another app's publish_id", function()
      local id = file_init()
      local other_user = sb:login_pkce({ username = "sandbox_private" }).access_token
      local status, v = fetch(id, other_user)
      assert.equal(400, status)
      assert.equal("token_not_authorized_for_specified_publish_id", v.error.code)
      local app = sb:admin("POST", "/apps", {})
      local other_app = sb:login_pkce({ client_key = app.client_key, client_secret = app.client_secret }).access_token
      status, v = fetch(id, other_app)
      assert.equal(400, status)
      assert.equal("token_not_authorized_for_specified_publish_id", v.error.code)
    end)

    it("accepts any token of the same user and app (after a refresh)", function()
      local t = sb:login_pkce({})
      local id = file_init(t.access_token)
      local _, t2 = sb:token({ grant_type = "refresh_token", refresh_token = t.refresh_token })
      assert.equal(200, (fetch(id, t2.access_token)))
    end)

    it("needs a token and video.upload or video.publish", function()
      local id = file_init()
      local status, v = fetch(id, "act.nope")
      assert.equal(401, status)
      assert.equal("access_token_invalid", v.error.code)
      local basic = sb:login_pkce({ scope = "user.info.basic" }).access_token
      status, v = fetch(id, basic)
      assert.equal(401, status)
      assert.equal("scope_not_authorized", v.error.code)
      local upload_only = sb:login_pkce({ scope = "video.upload" }).access_token
      status, v = fetch(id, upload_only)   -- video.upload is enough; same user and app
      assert.equal(200, status)
      assert.equal("ok", v.error.code)
    end)

    it("allows 30 fetches per minute per token", function()
      sb:configure({ rate_limits = { ["status.fetch"] = 30 } })
      local id = file_init()
      for i = 1, 30 do assert.equal(200, (fetch(id)), "fetch " .. i) end
      local status, v = fetch(id)
      assert.equal(429, status)
      assert.equal("rate_limit_exceeded", v.error.code)
    end)

    it("fails unfinished posts with auth_removed when the app's access is revoked", function()
      local id, url = file_init()
      local st = sb:http("POST", env.TIKTOK_API_BASE .. "/v2/oauth/revoke/", { form = {
        client_key = env.TIKTOK_CLIENT_KEY, client_secret = env.TIKTOK_CLIENT_SECRET, token = token } })
      assert.equal(200, st)
      local p = sb:post(id)
      assert.equal("FAILED", p.status)
      assert.equal("auth_removed", p.fail_reason)
      local f = os.tmpname()
      sandbox.write_file(f, string.rep("x", 1000))
      local status = sb:http("PUT", url, { body_file = f, headers = { ["Content-Type"] = "video/mp4", ["Content-Range"] = "bytes 0-999/1000" } })
      os.remove(f)
      assert.equal(404, status)
    end)

    it("fails unfinished posts with auth_removed when the user removes the app", function()
      local id = file_init()
      local v = sb:admin("POST", "/users/" .. env.TIKTOK_SANDBOX_USER .. "/deauthorize", {})
      assert.equal(1, v.revoked_grants)
      assert.equal("auth_removed", sb:post(id).fail_reason)
      assert.equal(401, (fetch(id)))
    end)
  end)

  describe("cancel", function()
    it("cancels a slow download: 200 with only the error object, then FAILED publish_cancelled", function()
      sb:admin("POST", "/faults", { endpoint = "media.get", rate_bps = 4000 })
      local id = pull_init()
      local p = sb:wait_post(id, function(x) return (x.downloaded_bytes or 0) > 0 end)
      assert.equal("PROCESSING_DOWNLOAD", p.status)
      local status, v, raw = cancel(id)
      assert.equal(200, status)
      assert.equal("ok", v.error.code)
      assert.is_nil(v.data)
      assert.is_nil(raw:find('"data"', 1, true))
      local s = sb:wait_status(token, id, FINAL)
      assert.equal("FAILED", s.data.status)
      assert.equal("publish_cancelled", s.data.fail_reason)
      sandbox.sleep(0.3)
      assert.truthy(sb:post(id).downloaded_bytes < sandbox.file_size(env.TIKTOK_MEDIA_DIR .. "/clip.mp4"))
    end)

    it("refuses a FILE_UPLOAD and a finished post with 400 publish_not_cancellable", function()
      local id = file_init()
      local status, v = cancel(id)
      assert.equal(400, status)
      assert.equal("publish_not_cancellable", v.error.code)
      local pid = pull_init()
      assert.equal("PUBLISH_COMPLETE", sb:wait_status(token, pid, FINAL).data.status)
      status, v = cancel(pid)
      assert.equal(400, status)
      assert.equal("publish_not_cancellable", v.error.code)
    end)

    it("refuses unknown and foreign publish ids", function()
      local status, v = cancel("v_pub_url~v2.1")
      assert.equal(400, status)
      assert.equal("invalid_publish_id", v.error.code)
      sb:admin("POST", "/faults", { endpoint = "media.get", delay_ms = 2000 })
      local id = pull_init()
      local other = sb:login_pkce({ username = "sandbox_private" }).access_token
      status, v = cancel(id, other)
      assert.equal(400, status)
      assert.equal("token_not_authorized_for_specified_publish_id", v.error.code)
      status, v = cancel(id, "act.nope")
      assert.equal(401, status)
      assert.equal("access_token_invalid", v.error.code)
      local basic = sb:login_pkce({ scope = "user.info.basic" }).access_token
      status, v = cancel(id, basic)
      assert.equal(401, status)
      assert.equal("scope_not_authorized", v.error.code)
    end)
  end)
end)
