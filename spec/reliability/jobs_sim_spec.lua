-- A simulation of several machines running durable posts (tiktok.jobs)
-- against the sandbox with its faults on: two "machines" (separate working
-- folders) x 3 worker processes on one PostgreSQL store, and one machine x
-- 3 workers on the file store; a worker is SIGKILLed every few seconds and
-- restarted. Jobs: URL, file (one and several chunks), inbox, photo,
-- scheduled, some enqueued twice with the same key. Every job ends in a
-- final state, TikTok (the sandbox) saw at most one init per job and no post
-- twice, only jobs whose init answer was lost (a fault, or a worker killed
-- between sending an init and saving its publish_id) are ambiguous, zero
-- 429 answers from TikTok's own limits, and no token is lost.
-- Size: TIKTOK_SIM_JOBS jobs (default 45; make reliability: 300) over
-- TIKTOK_SIM_ACCOUNTS accounts (default 6; make reliability: 20).
local sandbox = require "helpers.sandbox"
local pghelper = require "helpers.postgres"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

local INTERP = (os.getenv("TIKTOK_CHILD_PREFIX") or "") .. " " .. (jit and "luajit" or "lua5.4")
local JOBS = tonumber(os.getenv("TIKTOK_SIM_JOBS") or "45")
local ACCOUNTS = tonumber(os.getenv("TIKTOK_SIM_ACCOUNTS") or "6")
local LIMIT_S = tonumber(os.getenv("TIKTOK_SIM_SECONDS") or "240")
local HIGH = "{ init = 100000, creator_info = 100000, status = 100000, inbox = 100000 }"

local WORKER = [[
local tiktok = require "tiktok"
local core = tiktok.core
local kind, name = arg[1], arg[2]
local store
if kind == "file" then
    store = tiktok.store.file{ path = %q }
else
    store = tiktok.store.postgres{ conninfo = %q, schema = "sim", application_name = name }
end
local conn = assert(tiktok.connect{ client_key = %q, client_secret = %q, redirect_uri = %q, api_base = %q,
    auth_base = %q, ca_file = %q, store = store, poll_ms = 100, chunk_size = 6000000, low_speed_ms = 3000,
    rate_limits = ]] .. HIGH .. [[ })
local jobs = tiktok.jobs{ connection = conn, poll_s = 1, lease_s = 4, idle_s = 1 }
core.catch_signals({ "TERM" })
local stopping = false
jobs:work{ worker = name,
    stop = function() if core.signalled() then stopping = true end return stopping end,
    on_event = function(job, ev)
        io.write(os.time(), " ", job.id, " ", ev.type, " ", ev.state or "", " ", job.publish_id or "", "\n")
        io.flush()
    end }
]]

