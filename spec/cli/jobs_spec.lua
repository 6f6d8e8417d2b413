-- Durable posts from the command line, bin/tiktok run as processes against
-- the sandbox: `tiktok post --queue` (--key, --at), `tiktok jobs` (list,
-- show, cancel) and `tiktok worker` (--idle-exit, --max-jobs, --processes,
-- and a polite stop on SIGTERM that hands a job back mid-upload to the next
-- worker, with one init per job).
local sandbox = require "helpers.sandbox"
local media = require "helpers.media"
local H = require "cli.helper"

local FAST = {
    delays = { processing_ms = 50, moderation_ms = 50 },
    rate_limits = { ["video.init"] = 1000, ["inbox.init"] = 1000, ["content.init"] = 1000,
                    ["creator_info"] = 1000, ["status.fetch"] = 1000, ["user.info"] = 1000 },
}

describe("tiktok post --queue, jobs and worker (command line)", function()
    local sb, dir, clip, store, n_store = nil, nil, nil, nil, 0

    local function tk(args, opts)
        opts = opts or {}
        local full = { "--env-file", sb.dir .. "/env" }
        for _, a in ipairs(args) do full[#full + 1] = a end
        local env = { TIKTOK_STORE = store }
        for k, v in pairs(opts.env or {}) do env[k] = v end
        return (opts.background and H.start or H.run)(full, { env = env })
    end

    local function count(endpoint)
        return #sb:log({ endpoint = endpoint })
    end

    local function connect()
        local r = tk({ "--json", "connect", "--approve" })
        assert.equal(0, r.code, r.out .. r.err)
        return H.json(r).connected.open_id
    end

    local function queue(extra)
        local args = { "--json", "post", "--file", clip, "--privacy", "SELF_ONLY", "--queue" }
        for _, a in ipairs(extra or {}) do args[#args + 1] = a end
        local r = tk(args)
        assert.equal(0, r.code, r.out .. r.err)
        return H.json(r)
    end

    local function job(id)
        local r = tk({ "--json", "jobs", id })
        assert.equal(0, r.code, r.out .. r.err)
        return H.json(r).job
    end

    sandbox.use(function(s, d)
        sb, dir = s, d
        clip = media.mp4(dir, { seconds = 2 })
    end, { tmpdir = true, config = FAST })
    before_each(function()
        sb:admin("PATCH", "/users/" .. sb.env.TIKTOK_SANDBOX_USER, { daily_post_cap = 1000 })
        n_store = n_store + 1
        store = H.TMP .. "/jobs-store-" .. n_store .. "/accounts.json"
    end)
    lazy_teardown(H.cleanup)

    it("a queued post runs to published through `tiktok worker --idle-exit`", function()
        local open_id = connect()
        local r = tk({ "post", "--file", clip, "--privacy", "SELF_ONLY", "--caption", "{{what}} later",
                       "--var", "what=Queued", "--queue" })
        assert.equal(0, r.code, r.err)
        assert.matches("^Queued; `tiktok worker` posts it.\njob job_%x+\n", r.out)
        assert.matches("\n  state:       queued\n", r.out, 1, true)
        local id = r.out:match("\njob (job_%x+)\n")
        assert.equal(0, count("video.init"))     -- nothing sent to TikTok yet
        local w = tk({ "worker", "--idle-exit" })
        assert.equal(0, w.code, w.out .. w.err)
        assert.matches(id .. " event=running state=running attempt=1", w.out, 1, true)
        local publish_id = w.out:match(id .. " event=init state=processing publish_id=(%S+)")
        assert.is_string(publish_id)
        assert.matches(id .. " event=published state=published publish_id=" .. publish_id, w.out, 1, true)
        assert.matches("\nworker: done after %d+ job runs?\n$", w.out)
        local j = job(id)
        assert.equal("published", j.state)
        assert.equal(publish_id, j.publish_id)
        assert.equal("PUBLISH_COMPLETE", j.status)
        local p = sb:post(publish_id)
        assert.equal("Queued later", p.post_info.title)
        assert.equal(open_id, p.open_id)
        assert.equal(media.sha256(clip), p.sha256)
        assert.equal(1, count("video.init"))
        -- the list, newest first, in text and JSON
        r = tk({ "jobs" })
        assert.equal(0, r.code, r.err)
        assert.matches("^JOB%s+STATE%s+CREATED %(UTC%)%s+PUBLISH_ID\n" .. id .. "%s+published%s", r.out)
        local list = H.json(tk({ "--json", "jobs", "--state", "published" })).jobs
        assert.equal(1, #list)
        assert.equal(id, list[1].id)
        assert.same({}, H.json(tk({ "--json", "jobs", "--state", "queued" })).jobs)
    end)

    it("the same --key twice is one job, posted once", function()
        connect()
        local a = queue({ "--key", "spring-launch" })
        assert.is_false(a.existing)
        assert.equal("queued", a.job.state)
        assert.equal("spring-launch", a.job.key)
        local b = queue({ "--key", "spring-launch" })
        assert.is_true(b.existing)
        assert.equal(a.job.id, b.job.id)
        local r = tk({ "post", "--file", clip, "--privacy", "SELF_ONLY", "--queue", "--key", "spring-launch" })
        assert.matches("^This key already names a job; nothing new was queued:\n", r.out)
        assert.equal(1, #H.json(tk({ "--json", "jobs" })).jobs)
        assert.equal(0, tk({ "worker", "--idle-exit" }).code)
        assert.equal("published", job("spring-launch").state)   -- shown by its key too
        -- after it ran, the key still names that job: nothing is posted again
        local c = queue({ "--key", "spring-launch" })
        assert.is_true(c.existing)
        assert.equal("published", c.job.state)
        assert.equal(0, tk({ "worker", "--idle-exit" }).code)
        assert.equal(1, count("video.init"))
    end)

    it("--at schedules a job; a worker leaves it until then; cancel before it runs", function()
        connect()
        local now = os.time()
        local j = queue({ "--at", "+2h", "--key", "later" }).job
        assert.is_true(j.run_at >= now + 7200 and j.run_at <= os.time() + 7200)
        local iso = os.date("!%Y-%m-%dT%H:%M:%SZ", now + 86400)
        assert.equal(now + 86400, queue({ "--at", iso }).job.run_at)
        assert.equal(now + 3600, queue({ "--at", tostring(now + 3600) }).job.run_at)
        local w = tk({ "worker", "--idle-exit" })
        assert.equal(0, w.code, w.err)
        assert.matches("worker: done after 0 job runs", w.out, 1, true)
        assert.equal(0, count("video.init"))
        local r = tk({ "jobs", "later" })
        assert.matches("\n  runs at:     %d+%-%d+%-%d+T%d+:%d+:%d+Z %(in [12]h%d%dm%)\n", r.out)
        r = tk({ "jobs", "cancel", "later" })
        assert.equal(0, r.code, r.err)
        assert.matches("^Cancelled; the post will not be sent to TikTok.\njob " .. j.id, r.out)
        assert.equal("cancelled", job(j.id).state)
        assert.equal(2, #H.json(tk({ "--json", "jobs", "--state", "queued" })).jobs)
        assert.equal(1, #H.json(tk({ "--json", "jobs", "--limit", "1" })).jobs)
    end)

    it("jobs: an unknown job is exit 5; a job TikTok has can no longer be cancelled (exit 2)", function()
        connect()
        local r = tk({ "jobs", "no-such-job" })
        assert.equal(5, r.code)
        assert.matches("no job has this id or key (not_found)", r.err, 1, true)
        local j = queue().job
        assert.equal(0, tk({ "worker", "--idle-exit" }).code)
        r = tk({ "--json", "jobs", "cancel", j.id })
        assert.equal(2, r.code)
        assert.matches("can no longer be cancelled", H.json(r).error.message, 1, true)
    end)

    it("a job that fails keeps TikTok's reason; --json prints one object per event", function()
        connect()
        sb:admin("POST", "/faults", { endpoint = "post.processing", fail_reason = "frame_rate_check_failed" })
        local j = queue().job
        local w = tk({ "--json", "worker", "--idle-exit" })
        assert.equal(0, w.code, w.err)
        local lines = H.json_lines(w.out)
        assert.is_true(lines[1].worker.started)
        local types = {}
        for _, l in ipairs(lines) do
            if l.event then
                assert.equal(j.id, l.job.id)
                types[#types + 1] = l.event.type
            end
        end
        assert.equal("running", types[1])
        assert.equal("init", types[2])
        assert.equal("failed", types[#types])
        assert.is_true(lines[#lines].worker.runs >= 1)
        local f = job(j.id)
        assert.equal("failed", f.state)
        assert.equal("frame_rate_check_failed", f.fail_reason)
        assert.equal("frame_rate_check_failed", f.error.code)
        local r = tk({ "jobs", j.id })
        assert.matches("\n  fail reason: frame_rate_check_failed\n", r.out, 1, true)
    end)

    it("SIGTERM during a long upload: the worker exits 0, the next one finishes the job with one init", function()
        connect()
        local big = media.mp4(dir, { seconds = 2, size = 30000000 })
        local env = { TIKTOK_CHUNK_SIZE = "10000000" }
        local r = tk({ "--json", "post", "--file", big, "--privacy", "SELF_ONLY", "--queue" }, { env = env })
        local id = H.json(r).job.id
        -- every chunk's answer comes late, so the upload is in flight when the signal comes
        sb:admin("POST", "/faults", { endpoint = "upload.put", delay_ms = 1500, when = "after", count = -1 })
        local p = tk({ "worker" }, { env = env, background = true })
        -- a job's events are printed once its step ends: the sandbox shows the
        -- init, after which the upload's first answer takes 1.5 s
        local posts
        for _ = 1, 600 do
            posts = sb:posts()
            if #posts > 0 then break end
            sandbox.sleep(0.05)
        end
        assert.equal(1, #posts)
        sandbox.sleep(0.3)
        p:signal("TERM")
        local w = p:wait()
        assert.equal(0, w.code, w.out .. w.err)
        assert.matches("worker: SIGTERM: stopping; the job in hand is handed back\n", w.out, 1, true)
        assert.matches(id .. " event=handed_back state=processing publish_id=%S+ code=interrupted", w.out)
        assert.matches("\nworker: stopped after 1 job run\n$", w.out)
        local j = job(id)
        assert.equal("processing", j.state)
        assert.is_string(j.publish_id)
        assert.is_true(count("upload.put") < 3, "the upload ran to its end before the stop")
        -- the next worker continues from the journal: no second init
        sb:admin("DELETE", "/faults")
        local w2 = tk({ "worker", "--idle-exit" }, { env = env })
        assert.equal(0, w2.code, w2.out .. w2.err)
        assert.matches(id .. " event=published", w2.out, 1, true)
        j = job(id)
        assert.equal("published", j.state)
        assert.equal(1, count("video.init"))
        local post = sb:post(j.publish_id)
        assert.equal(30000000, post.bytes_received)
        assert.equal(media.sha256(big), post.sha256)
    end)

    it("an idle worker stops on SIGINT (Ctrl-C) too, exit 0; --max-jobs ends it after N runs", function()
        connect()
        local p = tk({ "worker" }, { background = true })
        assert.is_true(H.wait_for(p, "worker: running the jobs of "), p:output())
        p:signal("INT")
        local r = p:wait()
        assert.equal(0, r.code, r.out .. r.err)
        assert.matches("worker: SIGINT: stopping", r.out, 1, true)
        assert.matches("\nworker: stopped after 0 job runs\n$", r.out)
        for _ = 1, 2 do queue() end
        r = tk({ "worker", "--max-jobs", "1" })
        assert.equal(0, r.code, r.out .. r.err)
        assert.matches("\nworker: done after 1 job run\n$", r.out)
        assert.equal(1, #H.json(tk({ "--json", "jobs", "--state", "queued" })).jobs)
    end)

    it("--processes N runs N workers that share the jobs, and forwards SIGTERM to each", function()
        connect()
        local ids = {}
        for i = 1, 4 do ids[i] = queue().job.id end
        local w = tk({ "worker", "--idle-exit", "--processes", "2" })
        assert.equal(0, w.code, w.out .. w.err)
        local _, started = w.out:gsub("worker: running the jobs of ", "")
        assert.equal(2, started)
        for _, id in ipairs(ids) do
            assert.equal("published", job(id).state)
            local _, inits = w.out:gsub(id .. " event=init ", "")
            assert.equal(1, inits)
        end
        assert.equal(4, count("video.init"))
        -- idle workers, stopped through the parent
        local p = tk({ "worker", "--processes", "2" }, { background = true })
        for _ = 1, 600 do
            local _, n = p:output():gsub("worker: running the jobs of ", "")
            if n == 2 then break end
            sandbox.sleep(0.1)
        end
        p:signal("TERM")
        local r = p:wait()
        assert.equal(0, r.code, r.out .. r.err)
        local _, stopped = r.out:gsub("worker: SIGTERM: stopping", "")
        assert.equal(2, stopped)
        local _, done = r.out:gsub("worker: stopped after 0 job runs", "")
        assert.equal(2, done)
    end)
end)
