-- PUT {upload_url}: chunk rules and responses, the status progression, and the
-- fail reasons computed from the bytes actually received.
local sandbox = require "spec.helpers.sandbox"

describe("sandbox upload", function()
  local sb, env, token, tmp
  local small, padded, mov, webm, slow_fps, tiny_frame, faststart, long_video

  local function sh(cmd)
    local out, rc = sandbox.exec(cmd)
    assert(rc == 0, out)
    return out
  end

  -- A real MP4 followed by a `free` box of zeros, so the file is big enough
  -- for several chunks and still a valid MP4 with the same duration.
  local function pad_mp4(src, dst, total)
    local data = assert(sandbox.read_file(src))
    local n = total - #data
    local f = assert(io.open(dst, "wb"))
    f:write(data)
    f:write(string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256), "free")
    f:close()
    sh("truncate -s " .. total .. " " .. sandbox.shell_quote(dst))
    return dst
  end

  sandbox.use(function(s, d)
    sb, env, tmp = s, s.env, d
    small = sandbox.make_video(tmp .. "/small.mp4", { seconds = 2 })
    padded = pad_mp4(small, tmp .. "/padded.mp4", 12 * 1024 * 1024 + 12345)
    mov = sandbox.make_video(tmp .. "/clip.mov", { seconds = 1 })
    webm = sandbox.make_video(tmp .. "/clip.webm", { seconds = 1 })
    slow_fps = sandbox.make_video(tmp .. "/slow.mp4", { seconds = 1, fps = 10 })
    tiny_frame = sandbox.make_video(tmp .. "/tiny.mp4", { seconds = 1, size = "200x200" })
    faststart = sandbox.make_video(tmp .. "/fast.mp4", { seconds = 3, faststart = true })
    long_video = sandbox.make_video(tmp .. "/long.mp4", { seconds = 4, size = "360x640", fps = 24 })
  end, { tmpdir = true })

  before_each(function()
    sb:configure({ rate_limits = { ["video.init"] = 10000, ["status.fetch"] = 10000 },
      delays = { processing_ms = 50, moderation_ms = 50 } })
    token = sb:login_pkce({}).access_token
  end)

  local function init(size, chunk, count, privacy, opts)
    opts = opts or {}
    local status, v = sb:api("POST", opts.path or "/v2/post/publish/video/init/", opts.token or token, {
      post_info = (not opts.path) and { title = "upload spec", privacy_level = privacy or "SELF_ONLY" } or nil,
      source_info = { source = "FILE_UPLOAD", video_size = size, chunk_size = chunk or size, total_chunk_count = count or 1 },
    }, { base = opts.base })
    assert.equal(200, status, v and v.error and v.error.message)
    return v.data.publish_id, v.data.upload_url
  end

  -- Write bytes [from, from+len) of a file to a chunk file.
  local function slice(path, from, len)
    local out = tmp .. "/slice-" .. from .. "-" .. len
    sh(string.format("tail -c +%d %s | head -c %d > %s", from + 1, sandbox.shell_quote(path), len, sandbox.shell_quote(out)))
    return out
  end

  local function put(url, file, range, ctype, extra)
    local headers = { ["Content-Type"] = ctype or "video/mp4", ["Content-Range"] = range }
    for k, v in pairs(extra or {}) do headers[k] = v end
    local status, h, body, rc = sb:http("PUT", url, { body_file = file, headers = headers })
    return status, h, body, rc
  end

  local function range(a, b, total) return string.format("bytes %d-%d/%d", a, b, total) end

  local function upload_whole(path, privacy)
    local size = sandbox.file_size(path)
    local id, url = init(size, size, 1, privacy)
    local status, h = put(url, path, range(0, size - 1, size), path:match("%.mov$") and "video/quicktime" or path:match("%.webm$") and "video/webm" or "video/mp4")
    assert.equal(201, status)
    return id, h
  end

  local FINAL = { PUBLISH_COMPLETE = true, FAILED = true, SEND_TO_USER_INBOX = true }

  describe("a real MP4 in one chunk", function()
    it("answers 201 with the progress header and publishes", function()
      local size = sandbox.file_size(small)
      local id, h = upload_whole(small)
      assert.equal(range(0, size - 1, size), h["content-range"])
      local v = sb:wait_status(token, id, FINAL)
      assert.equal("PUBLISH_COMPLETE", v.data.status)
      assert.equal(size, v.data.uploaded_bytes)
      assert.is_nil(v.data.fail_reason)
      assert.same({}, v.data.publicaly_available_post_id)
      local p = sb:post(id)
      assert.equal(size, p.bytes_received)
      assert.equal(sandbox.sha256_file(small), p.sha256)
      assert.equal("mp4", p.analysis[1].container)
      assert.equal(2, p.analysis[1].duration_sec)
      assert.equal(30, math.floor(p.analysis[1].fps + 0.5))
    end)

    it("reports PROCESSING_UPLOAD while processing (configurable delay)", function()
      sb:configure({ delays = { processing_ms = 1500 } })
      local id = upload_whole(small)
      local _, v = sb:api("POST", "/v2/post/publish/status/fetch/", token, { publish_id = id })
      assert.equal("PROCESSING_UPLOAD", v.data.status)
      assert.equal(sandbox.file_size(small), v.data.uploaded_bytes)
      v = sb:wait_status(token, id, FINAL)
      assert.equal("PUBLISH_COMPLETE", v.data.status)
    end)

    it("gives a public post a 19-digit post id as a raw JSON number after moderation", function()
      sb:configure({ delays = { moderation_ms = 1200 } })
      local id = upload_whole(small, "PUBLIC_TO_EVERYONE")
      local v = sb:wait_status(token, id, FINAL)
      assert.equal("PUBLISH_COMPLETE", v.data.status)
      assert.same({}, v.data.publicaly_available_post_id)   -- moderation still pending
      local raw
      for _ = 1, 100 do
        local _, _, body = sb:api("POST", "/v2/post/publish/status/fetch/", token, { publish_id = id })
        raw = body:match('"publicaly_available_post_id":%[(%d+)%]')
        if raw then break end
        sandbox.sleep(0.05)
      end
      assert.truthy(raw, "no post id appeared")
      assert.equal(19, #raw)                                 -- 19 digits: beyond 2^53 (16 digits),
      assert.are_not.equal("0", raw:sub(1, 1))               -- written unquoted
      assert.equal(raw, sb:post(id).post_ids[1])
    end)

    it("uploads over the plain-HTTP upload URL too", function()
      local size = sandbox.file_size(small)
      local _, url = init(size, size, 1, nil, { base = env.TIKTOK_API_BASE_PLAIN })
      assert.matches("^http://127%.0%.0%.1:%d+/upload/", url)
      assert.equal(201, (put(url, small, range(0, size - 1, size))))
    end)

    it("accepts MOV and WebM containers", function()
      local a = upload_whole(mov)
      local b = upload_whole(webm)
      assert.equal("PUBLISH_COMPLETE", sb:wait_status(token, a, FINAL).data.status)
      assert.equal("PUBLISH_COMPLETE", sb:wait_status(token, b, FINAL).data.status)
      assert.equal("mov", sb:post(a).analysis[1].container)
      assert.equal("webm", sb:post(b).analysis[1].container)
    end)
  end)

  describe("two chunks", function()
    it("answers 206 then 201 with Content-Range progress and hashes across chunks", function()
      local size = sandbox.file_size(padded)
      local chunk = math.floor(size / 2)
      local id, url = init(size, chunk, 2)
      local status, h = put(url, slice(padded, 0, chunk), range(0, chunk - 1, size))
      assert.equal(206, status)
      assert.equal(range(0, chunk - 1, size), h["content-range"])
      local _, v = sb:api("POST", "/v2/post/publish/status/fetch/", token, { publish_id = id })
      assert.equal("PROCESSING_UPLOAD", v.data.status)
      assert.equal(chunk, v.data.uploaded_bytes)
      status, h = put(url, slice(padded, chunk, size - chunk), range(chunk, size - 1, size))
      assert.equal(201, status)
      assert.equal(range(0, size - 1, size), h["content-range"])
      v = sb:wait_status(token, id, FINAL)
      assert.equal("PUBLISH_COMPLETE", v.data.status)
      local p = sb:post(id)
      assert.equal(sandbox.sha256_file(padded), p.sha256)
      assert.equal(2, p.analysis[1].duration_sec)
    end)

    it("takes the remainder in the final chunk", function()
      local size = 3 * 5242880 + 1000
      local file = tmp .. "/zeros"
      sh("truncate -s 5242880 " .. file .. " && truncate -s 5243880 " .. file .. "-last")
      local _, url = init(size, 5242880, 3)
      assert.equal(206, (put(url, file, range(0, 5242879, size))))
      assert.equal(206, (put(url, file, range(5242880, 10485759, size))))
      local status, h = put(url, file, range(10485760, size - 1, size))
      assert.equal(400, status)                        -- 5 MiB is not the final chunk's size
      assert.equal(range(0, 10485759, size), h["content-range"])
      assert.equal(201, (put(url, file .. "-last", range(10485760, size - 1, size))))
    end)
  end)

  describe("refuses", function()
    local size, url, id, body

    before_each(function()
      size = 1000
      body = tmp .. "/k1000"
      sh("head -c 1000 /dev/urandom > " .. body .. " && head -c 999 /dev/urandom > " .. body .. "-999")
      id, url = init(size, size, 1)
    end)

    it("an unknown upload_id or a wrong upload_token with 404", function()
      local base = url:match("^(.-)%?")
      local q = sandbox.parse_query(url)
      assert.equal(404, (put(base .. "?upload_id=1&upload_token=" .. q.upload_token, body, range(0, 999, 1000))))
      assert.equal(404, (put(base .. "?upload_id=" .. q.upload_id .. "&upload_token=x" .. q.upload_token, body, range(0, 999, 1000))))
      assert.equal(404, (put(base, body, range(0, 999, 1000))))
    end)

    it("an expired upload_url with 403", function()
      sb:admin("POST", "/clock", { advance_sec = 3601 })
      local status, h = put(url, body, range(0, 999, 1000))
      assert.equal(403, status)
      assert.equal("bytes */1000", h["content-range"])
    end)

    it("an upload_url with a configured shorter lifetime", function()
      sb:configure({ upload = { url_ttl_sec = 5 } })
      local _, url2 = init(size, size, 1)
      sb:admin("POST", "/clock", { advance_sec = 6 })
      assert.equal(403, (put(url2, body, range(0, 999, 1000))))
      assert.equal(201, (put(url, body, range(0, 999, 1000))))   -- issued earlier with the default hour
    end)

    local bad_headers = {
      { "a missing Content-Range", { ["Content-Range"] = false } },
      { "a malformed Content-Range", { ["Content-Range"] = "bytes=0-999/1000" } },
      { "a Content-Range total that is not video_size", { ["Content-Range"] = "bytes 0-999/1001" } },
      { "a reversed Content-Range", { ["Content-Range"] = "bytes 999-0/1000" } },
      { "a missing Content-Type", { ["Content-Type"] = false } },
      { "Content-Type application/octet-stream", { ["Content-Type"] = "application/octet-stream" } },
      { "chunked Transfer-Encoding (no Content-Length)", { ["Transfer-Encoding"] = "chunked" } },
    }
    for _, case in ipairs(bad_headers) do
      it(case[1] .. " with 400", function()
        local headers = { ["Content-Type"] = "video/mp4", ["Content-Range"] = range(0, 999, 1000) }
        for k, v in pairs(case[2]) do headers[k] = v end
        local status, h = sb:http("PUT", url, { body_file = body, headers = headers })
        assert.equal(400, status)
        assert.equal("bytes */1000", h["content-range"])
        assert.equal("PROCESSING_UPLOAD", sb:post(id).status)
      end)
    end

    it("a Content-Length that does not match the Content-Range with 400", function()
      assert.equal(400, (put(url, body .. "-999", range(0, 999, 1000))))
    end)

    it("a chunk that does not start at the upload progress with 416", function()
      local total = 3 * 5242880
      local file = tmp .. "/z5"
      sh("truncate -s 5242880 " .. file)
      local _, u = init(total, 5242880, 3)
      local status, h = put(u, file, range(5242880, 10485759, total))
      assert.equal(416, status)
      assert.equal("bytes */" .. total, h["content-range"])
      assert.equal(206, (put(u, file, range(0, 5242879, total))))
      status, h = put(u, file, range(0, 5242879, total))           -- the same chunk again
      assert.equal(416, status)
      assert.equal(range(0, 5242879, total), h["content-range"])
      status = put(u, file, range(10485760, total - 1, total))     -- skipping a chunk
      assert.equal(416, status)
    end)

    it("a non-final chunk that is not chunk_size long with 400", function()
      local total = 2 * 5242880
      local file = tmp .. "/z5b"
      sh("truncate -s 5242881 " .. file)
      local _, u = init(total, 5242880, 2)
      assert.equal(400, (put(u, file, range(0, 5242880, total))))
    end)

    it("another PUT after the upload completed with 404", function()
      assert.equal(201, (put(url, body, range(0, 999, 1000))))
      assert.equal(404, (put(url, body, range(0, 999, 1000))))
    end)

    it("GET on the upload URL with 405", function()
      assert.equal(405, (sb:http("GET", url)))
    end)

    it("uploads sent to the API host instead of the upload host", function()
      local path = url:match("^https://[^/]+(/.*)$")
      assert.equal(404, (put(env.TIKTOK_API_BASE .. path, body, range(0, 999, 1000))))
    end)

    it("concurrent PUTs of the same chunk: exactly one is accepted", function()
      local total = 2 * 5242880
      local file = tmp .. "/zc"
      sh("truncate -s 5242880 " .. file)
      local _, u = init(total, 5242880, 2)
      local cmds = {}
      for i = 1, 4 do
        cmds[i] = string.format("curl -s -o /dev/null -w '%%{http_code}\\n' --cacert %s -X PUT -H 'Content-Type: video/mp4' -H %s --data-binary @%s %s > %s/par%d &",
          sandbox.shell_quote(env.TIKTOK_CA_FILE), sandbox.shell_quote("Content-Range: " .. range(0, 5242879, total)),
          sandbox.shell_quote(file), sandbox.shell_quote(u), tmp, i)
      end
      sh(table.concat(cmds, " ") .. " wait")
      local counts = {}
      for i = 1, 4 do
        local code = sandbox.read_file(tmp .. "/par" .. i):gsub("%s+", "")
        counts[code] = (counts[code] or 0) + 1
      end
      assert.equal(1, counts["206"])
      assert.equal(3, counts["416"])
      assert.equal(5242880, sb:post(sb:posts()[2].publish_id).upload.committed)
    end)
  end)

  describe("fail reasons from the received bytes", function()
    local function fails_with(path, reason, ctype)
      local size = sandbox.file_size(path)
      local id, url = init(size, size, 1)
      assert.equal(201, (put(url, path, range(0, size - 1, size), ctype)))
      local v = sb:wait_status(token, id, FINAL)
      assert.equal("FAILED", v.data.status)
      assert.equal(reason, v.data.fail_reason)
      assert.equal("ok", v.error.code)    -- a failed post is still a successful status fetch
      return id
    end

    it("file_format_check_failed for bytes that are not MP4, MOV or WebM", function()
      local f = tmp .. "/notvideo.mp4"
      sh("head -c 4096 /dev/urandom > " .. f)
      fails_with(f, "file_format_check_failed")
      local txt = tmp .. "/text.mp4"
      sandbox.write_file(txt, string.rep("this is not a video\n", 100))
      fails_with(txt, "file_format_check_failed")
    end)

    it("file_format_check_failed for an MP4 header without a movie box", function()
      local f = tmp .. "/truncated.mp4"
      sh("head -c 2000 " .. sandbox.shell_quote(faststart) .. " > " .. f)
      fails_with(f, "file_format_check_failed")
    end)

    it("duration_check_failed when the mvhd duration exceeds the creator's maximum", function()
      sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { max_video_post_duration_sec = 3 })
      fails_with(long_video, "duration_check_failed")
      -- the same rule with the moov box first (faststart): 3 s is allowed
      local id = upload_whole(faststart)
      assert.equal("PUBLISH_COMPLETE", sb:wait_status(token, id, FINAL).data.status)
      sb:admin("PATCH", "/users/" .. env.TIKTOK_SANDBOX_USER, { max_video_post_duration_sec = 2 })
      fails_with(faststart, "duration_check_failed")
    end)

    it("frame_rate_check_failed under 23 fps", function()
      fails_with(slow_fps, "frame_rate_check_failed")
    end)

    it("picture_size_check_failed under 360 px", function()
      fails_with(tiny_frame, "picture_size_check_failed")
    end)

    it("a fault can force any documented fail reason", function()
      sb:admin("POST", "/faults", { endpoint = "post.processing", fail_reason = "spam_risk_text" })
      fails_with(small, "spam_risk_text")
      local id = upload_whole(small)
      assert.equal("PUBLISH_COMPLETE", sb:wait_status(token, id, FINAL).data.status)
    end)
  end)

  describe("hashing and interrupted chunks", function()
    it("can skip hashing (control API) and still checks the container", function()
      sb:configure({ upload = { hash = false } })
      local id = upload_whole(small)
      assert.equal("PUBLISH_COMPLETE", sb:wait_status(token, id, FINAL).data.status)
      local p = sb:post(id)
      assert.equal(sandbox.json_decode("null"), p.sha256)
      assert.equal(false, p.upload.hashing)
    end)

    it("rolls back a cut-off first chunk completely (hash, header sniffing, box walker)", function()
      -- faststart: the cut lands inside the moov box, after the walker entered it
      local size = sandbox.file_size(faststart)
      local id, url = init(size, size, 1)
      sb:admin("POST", "/faults", { endpoint = "upload.put", chunk = 1, close_after_bytes = 2000 })
      assert.equal(0, (put(url, faststart, range(0, size - 1, size))))
      assert.equal(0, sb:post(id).upload.committed)
      assert.equal(201, (put(url, faststart, range(0, size - 1, size))))
      assert.equal("PUBLISH_COMPLETE", sb:wait_status(token, id, FINAL).data.status)
      local p = sb:post(id)
      assert.equal(sandbox.sha256_file(faststart), p.sha256)
      assert.equal(3, p.analysis[1].duration_sec)
    end)

    it("rolls back a chunk cut off mid-body, so the retried chunk hashes correctly", function()
      local size = sandbox.file_size(padded)
      local chunk = math.floor(size / 2)
      local id, url = init(size, chunk, 2)
      sb:admin("POST", "/faults", { endpoint = "upload.put", chunk = 2, close_after_bytes = 300000 })
      local c1, c2 = slice(padded, 0, chunk), slice(padded, chunk, size - chunk)
      assert.equal(206, (put(url, c1, range(0, chunk - 1, size))))
      local status, _, _, rc = put(url, c2, range(chunk, size - 1, size))
      assert.equal(0, status)                  -- connection closed, no response
      assert.are_not.equal(0, rc)
      local p = sb:post(id)
      assert.equal(chunk, p.upload.committed)
      assert.equal("PROCESSING_UPLOAD", p.status)
      assert.equal(201, (put(url, c2, range(chunk, size - 1, size))))
      assert.equal("PUBLISH_COMPLETE", sb:wait_status(token, id, FINAL).data.status)
      assert.equal(sandbox.sha256_file(padded), sb:post(id).sha256)
    end)
  end)
end)
