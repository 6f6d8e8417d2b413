-- tiktok.relay (issue 16): a video URL streamed into a FILE_UPLOAD against the
-- sandbox: its media host (with and without range support, sparse files of any
-- size) as the source, its upload host as TikTok's. The sandbox's SHA-256 of
-- what arrived must equal the file's. SSRF attempts must be refused before a
-- single byte is uploaded; faults on either side are retried without a second
-- init. Peak RSS is printed per relay (the log, not an assertion).
local sandbox = require "helpers.sandbox"
local relay = require "tiktok.relay"
local core = require "tiktok.core"

-- The 300 MB sparse relays: 100 MB under valgrind (make valgrind), where
-- 300 MB costs a minute each and finds nothing more than 100 MB does.
local BIG = os.getenv("TIKTOK_VALGRIND") and 100000000 or 300000000

local FAST = {
    delays = { processing_ms = 20, moderation_ms = 20 },
    rate_limits = { ["video.init"] = 100000, ["status.fetch"] = 100000 },
}

-- Peak RSS of this process since the last reset (VmHWM; writing 5 to
-- clear_refs resets it, Linux 4.0+).
local function reset_peak()
    local f = io.open("/proc/self/clear_refs", "w")
    if f then f:write("5"); f:close() end
end
local function peak_kb()
    local f = io.open("/proc/self/status")
    if not f then return nil end
    local s = f:read("*a"); f:close()
    return tonumber(s:match("VmHWM:%s*(%d+)"))
end
local function my_pid()
    local f = assert(io.open("/proc/self/stat"))
    local s = f:read("*l"); f:close()
    return s:match("^(%d+)")
end
-- Open descriptors of this process that point at deleted files.
local function deleted_fds()
    local p = io.popen("ls -l /proc/" .. my_pid() .. "/fd 2>/dev/null")
    local n = 0
    for line in p:lines() do if line:find("(deleted)", 1, true) then n = n + 1 end end
    p:close()
    return n
end

