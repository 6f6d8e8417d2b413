-- tiktok_app.queue: posts as durable jobs (lua-tiktok's tiktok.jobs).
--
-- POST /tiktok/posts enqueues a job in the store of the account's TikTok
-- app (an Idempotency-Key names the job: a double click makes one job); the
-- job workers are nginx timers in every nginx worker (init_worker): a tick
-- each second starts a runner per TikTok app when jobs may be due, and an
-- enqueue starts one at once. A runner is jobs:work{ idle_exit = true }:
-- each job step runs in a worker thread (pool tiktok_upload), so the event
-- loop never waits. The jobs live in the store: an nginx restart (or a
-- crash) loses none; the next worker continues each where it stopped (one
-- init per job, ever: lua-tiktok's rule).
--
-- on_event: every state change is remembered for the page (the post's
-- publish_id -> its job, app and owner, in lua_shared_dict tiktok_posts)
-- and, with APP_WEBHOOK_SECRET, forwarded as a signed webhook to the app's
-- own POST /tiktok/webhooks/jobs (tiktok.webhook.forwarder), which
-- verifies it and keeps the last events (GET /tiktok/events).
local tiktok = require "tiktok"
local json = require "tiktok.json"
local webhook = require "tiktok.webhook"
local config = require "tiktok_app.config"

local ipairs, pairs, tostring, type = ipairs, pairs, tostring, type
local ngx = ngx

local _M = {}

local POST_TTL = 86400
_M.JOB_OPTS = { lease_s = 30, poll_s = 2, max_poll_s = 30 }

local running = {}      -- app id -> runners in flight in this worker
local seq = 0

-- The connection a TikTok app's jobs run with ("upload": pool tiktok_upload).
local function job_conn(app)
    if app.id == "default" then return config.conn("upload") end
    return config.app_conn(app, "upload")
end

--- queue.remember(publish_id, t) / recall(publish_id): what this nginx
-- instance knows about a post (job, app, account, owner).
function _M.remember(publish_id, t)
    local dict = ngx.shared.tiktok_posts
    local old = dict:get(publish_id)
    local rec = old and json.decode(old) or {}
    for k, v in pairs(t) do
        if v == json.null then rec[k] = nil else rec[k] = v end
    end
    dict:set(publish_id, assert(json.encode(rec)), POST_TTL)
end

function _M.recall(publish_id)
    local s = ngx.shared.tiktok_posts:get(publish_id)
    return s and json.decode(s) or {}
end

local forwarders = {}

local function on_event_for(app, conn)
    local fwd
    if config.cfg.webhook_secret then
        fwd = forwarders[app.id]
        if not fwd or fwd.conn ~= conn then
            fwd = { conn = conn, fn = webhook.forwarder({ connection = conn, secret = config.cfg.webhook_secret,
                                                          url = config.cfg.app_url .. "/tiktok/webhooks/jobs" }) }
            forwarders[app.id] = fwd
        end
    end
    return function(job, ev)
        if ev.type == "init" and ev.publish_id then
            local meta = ngx.shared.tiktok_posts:get("job:" .. job.id)
            meta = meta and json.decode(meta) or {}
            meta.job, meta.app = job.id, app.id
            meta.owner, meta.workspace = meta.owner or job.owner, meta.workspace or job.workspace
            _M.remember(ev.publish_id, meta)
        end
        if fwd then fwd.fn(job, ev) end
    end
end

local function runner(premature, app)
    if premature then
        running[app.id] = (running[app.id] or 1) - 1
        return
    end
    local ok, err = pcall(function()
        local conn, cerr = job_conn(app)
        if not conn then error(cerr, 0) end
        local jobs = tiktok.jobs({ connection = conn, lease_s = _M.JOB_OPTS.lease_s, poll_s = _M.JOB_OPTS.poll_s,
                                   max_poll_s = _M.JOB_OPTS.max_poll_s })
        seq = seq + 1
        local _, werr = jobs:work({ idle_exit = true, on_event = on_event_for(app, conn),
                                    worker = "nginx-" .. ngx.worker.pid() .. "-" .. seq })
        if werr then error(werr, 0) end
    end)
    running[app.id] = (running[app.id] or 1) - 1
    if not ok then ngx.log(ngx.ERR, "tiktok example: the job worker of app ", app.id, " stopped: ", tostring(err)) end
end

--- queue.kick(app): one more runner for this TikTok app's jobs in this
-- worker, unless APP_JOB_CONCURRENCY of them run already.
function _M.kick(app)
    local n = running[app.id] or 0
    if n >= config.cfg.job_concurrency then return true end
    running[app.id] = n + 1
    local ok, err = ngx.timer.at(0, runner, app)
    if not ok then
        running[app.id] = n
        ngx.log(ngx.WARN, "tiktok example: cannot start a job worker: ", err)
    end
    return ok
end

-- Every second: a runner for each TikTok app (jobs may be due: scheduled,
-- delayed by a budget, processing at TikTok, left by a stopped nginx).
local function tick(premature)
    if premature then return end
    if config.conn() then _M.kick({ id = "default" }) end
    local apps, err = config.offload("apps_all", {})
    if not apps then
        ngx.log(ngx.WARN, "tiktok example: cannot list the TikTok apps for the job workers: ", tostring(err))
        return
    end
    for _, a in ipairs(apps) do _M.kick(a) end
end

--- queue.init_worker(): the job workers' tick in this nginx worker.
function _M.init_worker()
    local ok, err = ngx.timer.every(1, tick)
    if not ok then ngx.log(ngx.ERR, "tiktok example: cannot start the job workers: ", err) end
end

--- queue.keep_meta(job, t): what the page needs about a job before its
-- publish_id is known (account, owner), until its init event.
function _M.keep_meta(job_id, t)
    ngx.shared.tiktok_posts:set("job:" .. job_id, assert(json.encode(t)), POST_TTL)
end

-- POST /tiktok/webhooks/jobs: the job events this app forwards to itself
-- (APP_WEBHOOK_SECRET), verified like TikTok's own deliveries (signature,
-- age, no replay) before they are kept: the last 100, for GET /tiktok/events.
local EVENTS = 100

function _M.receive()
    local reply = require "tiktok_app.reply"
    if not require("tiktok_app.reply").method("POST") then return end
    local secret = config.cfg.webhook_secret
    if not secret then return reply.fail_with(404, "not_found", "job webhooks are off (APP_WEBHOOK_SECRET)") end
    ngx.req.read_body()
    local body = ngx.req.get_body_data() or ""
    local ev, err = config.offload("webhook_verify", { signature = ngx.var.http_tiktok_signature, body = body,
                                                      secret = secret })
    if not ev then return reply.fail(err) end
    local content = type(ev.content) == "table" and ev.content or {}
    local job = type(content.job) == "table" and content.job or {}
    local dict = ngx.shared.tiktok_events
    local n = dict:incr("seq", 1, 0)
    dict:set("ev:" .. n, assert(json.encode({ event = ev.event, at = ev.create_time, job = job.id,
                                              state = job.state, publish_id = job.publish_id,
                                              owner = job.owner, workspace = job.workspace })))
    dict:delete("ev:" .. (n - EVENTS))
    return reply.send(200, { received = true })
end

-- GET /tiktok/events: the verified job events of the user's jobs, newest first.
function _M.events()
    local reply = require "tiktok_app.reply"
    local who = require("tiktok_app.identity").request("GET")
    if not who then return end
    local dict = ngx.shared.tiktok_events
    local n = dict:get("seq") or 0
    local out = reply.list()
    for i = n, math.max(1, n - EVENTS + 1), -1 do
        local e = dict:get("ev:" .. i)
        e = e and json.decode(e)
        if e and e.owner == who.user then
            e.owner, e.workspace = nil, nil
            out[#out + 1] = e
        end
    end
    return reply.send(200, { events = out })
end

return _M
