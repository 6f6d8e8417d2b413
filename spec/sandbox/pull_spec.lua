-- PULL_FROM_URL: verified prefixes/domains, https only, no redirects, a real
-- download from the media host, video_pull_failed / photo_pull_failed.
local sandbox = require "spec.helpers.sandbox"

describe("sandbox PULL_FROM_URL", function()
  local sb, env, token, media, port

  sandbox.use(function(s)
    sb, env = s, s.env
    media = env.TIKTOK_MEDIA_DIR
    port = env.TIKTOK_MEDIA_BASE:match(":(%d+)/")
    sandbox.make_video(media .. "/clip.mp4", { seconds = 2 })
    sandbox.exec("mkdir -p " .. media .. "/user/123 " .. media .. "/2023/user")
    sandbox.exec("cp " .. media .. "/clip.mp4 " .. media .. "/user/123/clip.mp4 && cp " .. media .. "/clip.mp4 " .. media .. "/2023/user/clip.mp4")
    sandbox.write_file(media .. "/text.mp4", string.rep("not a video ", 500))
    sandbox.make_image(media .. "/a.jpg", "640x480")
    sandbox.make_image(media .. "/b.webp", "480x640")
    sandbox.make_image(media .. "/big.jpg", "1920x1440")
  end)

  before_each(function()
    sb:configure({ rate_limits = { ["video.init"] = 10000, ["inbox.init"] = 10000, ["content.init"] = 10000, ["status.fetch"] = 10000 },
      delays = { processing_ms = 50, moderation_ms = 50 } })
    token = sb:login_pkce({}).access_token
  end)

  local FINAL = { PUBLISH_COMPLETE = true, FAILED = true, SEND_TO_USER_INBOX = true }

  local function pull(url, path, privacy)
    path = path or "/v2/post/publish/video/init/"
    local body = { source_info = { source = "PULL_FROM_URL", video_url = url } }
    if path:find("/video/init/", 1, true) and not path:find("inbox", 1, true) then
      body.post_info = { title = "pulled", privacy_level = privacy or "SELF_ONLY" }
    end
    return sb:api("POST", path, token, body)
  end

  local function pull_ok(url, path)
    local status, v = pull(url, path)
    assert.equal(200, status, v and v.error and v.error.message)
    return v.data.publish_id
  end

  it("really downloads the file and publishes it", function()
    local url = env.TIKTOK_MEDIA_BASE .. "clip.mp4"
    local id = pull_ok(url)
    local v = sb:wait_status(token, id, FINAL)
    assert.equal("PUBLISH_COMPLETE", v.data.status)
    local size = sandbox.file_size(media .. "/clip.mp4")
    assert.equal(size, v.data.downloaded_bytes)
    assert.is_nil(v.data.uploaded_bytes)
    local p = sb:post(id)
    assert.equal(sandbox.sha256_file(media .. "/clip.mp4"), p.sha256)
    local gets = sb:log({ endpoint = "media.get" })
    assert.equal(1, #gets)
    assert.equal("/media/clip.mp4", gets[1].path)
    assert.equal(200, gets[1].status)
    assert.equal("https", gets[1].scheme)
  end)

  it("reports PROCESSING_DOWNLOAD while downloading", function()
    sb:admin("POST", "/faults", { endpoint = "media.get", delay_ms = 1500 })
    local id = pull_ok(env.TIKTOK_MEDIA_BASE .. "clip.mp4")
    local _, v = sb:api("POST", "/v2/post/publish/status/fetch/", token, { publish_id = id })
    assert.equal("PROCESSING_DOWNLOAD", v.data.status)
    assert.equal(0, v.data.downloaded_bytes)
    assert.equal("PUBLISH_COMPLETE", sb:wait_status(token, id, FINAL).data.status)
  end)

  it("ends in SEND_TO_USER_INBOX for an inbox pull", function()
    local id = pull_ok(env.TIKTOK_MEDIA_BASE .. "clip.mp4", "/v2/post/publish/inbox/video/init/")
    assert.matches("^v_inbox_url", id)
    assert.equal("SEND_TO_USER_INBOX", sb:wait_status(token, id, FINAL).data.status)
  end)

  local failures = {
    { "a missing file (404)", function() return env.TIKTOK_MEDIA_BASE .. "missing.mp4" end },
    { "a redirect (redirects are not followed)", function()
        sb:admin("POST", "/faults", { endpoint = "media.get", status = 302, headers = { Location = env.TIKTOK_MEDIA_BASE .. "clip.mp4" } })
        return env.TIKTOK_MEDIA_BASE .. "moved.mp4"
      end, 1 },
    { "a server error", function()
        sb:admin("POST", "/faults", { endpoint = "media.get", status = 500, body = "oops" })
        return env.TIKTOK_MEDIA_BASE .. "clip.mp4"
      end },
    { "a connection closed mid-download", function()
        sb:admin("POST", "/faults", { endpoint = "media.get", close_after_bytes = 5000 })
        return env.TIKTOK_MEDIA_BASE .. "clip.mp4"
      end },
    { "a certificate that does not match the host", function()
        sb:admin("PATCH", "/apps/default", { verified_domains = { "localhost" } })
        return "https://other.localhost:" .. port .. "/media/clip.mp4"
      end, 0 },
    { "a read timeout", function()
        sb:configure({ pull = { read_timeout_ms = 300 } })
        sb:admin("POST", "/faults", { endpoint = "media.get", delay_ms = 1500 })
        return env.TIKTOK_MEDIA_BASE .. "clip.mp4"
      end, nil, true },
  }
  for _, case in ipairs(failures) do
    it("fails with video_pull_failed on " .. case[1], function()
      local url = case[2]()
      local id = pull_ok(url)
      local v = sb:wait_status(token, id, FINAL, 15)
      assert.equal("FAILED", v.data.status)
      assert.equal("video_pull_failed", v.data.fail_reason)
      local p = sb:post(id)
      assert.truthy(type(p.pull_error) == "string" and #p.pull_error > 0)
      if case[3] then assert.equal(case[3], #sb:log({ endpoint = "media.get" })) end
      if case[4] then
        -- the abandoned media request is still sleeping: let it finish (and be
        -- logged) here rather than in a later test's log
        local deadline = os.time() + 5
        while #sb:log({ endpoint = "media.get" }) == 0 and os.time() <= deadline do sandbox.sleep(0.1) end
        assert.equal(1, #sb:log({ endpoint = "media.get" }))
      end
    end)
  end

  it("checks the pulled bytes: file_format_check_failed and duration_check_failed", function()
    local id = pull_ok(env.TIKTOK_MEDIA_BASE .. "text.mp4")
    local v = sb:wait_status(token, id, FINAL)
    assert.equal("file_format_check_failed", v.data.fail_reason)
    sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { max_video_post_duration_sec = 1 })
    id = pull_ok(env.TIKTOK_MEDIA_BASE .. "clip.mp4")
    v = sb:wait_status(token, id, FINAL)
    assert.equal("duration_check_failed", v.data.fail_reason)
  end)

  it("honours URL prefix semantics", function()
    sb:admin("PATCH", "/apps/default", { verified_prefixes = { "https://localhost:" .. port .. "/media/user/" } })
    local id = pull_ok("https://localhost:" .. port .. "/media/user/123/clip.mp4")
    assert.equal("PUBLISH_COMPLETE", sb:wait_status(token, id, FINAL).data.status)
    local status, v = pull("https://localhost:" .. port .. "/media/2023/user/clip.mp4")
    assert.equal(403, status)
    assert.equal("url_ownership_unverified", v.error.code)
    status = pull(env.TIKTOK_MEDIA_BASE .. "clip.mp4")
    assert.equal(403, status)
  end)

  it("honours domain verification, subdomains included", function()
    sb:admin("PATCH", "/apps/default", { verified_prefixes = {}, verified_domains = { "media.localhost" } })
    local id = pull_ok("https://cdn.media.localhost:" .. port .. "/media/clip.mp4")
    assert.equal("PUBLISH_COMPLETE", sb:wait_status(token, id, FINAL).data.status)
    local st2, v2 = pull("https://media.localhost:" .. port .. "/media/clip.mp4")
    assert.equal(200, st2)
    assert.equal("PUBLISH_COMPLETE", sb:wait_status(token, v2.data.publish_id, FINAL).data.status)
    local status, v = pull("https://localhost:" .. port .. "/media/clip.mp4")
    assert.equal(403, status)
    assert.equal("url_ownership_unverified", v.error.code)
    status = pull("https://xmedia.localhost:" .. port .. "/media/clip.mp4")
    assert.equal(403, status)
  end)

  describe("photos", function()
    local function photo(images, mode, cover)
      local status, v = sb:api("POST", "/v2/post/publish/content/init/", token, {
        media_type = "PHOTO", post_mode = mode or "DIRECT_POST",
        post_info = { title = "pics", privacy_level = "SELF_ONLY" },
        source_info = { source = "PULL_FROM_URL", photo_images = images, photo_cover_index = cover or 0 },
      })
      assert.equal(200, status, v and v.error and v.error.message)
      return v.data.publish_id
    end

    it("downloads every JPEG and WebP image and publishes", function()
      local id = photo({ env.TIKTOK_MEDIA_BASE .. "a.jpg", env.TIKTOK_MEDIA_BASE .. "b.webp" }, nil, 1)
      local v = sb:wait_status(token, id, FINAL)
      assert.equal("PUBLISH_COMPLETE", v.data.status)
      local total = sandbox.file_size(media .. "/a.jpg") + sandbox.file_size(media .. "/b.webp")
      assert.equal(total, v.data.downloaded_bytes)
      local p = sb:post(id)
      assert.equal("jpeg", p.analysis[1].container)
      assert.equal(640, p.analysis[1].width)
      assert.equal("webp", p.analysis[2].container)
      assert.equal(480, p.analysis[2].width)
      assert.equal(640, p.analysis[2].height)
      assert.equal(2, #sb:log({ endpoint = "media.get" }))
    end)

    it("sends a MEDIA_UPLOAD to the inbox", function()
      local id = photo({ env.TIKTOK_MEDIA_BASE .. "a.jpg" }, "MEDIA_UPLOAD")
      assert.equal("SEND_TO_USER_INBOX", sb:wait_status(token, id, FINAL).data.status)
    end)

    it("fails with photo_pull_failed when an image cannot be downloaded", function()
      local id = photo({ env.TIKTOK_MEDIA_BASE .. "a.jpg", env.TIKTOK_MEDIA_BASE .. "gone.jpg" })
      local v = sb:wait_status(token, id, FINAL)
      assert.equal("FAILED", v.data.status)
      assert.equal("photo_pull_failed", v.data.fail_reason)
    end)

    it("fails with picture_size_check_failed above 1080p and file_format_check_failed for non-images", function()
      local id = photo({ env.TIKTOK_MEDIA_BASE .. "big.jpg" })
      assert.equal("picture_size_check_failed", sb:wait_status(token, id, FINAL).data.fail_reason)
      id = photo({ env.TIKTOK_MEDIA_BASE .. "clip.mp4" })
      assert.equal("file_format_check_failed", sb:wait_status(token, id, FINAL).data.fail_reason)
    end)
  end)

  describe("the media host", function()
    it("serves files with Range support over HTTPS", function()
      local size = sandbox.file_size(media .. "/clip.mp4")
      local status, h, body = sb:http("GET", env.TIKTOK_MEDIA_BASE .. "clip.mp4", { headers = { Range = "bytes=10-19" } })
      assert.equal(206, status)
      assert.equal("bytes 10-19/" .. size, h["content-range"])
      assert.equal(10, #body)
      status, h = sb:http("HEAD", env.TIKTOK_MEDIA_BASE .. "clip.mp4")
      assert.equal(200, status)
      assert.equal(tostring(size), h["content-length"])
      assert.equal("video/mp4", h["content-type"])
      assert.equal(404, (sb:http("GET", env.TIKTOK_MEDIA_BASE .. "../env")))
    end)

    it("is only trusted with the sandbox CA", function()
      local status, _, _, rc = sandbox.http("GET", env.TIKTOK_MEDIA_BASE .. "clip.mp4", { cacert = "/dev/null" })
      assert.equal(0, status)
      assert.are_not.equal(0, rc)
    end)
  end)
end)
