-- tiktok.post / tiktok.status against the sandbox over HTTPS.
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

local FAST = {
    delays = { processing_ms = 50, moderation_ms = 50 },
    rate_limits = { ["video.init"] = 1000, ["inbox.init"] = 1000, ["content.init"] = 1000,
                    ["creator_info"] = 1000, ["status.fetch"] = 1000 },
}

describe("tiktok.post", function()
    local sb, dir, conn, acc, clip

    sandbox.use(function(s, d)
        sb, dir = s, d
        clip = media.mp4(dir, { seconds = 2 })
    end, { tmpdir = true, config = FAST })
    before_each(function()
        conn = tt.connect(sb)
        acc = tt.account(conn)
    end)

    local function post(extra)
        local o = { connection = conn, privacy = "SELF_ONLY" }
        for k, v in pairs(extra) do o[k] = v end
        return tiktok.post(o)
    end

    local function check_upload(path, size, want_chunks)
        local res = assert(post({ video_file = path }))
        assert.equal("PUBLISH_COMPLETE", res.status)
        local p = sb:post(res.publish_id)
        assert.equal(size, p.bytes_received)
        assert.equal(media.sha256(path), p.sha256)
        assert.equal(want_chunks, p.upload.total_chunk_count)
        assert.equal(1, tt.count(sb, "video.init"))
        return res, p
    end

    it("posts a real MP4 by file, with progress events and a rendered caption", function()
        local events = {}
        local res = assert(post({ video_file = clip, caption = "{{ title }} #launch {{who.name}}",
                                  vars = { title = "Spring drop", who = { name = "@me" } },
                                  on_progress = function(ev) events[#events + 1] = ev end }))
        assert.equal("PUBLISH_COMPLETE", res.status)
        assert.matches("^v_pub_file~", res.publish_id)
        assert.equal("Spring drop #launch @me", res.caption)
        assert.equal(acc.open_id, res.open_id)
        local p = sb:post(res.publish_id)
        assert.equal("Spring drop #launch @me", p.post_info.title)
        assert.equal("SELF_ONLY", p.post_info.privacy_level)
        assert.is_true(p.post_info.disable_duet)
        assert.is_true(p.post_info.disable_comment)
        assert.is_false(p.post_info.brand_content_toggle)
        assert.equal(media.sha256(clip), p.sha256)
        local stages = {}
        for _, ev in ipairs(events) do stages[ev.stage] = (stages[ev.stage] or 0) + 1 end
        assert.is_truthy(stages.creator_info and stages.init and stages.upload and stages.status)
        assert.equal(events[#events].status, "PUBLISH_COMPLETE")
        -- one connection to the API host and one to the upload host
        assert.equal(2, conn:stats().connects)
    end)

    it("uploads 3 MB whole", function()
        check_upload(media.mp4(dir, { size = 3000000 }), 3000000, 1)
    end)

    it("uploads exactly 64,000,000 bytes in one chunk", function()
        check_upload(media.mp4(dir, { size = 64000000 }), 64000000, 1)
    end)

    it("uploads 64,000,001 bytes in two chunks", function()
        check_upload(media.mp4(dir, { size = 64000001 }), 64000001, 2)
    end)

    it("uploads a 300 MB sparse file in four chunks and the sandbox hash matches", function()
        local path = media.mp4(dir, { size = 300000000 })
        check_upload(path, 300000000, 4)
        os.remove(path)
    end)

    it("uploads a MOV with Content-Type video/quicktime", function()
        local res = assert(post({ video_file = media.mp4(dir, { container = "mov" }) }))
        assert.equal("PUBLISH_COMPLETE", res.status)
    end)

    it("posts by URL from a verified prefix", function()
        os.execute("cp '" .. clip .. "' '" .. sb.env.TIKTOK_MEDIA_DIR .. "/spring.mp4'")
        local res = assert(post({ video_url = sb.env.TIKTOK_MEDIA_BASE .. "{{slug}}.mp4", vars = { slug = "spring" } }))
        assert.equal("PUBLISH_COMPLETE", res.status)
        assert.matches("^v_pub_url~", res.publish_id)
        local p = sb:post(res.publish_id)
        assert.equal(sb.env.TIKTOK_MEDIA_BASE .. "spring.mp4", p.source_info.video_url)
        assert.equal(media.sha256(clip), p.sha256)
    end)

    it("reports video_pull_failed with the publish_id when the URL is gone", function()
        local res, err = post({ video_url = sb.env.TIKTOK_MEDIA_BASE .. "missing.mp4" })
        assert.is_nil(res)
        assert.equal("video_pull_failed", err.code)
        assert.matches("^v_pub_url~", err.publish_id)
    end)

    it("refuses an unverified URL at TikTok with url_ownership_unverified (relay = never)", function()
        local res, err = post({ video_url = "https://cdn.unverified.example/x.mp4", relay = "never" })
        assert.is_nil(res)
        assert.equal("url_ownership_unverified", err.code)
        assert.matches("verify", err.message)
    end)

    it("checks verified_prefixes locally before any init (relay = never)", function()
        conn = tt.connect(sb, { verified_prefixes = { "https://cdn.example.com/videos/" } })
        acc = tt.account(conn)
        local res, err = post({ video_url = "https://other.example.com/videos/a.mp4", relay = "never" })
        assert.is_nil(res)
        assert.equal("invalid_settings", err.code)
        assert.equal(0, tt.count(sb, "video.init"))
    end)

    it("with relay = auto (the default) an unverified URL is relayed; an unreachable one is a clear error", function()
        local res, err = post({ video_url = "https://cdn.unverified.example/x.mp4" })
        assert.is_nil(res)
        assert.equal("network", err.code)
        assert.truthy(err.message:find("cdn.unverified.example", 1, true) or err.message:find("video URL", 1, true),
                      err.message)
        assert.equal(0, tt.count(sb, "upload.put"))
    end)

    it("public posts get their 19-digit post id as an exact string", function()
        local res = assert(post({ video_file = clip, privacy = "PUBLIC_TO_EVERYONE", comments = true,
                                  duets = true, stitches = true }))
        assert.equal("PUBLISH_COMPLETE", res.status)
        -- ids arrive when moderation is done: wait for them through tiktok.status
        local st
        for _ = 1, 50 do
            st = assert(tiktok.status({ connection = conn, publish_id = res.publish_id }))
            if #st.post_ids > 0 then break end
            tiktok.core.sleep_ms(50)
        end
        assert.equal(1, #st.post_ids)
        assert.matches("^%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d$", st.post_ids[1])
        -- the exact digits the sandbox sent as a JSON number
        local _, _, raw = sandbox.http("GET", sb.env.TIKTOK_SANDBOX_ADMIN .. "/posts/" .. res.publish_id)
        assert.truthy(raw:find(st.post_ids[1], 1, true))
    end)

    it("sends an inbox upload and ends in SEND_TO_USER_INBOX", function()
        local res = assert(tiktok.post({ connection = conn, video_file = clip, mode = "inbox" }))
        assert.equal("SEND_TO_USER_INBOX", res.status)
        assert.matches("^v_inbox_file~", res.publish_id)
        assert.equal(1, tt.count(sb, "inbox.init"))
    end)

    it("posts photos by URL", function()
        local img = sb.env.TIKTOK_MEDIA_DIR .. "/p1.jpg"
        sandbox.make_image(img)
        os.execute("cp '" .. img .. "' '" .. sb.env.TIKTOK_MEDIA_DIR .. "/p2.jpg'")
        local res = assert(post({ photo_urls = { sb.env.TIKTOK_MEDIA_BASE .. "p1.jpg",
                                                 sb.env.TIKTOK_MEDIA_BASE .. "p2.jpg" },
                                  caption = "two photos", title = "Photos" }))
        assert.equal("PUBLISH_COMPLETE", res.status)
        assert.matches("^p_pub_url~", res.publish_id)
        local p = sb:post(res.publish_id)
        assert.equal("PHOTO", p.media_type)
        assert.equal("two photos", p.post_info.description)
    end)

    it("returns at once with wait = false, and tiktok.status{wait} finishes it", function()
        local res = assert(post({ video_file = clip, wait = false }))
        assert.equal("PROCESSING_UPLOAD", res.status)
        local st = assert(tiktok.status({ connection = conn, publish_id = res.publish_id, wait = true }))
        assert.equal("PUBLISH_COMPLETE", st.status)
        local bad, err = tiktok.status({ connection = conn, publish_id = "v_pub_file~nope" })
        assert.is_nil(bad)
        assert.equal("invalid_publish_id", err.code)
    end)

    it("detach returns right after init; tiktok.resume uploads and waits", function()
        local res = assert(post({ video_file = clip, detach = true }))
        assert.equal("PROCESSING_UPLOAD", res.status)
        assert.equal(0, tt.count(sb, "upload.put"))
        local st = assert(tiktok.resume({ connection = conn, publish_id = res.publish_id }))
        assert.equal("PUBLISH_COMPLETE", st.status)
        assert.equal(media.sha256(clip), sb:post(res.publish_id).sha256)
        -- resuming a finished post only reads its status
        st = assert(tiktok.resume({ connection = conn, publish_id = res.publish_id }))
        assert.equal("PUBLISH_COMPLETE", st.status)
        assert.equal(1, tt.count(sb, "video.init"))
    end)

    it("calls on_publish with the publish_id before the upload", function()
        local seen
        local res = assert(post({ video_file = clip, on_publish = function(id)
            seen = id
            assert.equal(0, tt.count(sb, "upload.put"))
        end }))
        assert.equal(res.publish_id, seen)
    end)

    it("a FAILED status carries the fail_reason and the publish_id", function()
        local path = media.junk(dir, 200000)
        -- the local probe refuses it first
        local res, err = post({ video_file = path })
        assert.is_nil(res)
        assert.equal("unsupported_media", err.code)
        assert.equal(0, tt.count(sb, "video.init"))
        -- a processing failure injected at TikTok
        sb:admin("POST", "/faults", { endpoint = "post.processing", fail_reason = "frame_rate_check_failed" })
        res, err = post({ video_file = clip })
        assert.is_nil(res)
        assert.equal("frame_rate_check_failed", err.code)
        assert.is_string(err.publish_id)
    end)

    it("refuses a video longer than the creator's maximum before uploading", function()
        sb:admin("PATCH", "/users/" .. sb.env.TIKTOK_SANDBOX_USER, { max_video_post_duration_sec = 1 })
        local res, err = post({ video_file = clip })
        assert.is_nil(res)
        assert.equal("invalid_settings", err.code)
        assert.matches("1", table.concat(err.problems, " "))
        assert.equal(0, tt.count(sb, "video.init"))
    end)

    it("validates against the creator's live settings", function()
        sb:admin("PATCH", "/users/" .. sb.env.TIKTOK_SANDBOX_USER, { comment_disabled = true })
        local res, err = post({ video_file = clip, privacy = "FOLLOWER_OF_CREATOR", comments = true,
                                duets = true, brand_third_party = true })
        assert.is_nil(res)
        assert.equal("invalid_settings", err.code)
        assert.is_true(#err.problems >= 2)
        res, err = post({ video_file = clip, duets = true })
        assert.is_nil(res)
        assert.matches("SELF_ONLY", table.concat(err.problems, " "))
        res, err = post({ video_file = clip, brand_third_party = true })
        assert.is_nil(res)
        assert.matches("private", table.concat(err.problems, " "))
        assert.equal(0, tt.count(sb, "video.init"))
    end)

    it("returns the HTTP-200 spam-risk codes of creator_info as errors before init", function()
        sb:admin("PATCH", "/users/" .. sb.env.TIKTOK_SANDBOX_USER, { posting_cap_reached = true })
        local res, err = post({ video_file = clip })
        assert.is_nil(res)
        assert.equal("spam_risk_too_many_posts", err.code)
        assert.is_false(err.retryable)
        assert.equal(0, tt.count(sb, "video.init"))
    end)

    it("an unaudited app posts SELF_ONLY to a private account, and says why otherwise", function()
        sb:admin("PATCH", "/apps/" .. sb.env.TIKTOK_CLIENT_KEY, { audited = false })
        -- a public account: refused at init, with the fix in the message
        conn = tt.connect(sb, { audited = false })
        acc = tt.account(conn)
        local res, err = post({ video_file = clip })
        assert.is_nil(res)
        assert.equal("unaudited_client_can_only_post_to_private_accounts", err.code)
        assert.matches("private", err.message)
        assert.matches("SELF_ONLY", err.message)
        -- the library itself refuses anything but SELF_ONLY for an unaudited app
        res, err = post({ video_file = clip, privacy = "MUTUAL_FOLLOW_FRIENDS" })
        assert.is_nil(res)
        assert.equal("invalid_settings", err.code)
        assert.equal(1, tt.count(sb, "video.init"))
        -- a private account works
        conn = tt.connect(sb, { audited = false })
        acc = tt.account(conn, { username = sb.env.TIKTOK_SANDBOX_PRIVATE_USER })
        res = assert(post({ video_file = clip }))
        assert.equal("PUBLISH_COMPLETE", res.status)
    end)

    it("refuses missing, directory, empty and non-video files with clear errors", function()
        local empty = dir .. "/empty.mp4"
        io.open(empty, "wb"):close()
        for path, code in pairs({ [dir .. "/missing.mp4"] = "file", [dir] = "file", [empty] = "file",
                                  [media.junk(dir, 10)] = "unsupported_media" }) do
            local res, err = post({ video_file = path })
            assert.is_nil(res)
            assert.equal(code, err.code)
            assert.matches(path:gsub("%p", "%%%0"), err.message)
        end
        assert.equal(0, tt.count(sb, "video.init"))
    end)

    it("needs the scope for the mode", function()
        local c2 = tt.connect(sb, { scopes = { "user.info.basic", "video.upload" } })
        tt.account(c2)
        local res, err = tiktok.post({ connection = c2, video_file = clip, privacy = "SELF_ONLY" })
        assert.is_nil(res)
        assert.equal("scope_not_authorized", err.code)
        res = assert(tiktok.post({ connection = c2, video_file = clip, mode = "inbox" }))
        assert.equal("SEND_TO_USER_INBOX", res.status)
    end)
end)
