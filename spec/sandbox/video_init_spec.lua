-- POST /v2/post/publish/video/init/ (Direct Post): every validation rule, the
-- conservative chunk plan, error codes and HTTP statuses.
local sandbox = require "spec.helpers.sandbox"

describe("sandbox Direct Post video init", function()
  local sb, env, token
  local PATH = "/v2/post/publish/video/init/"

  sandbox.use(function(s)
    sb, env = s, s.env
  end)

  before_each(function()
    sb:configure({ rate_limits = { ["video.init"] = 10000 } })
    token = sb:login_pkce({}).access_token
  end)

  local function copy(t)
    if type(t) ~= "table" then return t end
    local c = {}
    for k, v in pairs(t) do c[k] = copy(v) end
    return c
  end

  local BASE = {
    post_info = { title = "sandbox #test", privacy_level = "SELF_ONLY" },
    source_info = { source = "FILE_UPLOAD", video_size = 1000, chunk_size = 1000, total_chunk_count = 1 },
  }

  local function body_with(post_info, source_info)
    local b = copy(BASE)
    for k, v in pairs(post_info or {}) do b.post_info[k] = v end
    if source_info then
      b.source_info = {}
      for k, v in pairs(source_info) do b.source_info[k] = v end
    end
    return b
  end

  local function chunks(vs, cs, n)
    return { source = "FILE_UPLOAD", video_size = vs, chunk_size = cs, total_chunk_count = n }
  end

  local function init(body, opts)
    return sb:api("POST", PATH, token, body, opts)
  end

  describe("accepts", function()
    it("a single-chunk FILE_UPLOAD and returns an HTTPS upload_url on the upload host", function()
      local status, v = init(BASE)
      assert.equal(200, status)
      assert.equal("ok", v.error.code)
      assert.matches("^v_pub_file~v2%-1%.%d+$", v.data.publish_id)
      assert.truthy(#v.data.publish_id <= 64)
      local url = v.data.upload_url
      assert.truthy(#url <= 256)
      assert.equal(env.TIKTOK_UPLOAD_BASE, url:sub(1, #env.TIKTOK_UPLOAD_BASE))
      assert.matches("^https://localhost:%d+/upload/%?upload_id=%d+&upload_token=%w+$", url)
      assert.are_not.equal(env.TIKTOK_API_BASE, url:match("^(https://[^/]+)"))
    end)

    it("returns a plain-HTTP upload_url when init came over plain HTTP", function()
      local status, v = init(BASE, { base = env.TIKTOK_API_BASE_PLAIN })
      assert.equal(200, status)
      assert.equal(env.TIKTOK_UPLOAD_BASE_PLAIN, v.data.upload_url:sub(1, #env.TIKTOK_UPLOAD_BASE_PLAIN))
    end)

    it("a PULL_FROM_URL from the verified media prefix, without upload_url", function()
      local status, v = init(body_with(nil, { source = "PULL_FROM_URL", video_url = env.TIKTOK_MEDIA_BASE .. "clip.mp4" }))
      assert.equal(200, status)
      assert.matches("^v_pub_url~v2%.%d+$", v.data.publish_id)
      assert.is_nil(v.data.upload_url)
    end)

    it("plain application/json without charset (as in some docs examples)", function()
      local status = init(BASE, { headers = { ["Content-Type"] = "application/json" } })
      assert.equal(200, status)
    end)

    local plans = {
      { "the docs' example 50,000,123 / 10,000,000 / 5", 50000123, 10000000, 5 },
      { "chunks of exactly 5,242,880 bytes", 5242880 * 3 + 17, 5242880, 3 },
      { "a file just under 5 MiB as one chunk", 5242879, 5242879, 1 },
      { "64,000,000 bytes as one chunk", 64000000, 64000000, 1 },
      { "64,000,000-byte chunks with a final chunk just under 128,000,000", 191999999, 64000000, 2 },
      { "a 4 GiB file in 64,000,000-byte chunks", 4294967296, 64000000, 67 },
    }
    for _, p in ipairs(plans) do
      it("the chunk plan: " .. p[1], function()
        local status, v = init(body_with(nil, chunks(p[2], p[3], p[4])))
        assert.equal(200, status, v and v.error and v.error.message)
      end)
    end

    it("a 2200 UTF-16 unit title (emoji count twice)", function()
      local title = string.rep("\240\159\152\128", 1100) -- U+1F600 x 1100 = 2200 units
      assert.equal(200, (init(body_with({ title = title }))))
    end)

    it("an invalid cover timestamp (the first frame is used instead)", function()
      local status, v = init(body_with({ video_cover_timestamp_ms = -5 }))
      assert.equal(200, status)
      local p = sb:post(v.data.publish_id)
      assert.equal(0, p.effective.video_cover_timestamp_ms)
    end)

    it("records the post_info and the effective interaction settings", function()
      local t = sb:login_pkce({ username = "sandbox_private" }).access_token
      local status, v = sb:api("POST", PATH, t, body_with({ privacy_level = "FOLLOWER_OF_CREATOR", disable_comment = false,
        disable_duet = false, disable_stitch = false, is_aigc = true }))
      assert.equal(200, status)
      local p = sb:post(v.data.publish_id)
      assert.equal("FOLLOWER_OF_CREATOR", p.post_info.privacy_level)
      assert.equal(true, p.effective.disable_duet)   -- private accounts never allow duets
      assert.equal(true, p.effective.disable_stitch)
      assert.equal(false, p.effective.disable_comment)
      assert.equal(true, p.effective.is_aigc)
      assert.equal("PROCESSING_UPLOAD", p.status)
    end)
  end)

  describe("refuses with 400 invalid_params", function()
    local cases = {
      { "a body that is not JSON", "{nope" },
      { "an empty body", "" },
      { "a JSON array body", "[]" },
      { "missing post_info", { source_info = BASE.source_info } },
      { "post_info that is not an object", { post_info = "x", source_info = BASE.source_info } },
      { "missing source_info", { post_info = BASE.post_info } },
      { "missing source", body_with(nil, { video_size = 1000, chunk_size = 1000, total_chunk_count = 1 }) },
      { "an unknown source", body_with(nil, { source = "UPLOAD", video_size = 1000, chunk_size = 1000, total_chunk_count = 1 }) },
      { "a missing video_size", body_with(nil, { source = "FILE_UPLOAD", chunk_size = 1000, total_chunk_count = 1 }) },
      { "a zero video_size", body_with(nil, chunks(0, 0, 1)) },
      { "a negative video_size", body_with(nil, chunks(-1000, 1000, 1)) },
      { "a string video_size", body_with(nil, chunks("1000", 1000, 1)) },
      { "a fractional video_size", body_with(nil, chunks(1000.5, 1000.5, 1)) },
      { "a missing chunk_size", body_with(nil, { source = "FILE_UPLOAD", video_size = 1000, total_chunk_count = 1 }) },
      { "a missing total_chunk_count", body_with(nil, { source = "FILE_UPLOAD", video_size = 1000, chunk_size = 1000 }) },
      { "a zero total_chunk_count", body_with(nil, chunks(1000, 1000, 0)) },
      { "a small file split into chunks", body_with(nil, chunks(1000, 500, 2)) },
      { "a small file whose chunk_size is not video_size", body_with(nil, chunks(1000, 2000, 1)) },
      { "a small file with total_chunk_count 2", body_with(nil, chunks(1000, 1000, 2)) },
      { "chunks one byte under 5 MiB", body_with(nil, chunks(30000000, 5242879, 5)) },
      { "chunks one byte over 64,000,000", body_with(nil, chunks(200000000, 64000001, 3)) },
      { "64 MiB chunks (67,108,864 > 64,000,000)", body_with(nil, chunks(200000000, 67108864, 2)) },
      { "total_chunk_count rounded up (ceil instead of floor)", body_with(nil, chunks(50000123, 10000000, 6)) },
      { "total_chunk_count too small", body_with(nil, chunks(50000123, 10000000, 4)) },
      { "chunk_size larger than video_size", body_with(nil, chunks(6000000, 7000000, 1)) },
      { "a file over 64,000,000 bytes as one chunk", body_with(nil, chunks(100000000, 64000000, 1)) },
      { "more than 1000 chunks", body_with(nil, chunks(6442450944, 5242880, 1228)) },
      { "a video over 4 GB", body_with(nil, chunks(5000000000, 64000000, 78)) },
      { "a title of 2201 UTF-16 units", body_with({ title = string.rep("\240\159\152\128", 1100) .. "x" }) },
      { "a title that is not a string", body_with({ title = 42 }) },
      { "disable_duet given as a string", body_with({ disable_duet = "false" }) },
      { "disable_comment given as a number", body_with({ disable_comment = 0 }) },
      { "brand_organic_toggle given as a string", body_with({ brand_organic_toggle = "yes" }) },
      { "is_aigc given as a string", body_with({ is_aigc = "true" }) },
      { "branded content posted SELF_ONLY", body_with({ brand_content_toggle = true, privacy_level = "SELF_ONLY" }) },
      { "a PULL_FROM_URL without video_url", body_with(nil, { source = "PULL_FROM_URL" }) },
      { "a PULL_FROM_URL over plain http", body_with(nil, { source = "PULL_FROM_URL", video_url = "http://localhost/media/x.mp4" }) },
      { "a PULL_FROM_URL that is not a URL", body_with(nil, { source = "PULL_FROM_URL", video_url = "clip.mp4" }) },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local status, v = init(case[2])
        assert.equal(400, status)
        assert.equal("invalid_params", v.error.code)
        assert.truthy(#v.error.message > 0)
        assert.truthy(#v.error.log_id > 10)
      end)
    end

    it("a title that is not valid UTF-8", function()
      local raw = '{"post_info":{"privacy_level":"SELF_ONLY","title":"bad \255 byte"},' ..
        '"source_info":{"source":"FILE_UPLOAD","video_size":1000,"chunk_size":1000,"total_chunk_count":1}}'
      local status, v = init(raw)
      assert.equal(400, status)
      assert.equal("invalid_params", v.error.code)
    end)

    it("a form-encoded body", function()
      local status, v = init("post_info=x", { headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
      assert.equal(400, status)
      assert.equal("invalid_params", v.error.code)
    end)

    it("explains the chunk plan it expected", function()
      local _, v = init(body_with(nil, chunks(50000123, 10000000, 6)))
      assert.matches("floor", v.error.message)
      assert.matches("= 5", v.error.message, 1, true)
    end)

    it("and creates no post for a refused init", function()
      init(body_with(nil, chunks(1000, 500, 2)))
      assert.equal(0, #sb:posts())
    end)
  end)

  describe("refuses with 403", function()
    local function expect(status_code, code, body, tok)
      local status, v = sb:api("POST", PATH, tok or token, body)
      assert.equal(status_code, status)
      assert.equal(code, v.error.code)
      assert.truthy(#v.error.message > 0)
    end

    it("a missing privacy_level (privacy_level_option_mismatch)", function()
      local b = copy(BASE)
      b.post_info.privacy_level = nil
      expect(403, "privacy_level_option_mismatch", b)
    end)

    it("a privacy_level outside the enum", function()
      expect(403, "privacy_level_option_mismatch", body_with({ privacy_level = "PRIVATE" }))
    end)

    it("FOLLOWER_OF_CREATOR for a public account", function()
      expect(403, "privacy_level_option_mismatch", body_with({ privacy_level = "FOLLOWER_OF_CREATOR" }))
    end)

    it("PUBLIC_TO_EVERYONE for a private account", function()
      local t = sb:login_pkce({ username = "sandbox_private" }).access_token
      expect(403, "privacy_level_option_mismatch", body_with({ privacy_level = "PUBLIC_TO_EVERYONE" }), t)
    end)

    it("a privacy_level removed from the creator's options by the control API", function()
      sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { privacy_level_options = { "SELF_ONLY" } })
      expect(403, "privacy_level_option_mismatch", body_with({ privacy_level = "PUBLIC_TO_EVERYONE" }))
      assert.equal(200, (init(BASE)))
    end)

    it("a banned creator", function()
      sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { banned = true })
      expect(403, "spam_risk_user_banned_from_posting", BASE)
    end)

    it("a creator at the posting cap", function()
      sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { posting_cap_reached = true })
      expect(403, "spam_risk_too_many_posts", BASE)
    end)

    it("a client at its active-user cap", function()
      sb:admin("PATCH", "/apps/default", { active_user_cap = 0 })
      expect(403, "reached_active_user_cap", BASE)
    end)

    it("an unaudited client posting to a public account", function()
      sb:admin("PATCH", "/apps/default", { audited = false })
      expect(403, "unaudited_client_can_only_post_to_private_accounts", BASE)
    end)

    it("a PULL_FROM_URL outside the verified prefixes and domains", function()
      local port = env.TIKTOK_MEDIA_BASE:match(":(%d+)/")
      for _, url in ipairs({
        "https://127.0.0.1:" .. port .. "/media/clip.mp4",
        "https://cdn.example.com/media/clip.mp4",
        "https://localhost:" .. port .. "/media-other/clip.mp4",
        "https://localhost:" .. port .. "/clip.mp4",
      }) do
        expect(403, "url_ownership_unverified", body_with(nil, { source = "PULL_FROM_URL", video_url = url }))
      end
    end)
  end)

  describe("auth", function()
    it("needs a token (401 access_token_invalid)", function()
      local status, v = sb:api("POST", PATH, nil, BASE)
      assert.equal(401, status)
      assert.equal("access_token_invalid", v.error.code)
    end)

    it("needs the video.publish scope (401 scope_not_authorized)", function()
      local t = sb:login_pkce({ scope = "user.info.basic,video.upload" }).access_token
      local status, v = sb:api("POST", PATH, t, BASE)
      assert.equal(401, status)
      assert.equal("scope_not_authorized", v.error.code)
    end)

    it("needs POST", function()
      assert.equal(405, (sb:api("GET", PATH, token)))
    end)

    it("checks the token before the body", function()
      local status, v = sb:api("POST", PATH, "act.bad", "{nope")
      assert.equal(401, status)
      assert.equal("access_token_invalid", v.error.code)
    end)
  end)

  it("allows 6 inits per minute per access token, then 429 rate_limit_exceeded", function()
    sb:configure({ rate_limits = { ["video.init"] = 6 } })
    for i = 1, 6 do
      local status = init(BASE)
      assert.equal(200, status, "init " .. i)
    end
    local status, v = init(BASE)
    assert.equal(429, status)
    assert.equal("rate_limit_exceeded", v.error.code)
    sb:admin("POST", "/clock", { advance_sec = 60 })
    assert.equal(200, (init(BASE)))
  end)
end)
