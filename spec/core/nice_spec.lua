-- upload_nice: an upload's thread yields the CPU while it sends (on by
-- default only inside nginx worker threads; spec/openresty covers that).
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

-- The calling thread's nice value (field 19 of /proc/thread-self/stat).
local function thread_nice()
    local f = assert(io.open("/proc/thread-self/stat", "r"))
    local stat = f:read("*a")
    f:close()
    local after = stat:match("%) (.*)$")
    local fields = {}
    for x in after:gmatch("%S+") do fields[#fields + 1] = x end
    return tonumber(fields[17])   -- field 19 overall; 3 is the first after ')'
end

describe("upload_nice", function()
    local sb, dir

    sandbox.use(function(s, d) sb, dir = s, d end, { tmpdir = true })

    local function nice_during_upload(overrides)
        local conn = tt.connect(sb, overrides)
        tt.account(conn)
        local seen = {}
        assert(tiktok.post({ connection = conn, video_file = media.mp4(dir, { seconds = 2 }),
                             privacy = "SELF_ONLY", wait = false,
                             on_progress = function(ev)
                                 if ev.stage == "upload" then seen[#seen + 1] = thread_nice() end
                             end }))
        return seen, thread_nice()
    end

    it("is off outside nginx by default", function()
        local before = thread_nice()
        local seen, after = nice_during_upload()
        assert.is_true(#seen > 0)
        for _, n in ipairs(seen) do assert.equal(before, n) end
        assert.equal(before, after)
    end)

    it("lowers the thread's priority while the chunk is sent when asked", function()
        local before = thread_nice()
        local seen = nice_during_upload({ upload_nice = 5 })
        assert.is_true(#seen > 0)
        for _, n in ipairs(seen) do assert.equal(math.min(before + 5, 19), n) end
    end)

    it("lowers it while a video URL is relayed too, and restores it after", function()
        local before = thread_nice()
        os.execute("cp '" .. media.mp4(dir, { seconds = 2 }) .. "' '" .. sb.env.TIKTOK_MEDIA_DIR .. "/nice.mp4'")
        local conn = tt.connect(sb, { upload_nice = 5, relay_allow_private = true,
                                      relay_ca_file = sb.env.TIKTOK_CA_FILE })
        tt.account(conn)
        local seen = {}
        local res = assert(tiktok.post({ connection = conn, video_url = sb.env.TIKTOK_MEDIA_BASE .. "nice.mp4",
                                         privacy = "SELF_ONLY", wait = false, relay = "always",
                                         on_progress = function(ev)
                                             if ev.stage == "upload" then seen[#seen + 1] = thread_nice() end
                                         end }))
        assert.equal("FILE_UPLOAD", res.source)
        assert.is_true(#seen > 0)
        for _, n in ipairs(seen) do assert.equal(math.min(before + 5, 19), n) end
        assert.equal(before, thread_nice())
    end)

    it("refuses a value outside 0-19", function()
        local e = sb.env
        local conn, err = tiktok.connect({ client_key = e.TIKTOK_CLIENT_KEY, client_secret = e.TIKTOK_CLIENT_SECRET,
                                           redirect_uri = e.TIKTOK_REDIRECT_URI, upload_nice = 25 })
        assert.is_nil(conn)
        assert.truthy(err.message:find("upload_nice", 1, true))
    end)
end)
