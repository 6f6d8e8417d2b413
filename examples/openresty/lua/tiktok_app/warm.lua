-- tiktok_app.warm: runs only inside the Lua VMs of nginx's worker threads
-- (see tiktok_app.init_worker). Loading it loads lua-tiktok's thread side,
-- so that later calls find it in package.loaded.
require "tiktok.thread"

return {
    noop = function() return true end,
}
