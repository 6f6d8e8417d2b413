-- tiktok.thread: the module nginx names for lua-tiktok's worker-thread tasks.
-- lua-nginx-module 0.10.23 `require`s the task's module on the event loop the
-- first time a thread VM is used, so this stub is tiny; the library itself
-- (tiktok.thread_impl) is loaded inside the thread, off the event loop.
local _M = {}

-- A thread VM's memory is the most its heap ever held: LuaJIT does not give
-- freed pages back. With the default pause (200) each VM grew to about twice
-- what it keeps alive, while loading the library and then during every job;
-- at 100 a new GC cycle starts as soon as one ends. 16 uploads at once in
-- one nginx worker (16 VMs): 37.1 -> 28.2 MiB PSS (BENCHMARKS.md item 10).
-- The cost is GC work in the threads, off the event loop.
collectgarbage("setpause", 100)

-- Returns what tiktok.thread_impl.call returns, and `cold`: true when this
-- VM had never run a lua-tiktok task (it was created for this request, on
-- the event loop: tiktok.warm_threads at start-up avoids that).
function _M.call(...)
    local cold = package.loaded["tiktok.thread_impl"] == nil
    local status, r1, r2, logs = require("tiktok.thread_impl").call(...)
    return status, r1, r2, logs, cold
end

-- A no-op task for tiktok.warm_threads: it loads the library in the VM.
function _M.ping()
    require "tiktok.thread_impl"
    return true
end

return _M
