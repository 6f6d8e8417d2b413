-- Rate limits (per token, per endpoint, sliding window), the daily posting cap,
-- 5 pending inbox shares, the active-user cap and the unaudited-app mode.
local sandbox = require "spec.helpers.sandbox"

describe("sandbox limits", function()
  local sb, env

  sandbox.use(function(s)
    sb, env = s, s.env
  end)

  local DIRECT = "/v2/post/publish/video/init/"
  local INBOX = "/v2/post/publish/inbox/video/init/"
  local SRC = { source = "FILE_UPLOAD", video_size = 1000, chunk_size = 1000, total_chunk_count = 1 }

  local function direct(tok, privacy)
    local status, v = sb:api("POST", DIRECT, tok, { post_info = { privacy_level = privacy or "SELF_ONLY" }, source_info = SRC })
    return status, v and v.error.code, v
  end

  local function inbox(tok)
    local status, v = sb:api("POST", INBOX, tok, { source_info = SRC })
    return status, v and v.error.code, v
  end

  local function creator_code(tok)
    local status, v = sb:api("POST", "/v2/post/publish/creator_info/query/", tok, {})
    assert.equal(200, status)
    return v.error.code
  end

  describe("rate limits", function()
    it("use a sliding window per token and endpoint", function()
      sb:configure({ rate_limits = { ["video.init"] = 2 } })
      local t = sb:login_pkce({}).access_token
      assert.equal(200, (direct(t)))                         -- t = 0
      sb:admin("POST", "/clock", { advance_sec = 30 })
      assert.equal(200, (direct(t)))                         -- t = 30
      local status, code = direct(t)
      assert.equal(429, status)
      assert.equal("rate_limit_exceeded", code)
      sb:admin("POST", "/clock", { advance_sec = 31 })       -- t = 61: the first request left the window
      assert.equal(200, (direct(t)))
      assert.equal(429, (direct(t)))                         -- the one at t = 30 is still in it
      -- other endpoints and other tokens have their own budgets
      assert.equal(200, (sb:api("POST", "/v2/post/publish/creator_info/query/", t, {})))
      local t2 = sb:login_pkce({}).access_token
      assert.equal(200, (direct(t2)))
    end)

    it("have a configurable window", function()
      sb:configure({ rate_limits = { window_sec = 5, ["inbox.init"] = 1 } })
      local t = sb:login_pkce({}).access_token
      assert.equal(200, (inbox(t)))
      assert.equal(429, (inbox(t)))
      sb:admin("POST", "/clock", { advance_sec = 6 })
      assert.equal(200, (inbox(t)))
    end)

    it("are checked after authentication", function()
      sb:configure({ rate_limits = { ["video.init"] = 1 } })
      local t = sb:login_pkce({}).access_token
      assert.equal(200, (direct(t)))
      assert.equal(401, (direct("act.bad")))
    end)
  end)

  describe("daily posting cap", function()
    it("defaults to 15 direct posts per creator in 24 hours", function()
      sb:configure({ rate_limits = { ["video.init"] = 1000 } })
      local t = sb:login_pkce({}).access_token
      for i = 1, 15 do assert.equal(200, (direct(t)), "post " .. i) end
      local status, code = direct(t)
      assert.equal(403, status)
      assert.equal("spam_risk_too_many_posts", code)
      assert.equal("spam_risk_too_many_posts", creator_code(t))
    end)

    it("is per creator, shared across apps, configurable, and resets after 24 hours", function()
      sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { daily_post_cap = 2 })
      local app = sb:admin("POST", "/apps", {})
      local a = sb:login_pkce({}).access_token
      local b = sb:login_pkce({ client_key = app.client_key, client_secret = app.client_secret }).access_token
      local p = sb:login_pkce({ username = "sandbox_private" }).access_token
      assert.equal(200, (direct(a)))
      assert.equal(200, (direct(b)))
      assert.equal(403, (direct(a)))
      assert.equal(403, (direct(b)))
      assert.equal(200, (direct(p)))                        -- another creator
      assert.equal(200, (inbox(a)))                         -- drafts are not direct posts
      sb:admin("POST", "/clock", { advance_sec = 86401 })
      local a2 = sb:login_pkce({}).access_token
      assert.equal(200, (direct(a2)))
      assert.equal("ok", creator_code(a2))
    end)
  end)

  describe("pending inbox shares", function()
    it("allows 5 pending shares in 24 hours, then 403 spam_risk_too_many_pending_share", function()
      sb:configure({ rate_limits = { ["inbox.init"] = 1000, ["content.init"] = 1000 } })
      local t = sb:login_pkce({}).access_token
      local ids, ids_url = {}, {}
      for i = 1, 5 do
        local status, _, v = inbox(t)
        assert.equal(200, status, "share " .. i)
        ids[i], ids_url[i] = v.data.publish_id, v.data.upload_url
      end
      local status, code = inbox(t)
      assert.equal(403, status)
      assert.equal("spam_risk_too_many_pending_share", code)
      local st, v = sb:api("POST", "/v2/post/publish/content/init/", t, {
        media_type = "PHOTO", post_mode = "MEDIA_UPLOAD", post_info = {},
        source_info = { source = "PULL_FROM_URL", photo_images = { env.TIKTOK_MEDIA_BASE .. "a.jpg" }, photo_cover_index = 0 } })
      assert.equal(403, st)
      assert.equal("spam_risk_too_many_pending_share", v.error.code)
      -- direct posts are not shares
      assert.equal(200, (direct(t)))
      -- a share that failed is no longer pending
      sb:configure({ delays = { processing_ms = 20 } })
      local f = os.tmpname()
      sandbox.write_file(f, string.rep("z", 1000))
      local up = sb:http("PUT", ids_url[1], { body_file = f, headers = { ["Content-Type"] = "video/mp4", ["Content-Range"] = "bytes 0-999/1000" } })
      os.remove(f)
      assert.equal(201, up)
      local p = sb:wait_post(ids[1], function(x) return x.status == "FAILED" end)
      assert.equal("file_format_check_failed", p.fail_reason)
      assert.equal(200, (inbox(t)))
      assert.equal(403, (inbox(t)))
      -- the window is 24 hours
      sb:admin("POST", "/clock", { advance_sec = 86401 })
      assert.equal(200, (inbox(sb:login_pkce({}).access_token)))
    end)

    it("frees a slot when the creator posts a delivered draft", function()
      sb:configure({ rate_limits = { ["inbox.init"] = 1000 }, caps = { pending_shares = 1 }, delays = { processing_ms = 20 } })
      local media = env.TIKTOK_MEDIA_DIR .. "/clip.mp4"
      sandbox.make_video(media, { seconds = 1 })
      local t = sb:login_pkce({}).access_token
      local _, v = sb:api("POST", INBOX, t, { source_info = { source = "PULL_FROM_URL", video_url = env.TIKTOK_MEDIA_BASE .. "clip.mp4" } })
      local id = v.data.publish_id
      assert.equal(403, (inbox(t)))
      local p = sb:wait_post(id, function(x) return x.status == "SEND_TO_USER_INBOX" end)
      assert.equal("SEND_TO_USER_INBOX", p.status)
      assert.equal(403, (inbox(t)))                          -- delivered but not posted: still pending
      local done, st = sb:admin("POST", "/posts/" .. id .. "/publish", { privacy_level = "SELF_ONLY" })
      assert.equal(200, st)
      assert.equal("PUBLISH_COMPLETE", done.status)
      assert.equal(200, (inbox(t)))
    end)
  end)

  describe("active-user cap", function()
    it("blocks new publishing users once the client's daily quota is used", function()
      sb:admin("PATCH", "/apps/default", { active_user_cap = 1 })
      local a = sb:login_pkce({}).access_token
      local b = sb:login_pkce({ username = "sandbox_private" }).access_token
      assert.equal("ok", creator_code(b))
      assert.equal(200, (direct(a)))
      local status, code = direct(b)
      assert.equal(403, status)
      assert.equal("reached_active_user_cap", code)
      assert.equal("reached_active_user_cap", creator_code(b))
      assert.equal(200, (direct(a)))                         -- already active today
      assert.equal("ok", creator_code(a))
    end)
  end)

  describe("unaudited app", function()
    before_each(function()
      local _, st = sb:admin("PATCH", "/apps/default", { audited = false })
      assert.equal(200, st)
    end)

    it("only posts to private accounts", function()
      local pub = sb:login_pkce({}).access_token
      local status, code = direct(pub)
      assert.equal(403, status)
      assert.equal("unaudited_client_can_only_post_to_private_accounts", code)
      local priv = sb:login_pkce({ username = "sandbox_private" }).access_token
      assert.equal(200, (direct(priv, "SELF_ONLY")))
    end)

    it("only posts SELF_ONLY", function()
      local priv = sb:login_pkce({ username = "sandbox_private" }).access_token
      local status, code = direct(priv, "FOLLOWER_OF_CREATOR")
      assert.equal(403, status)
      assert.equal("privacy_level_option_mismatch", code)
      status, code = direct(priv, "MUTUAL_FOLLOW_FRIENDS")
      assert.equal(403, status)
      assert.equal("privacy_level_option_mismatch", code)
    end)

    it("lets at most 5 users post in 24 hours", function()
      for i = 1, 6 do
        local _, st = sb:admin("POST", "/users", { username = "private_" .. i, is_private = true })
        assert.equal(201, st)
      end
      for i = 1, 5 do
        local t = sb:login_pkce({ username = "private_" .. i }).access_token
        assert.equal(200, (direct(t)), "user " .. i)
      end
      local t6 = sb:login_pkce({ username = "private_6" }).access_token
      local status, code = direct(t6)
      assert.equal(403, status)
      assert.equal("reached_active_user_cap", code)
      sb:admin("POST", "/clock", { advance_sec = 86401 })
      assert.equal(200, (direct(sb:login_pkce({ username = "private_6" }).access_token)))
    end)

    it("still accepts inbox drafts", function()
      assert.equal(200, (inbox(sb:login_pkce({}).access_token)))
    end)
  end)
end)
