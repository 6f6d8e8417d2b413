-- Issues 15 and 16 in the OpenResty example app: POST /tiktok/posts
-- enqueues a durable job (tiktok.jobs) that nginx timers run inside the app;
-- an Idempotency-Key makes a double click one job; a restart of nginx loses
-- no post; the page lists the user's recent jobs; job events come back as
-- signed webhooks that the app verifies; a Video URL TikTok will not pull is
-- relayed (relay = auto). Real nginx, real sandbox.
local sandbox = require "helpers.sandbox"
local example = require "helpers.example"
local media = require "helpers.media"
local cjson = require "cjson.safe"
local webhook = require "tiktok.webhook"

local WEBHOOK_SECRET = "spec-webhook-secret-0123456789abcdef0123456789"

describe("examples/openresty: posts as jobs (issue 15)", function()
    local ex, sb, clip
    local ALICE = { user = "alice" }
    local BOB = { user = "bob" }

    local function post(who, body, headers)
        return ex:app("POST", "/tiktok/posts", { user = who.user, json = body, headers = headers })
    end

    local function url_post(extra)
        local b = { video_url = sb.env.TIKTOK_MEDIA_BASE .. "clip-2s.mp4", privacy = "SELF_ONLY" }
        for k, v in pairs(extra or {}) do b[k] = v end
        return b
    end

    local function sandbox_posts_with(caption)
        local n = 0
        for _, p in ipairs(sb:posts()) do
            if p.post_info and p.post_info.title == caption then n = n + 1 end
        end
        return n
    end

    lazy_setup(function()
        ex = example.start({ env = "APP_WEBHOOK_SECRET=" .. WEBHOOK_SECRET .. " APP_RELAY_ALLOW_PRIVATE=1 " })
        sb = ex.sb
        clip = media.mp4(sb.env.TIKTOK_MEDIA_DIR, { seconds = 2 })
        ex:connect("alice")
        sb:admin("POST", "/users", { username = "bobby" })
        ex:connect("bob", "bobby")
    end)

    lazy_teardown(function()
        if ex then ex:stop() end
    end)

    it("enqueues: 202 with the job and TikTok's publish_id, then the job is published", function()
        local status, body, h, raw = post(ALICE, url_post({ caption = "job one" }))
        assert.equal(202, status, raw)
        assert.matches("^job_%x+$", body.job.id)
        assert.matches("^v_pub_url~", body.publish_id)
        assert.equal("/tiktok/posts/" .. body.publish_id, h.location)
        assert.equal("default", body.job.app)
        local job = ex:wait_job(body.job.id, ALICE)
        assert.equal("published", job.state)
        assert.equal(body.publish_id, job.publish_id)
        assert.equal("PUBLISH_COMPLETE", job.status)
        assert.equal(1, sandbox_posts_with("job one"))
    end)

    it("makes one job of a double click (Idempotency-Key header or key field)", function()
        local key = "click-" .. os.time()
        local s1, b1, _, raw1 = post(ALICE, url_post({ caption = "double click" }), { ["Idempotency-Key"] = key })
        local s2, b2, _, raw2 = post(ALICE, url_post({ caption = "double click" }), { ["Idempotency-Key"] = key })
        assert.equal(202, s1, raw1)
        assert.equal(202, s2, raw2)
        assert.equal(b1.job.id, b2.job.id)
        assert.equal(b1.publish_id, b2.publish_id)
        local s3, b3 = post(ALICE, url_post({ caption = "double click", key = key }))
        assert.equal(202, s3)
        assert.equal(b1.job.id, b3.job.id)
        ex:wait_job(b1.job.id, ALICE)
        assert.equal(1, sandbox_posts_with("double click"))
        -- another user's key is another job (keys are per user)
        local s4, b4 = post(BOB, url_post({ caption = "double click bob" }), { ["Idempotency-Key"] = key })
        assert.equal(202, s4)
        assert.are_not.equal(b1.job.id, b4.job.id)
    end)

    it("refuses a malformed key or time with a clear answer", function()
        local status, body = post(ALICE, url_post(), { ["Idempotency-Key"] = ("k"):rep(201) })
        assert.equal(400, status)
        assert.matches("idempotency key", body.error.message, 1, true)
        status, body = post(ALICE, url_post({ at = "tomorrow" }))
        assert.equal(400, status)
        assert.matches("Unix seconds", body.error.message, 1, true)
    end)

    it("answers a post refused before init with the error and the failed job", function()
        local status, body, _, raw = post(ALICE, url_post({ privacy = "SELF_ONLY", duets = true }))
        assert.equal(422, status, raw)
        assert.equal("invalid_settings", body.error.code)
        assert.equal("failed", body.job.state)
        assert.matches(require("tiktok.fields").label("duets"), body.error.problems[1], 1, true)
    end)

    it("lists the user's recent jobs with their states, newest first, to that user only", function()
        local status, body, _, raw = ex:app("GET", "/tiktok/jobs", { user = "alice" })
        assert.equal(200, status, raw)
        assert.is_true(#body.jobs >= 3)
        for i = 2, #body.jobs do
            assert.is_true(body.jobs[i - 1].created_at >= body.jobs[i].created_at)
        end
        local states = {}
        for _, j in ipairs(body.jobs) do states[j.state] = true end
        assert.is_true(states.published)
        assert.is_true(states.failed)
        local _, bobs = ex:app("GET", "/tiktok/jobs", { user = "bob" })
        assert.equal(1, #bobs.jobs)
        status = ex:app("GET", "/tiktok/jobs/" .. body.jobs[1].id, { user = "bob" })
        assert.equal(403, status)
        status = ex:app("GET", "/tiktok/jobs/not-a-job", { user = "alice" })
        assert.equal(400, status)
    end)

    it("runs a scheduled job at its time, and loses no post when nginx restarts meanwhile", function()
        local at = os.time() + 3
        local status, body, _, raw = post(ALICE, url_post({ caption = "across a restart", at = at }))
        assert.equal(202, status, raw)
        assert.equal("queued", body.job.state)
        assert.equal(at, body.job.run_at)
        assert.is_nil(body.publish_id)
        ex:stop_app()
        ex:start_app()
        local job = ex:wait_job(body.job.id, ALICE, 40)
        assert.equal("published", job.state, cjson.encode(job))
        assert.is_true(job.updated_at >= at)
        assert.equal(1, sandbox_posts_with("across a restart"))
    end)

    it("cancels a job TikTok does not have yet (its owner only), not one it has", function()
        local status, body, _, raw = post(ALICE, url_post({ caption = "never sent", at = os.time() + 600 }))
        assert.equal(202, status, raw)
        local id = body.job.id
        local res
        status, res = ex:app("POST", "/tiktok/jobs/" .. id .. "/cancel", { user = "bob" })
        assert.equal(403, status)
        assert.equal("forbidden", res.error.code)
        status, res, _, raw = ex:app("POST", "/tiktok/jobs/" .. id .. "/cancel", { user = "alice" })
        assert.equal(200, status, raw)
        assert.equal("cancelled", res.state)
        assert.is_true(res.final)
        -- a published one is TikTok's
        local _, list = ex:app("GET", "/tiktok/jobs", { user = "alice" })
        local published
        for _, j in ipairs(list.jobs) do if j.state == "published" then published = j.id end end
        status, res = ex:app("POST", "/tiktok/jobs/" .. published .. "/cancel", { user = "alice" })
        assert.equal(400, status)
        assert.matches("TikTok already has the post", res.error.message, 1, true)
        assert.equal(0, sandbox_posts_with("never sent"))
    end)

    it("continues a file upload that a restart of nginx cut, with one init", function()
        sandbox.exec("mkdir -p " .. sandbox.shell_quote(ex.env.APP_FILES_DIR .. "/alice"))
        local big = media.mp4(ex.env.APP_FILES_DIR .. "/alice", { seconds = 2, size = 130000000 })
        sb:admin("POST", "/faults", { endpoint = "upload.put", delay_ms = 1500 })
        local status, body, _, raw = post(ALICE, { video_file = big:match("[^/]+$"), privacy = "SELF_ONLY",
                                                   caption = "cut by a restart" })
        assert.equal(202, status, raw)
        local id = body.publish_id
        assert.is_string(id, raw)
        ex:stop_app()         -- mid-upload: the job's lease runs out, the next nginx takes it over
        sb:admin("DELETE", "/faults")
        ex:start_app()
        local job = ex:wait_job(body.job.id, ALICE, 90)
        assert.equal("published", job.state, cjson.encode(job))
        assert.equal(id, job.publish_id)
        assert.equal(130000000, sb:post(id).uploaded_bytes)
        local inits = 0
        for _, e in ipairs(sb:log({ endpoint = "video.init" })) do
            if e.publish_id == id then inits = inits + 1 end
        end
        assert.equal(1, inits)
        os.remove(big)
    end)

    it("forwards job events as signed webhooks to the app, which verifies them", function()
        local status, body = post(ALICE, url_post({ caption = "with events" }))
        assert.equal(202, status)
        ex:wait_job(body.job.id, ALICE)
        local events
        for _ = 1, 20 do
            local _, ev = ex:app("GET", "/tiktok/events", { user = "alice" })
            events = {}
            for _, e in ipairs(ev.events) do
                if e.job == body.job.id then events[e.event] = e end
            end
            if events["job.published"] then break end
            sandbox.sleep(0.2)
        end
        assert.is_table(events["job.init"], cjson.encode(events))
        assert.equal(body.publish_id, events["job.init"].publish_id)
        assert.is_table(events["job.published"])
        -- bob sees none of alice's events
        local _, bobs = ex:app("GET", "/tiktok/events", { user = "bob" })
        for _, e in ipairs(bobs.events) do assert.are_not.equal(body.job.id, e.job) end
        -- a delivery that is not signed with the secret is refused
        local forged = cjson.encode({ event = "job.published", create_time = os.time(),
                                      content = cjson.encode({ job = { id = "job_forged", owner = "alice" } }) })
        local st, _, b = sandbox.http("POST", ex.env.APP_URL .. "/tiktok/webhooks/jobs", { body = forged,
            headers = { ["Content-Type"] = "application/json",
                        ["TikTok-Signature"] = webhook.sign("not-the-secret-0123456789abcdef012345", forged) } })
        assert.equal(403, st, b)
        local ok_sig = webhook.sign(WEBHOOK_SECRET, forged)
        st = sandbox.http("POST", ex.env.APP_URL .. "/tiktok/webhooks/jobs", { body = forged,
            headers = { ["Content-Type"] = "application/json", ["TikTok-Signature"] = ok_sig } })
        assert.equal(200, st)
        -- the same signed delivery again is a replay
        st = sandbox.http("POST", ex.env.APP_URL .. "/tiktok/webhooks/jobs", { body = forged,
            headers = { ["Content-Type"] = "application/json", ["TikTok-Signature"] = ok_sig } })
        assert.equal(403, st)
    end)

    describe("a Video URL TikTok will not pull (issue 16)", function()
        lazy_setup(function()
            -- the app's verified URL prefixes and domains emptied: no pull is
            -- allowed; the app is told what its TikTok app has verified
            local _, st = sb:admin("PATCH", "/apps/" .. sb.env.TIKTOK_CLIENT_KEY,
                                   { verified_prefixes = {}, verified_domains = {} })
            assert.equal(200, st)
            ex:stop_app()
            ex:start_app("TIKTOK_VERIFIED_PREFIXES=https://cdn.verified.example/ ")
        end)

        it("keeps the refusal with relay = never", function()
            local status, body, _, raw = post(ALICE, url_post({ relay = "never" }))
            assert.equal(422, status, raw)
            assert.matches("url_ownership_unverified", raw, 1, true)
            assert.equal("failed", body.job.state)
        end)

        it("relays it into a file upload by default (auto)", function()
            local status, body, _, raw = post(ALICE, url_post({ caption = "relayed" }))
            assert.equal(202, status, raw)
            local job = ex:wait_job(body.job.id, ALICE, 60)
            assert.equal("published", job.state, cjson.encode(job))
            local p = sb:post(job.publish_id)
            assert.equal("FILE_UPLOAD", p.source)
            assert.equal(media.sha256(clip), p.sha256)
        end)

        it("refuses a relay choice that is not auto, always or never", function()
            local status, body = post(ALICE, url_post({ relay = "sometimes" }))
            assert.equal(400, status)
            assert.matches("If TikTok will not pull the URL", body.error.message, 1, true)
        end)
    end)
end)
