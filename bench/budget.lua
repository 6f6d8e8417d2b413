-- bench/budget.lua SECONDS FILE  (bench item 9, issue 14)
-- One of the processes that post (init) and poll (status) for one account
-- as fast as they can for SECONDS, against the sandbox's real rate limits,
-- with the library's default rate_limits kept in the shared file store
-- BENCH_STORE (every process's calls count in the one budget). A call whose
-- budget is used up waits at most budget_wait_ms (2 s), then the process
-- goes on to the other call: it never idles while a budget is free. Prints
-- one JSON line with what it did; the driver counts what reached the
-- sandbox from its request log.
local lib = require "bench.lib"
local tiktok = require "tiktok"

local seconds, file = tonumber(arg[1]), arg[2]
local conn = lib.connect("https", { rate_limits = false, budget_wait_ms = 2000 })
local open_id = lib.open_id(conn)
local stop = lib.now_ms() + seconds * 1000
local n = { post = 0, status = 0, post_held = 0, status_held = 0, other = 0 }
local errs = {}
local last
local function count_err(what, err)
    if err.code == "rate_limit_exceeded" then
        n[what .. "_held"] = n[what .. "_held"] + 1
    else
        n.other = n.other + 1
        errs[err.code] = (errs[err.code] or 0) + 1
    end
end
while lib.now_ms() < stop do
    local res, err = tiktok.post({ connection = conn, account = open_id, video_file = file, privacy = "SELF_ONLY",
                                   wait = false })
    if res then n.post, last = n.post + 1, res.publish_id else count_err("post", err) end
    if lib.now_ms() >= stop then break end
    if last then
        res, err = tiktok.status({ connection = conn, account = open_id, publish_id = last })
        if res then n.status = n.status + 1 else count_err("status", err) end
    end
end
lib.emit({ item = "budget", posts = n.post, statuses = n.status, post_held = n.post_held,
           status_held = n.status_held, other_errors = n.other, errors = errs })
