-- Handlers of bench/nginx.conf.in (bench item 4).
-- luacheck: globals ngx
local cjson = require "cjson"

local _M = {}
local conns = {}

local function reply(status, t)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode(t))
end

-- tiktok.post from the handler, as an app would call it: the library sends
-- the whole post (creator_info, init, chunk PUTs) through a worker thread.
-- ?nice=N sets the connection's upload_nice (default: the library's, 10
-- inside nginx), ?buf=B its upload_buffer_size (default: libcurl's).
function _M.library()
    local lib = require "bench.lib"
    local tiktok = require "tiktok"
    local nice, buf = tonumber(ngx.var.arg_nice), tonumber(ngx.var.arg_buf)
    local key = tostring(nice) .. "/" .. tostring(buf)
    conns[key] = conns[key] or lib.connect("https", { upload_nice = nice, upload_buffer_size = buf })
    local conn = conns[key]
    local file = ngx.var.arg_file and ngx.unescape_uri(ngx.var.arg_file)
    local res, err = tiktok.post({ connection = conn, video_file = file, privacy = "SELF_ONLY", wait = false })
    if not res then return reply(500, { error = tostring(err) }) end
    return reply(200, { publish_id = res.publish_id, status = res.status })
end

-- The blocking baseline: the C core's chunk PUTs called right here, on the
-- event loop, for an upload URL the driver got from an init.
function _M.direct()
    local core = require "tiktok.core"
    local lib = require "bench.lib"
    local file = ngx.unescape_uri(ngx.var.arg_file)
    local url = ngx.unescape_uri(ngx.var.arg_url)
    local st = assert(core.stat(file))
    local chunk, count = core.plan(st.size)
    local ca = lib.env.TIKTOK_CA_FILE
    local s = core.session({ ca_file = ca ~= "" and ca or nil, connect_timeout_ms = 10000, timeout_ms = 30000,
                             low_speed_ms = 30000 })
    for i = 0, count - 1 do
        local off, len = core.chunk_range(st.size, chunk, count, i)
        local res, kind, msg = s:upload({ url = url, path = file, offset = off, length = len, total = st.size,
                                          content_type = "video/mp4", timeout_ms = 0 })
        if not res or (res.status ~= 206 and res.status ~= 201) then
            s:close()
            return reply(500, { error = res and ("HTTP " .. res.status) or (kind .. ": " .. tostring(msg)) })
        end
    end
    s:close()
    return reply(200, { chunks = count })
end

-- How long the event loop is held when N tasks start at once and each
-- needs a new worker-thread Lua VM (the first calls after nginx starts):
-- nginx makes the VM and require()s the task's module in it right there,
-- before it queues the task. Each call is made from its own light thread,
-- so all N are posted before the loop runs again (each holds its VM), and a
-- timer armed first fires only once the loop is free again. The tasks
-- themselves do next to nothing (tiktok.thread.call without arguments
-- fails at once), so the threads do not compete for the CPU meanwhile.
function _M.firstcalls()
    local ffi = require "ffi"
    pcall(ffi.cdef, "typedef struct { long tv_sec; long tv_nsec; } bench_ts;"
                    .. "int clock_gettime(int clk, bench_ts *ts);")
    local ts = ffi.new("bench_ts")
    local function now()
        ffi.C.clock_gettime(1, ts)
        return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
    end
    local mod, fn, n = ngx.var.arg_mod, ngx.var.arg_fn, tonumber(ngx.var.arg_n) or 4
    local fired
    local t0 = now()
    ngx.timer.at(0, function() fired = now() end)
    local threads = {}
    for i = 1, n do
        threads[i] = ngx.thread.spawn(function() return ngx.run_worker_thread("tiktok", mod, fn) end)
    end
    local posted = now()
    for i = 1, n do ngx.thread.wait(threads[i]) end
    while not fired do ngx.sleep(0.001) end
    return reply(200, { blocked_ms = fired - t0, posting_ms = posted - t0, n = n })
end

-- Durable jobs inside nginx (bench item 10, the memory of one machine):
-- /jobs?store=S&events=E&n=N&c=C runs jobs:work{ concurrency = C } from this
-- handler until the queue of the file store S is empty (N jobs at most),
-- one JSON line per job event appended to E (CLOCK_MONOTONIC ms, as
-- bench/jobs.lua writes them).
function _M.jobs()
    local lib = require "bench.lib"
    local tiktok = require "tiktok"
    local out = assert(io.open(ngx.unescape_uri(ngx.var.arg_events), "a"))
    local conn = lib.connect("https", { store = tiktok.store.file({ path = ngx.unescape_uri(ngx.var.arg_store) }) })
    local n, err = tiktok.jobs({ connection = conn }):work({
        concurrency = tonumber(ngx.var.arg_c), max_jobs = tonumber(ngx.var.arg_n), idle_exit = true,
        on_event = function(job, ev)
            out:write(cjson.encode({ item = "event", t = lib.now_ms(), id = job.id, state = job.state,
                                     type = ev.type, code = ev.code }), "\n")
            out:flush()
        end,
    })
    out:close()
    if not n then return reply(500, { error = tostring(err) }) end
    return reply(200, { jobs = n })
end

-- init_worker (items 10 and 11): the README's tiktok.warm_threads, whose answer
-- /warmed gives (the driver waits for it before measuring).
local warmed

function _M.init_worker()
    require("tiktok").warm_threads({ pools = { "tiktok" }, vms = 16, on_done = function(ready, err)
        warmed = { ready = ready, error = err and tostring(err) or nil }
    end })
end

function _M.warmed()
    return reply(200, warmed or { ready = false })
end

return _M
