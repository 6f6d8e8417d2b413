-- bench/jobs.lua (bench item 10, issue 15): tiktok.jobs against the sandbox.
--   jobs.lua worker STOPFILE LIMITS
--       A worker process: jobs:work{} until STOPFILE exists, on the shared
--       file store BENCH_STORE; one JSON line per job event, with the time
--       (CLOCK_MONOTONIC ms, the same clock in every process). LIMITS
--       "default": the library's rate_limits (TikTok's, kept in the store);
--       "off": raised (the memory run, where the sandbox's are raised too).
--   jobs.lua enqueue FILE N [OPEN_ID...]
--       Enqueues N posts of FILE (a video_file job each), round-robin over
--       the accounts given (default: every account in the store); one JSON
--       line per job with the time of its enqueue.
local lib = require "bench.lib"
local tiktok = require "tiktok"
local cjson = require "cjson"

local mode = arg[1]

if mode == "worker" then
    local stopfile, limits = arg[2], arg[3] or "default"
    local extra = {}
    if limits == "default" then extra.rate_limits = false end      -- false: the library's own (TikTok's)
    local conn = lib.connect("https", extra)
    local jobs = tiktok.jobs({ connection = conn })
    local function stop()
        local f = io.open(stopfile, "rb")
        if f then f:close() return true end
        return false
    end
    local n, err = jobs:work({
        stop = stop,
        on_event = function(job, ev)
            local ok, line = pcall(cjson.encode, { item = "event", t = lib.now_ms(), id = job.id, state = job.state,
                                                   type = ev.type, code = ev.code, status = ev.status })
            if ok then io.stdout:write(line, "\n") io.stdout:flush() end
        end,
    })
    if not n then lib.fail(err) end
    lib.emit({ item = "worker", jobs = n })
elseif mode == "enqueue" then
    local file, n = arg[2], tonumber(arg[3])
    local conn = lib.connect("https")
    local jobs = tiktok.jobs({ connection = conn })
    local accounts = {}
    for i = 4, #arg do accounts[#accounts + 1] = arg[i] end
    if #accounts == 0 then
        for _, a in ipairs(assert(conn:accounts())) do accounts[#accounts + 1] = a.open_id end
    end
    for i = 1, n do
        local t = lib.now_ms()
        local job, err = jobs:enqueue({ post = { account = accounts[(i - 1) % #accounts + 1], video_file = file,
                                                 privacy = "SELF_ONLY" } })
        if not job then lib.fail(err) end
        lib.emit({ item = "enqueued", t = t, id = job.id, account = accounts[(i - 1) % #accounts + 1] })
    end
else
    lib.fail("usage: jobs.lua worker STOPFILE [LIMITS] | enqueue FILE N [OPEN_ID...]")
end
