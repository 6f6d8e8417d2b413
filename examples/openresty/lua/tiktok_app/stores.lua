-- tiktok_app.stores: the one place that makes the app's stores from the
-- store's description (config.lua's store_spec: a file path or a
-- PostgreSQL URL, and the key), on the event loop and in the app's worker
-- threads alike.
--
--   stores.make(spec)        the app's own store: the environment's TikTok
--                            app's accounts, jobs, and every app configuration
--   stores.make(spec, id)    the store of the stored TikTok app `id`: its
--                            accounts, upload journals, jobs and budgets
--                            (file: app-<id>.json next to the main file;
--                            PostgreSQL: schema <schema>_<id>)
local tiktok = require "tiktok"

local _M = {}

--- stores.make(spec[, app_id]) -> store
function _M.make(spec, app_id)
    if spec.kind == "postgres" then
        local schema = spec.schema
        if app_id then schema = schema .. "_" .. app_id:lower():gsub("[^a-z0-9]", "_") end
        return require("tiktok.store.postgres").new({ conninfo = spec.conninfo, key = spec.key, schema = schema })
    end
    return tiktok.store.file({ path = app_id and (spec.dir .. "/" .. app_id .. ".json") or spec.path,
                               key = spec.key })
end

return _M
