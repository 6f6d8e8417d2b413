-- tiktok_app.work: what the app runs in its own worker threads (pool
-- tiktok_app): the store work of app configurations and jobs. Each call gets
-- the store's description and makes (and keeps, per thread VM) the store
-- and the tiktok.apps / tiktok.jobs objects from it.
--
-- Nothing here is called on nginx's event loop: a file lock, a PostgreSQL
-- query or the check of a new client secret with TikTok may take a while.
require("tiktok.openresty").in_thread = true   -- lua-tiktok calls run right here
local tiktok = require "tiktok"

local pcall, pairs, ipairs, type, tostring = pcall, pairs, ipairs, type, tostring

local _M = {}

local stores, apps_objs, jobs_objs = {}, {}, {}

local function store_id(spec, suffix)
    return (spec.path or spec.conninfo) .. "|" .. tostring(suffix)
end

local function make_store(spec, suffix)
    local id = store_id(spec, suffix)
    if not stores[id] then stores[id] = require("tiktok_app.stores").make(spec, suffix) end
    return stores[id]
end

local function apps_of(ctx)
    local id = store_id(ctx.store)
    if not apps_objs[id] then
        apps_objs[id] = tiktok.apps({ store = make_store(ctx.store), connect = ctx.shared })
    end
    return apps_objs[id]
end

-- tiktok.jobs only reads the store (and checks for a connection): enqueue,
-- get, list and cancel never talk to TikTok, so the connection's
-- credentials are placeholders here.
local function jobs_of(ctx, suffix)
    local id = store_id(ctx.store, suffix)
    if not jobs_objs[id] then
        local conn = assert(tiktok.connect({ client_key = "jobs-store-only", client_secret = "unused",
                                             redirect_uri = "https://127.0.0.1/unused",
                                             store = make_store(ctx.store, suffix) }))
        jobs_objs[id] = tiktok.jobs({ connection = conn })
    end
    return jobs_objs[id]
end

local OPS = {}

function OPS.apps_list(ctx, a) return apps_of(ctx):list({ as = a.as }) end
function OPS.apps_get(ctx, a) return apps_of(ctx):get(a.id, { as = a.as }) end
function OPS.apps_save(ctx, a) return apps_of(ctx):save(a.opts) end
function OPS.apps_delete(ctx, a) return apps_of(ctx):delete(a.id, { as = a.as }) end
function OPS.apps_check(ctx, a) return apps_of(ctx):check(a.id, { as = a.as }) end

-- What tiktok.connect needs of a stored app (what apps:connect takes from
-- the record), for the worker's connection: read here, in the thread, so
-- the event loop never waits for the store. The secret stays in memory.
function OPS.apps_connect_opts(ctx, a)
    local pub, err = apps_of(ctx):get(a.id, { as = a.as })
    if not pub then return nil, err end
    local rec
    rec, err = make_store(ctx.store):get_app(a.id)
    if not rec then return nil, err or { code = "not_found", message = "the TikTok app configuration is gone" } end
    return { client_key = rec.client_key, client_secret = rec.client_secret, redirect_uri = rec.redirect_uri,
             scopes = rec.scopes, audited = rec.audited == true }
end

-- Every stored app (for the job workers): id, owner, workspace, version;
-- never a secret.
function OPS.apps_all(ctx)
    local all, err = make_store(ctx.store):list_apps()
    if not all then return nil, err end
    local out = {}
    for _, rec in ipairs(all) do
        out[#out + 1] = { id = rec.id, owner = rec.owner, workspace = rec.workspace, access = rec.access,
                          updated_at = rec.updated_at,
                          secret_hint = rec.client_secret and ("..." .. rec.client_secret:sub(-4)) or nil }
    end
    return out
end

function OPS.jobs_enqueue(ctx, a) return jobs_of(ctx, a.app):enqueue(a.opts) end
function OPS.jobs_get(ctx, a) return jobs_of(ctx, a.app):get(a.id, { as = a.as }) end
function OPS.jobs_list(ctx, a) return jobs_of(ctx, a.app):list({ as = a.as, limit = a.limit }) end
function OPS.jobs_cancel(ctx, a) return jobs_of(ctx, a.app):cancel(a.id, { as = a.as }) end

-- A job event this app sent itself: signature, age, and (with the store's
-- claim_once) never the same delivery twice.
function OPS.webhook_verify(ctx, a)
    return require("tiktok.webhook").verify(a.signature, a.body, { client_secret = a.secret,
                                                                 store = make_store(ctx.store) })
end

-- Metatables (errors, JSON arrays) do not cross back: plain copies.
local function plain(e, depth)
    if type(e) ~= "table" then return e end
    depth = depth or 0
    if depth > 20 then return nil end
    local out = {}
    for k, v in pairs(e) do
        if type(v) ~= "function" and type(v) ~= "userdata" then out[k] = plain(v, depth + 1) end
    end
    return out
end

--- work.call(ctx, op, args) -> res, err (plain tables)
function _M.call(ctx, op, args)
    local fn = OPS[op]
    if not fn then return nil, { code = "internal_error", message = "no such app task: " .. tostring(op) } end
    local ok, res, err = pcall(fn, ctx, args or {})
    if not ok then
        return nil, { code = "internal_error", message = "the app task " .. op .. " failed: " .. tostring(res) }
    end
    return plain(res), plain(err)
end

return _M
