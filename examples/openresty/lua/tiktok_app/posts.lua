-- tiktok_app.posts: starting a post, its status, resuming an upload that
-- stopped, and the caption preview.
--
-- The fields a request may carry, their JSON types and their labels come
-- from lua-tiktok's one field schema (tiktok.fields); this app adds only
-- `account` (which connected account) and `vars` (template variables).
local tiktok = require "tiktok"
local fields = require "tiktok.fields"
local template = require "tiktok.template"
local settings = require "tiktok.settings"
local json = require "tiktok.json"
local config = require "tiktok_app.config"
local reply = require "tiktok_app.reply"
local identity = require "tiktok_app.identity"
local accounts = require "tiktok_app.accounts"
local files = require "tiktok_app.files"
local queue = require "tiktok_app.queue"

local type, pairs, ipairs, tostring, pcall = type, pairs, ipairs, tostring, pcall
local concat, sort = table.concat, table.sort
local floor = math.floor
local ngx = ngx
local as_of = identity.as_of

local _M = {}

local FINAL = { PUBLISH_COMPLETE = true, SEND_TO_USER_INBOX = true, FAILED = true }

-- ------------------------------------------------------------ the request

-- JSON type checks by schema type; each returns true when v fits.
local CHECKS = {
    string = function(v) return type(v) == "string" end,
    boolean = function(v) return type(v) == "boolean" end,
    integer = function(v) return type(v) == "number" and v == floor(v) and v >= 0 and v < 2^53 end,
    list = function(v)
        if type(v) ~= "table" or #v == 0 then return false end
        for _, x in pairs(v) do if type(x) ~= "string" then return false end end
        return true
    end,
    object = function(v) return type(v) == "table" end,
}
local WANT = {
    string = "text", boolean = "true or false", integer = "a whole number >= 0",
    list = "a list of texts", object = "an object",
}

-- name -> { type, label, values } for every field a request may carry.
local ACCEPTED = { account = { type = "string", label = "TikTok account" },
                   vars = { type = "object", label = "Variables" } }
for _, f in ipairs(fields.list) do
    ACCEPTED[f.name] = { type = f.type == "enum" and "string" or f.type, label = f.label, values = f.values }
end

local function is_null(v)
    return v == json.null or type(v) == "userdata"   -- lua-cjson's null
end