describe("tiktok.relay", function()
    local sb, env, media_dir, token, port, ca

    sandbox.use(function(s)
        sb, env = s, s.env
        media_dir = env.TIKTOK_MEDIA_DIR
        ca = env.TIKTOK_CA_FILE
        port = env.TIKTOK_MEDIA_BASE:match("^https://localhost:(%d+)/")
        -- moov at the end (no faststart): the probe reads past the first window
        sandbox.make_video(media_dir .. "/clip.mp4", { seconds = 2 })
        sb:media_file("r3.mp4", 3000000, "clip.mp4")
        sb:media_file("r64.mp4", 64000001, "clip.mp4")
        sb:media_file("r300.mp4", BIG, "clip.mp4")
        sandbox.write_file(media_dir .. "/data.bin", string.rep("not a video ", 1000))
    end, { config = FAST })

    before_each(function()
        token = sb:login_pkce({}).access_token
    end)

    local function url(name, host)
        return "https://" .. (host or "localhost") .. ":" .. port .. "/media/" .. name
    end

    local function open(u, opts)
        local o = { allow_private = true, ca_file = ca }
        for k, v in pairs(opts or {}) do o[k] = v end
        if o.allow_private == "none" then o.allow_private = nil end
        return relay.open(nil, u, o)
    end

    -- A real FILE_UPLOAD init with the one planner's plan.
    local function init(size)
        local chunk_size, count = assert(core.plan(size))
        local status, v = sb:api("POST", "/v2/post/publish/video/init/", token, {
            post_info = { title = "relay spec", privacy_level = "SELF_ONLY" },
            source_info = { source = "FILE_UPLOAD", video_size = size, chunk_size = chunk_size,
                            total_chunk_count = count },
        })
        assert.equal(200, status, v and v.error and v.error.message)
        return v.data.publish_id, v.data.upload_url, { size = size, chunk_size = chunk_size, count = count }
    end

    local function count(endpoint)
        local n = 0
        for _, e in ipairs(sb:log()) do if e.endpoint == endpoint then n = n + 1 end end
        return n
    end

    local function arrived(publish_id)
        return sb:wait_post(publish_id, function(p)
            return p.upload and p.upload.complete and p.sha256 ~= nil
        end, 30)
    end

    -- Relays media file `name` and checks what the sandbox received.
    local function relay_file(name, opts)
        opts = opts or {}
        local src = assert(open(url(name), opts.open))
        local publish_id, upload_url, plan = init(src.size)
        reset_peak()
        local t0 = core.monotonic_ms()
        local done, err = relay.upload(nil, src, upload_url, plan, opts.upload)
        local ms = core.monotonic_ms() - t0
        assert.is_nil(err and (err.code .. ": " .. err.message))
        assert.equal(src.size, done)
        local stats = src.engine:stats()
        relay.close(src)
        local p = arrived(publish_id)
        assert.equal(sandbox.sha256_file(media_dir .. "/" .. name), p.sha256)
        assert.equal(src.size, p.bytes_received)
        assert.equal(1, count("video.init"))
        io.stderr:write(string.format("\n  relay %s (%d bytes, %d chunks, ranges %s): %d ms, %.0f MB/s, "
            .. "peak RSS %s kB, spooled %d bytes, %d connections\n", name, src.size, plan.count,
            tostring(src.ranges), math.floor(ms), src.size / 1e6 / (ms / 1000), tostring(peak_kb()), stats.spooled,
            stats.connects))
        return src, p, stats, plan
    end

    describe("open", function()
        it("learns size, range support, container and duration (moov at the end) with ranged GETs", function()
            local src = assert(open(url("r300.mp4")))
            assert.equal(BIG, src.size)
            assert.is_true(src.ranges)
            assert.equal("mp4", src.container)
            assert.equal("video/mp4", src.content_type)
            assert.equal(2000, src.duration_ms)
            assert.equal("localhost", src.host)
            relay.close(src)
            for _, e in ipairs(sb:log()) do
                if e.endpoint == "media.get" then
                    assert.equal("GET", e.method)
                    assert.matches("^bytes=%d+%-%d+$", e.range)
                end
            end
            assert.equal(0, count("upload.put"))
        end)

        it("without range support: the size from Content-Length, the moov found in one more pass", function()
            sb:configure({ media = { ranges = false } })
            local src = assert(open(url("clip.mp4")))
            assert.is_false(src.ranges)
            assert.equal(sandbox.file_size(media_dir .. "/clip.mp4"), src.size)
            assert.equal(2000, src.duration_ms)
            relay.close(src)
        end)

        it("refuses what is not a video, and a video over max_bytes", function()
            local src, err = open(url("data.bin"))
            assert.is_nil(src)
            assert.equal("unsupported_media", err.code)
            assert.equal("download", err.side)
            src, err = open(url("r3.mp4"), { max_bytes = 1000000 })
            assert.is_nil(src)
            assert.equal("relay_refused", err.code)
            assert.matches("3000000 bytes", err.message)
        end)

        it("a 404 is an http error that names the host, never the URL's query", function()
            local src, err = open(url("missing.mp4") .. "?X-Amz-Signature=s3cr3t")
            assert.is_nil(src)
            assert.equal("http", err.code)
            assert.matches("HTTP 404", err.message)
            assert.matches("localhost", err.message)
            assert.is_nil(err.message:find("s3cr3t", 1, true))
        end)

        it("times out on a source that does not answer", function()
            sb:admin("POST", "/faults", { endpoint = "media.get", delay_ms = 3000 })
            local src, err = open(url("r3.mp4"), { timeout_ms = 300 })
            assert.is_nil(src)
            assert.equal("timeout", err.code)
        end)

        it("refuses a compressed answer (Accept-Encoding: identity was asked for)", function()
            sb:admin("POST", "/faults", { endpoint = "media.get", status = 206, body = string.rep("x", 100),
                                          headers = { ["Content-Range"] = "bytes 0-99/100",
                                                      ["Content-Encoding"] = "gzip" } })
            local src, err = open(url("r3.mp4"))
            assert.is_nil(src)
            assert.equal("http", err.code)
            assert.matches("compressed", err.message)
        end)

        it("an answer without a body is an error, not a hang", function()
            sb:admin("POST", "/faults", { endpoint = "media.get", status = 206, body = "",
                                          headers = { ["Content-Range"] = "bytes 0-99/100" } })
            local src, err = open(url("r3.mp4"))
            assert.is_nil(src)
            assert.equal("http", err.code)
        end)

        it("raises on bad options (programmer errors)", function()
            assert.has_error(function() relay.open(nil, url("r3.mp4"), { allow_privat = true }) end)
            assert.has_error(function() relay.open(nil, 42) end)
            assert.has_error(function() relay.open(nil, url("r3.mp4"), { allow_private = "yes" }) end)
            assert.has_error(function() core.relay({ connect_timeout_ms = 1000, low_speed_ms = 0,
                                                     allow_private = { "not an address" } }) end)
        end)
    end)

    describe("relays into a FILE_UPLOAD whose SHA-256 equals the file's", function()
        it("3 MB, with ranges: nothing spooled", function()
            local _, _, stats = relay_file("r3.mp4")
            assert.equal(0, stats.spooled)
        end)

        it("64,000,001 bytes, with ranges: each chunk GET asks for exactly its range", function()
            local _, _, stats, plan = relay_file("r64.mp4")
            assert.equal(0, stats.spooled)
            local ranges = {}
            for _, e in ipairs(sb:log()) do
                if e.endpoint == "media.get" then ranges[#ranges + 1] = e.range end
            end
            for i = 0, plan.count - 1 do
                local off, len = core.chunk_range(plan.size, plan.chunk_size, plan.count, i)
                assert.equal("bytes=" .. off .. "-" .. (off + len - 1), ranges[#ranges - plan.count + 1 + i])
            end
        end)

        it("300 MB sparse, with ranges, peak RSS printed", function()
            local _, _, stats = relay_file("r300.mp4")
            assert.equal(0, stats.spooled)
        end)

        it("3 MB without range support: one chunk, streamed once without a Range", function()
            sb:configure({ media = { ranges = false } })
            local _, _, stats = relay_file("r3.mp4")
            assert.equal(0, stats.spooled)
        end)

        it("64,000,001 bytes without range support: spooled to a deleted temp file, gone after close", function()
            sb:configure({ media = { ranges = false } })
            local before = deleted_fds()
            local src = assert(open(url("r64.mp4")))
            local publish_id, upload_url, plan = init(src.size)
            assert.is_true(plan.count > 1)
            assert.equal(src.size, relay.upload(nil, src, upload_url, plan))
            assert.equal(src.size, src.engine:stats().spooled)
            assert.equal(before + 1, deleted_fds())     -- an unlinked file, held open
            relay.close(src)
            assert.equal(before, deleted_fds())
            assert.equal(sandbox.sha256_file(media_dir .. "/r64.mp4"), arrived(publish_id).sha256)
        end)

        it("300 MB sparse without range support (spooled), peak RSS printed", function()
            sb:configure({ media = { ranges = false } })
            local _, _, stats = relay_file("r300.mp4")
            assert.equal(BIG, stats.spooled)
        end)

        it("the spool is capped by spool_max_bytes", function()
            sb:configure({ media = { ranges = false } })
            local src = assert(open(url("r64.mp4"), { spool_max_bytes = 1000000 }))
            local _, upload_url, plan = init(src.size)
            local done, err = relay.upload(nil, src, upload_url, plan)
            assert.is_nil(done)
            assert.equal("relay_refused", err.code)
            assert.equal(0, count("upload.put"))
            relay.close(src)
        end)

        it("a spool folder that cannot be written is a file error, and nothing is uploaded", function()
            sb:configure({ media = { ranges = false } })
            local src = assert(open(url("r64.mp4"), { spool_dir = "/nonexistent/relay" }))
            local _, upload_url, plan = init(src.size)
            local done, err = relay.upload(nil, src, upload_url, plan)
            assert.is_nil(done)
            assert.equal("file", err.code)
            assert.matches("/nonexistent/relay", err.message)
            assert.equal(0, count("upload.put"))
            relay.close(src)
        end)

        it("buffer_size is the PUT's upload buffer: how much each read callback hands libcurl", function()
            -- from the spool (no ranges), every read is as large as libcurl asks
            sb:configure({ media = { ranges = false } })
            local src = assert(open(url("r64.mp4")))
            local _, upload_url, plan = init(src.size)
            assert.equal(src.size, relay.upload(nil, src, upload_url, plan, {
                buffer_size = 16384,
                on_chunk = function(index, res, err, c)
                    assert.is_nil(err)
                    -- libcurl asks for 16 KiB at a time (plus the call that ends the body)
                    assert.is_true(res.reads >= math.ceil(c.length / 16384), res.reads .. " reads")
                    assert.is_true(res.reads <= math.ceil(c.length / 16384) + 2, res.reads .. " reads")
                    return relay.classify(res, err, c, src.size, index == plan.count - 1)
                end }))
            relay.close(src)
            -- by default 256 KiB; the largest allowed 2 MiB
            for _, case in ipairs({ { nil, 262144 }, { 2097152, 2097152 } }) do
                src = assert(open(url("r64.mp4")))
                local _, url2 = init(src.size)
                local c = { offset = 0, length = plan.chunk_size, total = src.size, buffer_size = case[1] }
                local res = assert(relay.put_chunk(nil, src, url2, c))
                assert.is_true(res.reads <= math.ceil(c.length / case[2]) + 2, res.reads .. " reads")
                relay.close(src)
            end
            assert.has_error(function()
                relay.put_chunk(nil, src, upload_url, { offset = 0, length = 10, total = src.size, buffer_size = 1024 })
            end)
        end)

        it("reports progress, and progress returning false cancels", function()
            local src = assert(open(url("r3.mp4")))
            local _, upload_url, plan = init(src.size)
            local seen = {}
            assert.equal(src.size, relay.upload(nil, src, upload_url, plan, {
                progress = function(b) seen[#seen + 1] = b end }))
            assert.equal(src.size, seen[#seen])
            for i = 2, #seen do assert.is_true(seen[i] >= seen[i - 1]) end
            local _, url2 = init(src.size)
            local res, err = relay.put_chunk(nil, src, url2, { offset = 0, length = src.size, total = src.size,
                                                               progress = function() return false end })
            assert.is_nil(res)
            assert.equal("upload", err.side)
            assert.has_error(function()
                relay.put_chunk(nil, src, url2, { offset = 0, length = src.size, total = src.size,
                                                  progress = function() error("boom") end })
            end, "boom")
            relay.close(src)
        end)
    end)

    describe("through the library (the split tiktok.post uses)", function()
        it("api.init with the planner's plan, then relay.put_chunk per chunk with the connection's context", function()
            local tt = require "helpers.tt"
            local api = require "tiktok.api"
            local conn = tt.connect(sb)
            local acc = tt.account(conn)
            local logs = {}
            local ctx = conn:_api()
            local log0 = ctx.log
            ctx.log = function(level, msg) logs[#logs + 1] = msg; if log0 then log0(level, msg) end end
            local src = assert(relay.open(ctx, url("r64.mp4"), { allow_private = true, ca_file = ca }))
            local chunk_size, n = assert(core.plan(src.size))
            local plan = { size = src.size, chunk_size = chunk_size, count = n }
            local d = assert(conn:_with_token(acc.open_id, nil, function(access_token)
                return api.init(ctx, access_token, { kind = "video", mode = "direct", source = "FILE_UPLOAD",
                                                     privacy = "SELF_ONLY", caption = "relayed" }, plan)
            end))
            for i = 0, n - 1 do
                local offset, length = core.chunk_range(plan.size, plan.chunk_size, plan.count, i)
                local res = assert(relay.put_chunk(ctx, src, d.upload_url, {
                    offset = offset, length = length, total = plan.size, content_type = src.content_type }))
                assert.equal(i == n - 1 and 201 or 206, res.status)
                assert.equal(offset + length - 1, res.last)
            end
            relay.close(src)
            assert.equal(sandbox.sha256_file(media_dir .. "/r64.mp4"), arrived(d.publish_id).sha256)
            assert.is_truthy(table.concat(logs, "\n"):find("relay source localhost", 1, true))
            conn:close()
        end)
    end)

    describe("refuses SSRF before any byte is uploaded", function()
        local function refused(u, opts)
            local src, err = open(u, opts or { allow_private = "none" })
            assert.is_nil(src, u)
            assert.equal("relay_refused", err.code, u .. ": " .. tostring(err.message))
            assert.equal(0, count("upload.put"))
            return err
        end

        it("http, 127.0.0.1, [::1], a name that resolves to loopback, 10.x, 169.254.169.254", function()
            assert.matches("https", refused("http://localhost:" .. port .. "/media/r3.mp4").message)
            assert.matches("127%.0%.0%.1", refused(url("r3.mp4", "127.0.0.1")).message)
            assert.matches("::1", refused(url("r3.mp4", "[::1]")).message)
            local err = refused(url("r3.mp4"))                       -- localhost
            assert.is_truthy(err.message:find("127.0.0.1", 1, true) or err.message:find("::1", 1, true))
            refused(url("r3.mp4", "media.localhost"))
            assert.matches("10%.1%.2%.3", refused("https://10.1.2.3/video.mp4").message)
            assert.matches("169%.254%.169%.254", refused("https://169.254.169.254/latest/meta-data/").message)
            refused("https://[::ffff:127.0.0.1]:" .. port .. "/media/r3.mp4")
            refused("https://0.0.0.0:" .. port .. "/media/r3.mp4")
            refused("file:///etc/passwd")
            assert.equal(0, count("media.get"))                      -- never even connected
        end)

        it("allow_http (local tests, benchmarks) lifts only the scheme rule, never the address rule", function()
            local plain = "http://localhost:" .. port .. "/media/r3.mp4"
            local err = refused(plain, { allow_http = true, allow_private = "none" })
            assert.is_truthy(err.message:find("127.0.0.1", 1, true) or err.message:find("::1", 1, true))
            local src
            src, err = open(plain, { allow_http = true })
            assert.is_nil(src)
            assert.equal("http", err.code)            -- plain HTTP to the TLS port: nginx's 400
        end)

        it("the address rule", function()
            for _, a in ipairs({ "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
                                 "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "::1",
                                 "fe80::1", "fc00::1", "fd12::1", "ff02::1", "::ffff:10.0.0.1",
                                 "::ffff:127.0.0.1", "64:ff9b::a00:1", "2002:a00:1::1" }) do
                assert.is_true(core.relay_address_refused(a), a)
            end
            for _, a in ipairs({ "8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8" }) do
                assert.is_false(core.relay_address_refused(a), a)
            end
        end)

        -- The sandbox listens on 127.0.0.1 only, so the first hop is allowed
        -- by address (allow_private = { "127.0.0.1" }) and each redirect
        -- leads somewhere that list does not allow.
        it("a redirect to http, [::1], another loopback address, 10.x, 169.254.169.254, file:", function()
            local first = url("r3.mp4", "127.0.0.1")
            for _, target in ipairs({ "http://127.0.0.1:" .. port .. "/media/r3.mp4",
                                      "https://[::1]:" .. port .. "/media/r3.mp4",
                                      "https://127.0.0.2:" .. port .. "/media/r3.mp4",
                                      "https://10.1.2.3/media/r3.mp4",
                                      "https://169.254.169.254/latest/meta-data/",
                                      "file:///etc/passwd" }) do
                sb:admin("POST", "/faults", { endpoint = "media.get", status = 302,
                                              headers = { Location = target } })
                local err = refused(first, { allow_private = { "127.0.0.1" } })
                if target:find("^https://") then assert.matches("redirect", err.message) end
                sb:admin("DELETE", "/faults")
            end
            -- and the same redirect to an allowed address is followed
            sb:admin("POST", "/faults", { endpoint = "media.get", status = 302, headers = { Location = first } })
            local src = assert(open(first, { allow_private = { "127.0.0.1" } }))
            assert.equal(3000000, src.size)
            relay.close(src)
        end)

        it("more than 3 redirects", function()
            local first = url("r3.mp4", "127.0.0.1")
            sb:admin("POST", "/faults", { endpoint = "media.get", status = 302, count = 4,
                                          headers = { Location = first } })
            assert.matches("more than 3", refused(first, { allow_private = { "127.0.0.1" } }).message)
        end)

        it("a redirect that appears after open (at a chunk's GET): the upload never starts", function()
            local first = url("r3.mp4", "127.0.0.1")
            local src = assert(open(first, { allow_private = { "127.0.0.1" } }))
            local _, upload_url, plan = init(src.size)
            sb:admin("POST", "/faults", { endpoint = "media.get", status = 302, count = -1,
                                          headers = { Location = "https://169.254.169.254/x" } })
            local done, err = relay.upload(nil, src, upload_url, plan)
            assert.is_nil(done)
            assert.equal("relay_refused", err.code)
            assert.equal("download", err.side)
            assert.equal(0, count("upload.put"))
            relay.close(src)
        end)
    end)

    describe("retries a chunk from its start, never a second init", function()
        it("the download closed mid-chunk (media.get close_after_bytes)", function()
            local src = assert(open(url("r64.mp4")))
            local publish_id, upload_url, plan = init(src.size)
            sb:admin("POST", "/faults", { endpoint = "media.get", close_after_bytes = 5000000 })
            assert.equal(src.size, relay.upload(nil, src, upload_url, plan))
            relay.close(src)
            assert.equal(sandbox.sha256_file(media_dir .. "/r64.mp4"), arrived(publish_id).sha256)
            assert.equal(1, count("video.init"))
            assert.equal(plan.count + 1, count("upload.put"))
        end)

        it("the upload answered 503 (upload.put), and closed mid-chunk", function()
            local src = assert(open(url("r64.mp4")))
            local publish_id, upload_url, plan = init(src.size)
            sb:admin("POST", "/faults", { endpoint = "upload.put", chunk = 2, status = 503,
                                          json = { error = { code = "internal_error" } } })
            sb:admin("POST", "/faults", { endpoint = "upload.put", chunk = 1, close_after_bytes = 1000000 })
            assert.equal(src.size, relay.upload(nil, src, upload_url, plan))
            relay.close(src)
            assert.equal(sandbox.sha256_file(media_dir .. "/r64.mp4"), arrived(publish_id).sha256)
            assert.equal(1, count("video.init"))
        end)

        it("without ranges: the spool download closed midway is done again", function()
            sb:configure({ media = { ranges = false } })
            local src = assert(open(url("r64.mp4")))
            local publish_id, upload_url, plan = init(src.size)
            sb:admin("POST", "/faults", { endpoint = "media.get", close_after_bytes = 10000000 })
            assert.equal(src.size, relay.upload(nil, src, upload_url, plan))
            relay.close(src)
            assert.equal(sandbox.sha256_file(media_dir .. "/r64.mp4"), arrived(publish_id).sha256)
        end)

        it("a source that keeps failing ends with its error after the retries", function()
            local src = assert(open(url("r3.mp4")))
            local _, upload_url, plan = init(src.size)
            sb:admin("POST", "/faults", { endpoint = "media.get", status = 503, count = -1, body = "down" })
            local done, err = relay.upload(nil, src, upload_url, plan, { retries = 1 })
            assert.is_nil(done)
            assert.equal("http", err.code)
            assert.matches("HTTP 503", err.message)
            assert.equal(0, count("upload.put"))
            relay.close(src)
        end)

        it("a chunk answered with another range (or another total) is retried; no PUT starts for it", function()
            local src = assert(open(url("r3.mp4")))
            local publish_id, upload_url, plan = init(src.size)
            sb:admin("POST", "/faults", { endpoint = "media.get", status = 206, body = "0123456789",
                                          headers = { ["Content-Range"] = "bytes 0-9/3000000" } })
            sb:admin("POST", "/faults", { endpoint = "media.get", status = 206, body = "0123456789",
                                          headers = { ["Content-Range"] = "bytes 0-2999999/4000000" } })
            local errs = {}
            assert.equal(src.size, relay.upload(nil, src, upload_url, plan, {
                on_chunk = function(index, res, err, chunk)
                    if err then errs[#errs + 1] = err.message end
                    return relay.classify(res, err, chunk, plan.size, index == plan.count - 1)
                end }))
            assert.equal(2, #errs)
            assert.matches("bytes 0%-9 where 0%-2999999", errs[1])
            assert.matches("changed", errs[2])
            assert.equal(1, count("upload.put"))
            assert.equal(sandbox.sha256_file(media_dir .. "/r3.mp4"), arrived(publish_id).sha256)
            relay.close(src)
        end)

        it("a source that stops honouring ranges at a chunk, and a chunk over its timeout, are retried", function()
            local src = assert(open(url("r3.mp4")))
            local publish_id, upload_url, plan = init(src.size)
            sb:admin("POST", "/faults", { endpoint = "media.get", status = 200, body = string.rep("x", 100) })
            sb:admin("POST", "/faults", { endpoint = "media.get", rate_bps = 100000 })
            local errs = {}
            assert.equal(src.size, relay.upload(nil, src, upload_url, plan, {
                chunk_timeout_ms = 1000,
                on_chunk = function(index, res, err, chunk)
                    if err then errs[#errs + 1] = err.code .. ": " .. err.message end
                    return relay.classify(res, err, chunk, plan.size, index == plan.count - 1)
                end }))
            assert.equal(2, #errs, table.concat(errs, "\n"))
            assert.matches("^http: .*stopped honouring range requests", errs[1])
            assert.matches("^timeout: ", errs[2])
            assert.equal(sandbox.sha256_file(media_dir .. "/r3.mp4"), arrived(publish_id).sha256)
            assert.equal(1, count("video.init"))
            relay.close(src)
        end)

        it("the relay cannot be used or closed from its own progress callback", function()
            local src = assert(open(url("r3.mp4")))
            local _, upload_url = init(src.size)
            assert.has_error(function()
                relay.put_chunk(nil, src, upload_url, { offset = 0, length = src.size, total = src.size,
                                                        progress = function() src.engine:close() end })
            end)
            relay.close(src)
        end)

        it("a chunk stored but answered 503 (when = after): the retry's 416 resyncs to the next chunk", function()
            local src = assert(open(url("r64.mp4")))
            local publish_id, upload_url, plan = init(src.size)
            sb:admin("POST", "/faults", { endpoint = "upload.put", chunk = 1, when = "after", status = 503,
                                          json = { error = { code = "internal_error" } } })
            local statuses = {}
            assert.equal(src.size, relay.upload(nil, src, upload_url, plan, {
                on_chunk = function(index, res, err, chunk)
                    statuses[#statuses + 1] = res and res.status or err.code
                    return relay.classify(res, err, chunk, plan.size, index == plan.count - 1)
                end }))
            assert.same({ 503, 416, 201 }, statuses)
            assert.equal(sandbox.sha256_file(media_dir .. "/r64.mp4"), arrived(publish_id).sha256)
            relay.close(src)
        end)

        it("resumes from opts.next (a journal's position)", function()
            local src = assert(open(url("r64.mp4")))
            local publish_id, upload_url, plan = init(src.size)
            local offset, length = core.chunk_range(plan.size, plan.chunk_size, plan.count, 0)
            local res = assert(relay.put_chunk(nil, src, upload_url, { offset = offset, length = length,
                                                                       total = plan.size }))
            assert.equal(206, res.status)
            assert.equal(src.size, relay.upload(nil, src, upload_url, plan, { next = 1 }))
            assert.equal(plan.count, count("upload.put"))
            assert.equal(sandbox.sha256_file(media_dir .. "/r64.mp4"), arrived(publish_id).sha256)
            relay.close(src)
        end)

        it("on_chunk sees every answer and decides", function()
            local src = assert(open(url("r3.mp4")))
            local _, upload_url, plan = init(src.size)
            local calls = {}
            assert.equal(src.size, relay.upload(nil, src, upload_url, plan, {
                on_chunk = function(index, res, err, chunk)
                    calls[#calls + 1] = { index, res and res.status }
                    return relay.classify(res, err, chunk, plan.size, index == plan.count - 1)
                end }))
            assert.same({ { 0, 201 } }, calls)
            relay.close(src)
        end)
    end)
end)
