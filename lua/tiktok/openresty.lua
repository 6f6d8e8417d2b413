-- tiktok.openresty: runs the library's blocking calls (libcurl, flock) in
-- nginx worker threads so that an OpenResty handler never blocks the event
-- loop. Used by tiktok.connection and tiktok.post; callers do nothing special.
--
-- nginx.conf needs (main context):   thread_pool tiktok threads=4 max_queue=64;
-- and tiktok.connect{ thread_pool = "tiktok", thread_pool_size = 68 } must
-- match it (threads + max_queue).
--
-- Two workarounds for lua-nginx-module 0.10.23 (Debian 12) are built in:
-- a per-worker semaphore sized to the pool, because a full queue crashes the
-- worker (double free on the overflow path), and a guard light thread that
-- keeps a timer pending while the task runs, because `nginx -s reload` drops
-- requests that only wait on a worker thread.
local errors = require "tiktok.errors"

local type, pairs, error, tostring, rawget = type, pairs, error, tostring, rawget

local _M = { in_thread = false }

-- Phases where a request may yield (ngx.run_worker_thread works there).
local YIELDABLE = { rewrite = true, access = true, content = true, timer = true,
                    ssl_cert = true, ssl_session_fetch = true }

local function ngx_api()
    local ngx = rawget(_G, "ngx")
    if type(ngx) ~= "table" or type(ngx.get_phase) ~= "function" then return nil end
    return ngx
end

-- true: run in a worker thread; false: call directly; nil, err: cannot run here.
function _M.offload()
    if _M.in_thread then return false end
    local ngx = ngx_api()
    if not ngx then return false end
    local phase = ngx.get_phase()
    if YIELDABLE[phase] then return true end
    if phase == "init" then return false end   -- blocking once at startup is fine
    return nil, errors.new("invalid_argument", "tiktok cannot run in nginx's " .. tostring(phase)
                           .. " phase (it would block the worker); call it from a content, access or "
                           .. "rewrite handler, or from ngx.timer.at(0, function() ... end)")
end

local semaphores = {}

local function semaphore(pool, size)
    local s = semaphores[pool]
    if not s then
        s = require("ngx.semaphore").new(size)
        semaphores[pool] = s
    end
    return s
end

local function directives(pool, size)
    return "add to the main context of nginx.conf:  thread_pool " .. pool .. " threads=4 max_queue="
           .. (size > 4 and size - 4 or 64) .. ";  and in http {}:  lua_worker_thread_vm_pool_size 16;"
           .. "  (tiktok.connect{ thread_pool = \"" .. pool .. "\", thread_pool_size = threads + max_queue })"
end

-- Copies a value for the trip into a thread: plain data only.
local function plain(v, path, depth)
    local t = type(v)
    if t == "table" then
        if depth > 20 then error("tiktok: " .. path .. " is nested too deeply", 4) end
        local out = {}
        for k, x in pairs(v) do out[k] = plain(x, path .. "." .. tostring(k), depth + 1) end
        return out
    end
    if t == "function" or t == "userdata" or t == "thread" then
        error("tiktok: " .. path .. " is a " .. t .. ", which cannot cross into an nginx worker thread; "
              .. "callbacks such as on_progress and on_publish are not available in nginx handlers "
              .. "(use tiktok.post{detach = true} and tiktok.status instead)", 4)
    end
    return v
end
_M.plain = plain

-- The plain description of a connection that tiktok.thread rebuilds.
local function thread_cfg(conn)
    if conn._thread_cfg then return conn._thread_cfg end
    local store = conn.store
    if type(store._ctor) ~= "table" then
        return nil, errors.new("invalid_argument", "inside nginx the account store must be "
                               .. "tiktok.store.file{ path = ... } or tiktok.store.postgres{ ... } (shared by "
                               .. "all workers); the memory store and custom stores cannot reach the worker "
                               .. "threads")
    end
    local opts = {}
    for k, v in pairs(conn.opts) do
        if k ~= "store" and k ~= "log" and k ~= "thread_pool" and k ~= "thread_pool_size" then
            opts[k] = plain(v, k, 0)
        end
    end
    local cfg = { opts = opts, store = plain(store._ctor, "store", 0), log = conn.opts.log ~= nil }
    -- The thread VMs cache one connection per configuration: the key is a
    -- digest of every option (the client secret included, so a connection
    -- made after the secret changed never reuses one made before) and the store.
    cfg.key = require("tiktok.core").sha256_hex(assert(require("tiktok.json").encode({ opts, cfg.store,
                                                                                      cfg.log })))
    conn._thread_cfg = cfg
    return cfg
end