-- Flat names ({"a.b": "x"}) and nested objects both become nested vars.
local function expand_vars(vars, problem)
    local out = {}
    local names = {}
    for k in pairs(vars) do names[#names + 1] = k end
    sort(names, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(names) do
        local v = vars[k]
        if type(k) ~= "string" then
            problem("vars", "Variables must be an object of names to values")
        elseif not is_null(v) then
            local ok, why = template.set_var(out, k, v)
            if not ok then problem("vars", "Variables: " .. why) end
        end
    end
    return out
end

local function check_field(name, v, problem)
    local want = ACCEPTED[name]
    if not want then
        problem(false, "unknown field '" .. name .. "'")
        return false
    end
    if not CHECKS[want.type](v) then
        problem(name, "'" .. name .. "' (" .. want.label .. ") must be " .. WANT[want.type])
        return false
    end
    if want.values then
        for _, x in ipairs(want.values) do if x == v then return true end end
        problem(name, "'" .. name .. "' (" .. want.label .. ") must be " .. concat(want.values, " or "))
        return false
    end
    return true
end

-- Checks the JSON shapes (the library raises on wrong Lua types, which is
-- right for code and wrong for a request body: here they become a 400).
-- Returns the request for tiktok.post, or nil, err.
function _M.request(body, who)
    local req, problems, where = {}, {}, {}
    local function problem(field, text)
        problems[#problems + 1] = text
        where[#problems] = field
    end
    local names = {}
    for k in pairs(body) do names[#names + 1] = tostring(k) end
    sort(names)
    for _, k in ipairs(names) do
        local v = body[k]
        if not is_null(v) and check_field(k, v, problem) then req[k] = v end
    end
    if req.vars then req.vars = expand_vars(req.vars, problem) end
    if req.video_file then
        local path, why = files.resolve(who, req.video_file)
        if path then req.video_file = path else problem("video_file", why) end
    end
    if #problems > 0 then
        local err = tiktok.errors.new("invalid_argument", "the post request is malformed: "
                                      .. concat(problems, "; "), { problems = problems })
        err.fields = where   -- the field of each problem (false: none), for the page
        return nil, err
    end
    return req
end

local function read_json_body()
    local ctype = ngx.var.http_content_type or ""
    if not ctype:find("^application/json") then
        return nil, tiktok.errors.new("invalid_argument", "send the post as JSON (Content-Type: application/json)")
    end
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then
        if ngx.req.get_body_file() then
            return nil, tiktok.errors.new("invalid_argument", "the JSON body is too large")
        end
        return nil, tiktok.errors.new("invalid_argument", "the body is empty; send a JSON object")
    end
    local ok, v, msg = pcall(json.decode, body)
    if not ok or type(v) ~= "table" or v[1] ~= nil then
        return nil, tiktok.errors.new("invalid_argument", (ok and msg) or "the body must be a JSON object")
    end
    return v
end

-- ------------------------------------------------- what this app remembers

local remember, recall = queue.remember, queue.recall

local function mine(rec, who)
    return rec.owner == who.user or (rec.workspace ~= nil and rec.workspace == who.workspace)
end

-- The post as this app remembers it, after checking that `who` may see it:
-- nil after answering 403 when the post is someone else's. Every route
-- about a post asks this first, before any shortcut. (A post this app does
-- not remember is checked by TikTok: its status is read with an account
-- `who` may use, and TikTok refuses a publish_id of another account.)
local function own_post(id, who)
    local rec = recall(id)
    if rec.owner ~= nil and not mine(rec, who) then
        reply.fail_with(403, "forbidden", "this post was made by someone else")
        return nil
    end
    return rec
end

-- The upload connection (pool tiktok_upload) of a TikTok app source.
local function upload_conn(src)
    if src.app then return config.app_conn(src.app, "upload") end
    return config.conn("upload")
end

-- ----------------------------------------------------------- the uploads

-- Timer: sends what is left of a file post (the journal in the store says
-- what), on the upload thread pool, after POST .../resume.
local function upload_job(premature, publish_id, who, src)
    if premature then return end   -- nginx is stopping: the journal keeps the rest for POST .../resume
    remember(publish_id, { upload = "running" })
    local c, cerr = upload_conn(src)
    local ok, res, err = true, nil, cerr
    if c then
        ok, res, err = pcall(tiktok.resume, { connection = c, publish_id = publish_id, as = who, wait = false })
    end
    if not ok then
        err = tiktok.errors.new("internal_error", "the upload stopped: " .. tostring(res))
        res = nil
    end
    if res then
        remember(publish_id, { upload = "done" })
    else
        ngx.log(ngx.ERR, "tiktok example: upload of ", publish_id, " failed: ", tostring(err))
        remember(publish_id, { upload = "failed", error = reply.error_body(err) })
    end
end

local function start_upload(publish_id, who, src)
    local ok, terr = ngx.timer.at(0, upload_job, publish_id, as_of(who), src)
    if not ok then
        return nil, tiktok.errors.new("busy", "cannot start the upload now (" .. tostring(terr)
                                      .. "); resume it with POST /tiktok/posts/" .. publish_id .. "/resume",
                                      { retryable = true, publish_id = publish_id })
    end
    return true
end

-- ------------------------------------------------------------------ jobs

local FINAL_JOB = { published = true, inbox = true, failed = true, cancelled = true, ambiguous = true }
local WAIT_FOR_INIT = 10     -- seconds POST /tiktok/posts waits for TikTok's answer to the init

-- The idempotency key (Idempotency-Key header, or the body's `key`) and
-- the time to post at (`at`, Unix seconds), taken out of the body.
local function job_fields(body)
    local key = ngx.var.http_idempotency_key
    if body.key ~= nil then key = body.key end
    body.key = nil
    local at = body.at
    body.at = nil
    if key ~= nil and (type(key) ~= "string" or key == "" or #key > 200 or key:find("[%c]")) then
        return nil, nil, "the idempotency key (Idempotency-Key header or key) must be 1 to 200 characters"
    end
    if at ~= nil and at ~= json.null and (type(at) ~= "number" or at ~= floor(at) or at < 0 or at >= 2^40) then
        return nil, nil, "at (when to post) must be a time in Unix seconds"
    end
    if at == json.null then at = nil end
    return key, at
end

--- posts.job_view(job, src) -> a job as the page and the API show it
function _M.job_view(job, meta)
    meta = meta or {}
    local v = { id = job.id, state = job.state, publish_id = job.publish_id, status = job.status,
                fail_reason = job.fail_reason, attempts = job.attempts, run_at = job.run_at,
                created_at = job.created_at, updated_at = job.updated_at, waiting = job.waiting,
                final = FINAL_JOB[job.state] == true, post_ids = reply.list(job.post_ids),
                app = meta.app, open_id = meta.open_id, source = meta.source, key = meta.key }
    if type(job.error) == "table" then v.error = reply.error_body(tiktok.errors.restore(job.error)) end
    return v
end

-- The job until TikTok has answered its init (or WAIT_FOR_INIT passed).
local function wait_for_init(app_id, job, who)
    local deadline = ngx.now() + WAIT_FOR_INIT
    local pause = 0.05
    while not job.publish_id and not FINAL_JOB[job.state] and ngx.now() < deadline do
        ngx.sleep(pause)
        pause = math.min(pause * 2, 0.5)
        ngx.update_time()
        local j = config.offload("jobs_get", { app = app_id, id = job.id, as = as_of(who) })
        if j then job = j end
    end
    return job
end

-- ----------------------------------------------------------------- routes

-- POST /tiktok/posts (JSON): validates the request's shape and enqueues a
-- job; waits a few seconds for TikTok's answer to the init, then answers
-- 202 with the job and (once known) the publish_id. A post refused before
-- init (invalid settings, ...) answers the error, with the job.
-- The preamble of a JSON POST route: who is asking, and the body; nil
-- when the answer has already been sent.
local function json_request()
    local who = identity.request("POST")
    if not who then return nil end
    local body, err = read_json_body()
    if not body then return nil, reply.fail(err) end
    return who, body
end

function _M.create()
    local who, body = json_request()
    if not who then return end
    local err
    local key, at, kerr = job_fields(body)
    if kerr then return reply.fail_with(400, "invalid_argument", kerr) end
    local req
    req, err = _M.request(body, who)
    if not req then return reply.fail(err) end
    local open_id, src = accounts.pick(who, req.account)
    if not open_id then return reply.fail(src) end
    req.account = open_id
    req.wording = "labels"     -- problems name the page's fields ("Video URL"), not Lua options
    local app_id = src.app and src.id or nil
    local job
    job, err = config.offload("jobs_enqueue", { app = app_id, opts = {
        key = key and ("user:" .. who.user .. "|" .. key) or nil, at = at, as = as_of(who), post = req } })
    if not job then return reply.fail(err) end
    local meta = { app = src.id, open_id = open_id, owner = who.user, workspace = who.workspace, key = key,
                   source = req.video_file and "FILE_UPLOAD" or (req.photo_urls and "PHOTO" or "PULL_FROM_URL") }
    queue.keep_meta(job.id, meta)
    queue.kick(src.app or { id = "default" })
    if not at or at <= ngx.time() then job = wait_for_init(app_id, job, who) end
    local out = _M.job_view(job, meta)
    if job.publish_id then remember(job.publish_id, { job = job.id, app = src.id, open_id = open_id,
                                                       owner = who.user, workspace = who.workspace,
                                                       source = meta.source }) end
    if not job.publish_id and FINAL_JOB[job.state] and out.error then
        local e = tiktok.errors.restore(job.error)
        return reply.send(tiktok.errors.http_status(e), { error = reply.error_body(e), job = out })
    end
    out.job = _M.job_view(job, meta)
    if out.publish_id and not out.status then
        out.status = req.video_file and "PROCESSING_UPLOAD" or "PROCESSING_DOWNLOAD"
    end
    ngx.header["Location"] = job.publish_id and ("/tiktok/posts/" .. job.publish_id) or ("/tiktok/jobs/" .. job.id)
    return reply.send(202, out)
end

-- How the routes about one post begin: the user, the publish_id of the
-- path, and the post as remembered here once its owner is checked.
local function post_route(m)
    local who = identity.request(m)
    if not who then return nil end
    local id = reply.path_id("publish_id", "^[%w%._~%-]+$", "a publish_id")
    if not id then return nil end
    local rec = own_post(id, who)
    if not rec then return nil end
    return who, id, rec
end

-- The post's TikTok status, read with the account that made it.
local function fetch_status(who, id, rec)
    local open_id, src = accounts.pick(who, reply.arg("account") or rec.open_id)
    if not open_id then return nil, src end
    local st, err = tiktok.status({ connection = src.conn, account = open_id, publish_id = id, as = as_of(who) })
    if not st then return nil, err end
    return st, open_id, src
end

-- The job of a post this app remembers (nil when none or unreadable).
local function job_of(rec, who)
    if not rec.job then return nil end
    return config.offload("jobs_get", { app = rec.app ~= "default" and rec.app or nil, id = rec.job,
                                        as = as_of(who) })
end

-- GET /tiktok/posts/<publish_id>[?account=open_id]
function _M.status()
    local who, id, rec = post_route("GET")
    if not who then return end
    if rec.upload == "failed" and type(rec.error) == "table" then
        return reply.send(200, { publish_id = id, status = "FAILED", final = true, fail_reason = rec.error.code,
                                 error = rec.error, upload = "failed", post_ids = reply.list() })
    end
    local job = job_of(rec, who)
    local file = rec.source == "FILE_UPLOAD"
    if job and not rec.upload and job.state == "failed" and type(job.error) == "table" then
        local v = _M.job_view(job, rec)
        return reply.send(200, { publish_id = id, open_id = rec.open_id, status = "FAILED", final = true,
                                 fail_reason = job.fail_reason or v.error.code, error = v.error,
                                 upload = file and "failed" or nil, post_ids = reply.list(), job = v })
    end
    local st, open_id = fetch_status(who, id, rec)
    if not st then return reply.fail(open_id) end
    local upload = rec.upload
    if not upload and file then upload = st.status == "PROCESSING_UPLOAD" and "running" or "done" end
    local out = { publish_id = id, open_id = open_id, status = st.status, final = FINAL[st.status] == true,
                  fail_reason = st.fail_reason, post_ids = reply.list(st.post_ids),
                  uploaded_bytes = st.uploaded_bytes, downloaded_bytes = st.downloaded_bytes, upload = upload,
                  job = job and _M.job_view(job, rec) or nil }
    if st.status == "FAILED" then
        out.error = reply.error_body(tiktok.errors.from_fail_reason(st.fail_reason, id))
    end
    return reply.send(200, out)
end

-- POST /tiktok/posts/<publish_id>/resume[?account=open_id]: finish an upload
-- that TikTok's upload host refused (the store's journal knows where it
-- stopped). Answers 200 with the status when there is nothing left to do.
function _M.resume()
    local who, id, rec = post_route("POST")
    if not who then return end
    if rec.upload == "running" or rec.upload == "queued" then
        return reply.send(202, { publish_id = id, upload = rec.upload })
    end
    -- The status call checks that this user may use the post's account.
    local st, open_id, src = fetch_status(who, id, rec)
    if not st then return reply.fail(open_id) end
    if st.status ~= "PROCESSING_UPLOAD" then
        return reply.send(200, { publish_id = id, status = st.status, final = FINAL[st.status] == true })
    end
    remember(id, { open_id = open_id, owner = rec.owner or who.user, workspace = rec.workspace or who.workspace,
                   upload = "queued", error = json.null })
    local ok, err = start_upload(id, who, src)
    if not ok then return reply.fail(err) end
    return reply.send(202, { publish_id = id, upload = "queued" })
end

-- The sources whose jobs `who` may see (the one named by ?app=, or all).
local function job_sources(who)
    local list, err = accounts.sources(who)
    if not list then return nil, err end
    return list
end

-- GET /tiktok/jobs: the user's recent jobs (newest first, 20), every TikTok app.
function _M.jobs()
    local who = identity.request("GET")
    if not who then return end
    local srcs, err = job_sources(who)
    if not srcs then return reply.fail(err) end
    local all = {}
    for _, src in ipairs(srcs) do
        local list
        list, err = config.offload("jobs_list", { app = src.app and src.id or nil, as = as_of(who), limit = 20 })
        if not list then return reply.fail(err) end
        for _, j in ipairs(list) do all[#all + 1] = { job = j, src = src } end
    end
    table.sort(all, function(a, b)
        if a.job.created_at ~= b.job.created_at then return a.job.created_at > b.job.created_at end
        return a.job.id > b.job.id
    end)
    local out = reply.list()
    for i = 1, math.min(#all, 20) do
        local j = all[i].job
        local meta = ngx.shared.tiktok_posts:get("job:" .. j.id)
        meta = meta and json.decode(meta) or { app = all[i].src.id }
        out[i] = _M.job_view(j, meta)
    end
    return reply.send(200, { jobs = out })
end

-- The preamble of a route about one job (/tiktok/jobs/<id>...): who is
-- asking, and the job among those of the user's TikTok apps with its app id
-- and meta; nil when the answer has already been sent.
local function job_request(method)
    local who = identity.request(method)
    if not who then return nil end
    local id = reply.path_id("job_id", "^job_%x+$", "a job id")
    if not id then return nil end
    local srcs, err = job_sources(who)
    if not srcs then return nil, reply.fail(err) end
    for _, src in ipairs(srcs) do
        local app_id = src.app and src.id or nil
        local j, jerr = config.offload("jobs_get", { app = app_id, id = id, as = as_of(who) })
        if j then
            local meta = ngx.shared.tiktok_posts:get("job:" .. j.id)
            return who, j, app_id, meta and json.decode(meta) or { app = src.id }
        end
        if jerr and jerr.code ~= "not_found" then return nil, reply.fail(jerr) end
    end
    return nil, reply.fail_with(404, "not_found", "no job " .. id .. " of yours")
end

-- POST /tiktok/jobs/<id>/cancel: a job that TikTok does not have yet
-- (queued, scheduled, waiting for a budget) is cancelled; after its init
-- the post is TikTok's and the answer says so.
function _M.cancel_job()
    local who, j, app_id, meta = job_request("POST")
    if not who then return end
    local err
    j, err = config.offload("jobs_cancel", { app = app_id, id = j.id, as = as_of(who) })
    if not j then return reply.fail(err) end
    return reply.send(200, _M.job_view(j, meta))
end

-- GET /tiktok/jobs/<id>: one job of the user's (any of their TikTok apps).
function _M.job()
    local who, j, _, meta = job_request("GET")
    if not who then return end
    return reply.send(200, _M.job_view(j, meta))
end

-- What the server's own rule says about a (rendered) video URL, so that the
-- page flags an http:// address while it is typed, with the same words a
-- post would get.
local function url_problems(url)
    local out = {}
    if type(url) ~= "string" or url == "" then return out end
    local ok, err = settings.validate({ video_url = url, mode = "inbox" }, nil,
                                      { wording = "labels", audited = config.cfg.audited })
    if ok then return out end
    local list = reply.list()
    for i, p in ipairs(err.problems or {}) do
        if err.fields and err.fields[i] == "video_url" then list[#list + 1] = p end
    end
    if #list > 0 then out.video_url = list end
    return out
end

-- POST /tiktok/preview (JSON { caption, video_url, vars }): the variables
-- the templates use and what they render to, for the form, and
-- field_problems: { video_url = {...} } by the server's own URL rule.
function _M.preview()
    local who, body = json_request()
    if not who then return end
    local problems = {}
    local function problem(_, text) problems[#problems + 1] = text end
    local vars = type(body.vars) == "table" and expand_vars(body.vars, problem) or {}
    local names, seen = reply.list(), {}
    local out = { variables = names }
    for _, field in ipairs({ "video_url", "caption" }) do   -- the order of the form
        local tpl = body[field]
        if type(tpl) == "string" then
            local list, terr = template.variables(tpl)
            if list then
                for _, n in ipairs(list) do
                    if not seen[n] then seen[n] = true; names[#names + 1] = n end
                end
                local s, rerr = template.render(tpl, vars)
                out[field] = s
                if not s and rerr.code ~= "missing_variable" then problems[#problems + 1] = rerr.message end
            else
                problems[#problems + 1] = fields.label(field) .. ": " .. terr.message
            end
        end
    end
    if out.caption then out.caption_utf16 = template.utf16_len(out.caption) end
    out.problems = reply.list(problems)
    out.field_problems = url_problems(out.video_url)
    return reply.send(200, out)
end

return _M
