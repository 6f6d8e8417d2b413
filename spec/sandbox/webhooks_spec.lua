-- Signed webhook deliveries to the configured callback URL (here the sandbox's
-- own recording sink on the media host, reached over HTTPS like any receiver).
local sandbox = require "spec.helpers.sandbox"

describe("sandbox webhooks", function()
  local sb, env, token, tok

  sandbox.use(function(s)
    sb, env = s, s.env
    sandbox.make_video(env.TIKTOK_MEDIA_DIR .. "/clip.mp4", { seconds = 1 })
  end)

  before_each(function()
    sb:configure({ rate_limits = { ["video.init"] = 1000, ["status.fetch"] = 1000 },
      delays = { processing_ms = 20, moderation_ms = 20 }, webhooks = { retry_base_ms = 50 } })
    local _, st = sb:admin("PATCH", "/apps/default", { webhook_url = env.TIKTOK_WEBHOOK_SINK })
    assert.equal(200, st)
    tok = sb:login_pkce({})
    token = tok.access_token
  end)

  local function received(n, timeout)
    local deadline = os.time() + (timeout or 10)
    local list
    repeat
      list = sb:admin("GET", "/webhooks/received")
      if #list >= n then return list end
      sandbox.sleep(0.05)
    until os.time() > deadline
    return list
  end

  local function events(list)
    local out = {}
    for _, r in ipairs(list) do
      local env_ = sandbox.json_decode(r.body)
      out[#out + 1] = env_.event
    end
    return out
  end

  local function pull(path, privacy)
    local body = { source_info = { source = "PULL_FROM_URL", video_url = env.TIKTOK_MEDIA_BASE .. "clip.mp4" } }
    if not path then body.post_info = { privacy_level = privacy or "SELF_ONLY" } end
    local status, v = sb:api("POST", path or "/v2/post/publish/video/init/", token, body)
    assert.equal(200, status)
    return v.data.publish_id
  end

  it("signs each delivery: TikTok-Signature t=<ts>,s=<hex HMAC-SHA256(client_secret, ts.'.'.body)>", function()
    local id = pull(nil, "SELF_ONLY")
    local list = received(1)
    assert.equal(1, #list)
    local r = list[1]
    assert.equal("POST", r.method)
    assert.matches("application/json", r.content_type, 1, true)
    local t, s = r.signature:match("^t=(%d+),s=(%x+)$")
    assert.truthy(t and s)
    assert.equal(64, #s)
    assert.equal(sandbox.hmac_sha256_hex(env.TIKTOK_CLIENT_SECRET, t .. "." .. r.body), s)
    assert.are_not.equal(sandbox.hmac_sha256_hex("wrong-secret", t .. "." .. r.body), s)
    local e = sandbox.json_decode(r.body)
    assert.equal(env.TIKTOK_CLIENT_KEY, e.client_key)
    assert.equal("post.publish.complete", e.event)
    assert.equal(tok.open_id, e.user_openid)
    assert.equal(tonumber(t), e.create_time)
    assert.equal("string", type(e.content))            -- serialized JSON, parsed a second time
    local c = sandbox.json_decode(e.content)
    assert.equal(id, c.publish_id)
    assert.equal("DIRECT_POST", c.publish_type)
  end)

  it("announces a public post with its post_id as a raw 64-bit number", function()
    local id = pull(nil, "PUBLIC_TO_EVERYONE")
    local list = received(2)
    assert.same({ "post.publish.complete", "post.publish.publicly_available" }, events(list))
    local content = sandbox.json_decode(list[2].body).content
    local raw = content:match('"post_id":(%d+)')
    assert.equal(19, #raw)
    assert.equal(sb:post(id).post_ids[1], raw)
    sb:admin("POST", "/posts/" .. id .. "/visibility", { public = false })
    list = received(3)
    assert.equal("post.publish.no_longer_publicaly_available", events(list)[3])
    assert.equal(raw, sandbox.json_decode(list[3].body).content:match('"post_id":(%d+)'))
  end)

  it("sends post.publish.failed with the reason", function()
    sb:admin("POST", "/faults", { endpoint = "media.get", status = 404, body = "gone" })
    local id = pull(nil)
    local list = received(1)
    local e = sandbox.json_decode(list[1].body)
    assert.equal("post.publish.failed", e.event)
    local c = sandbox.json_decode(e.content)
    assert.equal(id, c.publish_id)
    assert.equal("video_pull_failed", c.reason)
  end)

  it("sends inbox_delivered, then complete and publicly_available when the creator posts", function()
    local id = pull("/v2/post/publish/inbox/video/init/")
    local list = received(1)
    local e = sandbox.json_decode(list[1].body)
    assert.equal("post.publish.inbox_delivered", e.event)
    assert.equal("INBOX_SHARE", sandbox.json_decode(e.content).publish_type)
    local _, st = sb:admin("POST", "/posts/" .. id .. "/publish", { privacy_level = "PUBLIC_TO_EVERYONE", post_count = 2 })
    assert.equal(200, st)
    list = received(4)
    assert.same({ "post.publish.inbox_delivered", "post.publish.complete", "post.publish.publicly_available",
      "post.publish.publicly_available" }, events(list))
    local v = sb:wait_status(token, id, { PUBLISH_COMPLETE = true })
    assert.equal(2, #v.data.publicaly_available_post_id)
  end)

  it("sends publish_cancelled after a cancel", function()
    sb:admin("POST", "/faults", { endpoint = "media.get", delay_ms = 3000 })
    local id = pull(nil)
    assert.equal(200, (sb:api("POST", "/v2/post/publish/cancel/", token, { publish_id = id })))
    local c = sandbox.json_decode(sandbox.json_decode(received(1)[1].body).content)
    assert.equal("publish_cancelled", c.reason)
  end)

  it("sends authorization.removed on revoke (reason 5) and on user removal (reason 1)", function()
    sb:http("POST", env.TIKTOK_API_BASE .. "/v2/oauth/revoke/", { form = {
      client_key = env.TIKTOK_CLIENT_KEY, client_secret = env.TIKTOK_CLIENT_SECRET, token = token } })
    local list = received(1)
    local e = sandbox.json_decode(list[1].body)
    assert.equal("authorization.removed", e.event)
    assert.equal(tok.open_id, e.user_openid)
    assert.equal(5, sandbox.json_decode(e.content).reason)
    sb:admin("POST", "/users/sandbox_private/deauthorize", {})
    list = received(2)
    e = sandbox.json_decode(list[2].body)
    assert.equal(1, sandbox.json_decode(e.content).reason)
  end)

  it("retries with backoff until the receiver answers 200", function()
    sb:admin("POST", "/faults", { endpoint = "webhook.sink", status = 500, count = 2 })
    pull(nil)
    local list = received(3)
    assert.equal(3, #list)
    assert.equal(list[1].body, list[3].body)             -- the same event, redelivered
    assert.equal(list[1].signature, list[3].signature)
    local d = sb:admin("GET", "/webhooks")
    assert.equal(1, #d)
    assert.equal(true, d[1].delivered)
    assert.same({ 500, 500, 200 }, { d[1].attempts[1].status, d[1].attempts[2].status, d[1].attempts[3].status })
    assert.truthy(d[1].attempts[3].time - d[1].attempts[2].time >= d[1].attempts[2].time - d[1].attempts[1].time)
  end)

  it("gives up after the configured number of attempts", function()
    sb:configure({ webhooks = { max_attempts = 3 } })
    sb:admin("POST", "/faults", { endpoint = "webhook.sink", status = 503, count = -1 })
    pull(nil)
    local list = received(3)
    sandbox.sleep(0.5)
    assert.equal(3, #sb:admin("GET", "/webhooks/received"))
    local d = sb:admin("GET", "/webhooks")
    assert.equal(false, d[1].delivered)
    assert.equal(true, d[1].gave_up)
    assert.equal(3, #list)
  end)

  it("records but sends nothing without a webhook_url", function()
    sb:admin("PATCH", "/apps/default", { webhook_url = sandbox.json_decode("null") })
    pull(nil)
    sb:wait_status(token, sb:posts()[1].publish_id, { PUBLISH_COMPLETE = true })
    sandbox.sleep(0.2)
    assert.equal(0, #sb:admin("GET", "/webhooks/received"))
    local d = sb:admin("GET", "/webhooks")
    assert.equal(1, #d)
    assert.equal("no webhook_url configured", d[1].skipped)
  end)

  it("only accepts https callback URLs (plain http for loopback only)", function()
    local v, st = sb:admin("PATCH", "/apps/default", { webhook_url = "http://hooks.example.com/tiktok" })
    assert.equal(400, st)
    assert.matches("https", v.error)
    local _, st2 = sb:admin("PATCH", "/apps/default", { webhook_url = "http://127.0.0.1:9/hook" })
    assert.equal(200, st2)
  end)
end)
