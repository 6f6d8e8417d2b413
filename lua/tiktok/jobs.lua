-- tiktok.jobs: durable posts. A post becomes a job in the connection's
-- store, followed until TikTok's final answer by whichever worker (process,
-- machine, nginx timer) shares the store, with one init per job, ever.
--
--   queued -> running -> processing (init done, publish_id known) ->
--   published | inbox | failed | cancelled | ambiguous
--
-- How one init per job holds whatever dies when:
--   * the job is claimed with a lease (lease_s); a worker that dies leaves
--     the lease to expire and another worker takes the job over;
--   * right before the init request is sent the job records init_at; the
--     publish_id is recorded the moment TikTok answers. A job found with
--     init_at but no publish_id had its init sent by a worker that died (or
--     whose answer was lost): it becomes `ambiguous` and is never retried;
--   * after init, the upload is continued from the store's journal
--     (tiktok.resume) and the status polled (tiktok.status): never a re-init.
-- Budgets and TikTok's caps move run_at (the job waits); an error no retry
-- can fix fails the job with the library's err kept in job.error.
--
-- Store: the job collection (get_job/put_job/delete_job/list_jobs, see
-- tiktok.store), claims under store:locked, or store:claim_job when the
-- store has a better way (PostgreSQL: FOR UPDATE SKIP LOCKED).
local core = require "tiktok.core"
local util = require "tiktok.util"
local errors = require "tiktok.errors"
local access = require "tiktok.access"
local fields = require "tiktok.fields"
local openresty = require "tiktok.openresty"

local type, pairs, ipairs, setmetatable, error, tostring, pcall, rawget = type, pairs, ipairs, setmetatable,
    error, tostring, pcall, rawget
local floor, min = math.floor, math.min
local sort = table.sort

local _M = {}
local mt = { __index = _M }

local FINAL = { published = true, inbox = true, failed = true, cancelled = true, ambiguous = true }
_M.FINAL = FINAL
local FROM_STATUS = { PUBLISH_COMPLETE = "published", SEND_TO_USER_INBOX = "inbox", FAILED = "failed" }

-- The one table of options with defaults.
local DEFAULTS = {
    lease_s = 60,                -- a claimed job is this worker's for this long (renewed while it works)
    poll_s = 5,                  -- first status poll of a processing job; backs off to max_poll_s
    max_poll_s = 60,
    give_up_s = 86400,           -- a processing job without a final answer this long after init fails
    max_attempts = 10,           -- transient failures before init, then failed
    idle_s = 1,                  -- how long work() sleeps when no job is due
}
_M.DEFAULTS = DEFAULTS

local NEW_OPTS = { connection = "table" }
for k in pairs(DEFAULTS) do NEW_OPTS[k] = "integer" end

--- tiktok.jobs{ connection, lease_s, poll_s, ... } -> jobs
function _M.new(opts)
    util.check_opts("tiktok.jobs", opts, NEW_OPTS, 3)
    local conn = opts.connection
    if type(conn) ~= "table" or type(conn._record) ~= "function" then
        error("tiktok.jobs: connection must be a connection from tiktok.connect", 3)
    end
    local store = conn.store
    for _, m in ipairs({ "get_job", "put_job", "list_jobs", "locked" }) do
        if type(store[m]) ~= "function" then
            error("tiktok.jobs: the connection's store lacks the method '" .. m .. "'", 3)
        end
    end
    local o = {}
    for k, v in pairs(DEFAULTS) do o[k] = opts[k] or v end
    return setmetatable({ conn = conn, store = store, opts = o }, mt)
end

local function now_s()
    return floor(util.now())
end

-- A job as callers see it (no lease bookkeeping, no principal internals).
local function public(job)
    local out = {}
    for _, k in ipairs({ "id", "key", "state", "publish_id", "status", "fail_reason", "attempts", "run_at",
                         "created_at", "updated_at", "owner", "workspace", "access", "waiting" }) do
        out[k] = job[k]
    end
    out.post_ids = util.copy(job.post_ids or {})
    if job.error then out.error = errors.restore(job.error) end
    return out
end
_M.public = public

-- An error kept on a job: plain fields only (it is stored as JSON).
local function plain_error(err)
    local e = {}
    for _, k in ipairs({ "code", "message", "class", "retryable", "retry_after", "publish_id", "http_status",
                         "log_id", "detail", "fail_reason" }) do
        e[k] = err[k]
    end
    if err.problems then e.problems = util.copy(err.problems) end
    return e
