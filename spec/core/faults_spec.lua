-- Faults during a post: the flow either completes or returns a precise
-- error, and never creates a second publish.
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

local FAST = {
    delays = { processing_ms = 50, moderation_ms = 50 },
    rate_limits = { ["video.init"] = 1000, ["creator_info"] = 1000, ["status.fetch"] = 1000 },
}

describe("faults during tiktok.post", function()
    local sb, dir, conn, store, acc, clip, two

    sandbox.use(function(s, d)
        sb, dir = s, d
        clip = media.mp4(dir, { seconds = 2 })
        two = media.mp4(dir, { seconds = 2, size = 12000000 })   -- two chunks of 6,000,000 with chunk_size 6e6
    end, { tmpdir = true, config = FAST })
    before_each(function()
        store = tiktok.store.memory()
        conn = tt.connect(sb, { store = store, chunk_size = 6000000, low_speed_ms = 2000 })
        acc = tt.account(conn)
    end)

    local function fault(rule)
        local v, status = sb:admin("POST", "/faults", rule)
        assert(status == 201, "fault refused: " .. tostring(status) .. " " .. require("cjson").encode(v))
    end

    local function publishes()
        local n = 0
        for _, p in ipairs(sb:posts()) do if p.open_id == acc.open_id then n = n + 1 end end
        return n
    end

    local function post(extra)
        local o = { connection = conn, privacy = "SELF_ONLY", video_file = two }
        for k, v in pairs(extra or {}) do o[k] = v end
        return tiktok.post(o)
    end

    local function completes(extra)
        local res, err = post(extra)
        assert(res, tostring(err))
        assert.equal("PUBLISH_COMPLETE", res.status)
        assert.equal(1, publishes())
        local p = sb:post(res.publish_id)
        assert.equal(media.sha256((extra and extra.video_file) or two), p.sha256)
        return res
    end

    it("retries a chunk that got a 5xx", function()
        fault({ endpoint = "upload.put", chunk = 1, status = 502 })
        completes()
    end)

    it("an upload host that answers every PUT with the same 416 is left after a bounded number of PUTs", function()
        fault({ endpoint = "upload.put", status = 416, count = -1,
                headers = { ["Content-Range"] = "bytes 0-5999999/12000000" } })
        local res, err = post()
        assert.is_nil(res)
        assert.equal("upload_failed", err.code)
        assert.equal(416, err.http_status)
        assert.is_string(err.publish_id)
        assert.truthy(err.message:find("without moving forward", 1, true), tostring(err))
        -- one PUT that moved forward, then upload_retries + 1 that did not
        assert.equal(1 + conn:_option("upload_retries") + 1, tt.count(sb, "upload.put"))
        assert.equal(1, publishes())
    end)

    it("takes a 2xx to the last chunk whose Content-Range covers the file as success", function()
        fault({ endpoint = "upload.put", chunk = 2, status = 200,
                headers = { ["Content-Range"] = "bytes 0-11999999/12000000" } })
        local res, err = post({ wait = false })
        assert(res, tostring(err))
        assert.equal(2, tt.count(sb, "upload.put"))
    end)

    it("refuses a 2xx to the last chunk that does not say the file is complete, naming what came back", function()
        fault({ endpoint = "upload.put", chunk = 2, status = 200 })
        local res, err = post({ wait = false })
        assert.is_nil(res)
        assert.equal("upload_failed", err.code)
        assert.equal(200, err.http_status)
        assert.truthy(err.message:find("HTTP 200 to the last chunk", 1, true), err.message)
        assert.equal(1, publishes())
    end)

    it("resume refuses a damaged journal instead of using it", function()
        local res = assert(post({ detach = true }))
        for _, damage in ipairs({ { chunk_size = 1 }, { next = 99 }, { count = -1 },
                                  { upload_url = "ftp://x.example/u" }, { size = "big" } }) do
            local job = assert(store:get_upload(res.publish_id))
            for k, v in pairs(damage) do job[k] = v end
            assert(store:put_upload(job))
            local r, err = tiktok.resume({ connection = conn, publish_id = res.publish_id })
            assert.is_nil(r)
            assert.equal("store", err.code)
            assert.truthy(err.message:find("damaged", 1, true), err.message)
            assert.equal(res.publish_id, err.publish_id)
            for k in pairs(damage) do job[k] = nil end
        end
        assert.equal(0, tt.count(sb, "upload.put"))
    end)

    it("resumes after the connection is reset in the middle of a chunk", function()
        fault({ endpoint = "upload.put", chunk = 2, close_after_bytes = 1000000 })
        completes()
        assert.equal(2, conn:stats().connects - 1)   -- one upload connection was lost and reopened
    end)

    it("continues from the server's Content-Range when a reply is lost after the chunk arrived", function()
        fault({ endpoint = "upload.put", chunk = 1, close = true, when = "after" })
        completes()
    end)

    it("gives up on a chunk after upload_retries and returns the publish_id", function()
        fault({ endpoint = "upload.put", status = 503, count = -1 })
        local res, err = post()
        assert.is_nil(res)
        assert.equal("internal_error", err.code)
        assert.matches("^v_pub_file~", err.publish_id)
        assert.equal(1, publishes())
    end)

    it("tiktok.resume finishes an upload that failed part-way, from the journal, without a new init", function()
        fault({ endpoint = "upload.put", chunk = 2, status = 503, count = -1 })
        local res, err = post()
        assert.is_nil(res)
        local job = store:get_upload(err.publish_id)
        assert.equal(1, job.next)
        local jobs = store:list_uploads()
        assert.equal(1, #jobs)
        assert.equal(err.publish_id, jobs[1].publish_id)
        sb:admin("DELETE", "/faults")
        local puts = tt.count(sb, "upload.put")
        local st = assert(tiktok.resume({ connection = conn, publish_id = err.publish_id }))
        assert.equal("PUBLISH_COMPLETE", st.status)
        assert.equal(puts + 1, tt.count(sb, "upload.put"))   -- only the missing chunk
        assert.equal(1, publishes())
        assert.is_nil(store:get_upload(err.publish_id))
        assert.equal(media.sha256(two), sb:post(err.publish_id).sha256)
    end)

    it("stops at once on an expired upload URL (403) with the publish_id", function()
        fault({ endpoint = "upload.put", status = 403 })
        local res, err = post()
        assert.is_nil(res)
        assert.equal("upload_failed", err.code)
        assert.equal(403, err.http_status)
        assert.is_string(err.publish_id)
        assert.equal(1, publishes())
    end)

    it("waits out a 429 while polling", function()
        fault({ endpoint = "status.fetch", status = 429,
                json = { error = { code = "rate_limit_exceeded", message = "slow down", log_id = "L1" } } })
        completes({ video_file = clip })
    end)

    it("retries status after a 5xx and a non-JSON error page", function()
        fault({ endpoint = "status.fetch", status = 502, body = "<html>bad gateway</html>",
                content_type = "text/html" })
        completes({ video_file = clip })
    end)

    it("refreshes once when the token expires mid-flow and never inits again", function()
        local res = completes({ video_file = clip, on_publish = function()
            local rec = store:get(acc.open_id)
            sb:admin("POST", "/tokens/expire", { access_token = rec.access_token })
        end })
        assert.is_string(res.publish_id)
        assert.equal(1, tt.count(sb, "oauth.token") - 1)   -- the exchange plus exactly one refresh
        assert.equal(1, tt.count(sb, "video.init"))
    end)

    it("a 401 at init refreshes and repeats the init once", function()
        fault({ endpoint = "video.init", status = 401,
                json = { error = { code = "access_token_invalid", message = "expired", log_id = "L2" } } })
        completes({ video_file = clip })
        assert.equal(2, tt.count(sb, "video.init"))
    end)

    it("never repeats an init whose answer was lost (ambiguous)", function()
        fault({ endpoint = "video.init", close = true, when = "after" })
        local res, err = post({ video_file = clip })
        assert.is_nil(res)
        assert.equal("ambiguous", err.code)
        assert.is_false(err.retryable)
        assert.equal(1, tt.count(sb, "video.init"))
    end)

    it("a 5xx at init is retryable and nothing was created", function()
        fault({ endpoint = "video.init", status = 500 })
        local res, err = post({ video_file = clip })
        assert.is_nil(res)
        assert.equal("internal_error", err.code)
        assert.is_true(err.retryable)
        assert.is_nil(err.publish_id)
        assert.equal(0, publishes())
    end)

    it("a stalled init times out", function()
        conn = tt.connect(sb, { store = store, timeout_ms = 500 })
        fault({ endpoint = "video.init", delay_ms = 1500 })
        local res, err = post({ video_file = clip })
        assert.is_nil(res)
        assert.equal("ambiguous", err.code)
    end)

    it("a malformed answer to creator_info (a read) is retried; three in a row are bad_response", function()
        fault({ endpoint = "creator_info", status = 200, body = "{\"data\": {", content_type = "application/json" })
        completes({ video_file = clip })
        sb:reset()
        sb:configure(FAST)
        store = tiktok.store.memory()
        conn = tt.connect(sb, { store = store })
        acc = tt.account(conn)
        fault({ endpoint = "creator_info", status = 200, body = "{\"data\": {", content_type = "application/json",
                count = 3 })
        local res, err = post({ video_file = clip })
        assert.is_nil(res)
        assert.equal("bad_response", err.code)
        assert.equal(0, publishes())
    end)

    -- Every documented init error code, as TikTok sends it.
    local INIT_CODES = {
        { 400, "invalid_param" }, { 403, "spam_risk_too_many_posts" },
        { 403, "spam_risk_user_banned_from_posting" }, { 403, "reached_active_user_cap" },
        { 403, "unaudited_client_can_only_post_to_private_accounts" }, { 403, "url_ownership_unverified" },
        { 403, "privacy_level_option_mismatch" }, { 401, "scope_not_authorized" },
        { 429, "rate_limit_exceeded" }, { 400, "invalid_params" }, { 400, "invalid_file_upload" },
    }
    for _, c in ipairs(INIT_CODES) do
        it("maps init error " .. c[2] .. " (HTTP " .. c[1] .. ")", function()
            fault({ endpoint = "video.init", status = c[1],
                    json = { error = { code = c[2], message = "sandbox says " .. c[2], log_id = "LOG" .. c[1] } } })
            local res, err = post({ video_file = clip })
            assert.is_nil(res)
            assert.equal(c[2], err.code)
            assert.equal(c[1], err.http_status)
            assert.equal("LOG" .. c[1], err.log_id)
            assert.is_boolean(err.retryable)
            assert.equal(c[2] == "rate_limit_exceeded", err.retryable)
            assert.is_true(#err.message > 20)
            assert.equal(0, publishes())
        end)
    end

    it("hits the real init rate limit (6 per minute) with rate_limit_exceeded", function()
        sb:configure({ rate_limits = { ["video.init"] = 6 } })
        local last_err
        for _ = 1, 7 do
            local res, err = post({ video_file = clip, wait = false })
            if not res then last_err = err; break end
        end
        assert.is_table(last_err)
        assert.equal("rate_limit_exceeded", last_err.code)
        assert.equal(429, last_err.http_status)
    end)
end)
