-- Fault injection through the control API: canned status and body (JSON or
-- raw), delays, closed connections, faults after the work was done, chunk faults.
local sandbox = require "spec.helpers.sandbox"

describe("sandbox faults", function()
  local sb, token

  sandbox.use(function(s)
    sb = s
  end)

  before_each(function()
    sb:configure({ rate_limits = { ["video.init"] = 1000 } })
    token = sb:login_pkce({}).access_token
  end)

  local function fault(rule)
    local v, st = sb:admin("POST", "/faults", rule)
    assert.equal(201, st, sandbox.json_encode(v))
    return v
  end

  local INIT = { post_info = { privacy_level = "SELF_ONLY" },
    source_info = { source = "FILE_UPLOAD", video_size = 1000, chunk_size = 1000, total_chunk_count = 1 } }

  it("answers the next N requests with a canned status and JSON body", function()
    local t = sb:login_pkce({})
    fault({ endpoint = "oauth.token", count = 2, status = 503,
      json = { error = "temporarily_unavailable", error_description = "try later", log_id = "x" } })
    for _ = 1, 2 do
      local status, v = sb:token({ grant_type = "refresh_token", refresh_token = t.refresh_token })
      assert.equal(503, status)
      assert.equal("temporarily_unavailable", v.error)
    end
    local status = sb:token({ grant_type = "refresh_token", refresh_token = t.refresh_token })
    assert.equal(200, status)
    assert.same({}, sb:admin("GET", "/faults"))
  end)

  it("can answer with a raw non-JSON body", function()
    fault({ endpoint = "creator_info", status = 502, body = "<html><body>502 Bad Gateway</body></html>", content_type = "text/html" })
    local status, v, raw, h = sb:api("POST", "/v2/post/publish/creator_info/query/", token, {})
    assert.equal(502, status)
    assert.is_nil(v)
    assert.equal("<html><body>502 Bad Gateway</body></html>", raw)
    assert.equal("text/html", h["content-type"])
  end)

  it("can add custom headers", function()
    fault({ endpoint = "status.fetch", status = 429, json = { error = { code = "rate_limit_exceeded", message = "", log_id = "1" } },
      headers = { ["Retry-After"] = "7" } })
    local status, v, _, h = sb:api("POST", "/v2/post/publish/status/fetch/", token, { publish_id = "x" })
    assert.equal(429, status)
    assert.equal("rate_limit_exceeded", v.error.code)
    assert.equal("7", h["retry-after"])
  end)

  it("can delay a request", function()
    fault({ endpoint = "user.info", delay_ms = 700 })
    local status = sb:api("GET", "/v2/user/info/?fields=open_id", token)
    assert.equal(200, status)
    local e = sb:log({ endpoint = "user.info" })[1]
    assert.truthy(e.request_time >= 0.69, "request_time " .. tostring(e.request_time))
    assert.equal(e.fault, sb:log({ endpoint = "user.info" })[1].fault)
  end)

  it("can close the connection before responding", function()
    fault({ endpoint = "video.init", close = true })
    local status, _, _, rc = sb:api("POST", "/v2/post/publish/video/init/", token, INIT)
    assert.equal(0, status)
    assert.are_not.equal(0, rc)
    assert.equal(0, #sb:posts())                               -- nothing happened
    local e = sb:log({ endpoint = "video.init" })[1]
    assert.equal(444, e.status)
    assert.equal("fault: closed before responding", e.closed)
    assert.equal(200, (sb:api("POST", "/v2/post/publish/video/init/", token, INIT)))
  end)

  it("can fail a request after its work was done (an ambiguous failure)", function()
    fault({ endpoint = "video.init", when = "after", status = 500, json = { error = { code = "internal_error", message = "", log_id = "1" } } })
    local status, v = sb:api("POST", "/v2/post/publish/video/init/", token, INIT)
    assert.equal(500, status)
    assert.equal("internal_error", v.error.code)
    assert.equal(1, #sb:posts())                               -- the post exists anyway
    fault({ endpoint = "video.init", when = "after", close = true })
    status = sb:api("POST", "/v2/post/publish/video/init/", token, INIT)
    assert.equal(0, status)
    assert.equal(2, #sb:posts())
  end)

  describe("on chunk PUTs", function()
    local file, size, chunk

    lazy_setup(function()
      file = os.tmpname()
      sandbox.exec("truncate -s 5242880 " .. file)
      chunk = 5242880
      size = 2 * chunk
    end)

    lazy_teardown(function()
      os.remove(file)
    end)

    local function start()
      local status, v = sb:api("POST", "/v2/post/publish/video/init/", token, { post_info = { privacy_level = "SELF_ONLY" },
        source_info = { source = "FILE_UPLOAD", video_size = size, chunk_size = chunk, total_chunk_count = 2 } })
      assert.equal(200, status)
      return v.data.publish_id, v.data.upload_url
    end

    local function put(url, a, b)
      return sb:http("PUT", url, { body_file = file, headers = { ["Content-Type"] = "video/mp4",
        ["Content-Range"] = string.format("bytes %d-%d/%d", a, b, size) } })
    end

    it("fails chunk N with a status, keeping the progress header", function()
      local id, url = start()
      fault({ endpoint = "upload.put", chunk = 2, status = 500 })
      assert.equal(206, (put(url, 0, chunk - 1)))
      local status, h = put(url, chunk, size - 1)
      assert.equal(500, status)
      assert.equal(string.format("bytes 0-%d/%d", chunk - 1, size), h["content-range"])
      assert.equal(201, (put(url, chunk, size - 1)))
      assert.equal(size, sb:post(id).bytes_received)
    end)

    it("can lose the response of a stored chunk: the retry gets 416 and the progress to resume from", function()
      local id, url = start()
      fault({ endpoint = "upload.put", chunk = 1, when = "after", status = 503 })
      assert.equal(503, (put(url, 0, chunk - 1)))
      local status, h = put(url, 0, chunk - 1)
      assert.equal(416, status)
      assert.equal(string.format("bytes 0-%d/%d", chunk - 1, size), h["content-range"])
      assert.equal(201, (put(url, chunk, size - 1)))
      assert.equal(size, sb:post(id).upload.committed)
    end)

    it("can close the connection after K bytes of chunk N", function()
      local id, url = start()
      fault({ endpoint = "upload.put", chunk = 1, close_after_bytes = 65536 * 3 + 5 })
      local status = put(url, 0, chunk - 1)
      assert.equal(0, status)
      assert.equal(0, sb:post(id).upload.committed)
      local e = sb:log({ endpoint = "upload.put" })[1]
      assert.equal(444, e.status)
      assert.matches("closed after 196613 bytes", e.closed, 1, true)
      assert.equal(206, (put(url, 0, chunk - 1)))
    end)
  end)

  it("stays until deleted with count -1", function()
    local f = fault({ endpoint = "user.info", status = 500, body = "x", count = -1 })
    for _ = 1, 3 do assert.equal(500, (sb:api("GET", "/v2/user/info/?fields=open_id", token))) end
    local list = sb:admin("GET", "/faults")
    assert.equal(1, #list)
    assert.equal(3, list[1].used)
    local _, st = sb:admin("DELETE", string.format("/faults/%d", f.id))
    assert.equal(200, st)
    assert.equal(200, (sb:api("GET", "/v2/user/info/?fields=open_id", token)))
  end)

  it("can target one publish_id", function()
    local _, v = sb:api("POST", "/v2/post/publish/video/init/", token, INIT)
    local _, v2 = sb:api("POST", "/v2/post/publish/video/init/", token, INIT)
    fault({ endpoint = "upload.put", publish_id = v2.data.publish_id, status = 500 })
    local f = os.tmpname()
    sandbox.write_file(f, string.rep("x", 1000))
    local function put(url)
      return (sb:http("PUT", url, { body_file = f, headers = { ["Content-Type"] = "video/mp4", ["Content-Range"] = "bytes 0-999/1000" } }))
    end
    assert.equal(201, put(v.data.upload_url))
    assert.equal(500, put(v2.data.upload_url))
    os.remove(f)
  end)

  it("validates rules", function()
    local bad = {
      { endpoint = "nope", status = 500 },
      { endpoint = "video.init" },
      { endpoint = "video.init", status = 500, typo = 1 },
      { endpoint = "video.init", status = "500" },
      { endpoint = "video.init", status = 999 },
      { endpoint = "video.init", status = 500, when = "during" },
      { endpoint = "video.init", status = 500, count = 0 },
      { endpoint = "video.init", fail_reason = "internal" },
      { endpoint = "post.processing" },
      { endpoint = "video.init", close_after_bytes = 10 },
      { endpoint = "upload.put", rate_bps = 10 },
      { endpoint = "video.init", status = 500, body = "x", json = {} },
    }
    for _, rule in ipairs(bad) do
      local v, st = sb:admin("POST", "/faults", rule)
      assert.equal(400, st, sandbox.json_encode(rule))
      assert.truthy(v.error)
    end
    assert.same({}, sb:admin("GET", "/faults"))
  end)
end)
