-- tiktok.thread_impl: the worker-thread side of tiktok.openresty (loaded by
-- the tiktok.thread stub inside the thread). It runs in the
-- Lua VMs of nginx's thread pool (one task at a time per VM, VMs reused), so
-- connections are cached per VM and keep their HTTP connections alive.
local openresty = require "tiktok.openresty"
openresty.in_thread = true

require "tiktok"   -- the whole library, loaded in this VM once
local connection = require "tiktok.connection"
local post = require "tiktok.post"

local pcall, pairs, type, tostring, getmetatable = pcall, pairs, type, tostring, getmetatable

local _M = {}
local conns = {}
local logs

local function get_conn(cfg)
    local conn = conns[cfg.key]
    if conn then return conn end
    local opts = {}
    for k, v in pairs(cfg.opts) do opts[k] = v end
    -- the store the request's connection uses, made again in this VM
    opts.store = require(cfg.store.module)[cfg.store.fn](cfg.store.opts)
    if cfg.log then
        opts.log = function(level, msg) if logs then logs[#logs + 1] = { level, msg } end end
    end
    local err
    conn, err = connection.new(opts)
    if not conn then return nil, err end
    conns[cfg.key] = conn
    return conn
end

-- An error object loses its metatable on the way back: send its fields.
local function plain_err(e)
    if type(e) ~= "table" or getmetatable(e) == nil then return e end
    local out = {}
    for k, v in pairs(e) do
        if type(v) ~= "function" then out[k] = v end
    end
    return out
end

-- Returns status ("ok" or "raise"), result, error, log lines.
function _M.call(cfg, kind, name, a, b)
    logs = {}
    local conn, cerr = get_conn(cfg)
    if not conn then return "ok", nil, plain_err(cerr), logs end
    local ok, r1, r2 = pcall(function()
        if kind == "post" then
            a.connection = conn
            return post._io[name](a)
        end
        local mod = kind == "jobs" and require("tiktok.jobs") or connection
        return mod._io[name](conn, a, b)
    end)
    local l = logs
    logs = nil
    if not ok then return "raise", tostring(r1), nil, l end
    return "ok", r1, plain_err(r2), l
end

return _M
