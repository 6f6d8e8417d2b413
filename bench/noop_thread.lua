-- A module with nothing in it, for bench item 4: what nginx itself costs the
-- event loop when ngx.run_worker_thread needs a new Lua VM, without loading
-- lua-tiktok into it.
return { noop = function() return true end }