describe("jobs on several machines, with faults and SIGKILLs", function()
    local sb, dir, pg

    sandbox.use(function(s, d)
        sb, dir = s, d
        assert(pghelper.available())
        pg = pghelper.start()
    end, { tmpdir = true, reset = false })
    teardown(function()
        if pg then pg:stop() end
    end)

    it(JOBS .. " jobs, " .. ACCOUNTS .. " accounts, 9 workers (6 on PostgreSQL, 3 on the file store)", function()
        sb:reset()
        sb:configure({ delays = { processing_ms = 200, moderation_ms = 50 },
                       rate_limits = { ["video.init"] = 100000, ["inbox.init"] = 100000, ["content.init"] = 100000,
                                       creator_info = 100000, ["status.fetch"] = 100000 } })
        local e = sb.env
        local file_store_path = dir .. "/machine3/store.json"
        os.execute("mkdir -p -m 0700 '" .. dir .. "/machine1' '" .. dir .. "/machine2' '" .. dir .. "/machine3'")
        local stores = {
            pg = tiktok.store.postgres({ conninfo = pg.conninfo, schema = "sim" }),
            file = tiktok.store.file({ path = file_store_path }),
        }
        -- accounts: each its own sandbox creator, connected into one of the two stores
        local accounts = {}
        for i = 1, ACCOUNTS do
            local username = "sim_creator_" .. i
            sb:admin("POST", "/users", { username = username, daily_post_cap = 100000 })
            local kind = (i % 3 == 0) and "file" or "pg"
            local conn = tt.connect(sb, { store = stores[kind], rate_limits = false })
            local acc = tt.account(conn, { username = username })
            accounts[i] = { open_id = acc.open_id, kind = kind, conn = conn }
        end
        -- media: a small clip, a two-chunk file, a photo, all pullable from the media host
        local clip = media.mp4(dir, { seconds = 2 })
        local big = media.mp4(dir, { seconds = 2, size = 12000000 })
        os.execute("cp '" .. clip .. "' '" .. e.TIKTOK_MEDIA_DIR .. "/sim.mp4'")
        sandbox.make_image(e.TIKTOK_MEDIA_DIR .. "/sim.jpg", "640x480")
        -- faults on both sides (each applied a few times)
        for _, f in ipairs({
            { endpoint = "upload.put", status = 503, count = 3 },
            { endpoint = "upload.put", close_after_bytes = 1000000, count = 2 },
            { endpoint = "video.init", status = 429, count = 2,
              json = { error = { code = "rate_limit_exceeded", message = "fault", log_id = "F" } } },
            { endpoint = "status.fetch", delay_ms = 1500, count = 3 },
            { endpoint = "video.init", close = true, when = "after", count = 1 },   -- a lost init answer
        }) do
            local _, st = sb:admin("POST", "/faults", f)
            assert.equal(201, st)
        end
        -- the jobs
        local kinds = { "url", "url", "file", "url", "big", "photo", "inbox", "scheduled", "url" }
        local by_id, dup_keys = {}, 0
        for n = 1, JOBS do
            local a = accounts[(n - 1) % ACCOUNTS + 1]
            local k = kinds[(n - 1) % #kinds + 1]
            local post = { account = a.open_id, privacy = "SELF_ONLY", caption = "sim job " .. n }
            local at
            if k == "url" or k == "scheduled" then
                post.video_url = e.TIKTOK_MEDIA_BASE .. "sim.mp4?job=" .. n
                if k == "scheduled" then at = os.time() + 3 end
            elseif k == "file" or k == "big" then
                post.video_file = k == "big" and big or clip
            elseif k == "photo" then
                post.photo_urls = { e.TIKTOK_MEDIA_BASE .. "sim.jpg?job=" .. n }
            else
                post = { account = a.open_id, video_file = clip, mode = "inbox" }
            end
            local jobs = tiktok.jobs({ connection = a.conn })
            local job = assert(jobs:enqueue({ key = "sim-" .. n, post = post, at = at }))
            by_id[job.id] = { n = n, kind = k, store = a.kind }
            if n % 7 == 0 then
                local again = assert(jobs:enqueue({ key = "sim-" .. n, post = post }))
                assert.equal(job.id, again.id)
                dup_keys = dup_keys + 1
            end
        end
        -- nine workers, restarted after every SIGKILL
        local worker = dir .. "/sim-worker.lua"
        sandbox.write_file(worker, WORKER:format(file_store_path, pg.conninfo, e.TIKTOK_CLIENT_KEY,
            e.TIKTOK_CLIENT_SECRET, e.TIKTOK_REDIRECT_URI, e.TIKTOK_API_BASE, e.TIKTOK_AUTH_BASE, e.TIKTOK_CA_FILE))
        local procs = {}
        for m = 1, 3 do
            for w = 1, 3 do
                procs[#procs + 1] = { machine = m, kind = m == 3 and "file" or "pg",
                                      name = ("m%d-w%d"):format(m, w), runs = 0 }
            end
        end
        local function start(p)
            p.runs = p.runs + 1
            local folder = dir .. "/machine" .. p.machine
            p.pidfile = folder .. "/" .. p.name .. ".pid"
            os.execute(("cd '%s' && (sh -c 'echo $$ > %s; exec %s %s %s %s-%d' >> %s.log 2>&1 &)")
                       :format(folder, p.pidfile, INTERP, worker, p.kind, p.name, p.runs, p.name))
        end
        local function pid(p)
            return tonumber((sandbox.read_file(p.pidfile) or ""):match("%d+"))
        end
        for _, p in ipairs(procs) do start(p) end
        local function all_final()
            local n = 0
            for _, kind in ipairs({ "pg", "file" }) do
                for _, job in ipairs(assert(stores[kind]:list_jobs())) do
                    if require("tiktok.jobs").FINAL[job.state] then n = n + 1 end
                end
            end
            return n == JOBS, n
        end
        local t0, kills, done, finals = os.time(), 0, false, 0
        math.randomseed(JOBS)
        while os.time() - t0 < LIMIT_S do
            done, finals = all_final()
            if done then break end
            sandbox.sleep(2.5)
            local victim = procs[math.random(1, #procs)]
            local vpid = pid(victim)
            if vpid and kills < 20 then
                os.execute("kill -KILL " .. vpid .. " 2>/dev/null")
                kills = kills + 1
                sandbox.sleep(0.1)
                start(victim)
            end
        end
        for _, p in ipairs(procs) do
            local ppid = pid(p)
            if ppid then os.execute("kill -TERM " .. ppid .. " 2>/dev/null") end
        end
        local seconds = os.time() - t0
        assert.is_true(done, "only " .. finals .. " of " .. JOBS .. " jobs reached a final state in " .. seconds .. " s")

        -- what the jobs say
        local states, publish_ids, ambiguous = {}, {}, 0
        for _, kind in ipairs({ "pg", "file" }) do
            for _, job in ipairs(assert(stores[kind]:list_jobs())) do
                states[job.state] = (states[job.state] or 0) + 1
                if job.publish_id then
                    assert.is_nil(publish_ids[job.publish_id], "two jobs share " .. job.publish_id)
                    publish_ids[job.publish_id] = job.id
                end
                if job.state == "ambiguous" then ambiguous = ambiguous + 1 end
                assert.is_true(job.state ~= "failed" and job.state ~= "cancelled",
                               "job " .. by_id[job.id].n .. " (" .. by_id[job.id].kind .. ") ended "
                               .. job.state .. ": " .. tostring(job.error and job.error.message))
            end
        end
        -- what TikTok (the sandbox) saw: every job's post once; the only posts
        -- no job knows are those of ambiguous jobs, at most one each
        local orphans, posts = 0, 0
        for _, p in ipairs(sb:posts()) do
            posts = posts + 1
            if not publish_ids[p.publish_id] then orphans = orphans + 1 end
        end
        assert.is_true(orphans <= ambiguous, orphans .. " posts no job knows, for " .. ambiguous .. " ambiguous jobs")
        for id in pairs(publish_ids) do assert.is_table(sb:post(id), "no sandbox post " .. id) end
        -- zero 429s from TikTok's own limits (the injected ones are faults)
        local real429, retries = 0, 0
        for _, entry in ipairs(sb:log()) do
            if entry.status == 429 and not entry.fault then real429 = real429 + 1 end
        end
        assert.equal(0, real429)
        -- no token lost: every account still refreshes
        for _, a in ipairs(accounts) do assert(a.conn:refresh(a.open_id)) end
        for _, p in ipairs(procs) do
            for line in (sandbox.read_file(dir .. "/machine" .. p.machine .. "/" .. p.name .. ".log") or "")
                    :gmatch("[^\n]+") do
                if line:find(" retry ", 1, true) or line:find(" handed_back ", 1, true)
                   or line:find(" delayed ", 1, true) then
                    retries = retries + 1
                end
            end
        end
        local parts = {}
        for k, v in pairs(states) do parts[#parts + 1] = k .. " " .. v end
        table.sort(parts)
        io.write(("\njobs simulation: %d jobs (%d enqueued twice), %d accounts, 9 workers, %d SIGKILLs, "
                  .. "%d jobs delayed or retried, %d s; %s; %d TikTok posts, %d unknown to any job, 0 real 429s\n")
                 :format(JOBS, dup_keys, ACCOUNTS, kills, retries, seconds, table.concat(parts, ", "), posts, orphans))
    end)
end)
