-- POST /v2/post/publish/inbox/video/init/ and /v2/post/publish/content/init/ (photos).
local sandbox = require "spec.helpers.sandbox"

describe("sandbox inbox video init and photo init", function()
  local sb, env, token

  sandbox.use(function(s)
    sb, env = s, s.env
  end)

  before_each(function()
    sb:configure({ rate_limits = { ["inbox.init"] = 10000, ["content.init"] = 10000 }, caps = { pending_shares = 1000 } })
    token = sb:login_pkce({}).access_token
  end)

  local function expect(path, body, status_code, code, tok)
    local status, v = sb:api("POST", path, tok or token, body)
    assert.equal(status_code, status, v and v.error and v.error.message)
    assert.equal(code, v.error.code)
    return v
  end

  describe("inbox video init", function()
    local PATH = "/v2/post/publish/inbox/video/init/"
    local FILE = { source_info = { source = "FILE_UPLOAD", video_size = 1000, chunk_size = 1000, total_chunk_count = 1 } }

    it("accepts FILE_UPLOAD with an upload_url", function()
      local v = expect(PATH, FILE, 200, "ok")
      assert.matches("^v_inbox_file~v2%.%d+$", v.data.publish_id)
      assert.equal(env.TIKTOK_UPLOAD_BASE, v.data.upload_url:sub(1, #env.TIKTOK_UPLOAD_BASE))
      local p = sb:post(v.data.publish_id)
      assert.equal("INBOX", p.mode)
    end)

    it("accepts PULL_FROM_URL without an upload_url", function()
      local v = expect(PATH, { source_info = { source = "PULL_FROM_URL", video_url = env.TIKTOK_MEDIA_BASE .. "a.mp4" } }, 200, "ok")
      assert.matches("^v_inbox_url~v2%.%d+$", v.data.publish_id)
      assert.is_nil(v.data.upload_url)
    end)

    it("takes no post_info: it is ignored, not validated", function()
      expect(PATH, { post_info = { privacy_level = "PRIVATE" }, source_info = FILE.source_info }, 200, "ok")
    end)

    it("applies the same chunk plan and URL rules", function()
      expect(PATH, { source_info = { source = "FILE_UPLOAD", video_size = 50000123, chunk_size = 10000000, total_chunk_count = 6 } }, 400, "invalid_params")
      expect(PATH, { source_info = { source = "FILE_UPLOAD", video_size = 1000, chunk_size = 500, total_chunk_count = 2 } }, 400, "invalid_params")
      expect(PATH, { source_info = { source = "PULL_FROM_URL", video_url = "http://localhost/x.mp4" } }, 400, "invalid_params")
      expect(PATH, { source_info = { source = "PULL_FROM_URL", video_url = "https://elsewhere.example/x.mp4" } }, 403, "url_ownership_unverified")
      expect(PATH, {}, 400, "invalid_params")
      expect(PATH, { source_info = { source = "NOPE" } }, 400, "invalid_params")
    end)

    it("needs the video.upload scope", function()
      local t = sb:login_pkce({ scope = "user.info.basic,video.publish" }).access_token
      expect(PATH, FILE, 401, "scope_not_authorized", t)
      expect(PATH, FILE, 401, "access_token_invalid", "act.nope")
    end)

    it("refuses a banned creator with 403", function()
      sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { banned = true })
      expect(PATH, FILE, 403, "spam_risk_user_banned_from_posting")
    end)

    it("is open to unaudited clients and public accounts (drafts)", function()
      sb:admin("PATCH", "/apps/default", { audited = false })
      expect(PATH, FILE, 200, "ok")
    end)

    it("allows 6 per minute per token", function()
      sb:configure({ rate_limits = { ["inbox.init"] = 6 } })
      for _ = 1, 6 do expect(PATH, FILE, 200, "ok") end
      expect(PATH, FILE, 429, "rate_limit_exceeded")
    end)
  end)

  describe("photo content init", function()
    local PATH = "/v2/post/publish/content/init/"

    local function photo(over)
      local b = {
        media_type = "PHOTO", post_mode = "DIRECT_POST",
        post_info = { title = "funny cat", description = "a #funny photo", privacy_level = "SELF_ONLY", disable_comment = true, auto_add_music = true },
        source_info = { source = "PULL_FROM_URL", photo_cover_index = 0,
          photo_images = { env.TIKTOK_MEDIA_BASE .. "1.jpg", env.TIKTOK_MEDIA_BASE .. "2.webp" } },
      }
      for k, v in pairs(over or {}) do
        if (k == "post_info" or k == "source_info") and type(v) == "table" then
          for kk, vv in pairs(v) do if vv == false then b[k][kk] = nil else b[k][kk] = vv end end
        elseif v == false then b[k] = nil
        else b[k] = v end
      end
      return b
    end

    it("accepts a DIRECT_POST", function()
      local v = expect(PATH, photo(), 200, "ok")
      assert.matches("^p_pub_url~v2%.%d+$", v.data.publish_id)
      assert.is_nil(v.data.upload_url)
    end)

    it("accepts a MEDIA_UPLOAD without privacy_level", function()
      local v = expect(PATH, photo({ post_mode = "MEDIA_UPLOAD", post_info = { privacy_level = false } }), 200, "ok")
      assert.matches("^p_inbox_url~v2%.%d+$", v.data.publish_id)
    end)

    it("accepts 35 images and a 90-unit title", function()
      local imgs = {}
      for i = 1, 35 do imgs[i] = env.TIKTOK_MEDIA_BASE .. i .. ".jpg" end
      expect(PATH, photo({ source_info = { photo_images = imgs, photo_cover_index = 34 }, post_info = { title = string.rep("t", 90) } }), 200, "ok")
    end)

    local bad = {
      { "a missing media_type", { media_type = false } },
      { "media_type VIDEO", { media_type = "VIDEO" } },
      { "a missing post_mode", { post_mode = false } },
      { "post_mode \"DIRECT POST\" (with a space)", { post_mode = "DIRECT POST" } },
      { "a missing post_info", { post_info = "x" } },
      { "source FILE_UPLOAD", { source_info = { source = "FILE_UPLOAD" } } },
      { "missing photo_images", { source_info = { photo_images = false } } },
      { "an empty photo_images", { source_info = { photo_images = {} } } },
      { "photo_images that is an object", { source_info = { photo_images = { a = "x" } } } },
      { "an http image URL", { source_info = { photo_images = { "http://localhost/1.jpg" } } } },
      { "a missing photo_cover_index", { source_info = { photo_cover_index = false } } },
      { "photo_cover_index equal to the image count", { source_info = { photo_cover_index = 2 } } },
      { "a negative photo_cover_index", { source_info = { photo_cover_index = -1 } } },
      { "a 91-unit title", { post_info = { title = string.rep("t", 91) } } },
      { "a 4001-unit description", { post_info = { description = string.rep("d", 4001) } } },
      { "is_aigc given as a string", { is_aigc = "yes" } },
      { "auto_add_music given as a string", { post_info = { auto_add_music = "true" } } },
      { "branded content posted SELF_ONLY", { post_info = { brand_content_toggle = true } } },
    }
    for _, case in ipairs(bad) do
      it("refuses " .. case[1] .. " with 400 invalid_params", function()
        expect(PATH, photo(case[2]), 400, "invalid_params")
      end)
    end

    it("refuses 36 images", function()
      local imgs = {}
      for i = 1, 36 do imgs[i] = env.TIKTOK_MEDIA_BASE .. i .. ".jpg" end
      expect(PATH, photo({ source_info = { photo_images = imgs } }), 400, "invalid_params")
    end)

    it("refuses a DIRECT_POST without a valid privacy_level (403)", function()
      expect(PATH, photo({ post_info = { privacy_level = false } }), 403, "privacy_level_option_mismatch")
      expect(PATH, photo({ post_info = { privacy_level = "FOLLOWER_OF_CREATOR" } }), 403, "privacy_level_option_mismatch")
    end)

    it("checks the scope of each post_mode", function()
      local upload_only = sb:login_pkce({ scope = "user.info.basic,video.upload" }).access_token
      local publish_only = sb:login_pkce({ scope = "user.info.basic,video.publish" }).access_token
      local neither = sb:login_pkce({ scope = "user.info.basic" }).access_token
      expect(PATH, photo(), 401, "scope_not_authorized", upload_only)
      expect(PATH, photo({ post_mode = "MEDIA_UPLOAD" }), 200, "ok", upload_only)
      expect(PATH, photo({ post_mode = "MEDIA_UPLOAD" }), 401, "scope_not_authorized", publish_only)
      expect(PATH, photo(), 200, "ok", publish_only)
      expect(PATH, photo(), 401, "scope_not_authorized", neither)
    end)

    it("needs TikTok app 31.8 or later for MEDIA_UPLOAD (app_version_check_failed)", function()
      sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { app_version = "31.7.9" })
      expect(PATH, photo({ post_mode = "MEDIA_UPLOAD" }), 400, "app_version_check_failed")
      expect(PATH, photo(), 200, "ok")
      sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { app_version = "31.8" })
      expect(PATH, photo({ post_mode = "MEDIA_UPLOAD" }), 200, "ok")
    end)

    it("refuses banned, capped, unaudited and over-cap posts with 403", function()
      sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { banned = true })
      expect(PATH, photo(), 403, "spam_risk_user_banned_from_posting")
      expect(PATH, photo({ post_mode = "MEDIA_UPLOAD" }), 403, "spam_risk_user_banned_from_posting")
      sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { banned = false, posting_cap_reached = true })
      expect(PATH, photo(), 403, "spam_risk_too_many_posts")
      sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { posting_cap_reached = false })
      sb:admin("PATCH", "/apps/default", { audited = false })
      expect(PATH, photo(), 403, "unaudited_client_can_only_post_to_private_accounts")
      sb:admin("PATCH", "/apps/default", { audited = true, active_user_cap = 0 })
      expect(PATH, photo(), 403, "reached_active_user_cap")
    end)

    it("refuses an image outside the verified URLs (403 url_ownership_unverified)", function()
      expect(PATH, photo({ source_info = { photo_images = { env.TIKTOK_MEDIA_BASE .. "1.jpg", "https://cdn.example.net/2.jpg" } } }),
        403, "url_ownership_unverified")
    end)

    it("allows six per minute per token", function()
      sb:configure({ rate_limits = { ["content.init"] = 6 } })
      for _ = 1, 6 do expect(PATH, photo({ post_mode = "MEDIA_UPLOAD" }), 200, "ok") end
      expect(PATH, photo({ post_mode = "MEDIA_UPLOAD" }), 429, "rate_limit_exceeded")
    end)
  end)
end)