-- Runs `kind` ("conn" or "post") function `name` in a worker thread.
-- Returns what the function returned (res or nil, err).
function _M.call(conn, kind, name, a, b)
    local ngx = ngx_api()
    if type(ngx.run_worker_thread) ~= "function" then
        return nil, errors.new("invalid_argument", "this lua-nginx-module has no ngx.run_worker_thread "
                               .. "(needs 0.10.22 or later with nginx built --with-threads)")
    end
    local cfg, cerr = thread_cfg(conn)
    if not cfg then return nil, cerr end
    -- Copy (and refuse callbacks in) the arguments before taking a slot:
    -- nothing may raise between sema:wait and sema:post.
    a, b = plain(a, "argument", 0), plain(b, "argument", 0)
    local pool, size = conn.opts.thread_pool, conn.opts.thread_pool_size
    local sema = semaphore(pool, size)
    local ok, werr = sema:wait(conn.opts.timeout_ms / 1000)
    if not ok then
        return nil, errors.new("busy", "all " .. size .. " tiktok worker-thread slots stayed busy ("
                               .. tostring(werr) .. "); raise threads/max_queue of thread_pool " .. pool,
                               { retryable = true })
    end
    local done = false
    local guard = ngx.thread.spawn(function()
        while not done do ngx.sleep(0.05) end
    end)
    local tok, status, r1, r2, logs, cold = ngx.run_worker_thread(pool, "tiktok.thread", "call", cfg, kind, name,
                                                                 a, b)
    done = true
    ngx.thread.wait(guard)
    sema:post(1)
    if cold then
        ngx.log(ngx.WARN, "tiktok: this request had to create a worker-thread Lua VM (pool ", pool, "), which "
                .. "holds the event loop for a few milliseconds; call tiktok.warm_threads{ pools = {...}, "
                .. "vms = lua_worker_thread_vm_pool_size } from init_worker_by_lua* to create them at start-up")
    end
    if not tok then
        local msg = tostring(status)
        if msg:find("thread pool", 1, true) and msg:find("not found", 1, true) then
            return nil, errors.new("invalid_argument", "nginx has no thread pool \"" .. pool .. "\": "
                                   .. directives(pool, size))
        end
        if msg:find("no available Lua vm", 1, true) then
            return nil, errors.new("busy", "nginx ran out of worker-thread Lua VMs; raise "
                                   .. "lua_worker_thread_vm_pool_size", { retryable = true })
        end
        return nil, errors.new("invalid_argument", "the tiktok worker thread failed: " .. msg)
    end
    if conn.opts.log and type(logs) == "table" then
        for i = 1, #logs do conn.opts.log(logs[i][1], logs[i][2]) end
    end
    if status == "raise" then error(r1, 3) end
    if r1 == nil and type(r2) == "table" then return nil, errors.restore(r2) end
    return r1, r2
end

--- openresty.method(kind, name, fn[, split]) -> function
-- The one place that decides where a library call runs. The result calls
-- fn directly outside nginx (and inside a worker thread); in an nginx
-- handler or timer it sends the call to a worker thread, where
-- tiktok.thread_impl runs fn. kind "conn" (tiktok.connection) or "jobs"
-- (tiktok.jobs): fn takes the connection first (conn, a, b). kind "post":
-- fn takes one options table, and split(opts) checks it and returns the
-- connection and a plain copy to send.
function _M.method(kind, name, fn, split)
    return function(a, b, c)
        local off, err = _M.offload()
        if off == nil then return nil, err end
        if not off then return fn(a, b, c) end
        if kind ~= "post" then return _M.call(a, kind, name, b, c) end
        local conn, args = split(a)
        return _M.call(conn, kind, name, args)
    end
end

-- lua-nginx-module creates a worker-thread Lua VM the first time it needs
-- one and runs the task module's `require` in it on the event loop (about
-- 4-20 ms for the whole library): paid during traffic, that shows as
-- latency spikes. warm_threads (from init_worker_by_lua*) pays it once at
-- start-up: `vms` concurrent no-op tasks, spread over `pools`.
function _M.warm_threads(opts)
    opts = opts or {}
    local ngx = ngx_api()
    if not ngx then return nil, "tiktok.warm_threads runs inside nginx only" end
    local pools = opts.pools or { "tiktok" }
    local vms = opts.vms or 16
    local function warm(premature)
        if premature then return end
        local threads = {}
        for i = 1, vms do
            threads[i] = ngx.thread.spawn(function()
                return ngx.run_worker_thread(pools[(i - 1) % #pools + 1], "tiktok.thread", "ping")
            end)
        end
        local ready, last = 0, nil
        for i = 1, #threads do
            local _, ok, err = ngx.thread.wait(threads[i])
            if ok then ready = ready + 1 else last = err end
        end
        if opts.on_done then opts.on_done(ready, last) end
    end
    return ngx.timer.at(0, warm)
end

return _M
