-- tiktok.post{ video_url, relay = "auto" | "always" | "never" } against the
-- sandbox: a URL TikTok will not pull (url_ownership_unverified) is streamed
-- up as a FILE_UPLOAD; nothing is created by the refused init, and after
-- the relay's init nothing inits again. (The engine itself, its safety
-- checks and sizes: spec/core/relay_spec.lua.)
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

describe("tiktok.post with relay", function()
    local sb, dir, clip, url

    sandbox.use(function(s, d)
        sb, dir = s, d
        clip = media.mp4(dir, { seconds = 2 })
    end, { tmpdir = true, config = { delays = { processing_ms = 30 } } })

    before_each(function()
        os.execute("cp '" .. clip .. "' '" .. sb.env.TIKTOK_MEDIA_DIR .. "/relay.mp4'")
        url = sb.env.TIKTOK_MEDIA_BASE .. "relay.mp4"
    end)

    local function connect(extra)
        local o = { relay_allow_private = true, relay_ca_file = sb.env.TIKTOK_CA_FILE }
        for k, v in pairs(extra or {}) do o[k] = v end
        local conn = tt.connect(sb, o)
        tt.account(conn)
        return conn
    end

    local function unverify()
        sb:admin("PATCH", "/apps/default", { verified_prefixes = {}, verified_domains = {} })
    end

    local function inits() return tt.count(sb, "video.init") end

    it("auto: TikTok refuses the pull, the library relays the URL into a file upload", function()
        unverify()
        local conn = connect()
        local res = assert(tiktok.post({ connection = conn, video_url = url, privacy = "SELF_ONLY" }))
        assert.equal("FILE_UPLOAD", res.source)
        assert.equal("PUBLISH_COMPLETE", res.status)
        assert.equal(2, inits())                 -- the refused pull, then the upload's
        local posts = sb:posts()
        assert.equal(1, #posts)                  -- the refused init created nothing
        assert.equal(media.sha256(clip), posts[1].sha256)
    end)

    it("auto with a verified URL: TikTok pulls it", function()
        local conn = connect()
        local res = assert(tiktok.post({ connection = conn, video_url = url, privacy = "SELF_ONLY" }))
        assert.equal("PULL_FROM_URL", res.source)
        assert.equal(1, inits())
    end)

    it("never keeps TikTok's refusal; always relays without asking TikTok to pull", function()
        unverify()
        local conn = connect()
        local res, err = tiktok.post({ connection = conn, video_url = url, privacy = "SELF_ONLY", relay = "never" })
        assert.is_nil(res)
        assert.equal("url_ownership_unverified", err.code)
        res = assert(tiktok.post({ connection = conn, video_url = url, privacy = "SELF_ONLY", relay = "always" }))
        assert.equal("FILE_UPLOAD", res.source)
        assert.equal(2, inits())                 -- never's refusal and always's upload
    end)

    it("a URL outside the locally known verified prefixes is relayed at once", function()
        local conn = connect({ verified_prefixes = { "https://cdn.example.com/videos/" } })
        local res = assert(tiktok.post({ connection = conn, video_url = url, privacy = "SELF_ONLY" }))
        assert.equal("FILE_UPLOAD", res.source)
        assert.equal(1, inits())
    end)

    it("refuses a loopback source unless relay_allow_private, before anything is uploaded", function()
        unverify()
        local conn = connect({ relay_allow_private = false })
        local res, err = tiktok.post({ connection = conn, video_url = url, privacy = "SELF_ONLY" })
        assert.is_nil(res)
        assert.equal("relay_refused", err.code)
        assert.equal(0, tt.count(sb, "upload.put"))
        assert.equal(0, #sb:posts())
    end)

    it("checks the relayed video's duration against the creator's limit before its init", function()
        unverify()
        local conn = connect()
        sb:admin("PATCH", "/users/" .. sb.env.TIKTOK_SANDBOX_USER, { max_video_post_duration_sec = 1 })
        local res, err = tiktok.post({ connection = conn, video_url = url, privacy = "SELF_ONLY" })
        assert.is_nil(res)
        assert.equal("invalid_settings", err.code)
        assert.truthy(err.problems[1]:find("at most 1 s", 1, true), err.problems[1])
        assert.equal(1, inits())                 -- only the refused pull
        assert.equal(0, #sb:posts())
    end)

    it("relays several chunks with and without range support, retrying a chunk without a second init", function()
        unverify()
        local big = media.mp4(dir, { seconds = 2, size = 12000001 })
        os.execute("cp '" .. big .. "' '" .. sb.env.TIKTOK_MEDIA_DIR .. "/big.mp4'")
        local conn = connect({ chunk_size = 6000000, relay_spool_dir = dir })
        for _, ranges in ipairs({ true, false }) do
            sb:configure({ media = { ranges = ranges } })
            sb:admin("POST", "/faults", { endpoint = "upload.put", chunk = 2, status = 503 })
            local before = inits()
            local res = assert(tiktok.post({ connection = conn, video_url = sb.env.TIKTOK_MEDIA_BASE .. "big.mp4",
                                             privacy = "SELF_ONLY" }))
            assert.equal("FILE_UPLOAD", res.source)
            assert.equal(before + 2, inits())
            assert.equal(media.sha256(big), sb:post(res.publish_id).sha256)
        end
    end)

    it("resumes a relayed upload from the journal (detach, then tiktok.resume)", function()
        unverify()
        local conn = connect({ store = tiktok.store.memory() })
        local res = assert(tiktok.post({ connection = conn, video_url = url, privacy = "SELF_ONLY", detach = true }))
        assert.equal("FILE_UPLOAD", res.source)
        local done = assert(tiktok.resume({ connection = conn, publish_id = res.publish_id }))
        assert.equal("PUBLISH_COMPLETE", done.status)
        assert.equal(media.sha256(clip), sb:post(res.publish_id).sha256)
    end)

    it("relay is a video URL option: a problem with files and photos", function()
        local conn = connect()
        local res, err = tiktok.post({ connection = conn, video_file = clip, privacy = "SELF_ONLY", relay = "always" })
        assert.is_nil(res)
        assert.equal("invalid_settings", err.code)
        res, err = tiktok.post({ connection = conn, video_url = url, privacy = "SELF_ONLY", relay = "sometimes" })
        assert.is_nil(res)
        assert.truthy(err.problems[1]:find("relay must be", 1, true))
    end)
end)
