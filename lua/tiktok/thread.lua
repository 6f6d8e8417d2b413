-- tiktok.thread: the module nginx names for lua-tiktok's worker-thread tasks.
-- lua-nginx-module 0.10.23 `require`s the task's module on the event loop the
-- first time a thread VM is used, so this stub is tiny; the library itself
-- (tiktok.thread_impl) is loaded inside the thread, off the event loop.
local _M = {}

function _M.call(...)
    return require("tiktok.thread_impl").call(...)
end

-- A no-op task for tiktok.warm_threads: it loads the library in the VM.
function _M.ping()
    require "tiktok.thread_impl"
    return true
end

return _M
