-- The C functions of tiktok.core: planner, Content-Range, encoders,
-- SHA-256, the big-integer guard, the container probe, file primitives, and
-- the one failure shape (nil, kind, message[, sent]) of every function.
local core = require "tiktok.core"
local media = require "helpers.media"

describe("tiktok.core.plan", function()
    local MiB = 1048576

    it("sends small files whole, with chunk_size equal to the file size", function()
        assert.same({ 3000000, 1 }, { core.plan(3000000) })
        assert.same({ 1, 1 }, { core.plan(1) })
        assert.same({ 5 * MiB - 1, 1 }, { core.plan(5 * MiB - 1) })
    end)

    it("sends exactly 64,000,000 bytes as one chunk and one byte more as two", function()
        assert.same({ 64000000, 1 }, { core.plan(64000000) })
        local c, n = core.plan(64000001)
        assert.same({ 32000000, 2 }, { c, n })
        assert.is_true(core.plan_check(64000001, c, n))
    end)

    it("uses floor(size / chunk) chunks and merges the remainder into the last", function()
        local c, n = core.plan(300000000)
        assert.same({ 64000000, 4 }, { c, n })
        assert.same({ 192000000, 108000000 }, { core.chunk_range(300000000, c, n, 3) })
        assert.same({ 0, 64000000 }, { core.chunk_range(300000000, c, n, 0) })
        -- the docs' worked example with a preferred 10,000,000 chunk
        assert.same({ 10000000, 5 }, { core.plan(50000123, 10000000) })
        assert.same({ 40000000, 10000123 }, { core.chunk_range(50000123, 10000000, 5, 4) })
    end)

    it("plans 4 GB within 1000 chunks and refuses anything larger", function()
        local c, n = core.plan(4294967296)
        assert.is_true(n <= 1000 and c <= 64000000)
        assert.is_true(core.plan_check(4294967296, c, n))
        local ok, kind, err = core.plan(4294967297)
        assert.is_nil(ok)
        assert.equal("invalid", kind)
        assert.matches("4 GB", err)
        assert.same({ nil, "invalid", "the file is empty" }, { core.plan(0) })
    end)

    it("every plan for sizes around the limits passes the checker", function()
        local sizes = { 1, 5 * MiB - 1, 5 * MiB, 5 * MiB + 1, 63999999, 64000000, 64000001,
                        127999999, 128000000, 128000001, 191999999, 10 ^ 9, 2 ^ 31, 4294967296 }
        for _, pref in ipairs({ false, 5 * MiB, 10000000, 64000000 }) do
            for _, s in ipairs(sizes) do
                local c, n = core.plan(s, pref or nil)
                assert(c, "no plan for " .. s)
                assert.is_true(core.plan_check(s, c, n))
                local off, len = core.chunk_range(s, c, n, n - 1)
                assert.equal(s, off + len)
                assert.is_true(len <= 128000000)
            end
        end
    end)

    it("the checker refuses plans TikTok refuses", function()
        assert.is_nil(core.plan_check(70000000, 70000000, 1))      -- one chunk over 64 MB
        assert.is_nil(core.plan_check(50000123, 10000000, 6))      -- ceil instead of floor
        assert.is_nil(core.plan_check(20000000, 4000000, 5))       -- chunk under 5 MiB
        assert.is_nil(core.plan_check(200000000, 65000000, 3))     -- chunk over 64,000,000
        assert.is_nil(core.plan_check(3000000, 1000000, 3))        -- small file not whole
        assert.is_nil(core.plan_check(194000000, 64000000, 2))     -- final chunk over 128,000,000
        assert.has_error(function() core.plan(-1) end)
        assert.has_error(function() core.plan("x") end)
        assert.same({ nil, "invalid", "chunk_size must be between 5,242,880 and 64,000,000 bytes" },
                    { core.plan(100000000, 1000) })
        assert.same({ nil, "invalid", "chunks must be between 5,242,880 and 64,000,000 bytes" },
                    { core.plan_check(3000000, 1000000, 3) })
    end)
end)

