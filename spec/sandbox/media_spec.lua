-- The media host (TIKTOK_MEDIA_BASE) as a source for URL relays (issue 16):
-- HTTP Range requests, HEAD, a switch that makes it ignore Range, large sparse
-- files made through the control API; the verified-prefix list still decides
-- which URLs TikTok pulls.
local sandbox = require "spec.helpers.sandbox"

describe("sandbox media host", function()
  local sb, env, media, BASE

  sandbox.use(function(s)
    sb, env = s, s.env
    media = env.TIKTOK_MEDIA_DIR
    BASE = env.TIKTOK_MEDIA_BASE
    local bytes = {}
    for i = 0, 9999 do bytes[#bytes + 1] = string.char(i % 251) end
    sandbox.write_file(media .. "/data.bin", table.concat(bytes))
    sandbox.make_video(media .. "/clip.mp4", { seconds = 1, faststart = true })
  end, { config = { delays = { processing_ms = 20, moderation_ms = 20 } } })

  local function get(name, headers, method)
    return sb:http(method or "GET", BASE .. name, { headers = headers })
  end

  local DATA
  before_each(function() DATA = sandbox.read_file(media .. "/data.bin") end)

  describe("with ranges (the default)", function()
    it("HEAD gives the length and Accept-Ranges: bytes, without a body", function()
      local status, h, body = get("data.bin", nil, "HEAD")
      assert.equal(200, status)
      assert.equal("10000", h["content-length"])
      assert.equal("bytes", h["accept-ranges"])
      assert.is_nil(body:find(DATA:sub(1, 64), 1, true))
    end)

    it("Range: bytes=0-0 answers 206 with the first byte and Content-Range .../TOTAL", function()
      local status, h, body = get("data.bin", { Range = "bytes=0-0" })
      assert.equal(206, status)
      assert.equal("bytes 0-0/10000", h["content-range"])
      assert.equal("1", h["content-length"])
      assert.equal(DATA:sub(1, 1), body)
    end)

    it("serves any one range: A-B, A- and the suffix -N", function()
      local status, h, body = get("data.bin", { Range = "bytes=1000-2999" })
      assert.equal(206, status)
      assert.equal("bytes 1000-2999/10000", h["content-range"])
      assert.equal(DATA:sub(1001, 3000), body)
      status, h, body = get("data.bin", { Range = "bytes=9990-" })
      assert.equal(206, status)
      assert.equal("bytes 9990-9999/10000", h["content-range"])
      assert.equal(DATA:sub(9991), body)
      status, h, body = get("data.bin", { Range = "bytes=-5" })
      assert.equal(206, status)
      assert.equal("bytes 9995-9999/10000", h["content-range"])
      assert.equal(DATA:sub(-5), body)
      status, h, body = get("data.bin", { Range = "bytes=9000-20000" })
      assert.equal(206, status)
      assert.equal("bytes 9000-9999/10000", h["content-range"])
      assert.equal(1000, #body)
    end)

    it("answers 416 with bytes */TOTAL for a range past the end", function()
      local status, h = get("data.bin", { Range = "bytes=10000-" })
      assert.equal(416, status)
      assert.equal("bytes */10000", h["content-range"])
    end)

    it("ignores a Range it does not serve (several ranges, other units): 200, whole body", function()
      for _, r in ipairs({ "bytes=0-1,5-6", "items=0-1", "bytes=x-y", "bytes=-" }) do
        local status, h, body = get("data.bin", { Range = r })
        assert.equal(200, status, r)
        assert.is_nil(h["content-range"], r)
        assert.equal(DATA, body, r)
      end
    end)

    it("records the Range header of each media request in the log", function()
      get("data.bin", { Range = "bytes=0-0" })
      local log = sb:log({ endpoint = "media.get" })
      assert.equal("bytes=0-0", log[#log].range)
      assert.equal(206, log[#log].status)
    end)
  end)

  describe("with media.ranges = false (a server without range support)", function()
    before_each(function() sb:configure({ media = { ranges = false } }) end)

    it("ignores Range: 200 with the whole body, Accept-Ranges: none", function()
      for _, r in ipairs({ "bytes=0-0", "bytes=1000-2999", "bytes=-5", "bytes=10000-" }) do
        local status, h, body = get("data.bin", { Range = r })
        assert.equal(200, status, r)
        assert.is_nil(h["content-range"], r)
        assert.equal("10000", h["content-length"])
        assert.equal("none", h["accept-ranges"])
        assert.equal(DATA, body, r)
      end
    end)

    it("still answers HEAD with the length", function()
      local status, h = get("data.bin", nil, "HEAD")
      assert.equal(200, status)
      assert.equal("10000", h["content-length"])
    end)

    it("is shown and reset like any setting", function()
      assert.equal(false, sb:admin("GET", "/config").media.ranges)
      sb:reset()
      assert.equal(true, sb:admin("GET", "/config").media.ranges)
      local _, st = sb:admin("PATCH", "/config", { media = { ranges = "no" } })
      assert.equal(400, st)
    end)
  end)

  describe("large sparse files (PUT /_sandbox/media/NAME)", function()
    it("makes a file of any size that starts with another media file, with the rest a hole", function()
      local size = 300 * 1024 * 1024
      local v, st = sb:admin("PUT", "/media/big.mp4", { size = size, copy_from = "clip.mp4" })
      assert.equal(201, st)
      assert.equal(size, v.size)
      assert.equal(BASE .. "big.mp4", v.url)
      assert.equal(size, sandbox.file_size(media .. "/big.mp4"))
      local kb = tonumber((sandbox.exec("du -k " .. sandbox.shell_quote(media .. "/big.mp4")):match("^(%d+)")))
      assert.truthy(kb < 10 * 1024, "allocated " .. kb .. " KiB")
      local clip = sandbox.read_file(media .. "/clip.mp4")
      local status, h, body = get("big.mp4", { Range = "bytes=0-" .. (#clip - 1) })
      assert.equal(206, status)
      assert.equal("bytes 0-" .. (#clip - 1) .. "/" .. size, h["content-range"])
      assert.equal(clip, body)
      local tail_status, _, tail = get("big.mp4", { Range = "bytes=-4096" })
      assert.equal(206, tail_status)
      assert.equal(string.rep("\0", 4096), tail)
      local head_status, head = get("big.mp4", nil, "HEAD")
      assert.equal(200, head_status)
      assert.equal(tostring(size), head["content-length"])
    end)

    it("has a helper, sb:media_file(name, size, copy_from)", function()
      local url = sb:media_file("big2.mp4", 64000001, "clip.mp4")
      assert.equal(BASE .. "big2.mp4", url)
      local status, h = get("big2.mp4", { Range = "bytes=0-0" })
      assert.equal(206, status)
      assert.equal("bytes 0-0/64000001", h["content-range"])
    end)

    it("takes the start as base64, lists and deletes files, and refuses paths", function()
      local v, st = sb:admin("PUT", "/media/head.bin", { size = 1000, content_base64 = "aGVsbG8=" })
      assert.equal(201, st)
      assert.equal(1000, v.size)
      local data = sandbox.read_file(media .. "/head.bin")
      assert.equal("hello" .. string.rep("\0", 995), data)
      local list = sb:admin("GET", "/media")
      local names = {}
      for _, f in ipairs(list) do names[f.name] = f.size end
      assert.equal(1000, names["head.bin"])
      assert.equal(10000, names["data.bin"])
      assert.equal(200, select(2, sb:admin("DELETE", "/media/head.bin")))
      assert.is_nil(sandbox.read_file(media .. "/head.bin"))
      assert.equal(404, select(2, sb:admin("DELETE", "/media/head.bin")))
      assert.equal(400, select(2, sb:admin("PUT", "/media/a%20b", { size = 1 })))
      assert.equal(400, select(2, sb:admin("PUT", "/media/.hidden", { size = 1 })))
      assert.equal(400, select(2, sb:admin("PUT", "/media/x.bin", { size = 2, content_base64 = "aGVsbG8=" })))
      assert.equal(404, select(2, sb:admin("PUT", "/media/x.bin", { size = 2, copy_from = "missing.mp4" })))
    end)
  end)

  describe("pulls", function()
    local token
    before_each(function() token = sb:login_pkce({}).access_token end)

    local function pull(url)
      return sb:api("POST", "/v2/post/publish/video/init/", token, {
        post_info = { privacy_level = "SELF_ONLY" }, source_info = { source = "PULL_FROM_URL", video_url = url } })
    end

    for _, ranges in ipairs({ true, false }) do
      it("are decided by the verified prefixes (media.ranges = " .. tostring(ranges) .. ")", function()
        sb:configure({ media = { ranges = ranges } })
        local status, v = pull(BASE .. "clip.mp4")
        assert.equal(200, status)
        local done = sb:wait_status(token, v.data.publish_id, { PUBLISH_COMPLETE = true, FAILED = true })
        assert.equal("PUBLISH_COMPLETE", done.data.status)
        sb:admin("PATCH", "/apps/default", { verified_prefixes = { BASE .. "verified/" } })
        status, v = pull(BASE .. "clip.mp4")
        assert.equal(403, status)
        assert.equal("url_ownership_unverified", v.error.code)
      end)
    end
  end)
end)
