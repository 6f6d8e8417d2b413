-- The control API: reset, config, apps, users, tokens, clock, request log, posts.
local sandbox = require "spec.helpers.sandbox"

describe("sandbox control API", function()
  local sb, env

  sandbox.use(function(s)
    sb, env = s, s.env
  end)

  it("describes itself and answers health checks", function()
    local v, st = sb:admin("GET", "/")
    assert.equal(200, st)
    assert.equal(env.TIKTOK_API_BASE, v.env.TIKTOK_API_BASE)
    assert.same({ env.TIKTOK_CLIENT_KEY }, v.apps)
    assert.same({ env.TIKTOK_SANDBOX_USER, "sandbox_private" }, v.users)
    assert.equal(true, (sb:admin("GET", "/health")).ok)
    local _, st404 = sb:admin("GET", "/nope")
    assert.equal(404, st404)
  end)

  it("documents its defaults in GET /config", function()
    local c = sb:admin("GET", "/config")
    assert.equal(7200, c.tokens.access_ttl_sec)
    assert.equal(15552000, c.tokens.refresh_ttl_sec)
    assert.equal(300, c.delays.processing_ms)
    assert.equal(60, c.rate_limits.window_sec)
    assert.equal(20, c.rate_limits.creator_info)
    assert.equal(6, c.rate_limits["video.init"])
    assert.equal(6, c.rate_limits["inbox.init"])
    assert.equal(6, c.rate_limits["content.init"])
    assert.equal(30, c.rate_limits["status.fetch"])
    assert.equal(600, c.rate_limits["user.info"])
    assert.equal(3600, c.upload.url_ttl_sec)
    assert.equal(true, c.upload.hash)
    assert.equal(5, c.caps.pending_shares)
    assert.equal(5, c.caps.unaudited_users)
  end)

  it("validates config changes", function()
    for _, bad in ipairs({
      { nope = 1 }, { tokens = { nope = 1 } }, { tokens = 5 }, { tokens = { access_ttl_sec = "60" } },
      { delays = { processing_ms = -1 } }, { upload = { hash = "no" } },
    }) do
      local v, st = sb:admin("PATCH", "/config", bad)
      assert.equal(400, st, sandbox.json_encode(bad))
      assert.truthy(v.error)
    end
    local v, st = sb:admin("PATCH", "/config", { delays = { processing_ms = 10 } })
    assert.equal(200, st)
    assert.equal(10, v.delays.processing_ms)
    assert.equal(300, v.delays.moderation_ms)   -- untouched keys keep their values
  end)

  it("resets everything to the pre-registered state", function()
    local t = sb:login_pkce({})
    sb:configure({ tokens = { access_ttl_sec = 5 } })
    sb:admin("PATCH", "/apps/default", { audited = false, name = "Changed" })
    sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { banned = true })
    sb:admin("POST", "/users", { username = "extra" })
    sb:admin("POST", "/apps", {})
    sb:admin("POST", "/faults", { endpoint = "user.info", status = 500, count = -1 })
    sb:admin("POST", "/clock", { advance_sec = 100 })
    sb:reset()
    local c = sb:admin("GET", "/config")
    assert.equal(7200, c.tokens.access_ttl_sec)
    local app = sb:admin("GET", "/apps/default")
    assert.equal(true, app.audited)
    assert.equal("Sandbox App", app.name)
    assert.equal(env.TIKTOK_CLIENT_KEY, app.client_key)
    assert.equal(env.TIKTOK_CLIENT_SECRET, app.client_secret)
    assert.same({ env.TIKTOK_REDIRECT_URI }, app.redirect_uris)
    assert.same({ env.TIKTOK_MEDIA_BASE }, app.verified_prefixes)
    assert.equal(false, (sb:admin("GET", "/users/" .. env.TIKTOK_SANDBOX_USER)).banned)
    assert.equal(2, #sb:admin("GET", "/users"))
    assert.equal(1, #sb:admin("GET", "/apps"))
    assert.same({}, sb:admin("GET", "/faults"))
    assert.equal(0, (sb:admin("GET", "/clock")).offset_sec)
    assert.same({}, sb:log())
    assert.same({}, sb:posts())
    assert.equal(401, (sb:api("GET", "/v2/user/info/?fields=open_id", t.access_token)))
  end)

  describe("apps", function()
    it("creates apps with their own credentials", function()
      local app, st = sb:admin("POST", "/apps", { client_key = "awmyapp123", name = "Mine", scopes = { "video.upload" } })
      assert.equal(201, st)
      assert.equal("awmyapp123", app.client_key)
      assert.truthy(#app.client_secret >= 32)
      assert.same({ "user.info.basic", "video.upload" }, app.scopes)
      local _, dup = sb:admin("POST", "/apps", { client_key = "awmyapp123" })
      assert.equal(409, dup)
      local t = sb:login_pkce({ client_key = app.client_key, client_secret = app.client_secret, scope = "user.info.basic,video.upload" })
      assert.truthy(t.access_token)
      local _, del = sb:admin("DELETE", "/apps/awmyapp123")
      assert.equal(200, del)
      local _, gone = sb:admin("GET", "/apps/awmyapp123")
      assert.equal(404, gone)
      local _, def = sb:admin("DELETE", "/apps/default")
      assert.equal(409, def)
    end)

    it("enforces the redirect URI, scope, prefix and domain rules", function()
      local long = "https://app.example.test/" .. string.rep("a", 500)
      local eleven = {}
      for i = 1, 11 do eleven[i] = "https://app.example.test/cb" .. i end
      for _, bad in ipairs({
        { redirect_uris = { "http://app.example.test/cb" } },
        { redirect_uris = { "dev.example.com/auth/callback/" } },
        { redirect_uris = { "https://dev.example.com/auth/callback/?id=1" } },
        { redirect_uris = { "https://dev.example.com/auth/callback/#100" } },
        { redirect_uris = { long } },
        { redirect_uris = eleven },
        { redirect_uris = {} },
        { redirect_uris = { "http://localhost/callback/" } },
        { redirect_uris = { "https://example.com:*/callback/" } },
        { scopes = { "video.delete" } },
        { verified_prefixes = { "https://127.0.0.1/media/" } },
        { verified_prefixes = { "https://cdn.example.com/media" } },
        { verified_prefixes = { "http://cdn.example.com/media/" } },
        { verified_domains = { "https://cdn.example.com" } },
        { verified_domains = { "10.0.0.1" } },
        { audited = "no" },
        { active_user_cap = -1 },
        { client_key = "other" },
        { unknown_field = true },
      }) do
        local v, st = sb:admin("PATCH", "/apps/default", bad)
        assert.equal(400, st, sandbox.json_encode(bad))
        assert.truthy(v.error)
      end
      for _, good in ipairs({
        { redirect_uris = { "https://dev.example.com/auth/callback/", "http://localhost:3455/callback/",
          "http://127.0.0.1:*/callback/", "https://127.0.0.1:3455/callback/" } },
        { verified_prefixes = { "https://example.com/videos/user/" }, verified_domains = { "static.example.com" } },
      }) do
        local _, st = sb:admin("PATCH", "/apps/default", good)
        assert.equal(200, st, sandbox.json_encode(good))
      end
    end)
  end)

  describe("users", function()
    it("creates, updates and deletes creators", function()
      local u, st = sb:admin("POST", "/users", { username = "new.creator_1", display_name = "New", is_private = true })
      assert.equal(201, st)
      assert.same({ "FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY" }, u.privacy_level_options)
      assert.equal(true, u.duet_disabled)
      assert.equal("string", type(u.open_ids[env.TIKTOK_CLIENT_KEY]))
      local _, dup = sb:admin("POST", "/users", { username = "new.creator_1" })
      assert.equal(409, dup)
      for _, bad in ipairs({
        { username = "bad name" }, { username = "x", nope = 1 }, { username = "y", max_video_post_duration_sec = 0 },
        { username = "z", privacy_level_options = { "PRIVATE" } }, { username = "w", banned = "yes" },
      }) do
        local _, s = sb:admin("POST", "/users", bad)
        assert.equal(400, s, sandbox.json_encode(bad))
      end
      local v, s2 = sb:admin("PATCH", "/users/new.creator_1", { privacy_level_options = { "SELF_ONLY" }, max_video_post_duration_sec = 600 })
      assert.equal(200, s2)
      assert.same({ "SELF_ONLY" }, v.privacy_level_options)
      local _, s3 = sb:admin("PATCH", "/users/new.creator_1", { username = "renamed" })
      assert.equal(400, s3)
      local _, s4 = sb:admin("DELETE", "/users/new.creator_1")
      assert.equal(200, s4)
      local _, s5 = sb:admin("GET", "/users/new.creator_1")
      assert.equal(404, s5)
      local _, s6 = sb:admin("DELETE", "/users/" .. env.TIKTOK_SANDBOX_USER)
      assert.equal(409, s6)
    end)
  end)

  it("expires tokens by open_id and advances the clock", function()
    local t = sb:login_pkce({})
    local v = sb:admin("POST", "/tokens/expire", { open_id = t.open_id, kind = "both" })
    assert.equal(2, v.expired)
    assert.equal(401, (sb:api("GET", "/v2/user/info/?fields=open_id", t.access_token)))
    local status, err = sb:token({ grant_type = "refresh_token", refresh_token = t.refresh_token })
    assert.equal(400, status)
    assert.equal("invalid_grant", err.error)
    local c = sb:admin("POST", "/clock", { advance_sec = 10 })
    assert.equal(10, c.offset_sec)
    local _, st = sb:admin("POST", "/clock", {})
    assert.equal(400, st)
    local grants = sb:admin("GET", "/tokens")
    assert.equal(1, #grants)
    assert.is_nil(sandbox.json_encode(grants):find(t.access_token, 1, true))
  end)

  describe("request log", function()
    it("records time, method, path, endpoint, status and the connection serial", function()
      local t = sb:login_pkce({})
      sb:api("GET", "/v2/user/info/?fields=open_id", t.access_token)
      sb:api("GET", "/v2/nothing/", t.access_token)
      local log = sb:log()
      local last = log[#log]
      assert.equal("unknown", last.endpoint)
      assert.equal(404, last.status)
      local ui = log[#log - 1]
      assert.equal("user.info", ui.endpoint)
      assert.equal("GET", ui.method)
      assert.equal("/v2/user/info/", ui.path)
      assert.equal(200, ui.status)
      assert.equal("ok", ui.error_code)
      assert.equal(t.open_id, ui.open_id)
      assert.equal("number", type(ui.connection))
      assert.equal("number", type(ui.time))
      assert.matches("^act%.", ui.token)
      assert.truthy(#ui.token < 16)                        -- a hint, never the token
      for _, e in ipairs(log) do assert.is_nil(e.path:find("_sandbox", 1, true)) end
    end)

    it("shows connection reuse", function()
      local url = env.TIKTOK_API_BASE_PLAIN .. "/v2/user/info/?fields=open_id"
      -- one curl, two requests on one keep-alive connection; then a separate curl
      sandbox.exec(string.format("curl -s -o /dev/null %s -o /dev/null %s", sandbox.shell_quote(url), sandbox.shell_quote(url)))
      sandbox.exec("curl -s -o /dev/null " .. sandbox.shell_quote(url))
      local log = sb:log({ endpoint = "user.info" })
      assert.equal(3, #log)
      assert.equal(log[1].connection, log[2].connection)
      assert.equal(2, log[2].connection_requests)
      assert.are_not.equal(log[2].connection, log[3].connection)
      assert.equal(401, log[1].status)
    end)

    it("filters by since and endpoint, and can be cleared", function()
      sb:login_pkce({})
      local all = sb:log()
      assert.truthy(#all >= 2)
      local later = sb:log({ since = all[1].seq })
      assert.equal(#all - 1, #later)
      assert.equal(1, #sb:log({ endpoint = "oauth.token" }))
      local _, st = sb:admin("DELETE", "/log")
      assert.equal(200, st)
      assert.same({}, sb:log())
    end)
  end)

  it("lists recorded posts with what was received", function()
    local t = sb:login_pkce({})
    local _, v = sb:api("POST", "/v2/post/publish/video/init/", t.access_token, {
      post_info = { title = "recorded", privacy_level = "SELF_ONLY", disable_comment = true },
      source_info = { source = "FILE_UPLOAD", video_size = 1000, chunk_size = 1000, total_chunk_count = 1 } })
    local posts = sb:posts()
    assert.equal(1, #posts)
    local p = posts[1]
    assert.equal(v.data.publish_id, p.publish_id)
    assert.equal(t.open_id, p.open_id)
    assert.equal("recorded", p.post_info.title)
    assert.equal(1000, p.source_info.video_size)
    assert.equal(0, p.bytes_received)
    assert.equal("PROCESSING_UPLOAD", p.status)
    assert.equal("FILE_UPLOAD", p.source)
    local _, st = sb:admin("GET", "/posts/v_pub_file~v2-1.0")
    assert.equal(404, st)
    local _, st2 = sb:admin("POST", "/posts/" .. p.publish_id .. "/publish", {})
    assert.equal(409, st2)                                 -- only inbox drafts can be posted by the creator
  end)
end)