end

-- ------------------------------------------------------------- enqueue

-- What a job's post may hold: what tiktok.post takes, minus connection,
-- as, wait and the callbacks.
local POST_OPTS = { account = "string", vars = "table", wording = "string" }
for _, f in ipairs(fields.list) do POST_OPTS[f.name] = "any" end

local ENQUEUE_OPTS = { key = "string", at = "number", as = "table", access = "string", post = "table" }

-- The id the same key always names (so enqueueing it twice finds one job).
local function id_for(key)
    if key then return "job_" .. core.sha256_hex("tiktok-job|" .. key):sub(1, 32) end
    return "job_" .. core.random_hex(16)
end

--- jobs:enqueue{ key, at, as, access, post = {...} } -> job | nil, err
-- The same key always names the same job: enqueueing it again returns the
-- job as it is (whatever its state), never a second one.
function _M:enqueue(opts)
    util.check_opts("jobs:enqueue", opts, ENQUEUE_OPTS)
    access.check_as("jobs:enqueue", opts.as)
    if type(opts.post) ~= "table" then error("jobs:enqueue: post must be a table", 2) end
    util.check_opts("jobs:enqueue: post", opts.post, POST_OPTS)
    if opts.key ~= nil and (opts.key == "" or #opts.key > 256) then
        return nil, errors.new("invalid_argument", "key must be 1 to 256 characters")
    end
    local post = util.copy(opts.post)
    if type(post.video_file) == "string" then
        local st = core.stat(post.video_file)
        if not st or st.type ~= "file" then
            return nil, errors.new("file", "video_file " .. util.show(post.video_file) .. " cannot be read on "
                                   .. "this machine; a job's file must be readable where the job is enqueued "
                                   .. "and where it runs (a shared folder, or the same machine)")
        end
    end
    local now = now_s()
    local job = { id = id_for(opts.key), key = opts.key, state = "queued", post = post, attempts = 0,
                  run_at = floor(opts.at or now), created_at = now, updated_at = now, post_ids = {} }
    local stamped, why = access.stamp(job, opts.as, opts.access, "jobs:enqueue")
    if not stamped then return nil, errors.new("invalid_argument", why) end
    local result, err = self.store:locked(function()
        local old, gerr = self.store:get_job(job.id)
        if gerr then return nil, gerr end
        if old then
            if not access.visible(old, opts.as) then
                return nil, errors.new("forbidden", "a job with this key belongs to someone else")
            end
            return old
        end
        local ok, perr = self.store:put_job(job)
        if not ok then return nil, perr end
        return job
    end)
    if not result then return nil, err end
    return public(result)
end

-- ------------------------------------------------------ get, list, cancel

local function load(self, id_or_key, as)
    if type(id_or_key) ~= "string" or id_or_key == "" then
        return nil, errors.new("invalid_argument", "a job id or key is required")
    end
    local job, err = self.store:get_job(id_or_key)
    if not job and not err then job, err = self.store:get_job(id_for(id_or_key)) end
    if err then return nil, err end
    if not job then return nil, errors.new("not_found", "no job has this id or key") end
    if not access.visible(job, as) then
        return nil, errors.new("forbidden", "this job belongs to someone else")
    end
    return job
end

local AS_OPTS = { as = "table" }

--- jobs:get(id_or_key, { as }) -> job | nil, err
function _M:get(id_or_key, opts)
    opts = util.check_opts("jobs:get", opts or {}, AS_OPTS)
    access.check_as("jobs:get", opts.as)
    local job, err = load(self, id_or_key, opts.as)
    if not job then return nil, err end
    return public(job)
end

local LIST_OPTS = { as = "table", state = "string", limit = "integer" }

--- jobs:list{ as, state, limit } -> array of jobs, newest first
function _M:list(opts)
    opts = util.check_opts("jobs:list", opts or {}, LIST_OPTS)
    access.check_as("jobs:list", opts.as)
    local all, err = self.store:list_jobs()
    if not all then return nil, err end
    local out = {}
    for _, job in ipairs(all) do
        if access.visible(job, opts.as) and (opts.state == nil or job.state == opts.state) then
            out[#out + 1] = job
        end
    end
    sort(out, function(a, b)
        if a.created_at ~= b.created_at then return a.created_at > b.created_at end
        return a.id > b.id
    end)
    local limited = {}
    for i = 1, min(#out, opts.limit or #out) do limited[i] = public(out[i]) end
    return limited
end

--- jobs:cancel(id_or_key, { as }) -> job | nil, err (only before init:
-- after it TikTok owns the post)
function _M:cancel(id_or_key, opts)
    opts = util.check_opts("jobs:cancel", opts or {}, AS_OPTS)
    access.check_as("jobs:cancel", opts.as)
    return self.store:locked(function()
        local job, err = load(self, id_or_key, opts.as)
        if not job then return nil, err end
        if job.state == "cancelled" then return public(job) end
        if job.publish_id or job.init_at or FINAL[job.state] or job.state == "processing" then
            return nil, errors.new("invalid_argument", "the job can no longer be cancelled (state " .. job.state
                                   .. (job.publish_id and (", publish_id " .. job.publish_id) or "")
                                   .. "): TikTok already has the post")
        end
        if job.state == "running" and (job.lease_until or 0) > now_s() then
            return nil, errors.new("busy", "a worker is preparing this job right now; cancel it again in a "
                                   .. "moment", { retryable = true })
        end
        job.state, job.updated_at, job.run_at = "cancelled", now_s(), nil
        local ok, perr = self.store:put_job(job)
        if not ok then return nil, perr end
        return public(job)
    end)
end

-- ----------------------------------------------------------------- work

-- Is this job due for a worker at `now`?
local function due(job, now)
    if FINAL[job.state] then return false end
    if (job.lease_until or 0) > now then return false end          -- another worker holds it
    return (job.run_at or 0) <= now
end

-- Claims the next due job for `worker` (the oldest run_at first), under
-- the store's lock. Returns the job or nil.
local function claim(self, worker)
    local store = self.store
    if type(store.claim_job) == "function" then
        return store:claim_job(worker, now_s(), self.opts.lease_s)
    end
    return store:locked(function()
        local all, err = store:list_jobs()
        if not all then return nil, err end
        local now, best = now_s(), nil
        for _, job in ipairs(all) do
            if due(job, now) and (not best or job.run_at < best.run_at) then best = job end
        end
        if not best then return nil end
        best.worker, best.lease_until = worker, now + self.opts.lease_s
        if best.state == "queued" then best.state = "running" end
        best.updated_at = now
        local ok, perr = store:put_job(best)
        if not ok then return nil, perr end
        return best
    end)
end

-- A run of one job: the job, the events to report, and how to save it.
local Run = {}
Run.__index = Run

-- An event: to on_event here and now (outside nginx), or to the caller
-- once the step is done (from an nginx worker thread).
function Run:report(ev)
    if self.on_event then
        self.on_event(public(self.job), ev)
    else
        self.events[#self.events + 1] = { job = public(self.job), ev = ev }
    end
end

function Run:save(ev)
    local job = self.job
    job.updated_at = now_s()
    local ok, err = self.jobs.store:put_job(job)
    if not ok then return nil, err end
    if ev then
        ev.state = job.state
        self:report(ev)
    end
    return true
end

-- Keeps the lease while a long upload runs (called from on_progress);
-- false asks the upload to stop (the worker was told to stop: the job is
-- handed back and continued from the journal by the next worker).
function Run:heartbeat()
    if self.stop and self.stop() then return false end
    local now = now_s()
    if now - (self.beat or 0) >= self.jobs.opts.lease_s / 4 then
        self.beat = now
        self.job.lease_until = now + self.jobs.opts.lease_s
        self:save()
    end
    return true
end

-- The job waits until `after` seconds from now (budgets, caps, transient
-- trouble, a processing post); the lease is given back.
function Run:later(after, ev)
    local job = self.job
    job.run_at = now_s() + after
    job.lease_until, job.worker = nil, nil
    if not job.publish_id then job.state = "queued" end
    return self:save(ev)
end

function Run:finish(state, err, ev)
    local job = self.job
    job.state = state
    job.lease_until, job.worker, job.run_at = nil, nil, nil
    if err then job.error = plain_error(err) end
    return self:save(ev or { type = state })
end

local function as_of(job)
    if job.owner == nil and job.workspace == nil then return nil end
    return { user = job.owner, workspace = job.workspace }
end

-- Before init: the post is sent (init once), uploaded when it is a file.
function Run:start()
    local job, conn = self.job, self.jobs.conn
    if job.init_at then
        -- A worker marked the init as sent and no publish_id came back.
        return self:finish("ambiguous", errors.new("ambiguous", "a worker sent this job's init and then "
                           .. "stopped (or lost TikTok's answer) before the publish_id was saved: TikTok may "
                           .. "or may not have created the post; check the creator's profile before posting "
                           .. "it again"), { type = "ambiguous" })
    end
    local path = job.post.video_file
    if type(path) == "string" and not core.stat(path) then
        job.waiting = "a worker that can read " .. util.show(path, 120)
        return self:later(30, { type = "waiting", message = "this worker cannot read the video file; the "
                                .. "job waits for a worker on the machine (or shared folder) that has it" })
    end
    job.waiting, job.attempts = nil, (job.attempts or 0) + 1
    self:save({ type = "running", attempt = job.attempts })
    local req = util.copy(job.post)
    req.connection, req.as, req.wait = conn, as_of(job), false
    req.detach = type(path) == "string"
    -- Waits before the init (budgets) stay well inside the lease: a longer
    -- one delays the job (run_at moves) instead of outliving the lease.
    req.wait_timeout_ms = floor(self.jobs.opts.lease_s * 1000 / 3)
    local LOST = {}
    req.on_init = function()
        -- Under the store's lock: still this worker's job, and no init
        -- recorded by anyone? Then record it; never send an init the store
        -- did not record, and never one for a job another worker took over.
        local ok, err = self.jobs.store:locked(function()
            local cur, gerr = self.jobs.store:get_job(job.id)
            if gerr then return nil, gerr end
            -- (a second init in the same run follows one TikTok refused with
            -- nothing created: the relay of a URL TikTok would not pull)
            if not cur or cur.worker ~= job.worker or cur.publish_id or (cur.init_at and not self.init_marked) then
                return nil, LOST
            end
            job.init_at, job.lease_until = now_s(), now_s() + self.jobs.opts.lease_s
            self.init_marked = true
            return self:save()
        end)
        if not ok then error(err, 0) end
    end
    req.on_publish = function(publish_id)
        job.publish_id, job.state, job.processing_since = publish_id, "processing", now_s()
        self:save({ type = "init", publish_id = publish_id })
    end
    req.on_progress = function() return self:heartbeat() end
    local ok, res, err = pcall(require("tiktok.post")._io.post, req)
    if not ok and res == LOST then
        -- Another worker took the job over while this one waited: leave it alone.
        self:report({ type = "lost", state = job.state })
        return true
    end
    if not ok then
        err = errors.new("store", "the job could not be recorded before its init: " .. tostring(res))
        res = nil
    end
    if res then return self:follow() end
    if job.publish_id then return self:after_init_error(err) end
    if err.code == "ambiguous" then
        return self:finish("ambiguous", err, { type = "ambiguous" })
    end
    job.init_at = nil      -- the init was refused or never sent: nothing exists at TikTok
    return self:before_init_error(err)
end

-- An error before any post exists: wait and retry, or fail.
function Run:before_init_error(err)
    local job, class = self.job, errors.class(err).name
    if class == "throttled" or class == "capped" then
        job.error = plain_error(err)
        return self:later(err.retry_after or 60, { type = "delayed", code = err.code })
    end
    if errors.class(err).retryable or err.code == "busy" then
        if job.attempts < self.jobs.opts.max_attempts then
            job.error = plain_error(err)
            return self:later(min(2 ^ job.attempts, 300), { type = "retry", code = err.code })
        end
    end
    return self:finish("failed", err)
end

-- An error after init (the upload or a status fetch): the post exists, so
-- only resume and poll; an upload TikTok refuses for good fails the job.
function Run:after_init_error(err)
    local job = self.job
    job.error = plain_error(err)
    if err.code == "interrupted" then
        return self:later(0, { type = "handed_back", code = err.code })
    end
    if err.class == "transient" or err.class == "throttled" or errors.read_again(err) then
        return self:later(err.retry_after or self.jobs.opts.poll_s, { type = "retry", code = err.code })
    end
    if err.fail_reason then
        job.fail_reason, job.status = err.fail_reason, "FAILED"
    end
    return self:finish("failed", err)
end

-- After init: continue the upload from the journal, then poll the status.
function Run:follow()
    local job, conn = self.job, self.jobs.conn
    local store = conn.store
    local st, err
    if type(store.get_upload) == "function" and store:get_upload(job.publish_id) then
        st, err = require("tiktok.post")._io.resume({
            connection = conn, publish_id = job.publish_id, as = as_of(job), wait = false,
            account = job.post.account, on_progress = function() return self:heartbeat() end })
    else
        st, err = require("tiktok.post")._io.status({ connection = conn, publish_id = job.publish_id,
                                                       as = as_of(job), account = job.post.account })
    end
    if not st then return self:after_init_error(err) end
    job.status, job.post_ids = st.status, util.copy(st.post_ids or {})
    local final = FROM_STATUS[st.status]
    if final == "failed" then
        job.fail_reason = st.fail_reason
        return self:finish("failed", errors.from_fail_reason(st.fail_reason, job.publish_id))
    elseif final then
        job.error = nil
        return self:finish(final, nil, { type = final, post_ids = job.post_ids })
    end
    if now_s() - (job.processing_since or now_s()) > self.jobs.opts.give_up_s then
        return self:finish("failed", errors.new("timeout", "TikTok gave no final answer for this post within "
                           .. floor(self.jobs.opts.give_up_s / 3600) .. " h (last status " .. tostring(st.status)
                           .. "); look at the creator's profile", { publish_id = job.publish_id }))
    end
    job.polls = (job.polls or 0) + 1
    local wait = min(self.jobs.opts.poll_s * 2 ^ min(job.polls - 1, 6), self.jobs.opts.max_poll_s)
    return self:later(wait, { type = "processing", status = st.status })
end

-- Claims and runs at most one due job. Returns { job, events } (job nil
-- when none was due) or nil, err. Inside nginx it runs in a worker thread.
local function run_next(conn, opts)
    local self = setmetatable({ conn = conn, store = conn.store, opts = opts.jobs }, mt)
    local job, err = claim(self, opts.worker)
    if err then return nil, err end
    if not job then return { events = {} } end
    local run = setmetatable({ jobs = self, job = job, events = {}, stop = opts.stop, on_event = opts.on_event },
                             Run)
    local ok
    if job.publish_id then ok, err = run:follow() else ok, err = run:start() end
    if not ok and err then return nil, err end
    return { job = public(job), events = run.events }
end

_M._io = { run_next = run_next }
local run_next_here = openresty.method("jobs", "run_next", run_next)

local WORK_OPTS = { max_jobs = "integer", idle_exit = "boolean", concurrency = "integer", on_event = "function",
                    worker = "string", stop = "function" }

--- jobs:work{ max_jobs, idle_exit = false, concurrency = 1, on_event, worker, stop }
-- Runs due jobs here until max_jobs were run, no job is due (idle_exit),
-- or stop() returns true. Returns the number of jobs run.
-- concurrency > 1 runs that many loops at once inside nginx (light
-- threads, each job's work in a worker thread); elsewhere run more worker
-- processes instead (tiktok worker --processes N).
function _M:work(opts)
    opts = util.check_opts("jobs:work", opts or {}, WORK_OPTS)
    local n = opts.concurrency or 1
    if n > 1 and not openresty.offload() then
        error("jobs:work: concurrency > 1 needs nginx (light threads); run several worker processes instead", 2)
    end
    local worker = opts.worker or ("w-" .. core.random_hex(6))
    local ran = 0
    local function loop(tag)
        while not (opts.stop and opts.stop()) and not (opts.max_jobs and ran >= opts.max_jobs) do
            local args = { jobs = self.opts, worker = worker .. tag }
            if not openresty.offload() then           -- functions stay out of nginx's worker threads
                args.stop, args.on_event = opts.stop, opts.on_event
            end
            local res, err = run_next_here(self.conn, args)
            if not res then return nil, err end
            for _, e in ipairs(res.events) do
                if opts.on_event then opts.on_event(e.job, e.ev) end
            end
            if res.job then
                ran = ran + 1
            elseif opts.idle_exit then
                return true
            else
                local ngx = rawget(_G, "ngx")
                if ngx and openresty.offload() then ngx.sleep(self.opts.idle_s)
                else core.sleep_ms(self.opts.idle_s * 1000) end
            end
        end
        return true
    end
    if n == 1 then
        local ok, err = loop("")
        if not ok then return nil, err end
        return ran
    end
    local ngx = rawget(_G, "ngx")
    local threads = {}
    for i = 1, n do threads[i] = ngx.thread.spawn(loop, "-" .. i) end
    for i = 1, n do ngx.thread.wait(threads[i]) end
    return ran
end

return _M
