-- tiktok worker: runs the queued posts (tiktok.jobs) of the store until it
-- is stopped (SIGTERM, or Ctrl-C), printing one line per job event.
--
-- A stop is polite: core.catch_signals records SIGTERM/SIGINT, and
-- jobs:work asks `stop` between jobs and from an upload's progress, so the
-- job in hand is handed back mid-upload (the next worker continues it from
-- the store's journal, with no second init). A second signal kills.
--
-- --processes N runs N workers: this program runs itself N times from a
-- shell (each child in a session of its own through setsid(1), so a
-- terminal's Ctrl-C reaches only this process), passes their lines through, and forwards a
-- stop to every child as one SIGTERM. The shell also prints a tick line every
-- second so the wait for the children's output never blocks past a signal.
local tiktok = require "tiktok"
local core = require "tiktok.core"
local json = require "tiktok.json"
local args = require "tiktok.cli.args"
local output = require "tiktok.cli.output"
local jobs_cmd = require "tiktok.cli.jobs"

local ipairs, pairs, tostring, type, rawget = ipairs, pairs, tostring, type, rawget
local unpack = table.unpack or unpack  -- luacheck: ignore
local concat = table.concat
local format = string.format

local _M = {
    summary = "run queued posts (jobs) until stopped with SIGTERM or Ctrl-C",
    needs = "connection",
    usage = { "tiktok worker [--max-jobs N] [--idle-exit] [--processes N]" },
    text = [[
Takes the due jobs of the store (queued with `tiktok post --queue`) one at a
time, follows each post until TikTok's final answer and prints one line per
job event: the time, the job, the event, its state and publish_id. Any
number of workers may share a store, on one machine (file store) or several
(PostgreSQL). SIGTERM or Ctrl-C stops it politely: the job in hand is handed
back (mid-upload too) and the next worker continues it; exit 0. With --json,
one JSON object per line.]],
    options = {
        { flag = "--max-jobs", metavar = "N", help = "stop after N job runs (per process)" },
        { flag = "--idle-exit",
          help = "exit once no job is due (posts TikTok is processing are followed to the end first)" },
        { flag = "--processes", metavar = "N", help = "run N worker processes (default 1)" },
    },
}

local usage = output.usage
local MAX_PROCESSES = 64

function _M.check(opts, argv)
    local ok, err = args.none(argv)
    if not ok then return nil, err end
    local c = {}
    c.max_jobs, err = args.whole(opts, "--max-jobs", "job runs")
    if err then return nil, err end
    if c.max_jobs == 0 then return nil, usage("--max-jobs takes a whole number from 1") end
    c.processes, err = args.whole(opts, "--processes", "worker processes")
    if err then return nil, err end
    c.processes = c.processes or 1
    if c.processes < 1 or c.processes > MAX_PROCESSES then
        return nil, usage("--processes takes a whole number from 1 to " .. MAX_PROCESSES)
    end
    c.idle_exit = opts["--idle-exit"] == true
    return c
end

-- ------------------------------------------------------------ one process

local EVENT_FIELDS = { "publish_id", "attempt", "code", "status", "message" }

--- worker.event_line(job, ev, now) -> the line printed for a job event
function _M.event_line(job, ev, now)
    local parts = { jobs_cmd.stamp(now), job.id, "event=" .. tostring(ev.type), "state=" .. tostring(job.state) }
    for _, k in ipairs(EVENT_FIELDS) do
        local v = ev[k]
        if k == "publish_id" then v = v or job.publish_id end
        if v ~= nil then
            v = type(v) == "number" and format("%d", v) or tostring(v)
            if v:find("[%s\"]") then v = '"' .. v:gsub('"', "'") .. '"' end
            parts[#parts + 1] = k .. "=" .. v
        end
    end
    if job.key then parts[#parts + 1] = "key=" .. tostring(job.key):gsub("%s", "_") end
    return concat(parts, " ")
end

local function say(ctx, text, obj)
    if ctx.out.json_mode then ctx.out:json(obj) else ctx.out:say(text) end
end

-- Seconds until the earliest run of a job TikTok is processing (followed
-- to the end even with --idle-exit), or nil when there is none.
local function next_processing(jobs)
    local list = jobs:list({ state = "processing" })
    local soonest
    for _, job in ipairs(list or {}) do
        local wait = (job.run_at or 0) - os.time()
        if not soonest or wait < soonest then soonest = wait end
    end
    if soonest and soonest < 0 then soonest = 0 end
    return soonest
end

local function run_here(ctx, c)
    local jobs = tiktok.jobs({ connection = ctx.conn })
    core.catch_signals({ "TERM", "INT" })
    local stopped
    local function stop()
        if not stopped then
            local sig = core.signalled()
            if sig then
                stopped = sig
                say(ctx, "worker: SIG" .. sig .. ": stopping; the job in hand is handed back",
                    { worker = { stopping = "SIG" .. sig } })
            end
        end
        return stopped ~= nil
    end
    local function on_event(job, ev)
        local e = {}
        for k, v in pairs(ev) do e[k] = v end
        if type(e.post_ids) == "table" then e.post_ids = json.array({ unpack(e.post_ids) }) end
        say(ctx, _M.event_line(job, ev, os.time()), { job = jobs_cmd.job_json(job), event = e })
    end
    say(ctx, "worker: running the jobs of " .. tostring(ctx.store.label) .. "; stop with SIGTERM or Ctrl-C",
        { worker = { started = true, store = ctx.store.label } })
    local total = 0
    while true do
        local n, err = jobs:work({ max_jobs = c.max_jobs and (c.max_jobs - total), idle_exit = c.idle_exit,
                                   on_event = on_event, stop = stop })
        if not n then return nil, err end
        total = total + n
        if stop() or not c.idle_exit or (c.max_jobs and total >= c.max_jobs) then break end
        local wait = next_processing(jobs)
        if not wait then break end
        local deadline = core.monotonic_ms() + wait * 1000
        while core.monotonic_ms() < deadline and not stop() do core.sleep_ms(100) end
        if stopped then break end
    end
    say(ctx, format("worker: %s after %d job run%s", stopped and "stopped" or "done", total, total == 1 and "" or "s"),
        { worker = { stopped = stopped and ("SIG" .. stopped) or json.null, runs = total } })
    return true
end

-- ------------------------------------------------------- N processes

local q = function(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The command that started this program: the interpreter with its options,
-- then the script (bin/tiktok, or LuaRocks' wrapper's target).
function _M.self_command()
    local a = rawget(_G, "arg")
    if type(a) ~= "table" or type(a[0]) ~= "string" then return nil end
    local first = 0
    while a[first - 1] ~= nil do first = first - 1 end
    local parts = {}
    for i = first, 0 do parts[#parts + 1] = q(a[i]) end
    return concat(parts, " ")
end

-- The shell script that runs the children (see the top of this file).
function _M.supervisor_script(child, n)
    local lines = { "pids=''", "s=''; command -v setsid >/dev/null 2>&1 && s=setsid" }
    for _ = 1, n do
        lines[#lines + 1] = "$s " .. child .. " & pids=\"$pids $!\""
    end
    lines[#lines + 1] = "(while sleep 1; do echo '@@tick' || exit 0; done) & ticker=$!"
    lines[#lines + 1] = "trap '' INT TERM"
    lines[#lines + 1] = "echo \"@@pids $pids\""
    lines[#lines + 1] = "rc=0; for p in $pids; do wait $p; s=$?; [ $s -gt $rc ] && rc=$s; done"
    lines[#lines + 1] = "kill $ticker 2>/dev/null; echo \"@@exit $rc\""
    return concat(lines, "\n")
end

local function child_command(ctx, c, self_cmd)
    local parts = { self_cmd }
    for _, f in ipairs(ctx.files) do parts[#parts + 1] = "--config " .. q(f) end
    if ctx.store_arg then parts[#parts + 1] = "--store " .. q(ctx.store_arg) end
    if ctx.out.json_mode then parts[#parts + 1] = "--json" end
    parts[#parts + 1] = "worker"
    if c.max_jobs then parts[#parts + 1] = format("--max-jobs %d", c.max_jobs) end
    if c.idle_exit then parts[#parts + 1] = "--idle-exit" end
    return concat(parts, " ")
end

local function supervise(ctx, c)
    local self_cmd = ctx.self_command or _M.self_command()
    if not self_cmd then
        return nil, usage("--processes needs to know the program that runs tiktok (the global `arg`); "
                          .. "start the processes yourself instead")
    end
    core.catch_signals({ "TERM", "INT" })
    local p = assert(io.popen(_M.supervisor_script(child_command(ctx, c, self_cmd), c.processes), "r"))
    local pids, rc, asked, forwarded
    local function forward()
        asked = asked or core.signalled() ~= nil    -- signalled() answers once: latch it
        if asked and pids and not forwarded then
            forwarded = true
            os.execute("kill -TERM " .. pids .. " 2>/dev/null")
        end
    end
    while true do
        forward()
        local line, msg = p:read("*l")
        if line then
            if line:sub(1, 2) ~= "@@" then
                ctx.out:say(line)
            elseif line:match("^@@pids ") then
                pids = line:match("^@@pids%s+(.-)%s*$")
                if not pids:match("^[%d ]+$") then pids = nil end
            elseif line:match("^@@exit ") then
                rc = tonumber(line:match("^@@exit (%d+)"))
            end
        elseif not (msg and msg:lower():find("interrupted", 1, true)) then
            break    -- the end of the output (a signal only interrupts the read)
        end
    end
    p:close()
    if rc == nil then rc = 1 end
    ctx.exit_code = rc
    return true
end

function _M.run(ctx)
    local c = ctx.checked
    if c.processes > 1 then return supervise(ctx, c) end
    return run_here(ctx, c)
end

return _M
