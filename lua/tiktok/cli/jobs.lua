-- tiktok jobs: the durable posts in the store (tiktok.jobs), newest first,
-- one of them in full, or `tiktok jobs cancel ID_OR_KEY`. Also the job
-- formatting `tiktok post --queue` and `tiktok worker` share.
local tiktok = require "tiktok"
local json = require "tiktok.json"
local args = require "tiktok.cli.args"
local output = require "tiktok.cli.output"

local ipairs, tostring, type = ipairs, tostring, type
local concat = table.concat
local format = string.format

local STATES = { "queued", "running", "processing", "published", "inbox", "failed", "cancelled", "ambiguous" }

local _M = {
    summary = "list the queued and finished posts (jobs), show one, or cancel one",
    needs = "connection",
    usage = { "tiktok jobs [--state STATE] [--limit N]", "tiktok jobs ID_OR_KEY",
              "tiktok jobs cancel ID_OR_KEY" },
    text = [[
Jobs are posts queued with `tiktok post --queue` and run by `tiktok worker`
(on any machine that shares the store). States: ]] .. concat(STATES, ", ") .. [[.
A job can be cancelled only before TikTok has the post (before its init).
`ambiguous`: a worker stopped between sending the post to TikTok and saving
TikTok's answer; look at the creator's profile before posting it again.]],
    options = {
        { flag = "--state", metavar = "STATE", help = "only jobs in this state" },
        { flag = "--limit", metavar = "N", help = "at most N jobs (default 50)" },
    },
}
_M.STATES = STATES

local usage = output.usage

-- ------------------------------------------------------------ formatting

local ERROR_FIELDS = { "code", "message", "publish_id", "fail_reason", "retry_after", "http_status", "log_id",
                       "problems" }

--- jobs.job_json(job) -> what --json shows of a job
function _M.job_json(job)
    local j = {}
    for _, k in ipairs({ "id", "key", "state", "publish_id", "status", "fail_reason", "attempts", "run_at",
                         "created_at", "updated_at", "waiting" }) do
        j[k] = job[k]
    end
    j.post_ids = json.array(job.post_ids or {})
    if type(job.error) == "table" then
        local e = {}
        for _, k in ipairs(ERROR_FIELDS) do e[k] = job.error[k] end
        if e.problems then e.problems = json.array(e.problems) end
        j.error = e
    end
    return j
end

local function stamp(epoch)
    if type(epoch) ~= "number" then return "-" end
    return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(epoch))
end
_M.stamp = stamp

--- jobs.job_lines(job, now) -> the lines `tiktok jobs ID` prints
function _M.job_lines(job, now)
    local l = { "job " .. job.id }
    local function add(name, v)
        if v ~= nil and v ~= "" then l[#l + 1] = format("  %-12s %s", name .. ":", tostring(v)) end
    end
    add("key", job.key)
    add("state", job.state)
    if job.state == "queued" or job.state == "processing" then
        add("runs at", job.run_at and (stamp(job.run_at) .. ((job.run_at > now)
            and (" (in " .. output.duration(job.run_at - now) .. ")") or " (due)")))
    end
    add("publish_id", job.publish_id)
    add("status", job.status)
    if job.post_ids and #job.post_ids > 0 then add("post ids", concat(job.post_ids, ", ")) end
    add("fail reason", job.fail_reason)
    add("attempts", job.attempts and format("%d", job.attempts))
    add("created", stamp(job.created_at))
    add("updated", stamp(job.updated_at))
    add("waiting for", job.waiting)
    if type(job.error) == "table" then
        add("error", tostring(job.error.message) .. " (" .. tostring(job.error.code) .. ")")
        for _, p in ipairs(job.error.problems or {}) do l[#l + 1] = "    - " .. p end
    end
    return l
end

--- jobs.job_row(job) -> one line of the list
function _M.job_row(job)
    return format("%-37s %-10s %-20s %s%s", job.id, job.state, stamp(job.created_at),
                  job.publish_id or "-", job.key and ("  key " .. job.key) or "")
end

-- ------------------------------------------------------------- the command

local STATE_SET = {}
for _, s in ipairs(STATES) do STATE_SET[s] = true end

function _M.check(opts, argv)
    local c = { action = "list" }
    if argv[1] == "cancel" and #argv <= 2 then
        if #argv == 1 then return nil, usage("give the job to cancel (tiktok jobs cancel ID_OR_KEY)") end
        c.action, c.id = "cancel", argv[2]
    elseif #argv == 1 then
        c.action, c.id = "show", argv[1]
    elseif #argv > 1 then
        return nil, usage("takes one job id or key (got " .. #argv .. " arguments)")
    end
    if c.action ~= "list" and (opts["--state"] or opts["--limit"]) then
        return nil, usage("--state and --limit are for the list (tiktok jobs without a job)")
    end
    if opts["--state"] and not STATE_SET[opts["--state"]] then
        return nil, usage("--state takes one of " .. concat(STATES, ", ") .. ", got '"
                          .. opts["--state"]:gsub("%c", "?"):sub(1, 40) .. "'")
    end
    local limit, err = args.whole(opts, "--limit", "how many jobs to list")
    if err then return nil, err end
    if limit == 0 then return nil, usage("--limit takes a whole number from 1") end
    c.limit = limit or 50
    return c
end

local function show(out, job, verb)
    if out.json_mode then
        out:json({ job = _M.job_json(job) })
        return true
    end
    if verb then out:say(verb) end
    for _, line in ipairs(_M.job_lines(job, os.time())) do out:say(line) end
    return true
end
_M.show = show

function _M.run(ctx)
    local out, c = ctx.out, ctx.checked
    local jobs = tiktok.jobs({ connection = ctx.conn })
    if c.action == "show" then
        local job, err = jobs:get(c.id)
        if not job then return nil, err end
        return show(out, job)
    elseif c.action == "cancel" then
        local job, err = jobs:cancel(c.id)
        if not job then return nil, err end
        return show(out, job, "Cancelled; the post will not be sent to TikTok.")
    end
    local list, err = jobs:list({ state = ctx.opts["--state"], limit = c.limit })
    if not list then return nil, err end
    if out.json_mode then
        local items = json.array()
        for i, job in ipairs(list) do items[i] = _M.job_json(job) end
        out:json({ jobs = items })
        return true
    end
    if #list == 0 then
        out:say(ctx.opts["--state"] and ("No job is " .. ctx.opts["--state"] .. ".")
                or "No job yet: queue a post with `tiktok post ... --queue`, run it with `tiktok worker`.")
        return true
    end
    out:say(format("%-37s %-10s %-20s %s", "JOB", "STATE", "CREATED (UTC)", "PUBLISH_ID"))
    for _, job in ipairs(list) do out:say(_M.job_row(job)) end
    return true
end

return _M
