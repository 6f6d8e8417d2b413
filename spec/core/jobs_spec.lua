-- tiktok.jobs: durable posts against the sandbox: one init per job, crash
-- recovery from the store, caps that delay instead of failing.
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

local FAST = {
    delays = { processing_ms = 30, moderation_ms = 30 },
    rate_limits = { ["video.init"] = 1000, ["creator_info"] = 1000, ["status.fetch"] = 1000 },
}

describe("tiktok.jobs", function()
    local sb, dir, conn, store, acc, clip, jobs, events

    sandbox.use(function(s, d)
        sb, dir = s, d
        clip = media.mp4(dir, { seconds = 2 })
    end, { tmpdir = true, config = FAST })

    before_each(function()
        store = tiktok.store.file({ path = dir .. "/jobs-" .. math.random(1e9) .. ".json" })
        conn = tt.connect(sb, { store = store })
        acc = tt.account(conn)
        jobs = tiktok.jobs({ connection = conn, poll_s = 1 })
        events = {}
    end)

    local function work(extra)
        local o = { idle_exit = true, on_event = function(job, ev) events[#events + 1] = { job = job, ev = ev } end }
        for k, v in pairs(extra or {}) do o[k] = v end
        return assert(jobs:work(o))
    end

    -- Runs the worker until the job is final (processing jobs come due again).
    local function settle(id, as)
        for _ = 1, 40 do
            work()
            local j = assert(jobs:get(id, { as = as }))
            if require("tiktok.jobs").FINAL[j.state] then return j end
            sandbox.sleep(0.3)
        end
        return assert(jobs:get(id, { as = as }))
    end

    -- Posts the sandbox created (an init refused by a fault creates none).
    local function created()
        return #sb:posts()
    end

    local function inits()
        return tt.count(sb, "video.init") + tt.count(sb, "inbox.init") + tt.count(sb, "content.init")
    end

    local function url_post(extra)
        local p = { account = acc.open_id, video_url = sb.env.TIKTOK_MEDIA_BASE .. "clip.mp4", privacy = "SELF_ONLY" }
        for k, v in pairs(extra or {}) do p[k] = v end
        return p
    end

    before_each(function()
        -- the media host serves DIR/media/clip.mp4
        os.execute("mkdir -p '" .. sb.dir .. "/media' && cp '" .. clip .. "' '" .. sb.dir .. "/media/clip.mp4'")
    end)

    it("the same key always names the same job", function()
        local a = assert(jobs:enqueue({ key = "campaign-42/clip-7", post = url_post() }))
        local b = assert(jobs:enqueue({ key = "campaign-42/clip-7", post = url_post({ caption = "other" }) }))
        assert.equal(a.id, b.id)
        assert.equal("queued", b.state)
        assert.equal(1, #jobs:list())
        assert.equal(a.id, jobs:get("campaign-42/clip-7").id)
    end)

    it("runs URL and file posts to their final state, one init each, reporting every change", function()
        local u = assert(jobs:enqueue({ key = "u", post = url_post() }))
        local f = assert(jobs:enqueue({ key = "f", post = { account = acc.open_id, video_file = clip,
                                                            privacy = "SELF_ONLY", caption = "{{t}}",
                                                            vars = { t = "hello" } } }))
        local ju, jf = settle(u.id), settle(f.id)
        assert.equal("published", ju.state)
        assert.equal("published", jf.state)
        assert.equal("PUBLISH_COMPLETE", jf.status)
        assert.is_string(jf.publish_id)
        assert.equal(2, inits())
        assert.equal("hello", sb:post(jf.publish_id).post_info.title)
        local types = {}
        for _, e in ipairs(events) do if e.job.id == f.id then types[#types + 1] = e.ev.type end end
        assert.equal("running", types[1])
        assert.equal("init", types[2])
        assert.equal("published", types[#types])
        -- running the worker again does nothing more
        work()
        assert.equal(2, inits())
    end)

    it("waits until `at`, and cancels only before init", function()
        local later = assert(jobs:enqueue({ post = url_post(), at = os.time() + 3600 }))
        work()
        assert.equal("queued", jobs:get(later.id).state)
        assert.equal(0, inits())
        assert.equal("cancelled", assert(jobs:cancel(later.id)).state)
        local now = assert(jobs:enqueue({ post = url_post() }))
        settle(now.id)
        local res, err = jobs:cancel(now.id)
        assert.is_nil(res)
        assert.truthy(err.message:find("TikTok already has the post", 1, true))
    end)

    it("applies access control to jobs as to accounts", function()
        local alice = { user = "alice", workspace = "acme" }
        local mine = tt.account(conn, { as = alice, access = "workspace" })
        local j = assert(jobs:enqueue({ as = alice, post = url_post({ account = mine.open_id }) }))
        assert.equal(1, #jobs:list({ as = alice }))
        assert.equal(0, #jobs:list({ as = { user = "eve", workspace = "other" } }))
        local res, err = jobs:get(j.id, { as = { user = "eve" } })
        assert.is_nil(res)
        assert.equal("forbidden", err.code)
        assert.equal("published", settle(j.id, alice).state)
    end)

    it("a worker that died after sending init leaves the job ambiguous, never re-inited", function()
        local j = assert(jobs:enqueue({ post = url_post() }))
        local rec = store:get_job(j.id)
        rec.state, rec.init_at, rec.lease_until, rec.worker = "running", os.time() - 100, os.time() - 1, "dead"
        assert(store:put_job(rec))
        work()
        local got = jobs:get(j.id)
        assert.equal("ambiguous", got.state)
        assert.equal("ambiguous", got.error.code)
        assert.equal(0, inits())
        work()
        assert.equal(0, inits())
    end)

    it("a lost init answer makes the job ambiguous, and it is not retried", function()
        sb:admin("POST", "/faults", { endpoint = "video.init", close = true, when = "after" })
        local j = assert(jobs:enqueue({ post = url_post() }))
        work()
        assert.equal("ambiguous", jobs:get(j.id).state)
        assert.equal(1, inits())
        work()
        assert.equal(1, inits())
    end)

    it("a worker that died mid-upload is continued from the journal by the next one", function()
        local big = media.mp4(dir, { seconds = 2, size = 12000000 })
        local c2 = tt.connect(sb, { store = store, chunk_size = 6000000 })
        local j2 = tiktok.jobs({ connection = c2, poll_s = 1 })
        sb:admin("POST", "/faults", { endpoint = "upload.put", chunk = 2, status = 503, count = -1 })
        local j = assert(j2:enqueue({ post = { account = acc.open_id, video_file = big, privacy = "SELF_ONLY" } }))
        assert(j2:work({ idle_exit = true, max_jobs = 1 }))
        local got = j2:get(j.id)
        assert.equal("processing", got.state)          -- init done, upload waiting to be continued
        assert.is_string(got.publish_id)
        sb:admin("DELETE", "/faults")
        local rec = store:get_job(j.id)
        rec.run_at = 0
        assert(store:put_job(rec))
        for _ = 1, 40 do
            j2:work({ idle_exit = true })
            if j2:get(j.id).state == "published" then break end
            sandbox.sleep(0.3)
        end
        assert.equal("published", j2:get(j.id).state)
        assert.equal(1, inits())
        assert.equal(media.sha256(big), sb:post(got.publish_id).sha256)
    end)

    it("a worker told to stop hands its job back mid-upload; the next one continues it", function()
        local big = media.mp4(dir, { seconds = 2, size = 12000000 })
        local c2 = tt.connect(sb, { store = store, chunk_size = 6000000 })
        local j2 = tiktok.jobs({ connection = c2, poll_s = 1 })
        local j = assert(j2:enqueue({ post = { account = acc.open_id, video_file = big, privacy = "SELF_ONLY" } }))
        local seen = {}
        local asked = 0      -- the stop comes once the job has started
        assert(j2:work({ idle_exit = true, max_jobs = 1, stop = function() asked = asked + 1; return asked > 1 end,
                         on_event = function(_, ev) seen[#seen + 1] = ev.type end }))
        local got = j2:get(j.id)
        assert.equal("processing", got.state, table.concat(seen, ",") .. " " .. tostring(got.error))
        assert.equal("handed_back", seen[#seen])
        assert.is_true(got.run_at <= os.time())
        for _ = 1, 40 do
            j2:work({ idle_exit = true })
            if j2:get(j.id).state == "published" then break end
            sandbox.sleep(0.3)
        end
        assert.equal("published", j2:get(j.id).state)
        assert.equal(1, inits())
        assert.equal(media.sha256(big), sb:post(got.publish_id).sha256)
    end)

    it("transient failures before init are retried later; one init in the end", function()
        sb:admin("POST", "/faults", { endpoint = "video.init", status = 503, count = 1 })
        local j = assert(jobs:enqueue({ post = url_post() }))
        work()
        local got = jobs:get(j.id)
        assert.equal("queued", got.state)
        assert.equal("internal_error", got.error.code)
        assert.is_true(got.run_at > os.time())
        local rec = store:get_job(j.id)
        rec.run_at = 0
        assert(store:put_job(rec))
        assert.equal("published", settle(j.id).state)
        assert.equal(2, inits())      -- the refused one and the one that created the post
        assert.equal(1, created())
    end)

    it("TikTok's caps delay a job (run_at moves by retry_after), they do not fail it", function()
        sb:admin("PATCH", "/users/" .. sb.env.TIKTOK_SANDBOX_USER, { posting_cap_reached = true })
        local j = assert(jobs:enqueue({ post = url_post() }))
        work()
        local got = jobs:get(j.id)
        assert.equal("queued", got.state)
        assert.equal("spam_risk_too_many_posts", got.error.code)
        assert.is_true(got.run_at >= os.time() + 86000)
    end)

    it("an error no retry can fix fails the job at once, with the library's err kept", function()
        local j = assert(jobs:enqueue({ post = url_post({ privacy = "PRIVATE", caption = "{{missing}}" }) }))
        work()
        local got = jobs:get(j.id)
        assert.equal("failed", got.state)
        assert.equal("invalid_settings", got.error.code)
        assert.equal(2, #got.error.problems)
        assert.equal(0, inits())
    end)

    it("TikTok's FAILED ends the job failed with the reason; no final answer in time fails it clearly", function()
        sb:admin("POST", "/faults", { endpoint = "post.processing", fail_reason = "frame_rate_check_failed" })
        local j = assert(jobs:enqueue({ post = url_post() }))
        local got = settle(j.id)
        assert.equal("failed", got.state)
        assert.equal("frame_rate_check_failed", got.fail_reason)
        sb:configure({ delays = { processing_ms = 600000 } })
        local slow = tiktok.jobs({ connection = conn, poll_s = 1, give_up_s = 1 })
        local k = assert(slow:enqueue({ post = url_post() }))
        for _ = 1, 20 do
            slow:work({ idle_exit = true })
            if slow:get(k.id).state == "failed" then break end
            sandbox.sleep(0.5)
        end
        got = slow:get(k.id)
        assert.equal("failed", got.state)
        assert.truthy(got.error.message:find("no final answer", 1, true))
    end)

    it("a job whose file this worker cannot read waits for one that can, and says so", function()
        local path = dir .. "/moving.mp4"
        os.execute("cp '" .. clip .. "' '" .. path .. "'")
        local j = assert(jobs:enqueue({ post = { account = acc.open_id, video_file = path, privacy = "SELF_ONLY" } }))
        os.remove(path)
        work()
        local got = jobs:get(j.id)
        assert.equal("queued", got.state)
        assert.truthy(got.waiting:find("a worker that can read", 1, true))
        assert.equal(0, inits())
    end)

    it("forwards every job event as a signed webhook the receiver verifies", function()
        local secret = "app-webhook-secret-123"
        local forward = tiktok.webhook.forwarder({ connection = conn, url = sb.env.TIKTOK_WEBHOOK_SINK,
                                                   secret = secret })
        sb:admin("DELETE", "/webhooks/received")
        local j = assert(jobs:enqueue({ post = url_post() }))
        for _ = 1, 40 do
            jobs:work({ idle_exit = true, on_event = function(job, ev) assert(forward(job, ev)) end })
            if jobs:get(j.id).state == "published" then break end
            sandbox.sleep(0.3)
        end
        local got = sb:admin("GET", "/webhooks/received")
        local types = {}
        for _, d in ipairs(got) do
            local ev = assert(tiktok.webhook.verify(d.signature, d.body, { client_secret = secret }))
            assert.equal(j.id, ev.content.job.id)
            types[#types + 1] = ev.event
        end
        assert.equal("job.running", types[1])
        assert.equal("job.published", types[#types])
        local _, err = tiktok.webhook.verify(got[1].signature, got[1].body, { client_secret = "wrong" })
        assert.equal("forbidden", err.code)
    end)

    it("a URL TikTok will not pull is relayed inside the job: two inits (the refused one created nothing)", function()
        sb:admin("PATCH", "/apps/default", { verified_prefixes = {}, verified_domains = {} })
        local c2 = tt.connect(sb, { store = store, relay_allow_private = true, relay_ca_file = sb.env.TIKTOK_CA_FILE })
        local j2 = tiktok.jobs({ connection = c2, poll_s = 1 })
        local j = assert(j2:enqueue({ post = url_post() }))
        for _ = 1, 40 do
            j2:work({ idle_exit = true })
            if require("tiktok.jobs").FINAL[j2:get(j.id).state] then break end
            sandbox.sleep(0.3)
        end
        local got = j2:get(j.id)
        assert.equal("published", got.state, tostring(got.error))
        assert.equal(2, inits())
        assert.equal(1, #sb:posts())
        assert.equal(media.sha256(clip), sb:post(got.publish_id).sha256)
    end)

    it("refuses bad calls", function()
        assert.has_error(function() jobs:enqueue({ post = url_post(), bogus = 1 }) end)
        assert.has_error(function() jobs:enqueue({ post = { connection = conn } }) end)
        assert.has_error(function() tiktok.jobs({ connection = {} }) end)
        local res, err = jobs:enqueue({ post = { video_file = "/nonexistent.mp4", privacy = "SELF_ONLY" } })
        assert.is_nil(res)
        assert.equal("file", err.code)
        assert.has_error(function() jobs:work({ concurrency = 4 }) end)
    end)
end)
