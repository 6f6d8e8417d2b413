-- bench/flow.lua SCHEME FILE
-- One whole tiktok.post as an app makes it (wait = true): token refresh (the
-- driver expired the access token first), creator_info, validation, init,
-- the chunk PUTs and status polling until PUBLISH_COMPLETE, on a fresh
-- connection, so conn:stats() counts exactly this post.
local lib = require "bench.lib"
local tiktok = require "tiktok"

local scheme, file = arg[1], arg[2]
local conn = lib.connect(scheme)
local open_id = lib.open_id(conn)
local polls, seen = 0, {}
local t0 = lib.now_ms()
local res, err = tiktok.post({
    connection = conn, account = open_id, video_file = file, privacy = "SELF_ONLY",
    on_progress = function(ev)
        if ev.stage == "status" then
            polls = polls + 1
            seen[#seen + 1] = string.format("%s after %.0f ms", ev.status, lib.now_ms() - t0)
        end
    end,
})
if not res then lib.fail(err) end
local stats = conn:stats()
lib.emit({ item = "flow", scheme = scheme, publish_id = res.publish_id, status = res.status,
           seconds = (lib.now_ms() - t0) / 1000, connects = stats.connects, requests = stats.requests,
           polls = polls, statuses = seen, poll_ms = conn:_option("poll_ms"),
           chunks = select(2, tiktok.core.plan(tiktok.core.stat(file).size)) })
