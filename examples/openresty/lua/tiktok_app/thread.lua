-- tiktok_app.thread: the module nginx names for the app's own worker-thread
-- tasks (pool tiktok_app). Tiny on purpose: lua-nginx-module requires it on
-- the event loop the first time a thread VM runs it; the work itself
-- (tiktok_app.work, with lua-tiktok) is loaded inside the thread.
local _M = {}

function _M.call(...)
    return require("tiktok_app.work").call(...)
end

return _M