describe("tiktok.core.parse_content_range", function()
    it("reads TikTok's progress header and the request form", function()
        assert.same({ first = 0, last = 99, total = 1000 }, core.parse_content_range("bytes 0-99/1000"))
        assert.same({ first = 0, last = 30567099, total = 30567100 },
                    core.parse_content_range("bytes 0-30567099/30567100"))
        assert.same({ first = 5, last = 9 }, core.parse_content_range("bytes=5-9"))
        assert.same({ total = 1000 }, core.parse_content_range("bytes */1000"))
    end)

    it("refuses malformed and out-of-range values", function()
        for _, s in ipairs({ "", "bytes", "bytes 9-5/10", "bytes 0-10/10", "bytes -1-5/10", "bits 0-1/2",
                             "bytes 0-1/2x", "bytes 99999999999999999999-1/2", "bytes 0-/10", "bytes a-b/c" }) do
            assert.same({ nil, "invalid", "malformed Content-Range header" }, { core.parse_content_range(s) }, s)
        end
    end)
end)

describe("the percent codec (tiktok.util, Lua since it left the C core)", function()
    local util = require "tiktok.util"

    it("percent-encodes everything but the unreserved set", function()
        assert.equal("a%20b%2Cc~d.e_f-g%2F%3F%26%3D%25", util.pct_encode("a b,c~d.e_f-g/?&=%"))
        assert.equal("a+b%2B", util.pct_encode("a b+", true))
        assert.equal("%C3%A9%00%FF", util.pct_encode("\195\169\0\255"))
        assert.is_nil(core.pct_encode)
    end)

    it("decodes and refuses malformed escapes", function()
        assert.equal("a b+c", util.pct_decode("a%20b+c"))
        assert.equal("a b c+", util.pct_decode("a%20b+c%2b", true))
        for _, bad in ipairs({ "%zz", "abc%2", "%", "%%41", "a%g1", "%4" }) do
            assert.is_nil(util.pct_decode(bad), bad)
        end
        assert.equal("%A", util.pct_decode("%25A"))
    end)

    it("round-trips every byte value, and form/parse_query keep their behaviour", function()
        local all = {}
        for i = 0, 255 do all[#all + 1] = string.char(i) end
        all = table.concat(all)
        assert.equal(all, util.pct_decode(util.pct_encode(all)))
        assert.equal(all, util.pct_decode(util.pct_encode(all, true), true))
        assert.equal("a=1%202&b%26c=%3D&e=", util.form({ { "a", "1 2" }, { "b&c", "=" }, { "d", nil }, { "e", "" } }))
        assert.same({ a = "1 2", ["b&c"] = "=", e = "" }, util.parse_query("a=1+2&b%26c=%3D&bad=%zz&e"))
    end)
end)

describe("tiktok.core encoders", function()

    it("computes SHA-256 (TikTok's hex PKCE challenge)", function()
        assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", core.sha256_hex(""))
        assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
                     core.sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
        assert.equal("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
                     core.sha256_hex(("a"):rep(1000000)))
    end)

    it("computes HMAC-SHA256 (RFC 4231 vectors)", function()
        assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                     core.hmac_sha256_hex("Jefe", "what do ya want for nothing?"))
        -- a key longer than the block size is hashed first (test case 6)
        assert.equal("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                     core.hmac_sha256_hex(("\170"):rep(131), "Test Using Larger Than Block-Size Key - Hash Key First"))
    end)

    it("draws random hex from the OS and compares in constant time", function()
        local a, b = core.random_hex(16), core.random_hex(16)
        assert.matches("^%x+$", a)
        assert.equal(32, #a)
        assert.not_equal(a, b)
        assert.is_true(core.consteq("abc", "abc"))
        assert.is_false(core.consteq("abc", "abd"))
        assert.is_false(core.consteq("abc", "abcd"))
        assert.has_error(function() core.random_hex(0) end)
    end)
end)

describe("tiktok.core.json_quote_bigints", function()
    it("quotes integers over 15 digits and leaves everything else alone", function()
        assert.equal('{"ids":["7301234567890123456",1],"s":"123456789012345678","f":1.2345678901234567e5}',
                     core.json_quote_bigints('{"ids":[7301234567890123456,1],"s":"123456789012345678",'
                                             .. '"f":1.2345678901234567e5}'))
        assert.equal('["-9223372036854775808",123456789012345]',
                     core.json_quote_bigints('[-9223372036854775808,123456789012345]'))
        assert.equal('{"a":"x\\"99999999999999999"}', core.json_quote_bigints('{"a":"x\\"99999999999999999"}'))
    end)

    it("refuses an unterminated string", function()
        assert.same({ nil, "invalid", "malformed JSON text" }, { core.json_quote_bigints('{"a":"abc') })
        assert.is_nil(core.json_quote_bigints('{"a":-}'))
    end)
end)

describe("tiktok.core.probe", function()
    local dir
    setup(function() dir = media.tmpdir() end)
    teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

    it("reads container and duration from a real MP4 and MOV", function()
        local m = assert(core.probe(media.mp4(dir, { seconds = 2 })))
        assert.equal("mp4", m.container)
        assert.equal("video/mp4", m.content_type)
        assert.is_true(m.duration_ms >= 1900 and m.duration_ms <= 2100, tostring(m.duration_ms))
        local q = assert(core.probe(media.mp4(dir, { seconds = 2, container = "mov" })))
        assert.equal("video/quicktime", q.content_type)
    end)

    it("reads a padded 300 MB sparse file without reading its data", function()
        local m = assert(core.probe(media.mp4(dir, { seconds = 2, size = 300000000 })))
        assert.equal(300000000, m.size)
        assert.is_truthy(m.duration_ms)
    end)

    it("refuses non-videos, directories and missing files", function()
        local ok, kind, err = core.probe(media.junk(dir, 100))
        assert.is_nil(ok)
        assert.equal("unsupported_media", kind)
        assert.matches("not an MP4", err)
        assert.equal("EISDIR", select(2, core.probe(dir)))
        assert.equal("ENOENT", select(2, core.probe(dir .. "/missing.mp4")))
        assert.equal("unsupported_media", select(2, core.probe(media.junk(dir, 3))))
    end)
end)

describe("tiktok.core file primitives", function()
    local dir
    setup(function() dir = media.tmpdir() end)
    teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

    it("replaces a file atomically with mode 0600", function()
        local p = dir .. "/store.json"
        assert.is_true(core.write_file_atomic(p, "one"))
        assert.is_true(core.write_file_atomic(p, "two"))
        assert.equal("two", core.read_file(p))
        assert.equal(tonumber("600", 8), core.stat(p).mode)
        local none, kind, msg = core.read_file(dir .. "/nope")
        assert.is_nil(none)
        assert.equal("ENOENT", kind)
        assert.matches("No such file", msg)
        assert.same({ nil, "EISDIR", "cannot read the file: Is a directory" }, { core.read_file(dir) })
        assert.equal("EFBIG", select(2, core.read_file(p, 2)))
        assert.equal("ENOENT", select(2, core.write_file_atomic(dir .. "/no/such/dir/x", "")))
        assert.equal("ENOENT", select(2, core.stat(dir .. "/nope")))
    end)

    it("never follows a symbolic link to a store file or lock file", function()
        local target = dir .. "/target"
        assert.is_true(core.write_file_atomic(target, "secret"))
        os.execute("ln -s '" .. target .. "' '" .. dir .. "/link'")
        local ok, kind, msg = core.read_file(dir .. "/link")
        assert.is_nil(ok)
        assert.equal("ELOOP", kind)
        assert.matches("symbolic link", msg)
        assert.equal("ELOOP", select(2, core.write_file_atomic(dir .. "/link", "x")))
        assert.equal("ELOOP", select(2, core.lock(dir .. "/link", 10)))
        assert.equal("secret", core.read_file(target))
    end)

    it("mkdir_p makes every missing folder with the mode and reports what is in the way", function()
        assert.is_true(core.mkdir_p(dir .. "/m/n//o/", tonumber("700", 8)))
        assert.is_true(core.mkdir_p(dir .. "/m/n/o", tonumber("700", 8)))   -- exists: fine
        assert.equal(tonumber("700", 8), core.stat(dir .. "/m/n").mode)
        assert.is_true(core.write_file_atomic(dir .. "/m/f", ""))
        local ok, kind, msg = core.mkdir_p(dir .. "/m/f/g", tonumber("700", 8))
        assert.is_nil(ok)
        assert.equal("ENOTDIR", kind)
        assert.matches(dir .. "/m/f", msg, 1, true)
        assert.has_error(function() core.mkdir_p(dir .. "/x") end)
    end)

    it("check_private_dir accepts only this user's folder that no one else can write to", function()
        local d = dir .. "/private"
        assert.is_true(core.mkdir_p(d, tonumber("700", 8)))
        assert.is_true(core.check_private_dir(d))
        os.execute("chmod 0755 '" .. d .. "'")
        assert.is_true(core.check_private_dir(d))                 -- others may read the folder
        os.execute("chmod 0775 '" .. d .. "'")
        local ok, kind, msg = core.check_private_dir(d)
        assert.same({ nil, "unsafe" }, { ok, kind })
        assert.equal("the store folder " .. d .. " can be written by other users (mode 0775); run `chmod 700 "
                     .. d .. "`", msg)
        os.execute("chmod 1777 '" .. d .. "'")                    -- sticky like /tmp: still refused
        assert.equal("unsafe", select(2, core.check_private_dir(d)))
        assert.equal("ENOENT", select(2, core.check_private_dir(dir .. "/none")))
        assert.equal("ENOTDIR", select(2, core.check_private_dir(dir .. "/target")))
        os.execute("chmod 0700 '" .. d .. "'")
        if core.check_private_dir("/") then                      -- root: give it away
            os.execute("chown 65534 '" .. d .. "'")
            ok, kind, msg = core.check_private_dir(d)
        else
            ok, kind, msg = core.check_private_dir("/")
        end
        assert.same({ nil, "unsafe" }, { ok, kind })
        assert.matches("not to this user", msg)
    end)

    it("locks exclusively and times out with 'busy'", function()
        local p = dir .. "/lock"
        local a = assert(core.lock(p, 100))
        local b, kind, msg = core.lock(p, 50)
        assert.is_nil(b)
        assert.equal("busy", kind)
        assert.equal("another process held the store lock for more than 50 ms", msg)
        assert.has_error(function() core.lock(p) end)   -- the timeout lives in Lua: required
        a:unlock()
        a:unlock()   -- idempotent
        local c = assert(core.lock(p, 100))
        c:unlock()
    end)
end)

describe("tiktok.core failures", function()
    local function closed_port()
        -- a port nothing listens on: bind, read the port, close
        local p = io.popen("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); "
                           .. "print(s.getsockname()[1]); s.close()'")
        local port = p:read("*l")
        p:close()
        return port
    end
    local TIMEOUTS = { connect_timeout_ms = 2000, timeout_ms = 2000, low_speed_ms = 0 }

    it("a session needs its three durations from Lua (no defaults hidden in C)", function()
        for _, k in ipairs({ "connect_timeout_ms", "timeout_ms", "low_speed_ms" }) do
            local o = { connect_timeout_ms = 1, timeout_ms = 1, low_speed_ms = 1 }
            o[k] = nil
            assert.has_error(function() core.session(o) end, "option '" .. k .. "' is required")
        end
        local s = core.session(TIMEOUTS)
        assert.has_error(function()
            s:upload({ url = "http://127.0.0.1:1/", path = "/dev/null", offset = 0, length = 1, total = 1,
                       content_type = "video/mp4" })
        end, "option 'timeout_ms' is required")
        s:close()
    end)

    it("a transfer fails with nil, kind, message, sent; sent is false when nothing left", function()
        local s = core.session(TIMEOUTS)
        local res, kind, msg, sent = s:request({ url = "http://127.0.0.1:" .. closed_port() .. "/" })
        assert.same({ nil, "network", false }, { res, kind, sent })
        assert.is_string(msg)
        assert.same({ nil, "invalid", "the URL contains a line break or NUL byte", false },
                    { s:request({ url = "http://127.0.0.1/\r\nX: 1" }) })
        res, kind, msg, sent = s:upload({ url = "http://127.0.0.1:1/", path = "/nonexistent/clip.mp4", offset = 0,
                                          length = 1, total = 1, content_type = "video/mp4", timeout_ms = 0 })
        assert.same({ nil, "file", false }, { res, kind, sent })
        assert.matches("cannot open the file", msg)
        s:close()
    end)

    it("everything else fails with exactly nil, kind, message", function()
        local n = select("#", core.stat("/nonexistent/x"))
        assert.equal(3, n)
        assert.equal(3, select("#", core.plan(0)))
        assert.equal(3, select("#", core.parse_content_range("x")))
        assert.is_nil(core.getpid)   -- dead code, removed
    end)
end)

describe("tiktok.errors.from_core", function()
    local errors = require "tiktok.errors"

    it("maps every transfer kind to its code and keeps sent as a boolean", function()
        local cases = { timeout = "timeout", tls = "tls", network = "network", aborted = "network",
                        too_big = "bad_response", invalid = "invalid_argument", file = "file" }
        for kind, code in pairs(cases) do
            local err = errors.from_core("chunk upload", kind, "libcurl said so", true)
            assert.equal(code, err.code, kind)
            assert.is_true(err.sent, kind)
            assert.is_false(errors.from_core("init", kind, "m", false).sent, kind)
        end
        local t = errors.from_core("token exchange", "timeout", "Operation timed out", false)
        assert.equal(errors.codes.timeout.message, t.message)
        assert.equal("token exchange: Operation timed out", t.detail)
        assert.is_true(t.retryable)
        assert.equal("bad_response", errors.from_core("init", "too_big", "the response body is larger").code)
    end)

    it("file kinds become 'file' for video files and 'store' for the store, with a hint", function()
        local e = errors.from_core("video_file a.mp4", "ENOENT", "cannot stat the file: No such file or directory")
        assert.equal("file", e.code)
        assert.equal("video_file a.mp4: cannot stat the file: No such file or directory; check the path", e.message)
        assert.is_nil(e.sent)
        local s = errors.from_core("cannot write the account store /x", "EACCES", "cannot replace the store: "
                                   .. "Permission denied", nil, nil, "store")
        assert.equal("store", s.code)
        assert.matches("owner and permissions", s.message)
        assert.equal("busy", errors.from_core("lock", "busy", "held", nil, nil, "store").code)
        assert.equal("store", errors.from_core("store", "unsafe", "group-writable", nil, nil, "store").code)
        assert.equal("unsupported_media", errors.from_core("video_file a", "unsupported_media", "not an MP4").code)
        assert.equal("relay_refused", errors.from_core("video URL", "refused", "a private address").code)
        assert.equal("http", errors.from_core("video URL", "http", "HTTP 404").code)
        assert.has_error(function() errors.from_core("x", "ENOENT", "m", nil, nil, "disk") end)
    end)

    it("never keeps a secret or an upload URL's query", function()
        local secret = "act.SECRETTOKEN123"
        local err = errors.from_core("token refresh", "network", "failed for https://up.example/v?sig=abc "
                                     .. secret .. " rft.other", true, { secret })
        assert.not_matches("SECRETTOKEN", err.detail)
        assert.not_matches("sig=abc", err.detail)
        assert.not_matches("rft%.other", err.detail)
        local f = errors.from_core("chunk upload", "invalid", "bad " .. secret, false, { secret })
        assert.not_matches("SECRETTOKEN", f.message)
    end)
end)

describe("session:upload{ nice, buffer_size }", function()
    local sandbox = require "helpers.sandbox"
    local tt = require "helpers.tt"
    local tiktok = require "tiktok"
    local sb, dir, conn, open_id

    sandbox.use(function(s, d) sb, dir = s, d end, { tmpdir = true })
    before_each(function() conn = nil end)   -- a new account per test: init is rate limited per token

    -- A fresh upload URL from a real init (detach: nothing sent yet).
    local function job_of(size)
        if not conn then
            conn = tt.connect(sb)
            open_id = tt.account(conn).open_id
        end
        local clip = media.mp4(dir, { seconds = 2, size = size })
        local res = assert(tiktok.post({ connection = conn, account = open_id, video_file = clip,
                                         privacy = "SELF_ONLY", detach = true }))
        return assert(conn.store:get_upload(res.publish_id))
    end

    local function session()
        return core.session({ ca_file = sb.env.TIKTOK_CA_FILE, connect_timeout_ms = 5000, timeout_ms = 60000,
                              low_speed_ms = 0 })
    end

    local function put(s, job, extra)
        local o = { url = job.upload_url, path = job.path, offset = 0, length = job.size, total = job.size,
                    content_type = job.content_type, timeout_ms = 0 }
        for k, v in pairs(extra) do o[k] = v end
        return s:upload(o)
    end

    -- This thread's nice value: field 19 of /proc/thread-self/stat.
    local function thread_nice()
        local f = assert(io.open("/proc/thread-self/stat"))
        local stat = f:read("*a")
        f:close()
        local fields = {}
        for w in stat:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = w end
        return tonumber(fields[17])
    end

    it("lowers this thread's priority by nice during the PUT only", function()
        local s, before, seen = session(), thread_nice(), {}
        local res = assert(put(s, job_of(3000000), { nice = 7, progress = function()
            seen[#seen + 1] = thread_nice()
        end }))
        assert.equal(201, res.status)
        assert.is_true(#seen >= 1)
        for _, n in ipairs(seen) do assert.equal(math.min(19, before + 7), n) end
        assert.equal(before, thread_nice())
        -- nice = 0 (the default) leaves it alone
        seen = {}
        assert(put(s, job_of(3000000), { progress = function() seen[#seen + 1] = thread_nice() end }))
        for _, n in ipairs(seen) do assert.equal(before, n) end
        s:close()
    end)

    it("restores the priority when the upload fails, is cancelled or its callback raises", function()
        local s, before = session(), thread_nice()
        local job = job_of(3000000)
        assert.same({ nil, "aborted", "the progress callback cancelled the upload", true },
                    { put(s, job, { nice = 5, progress = function() return false end }) })
        assert.equal(before, thread_nice())
        assert.has_error(function() put(s, job_of(3000000), { nice = 5, progress = function() error("boom") end }) end,
                         "boom")
        assert.equal(before, thread_nice())
        local dead = { upload_url = "http://127.0.0.1:1/", path = job.path, size = 10, content_type = "video/mp4" }
        assert.equal("network", select(2, put(s, dead, { nice = 5 })))
        assert.equal(before, thread_nice())
        assert.has_error(function() put(s, dead, { nice = 20 }) end)
        s:close()
    end)

    it("an unprivileged thread that cannot raise its priority back stays at base + nice, without drifting", function()
        -- RLIMIT_NICE is 0 for nobody: lowering works, raising back fails.
        local script = dir .. "/unpriv.lua"
        sandbox.write_file(script, [[
local core = require "tiktok.core"
local function nice() local f = io.open("/proc/thread-self/stat") local s = f:read("*a") f:close()
  local t = {} for w in s:match("%) (.*)$"):gmatch("%S+") do t[#t + 1] = w end return t[17] end
local s = core.session({ connect_timeout_ms = 1000, timeout_ms = 1000, low_speed_ms = 0 })
local out = { nice() }
for _ = 1, 3 do
  s:upload({ url = "http://127.0.0.1:1/", path = "/dev/zero", offset = 0, length = 1, total = 1,
             content_type = "video/mp4", timeout_ms = 0, nice = 4 })
  out[#out + 1] = nice()
end
io.write(table.concat(out, " "))
]])
        -- the build this process runs (5.4, LuaJIT or ASan), copied next to the
        -- script: nobody may not be able to read the tree (a mktemp -d checkout)
        local so = package.searchpath("tiktok.core", package.cpath)
        assert(os.execute(("mkdir -p '%s/lib/tiktok' && cp '%s' '%s/lib/tiktok/core.so' && chmod -R a+rX '%s'")
            :format(dir, so, dir, dir)))
        os.execute("chmod 0755 '" .. dir .. "'; chmod 0644 '" .. script .. "'")
        local cpath = dir .. "/lib/?.so"
        -- and what the child preloads from the build (ASan's preload.so), copied the same way
        local prefix = (os.getenv("TIKTOK_CHILD_PREFIX") or ""):gsub("[^%s:=]+/build/[^%s:]+%.so", function(p)
            local to = dir .. "/lib/" .. p:match("[^/]+$")
            assert(os.execute(("cp '%s' '%s' && chmod a+r '%s'"):format(p, to, to)))
            return to
        end)
        -- as root, become nobody; any other user is unprivileged already
        local as = core.check_private_dir("/") and "setpriv --reuid=65534 --regid=65534 --clear-groups" or ""
        local cmd = ("cd / && env LUA_CPATH='%s;;' LUA_CPATH_5_4='%s;;' %s %s %s %s 2>&1"):format(cpath, cpath, as,
                     prefix, jit and "luajit" or "lua5.4", script)
        local p = io.popen(cmd)
        local out = p:read("*a")
        p:close()
        local base = tonumber(out:match("^(%-?%d+)"))
        assert(base, out)
        local want = math.min(19, base + 4)
        assert.equal(("%d %d %d %d"):format(base, want, want, want), out)
    end)

    it("buffer_size sets how much the read callback is asked for at once", function()
        local s = session()
        local small = assert(put(s, job_of(3000000), { buffer_size = 16384 }))
        local large = assert(put(s, job_of(3000000), { buffer_size = 2097152 }))
        assert.equal(201, small.status)
        assert.equal(201, large.status)
        assert.is_true(small.reads >= math.floor(3000000 / 16384), tostring(small.reads))
        assert.is_true(large.reads < small.reads / 8, large.reads .. " vs " .. small.reads)
        local job = job_of(3000000)
        assert.has_error(function() put(s, job, { buffer_size = 1024 }) end)
        assert.has_error(function() put(s, job, { buffer_size = 4 * 1048576 }) end)
        s:close()
    end)
end)
