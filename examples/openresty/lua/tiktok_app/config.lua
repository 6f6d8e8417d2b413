-- tiktok_app.config: the app's configuration (from the environment, read
-- once in nginx's master by init_by_lua) and each worker's connections.
local tiktok = require "tiktok"
local util = require "tiktok.util"

local error, tostring, tonumber, next = error, tostring, tonumber, next
local ngx = ngx

local _M = {}

local THREAD_POOL_SIZE = 68     -- threads + max_queue of both thread_pool lines in nginx.conf
_M.VM_POOL_SIZE = 16            -- lua_worker_thread_vm_pool_size in nginx.conf

local cfg            -- filled by load(), inherited by every worker
local conns          -- this worker's connections { main = ..., upload = ... }

local function env(name, required)
    local v = os.getenv(name)
    if v == "" then v = nil end
    if required and not v then
        error("tiktok example: the environment variable " .. name .. " is not set (examples/openresty/run "
              .. "sets it from DIR/env; with your own nginx.conf add `env " .. name .. ";` and export it)", 0)
    end
    return v
end

local function bad(msg)
    error("tiktok example: " .. msg, 0)
end

-- TIKTOK_RATE_LIMITS="init=6,creator_info=20": the per-account budgets
-- lua-tiktok keeps in the store (tiktok.connect's rate_limits), when your
-- TikTok app's limits are not TikTok's defaults (the specs raise the
-- sandbox's).
local function rate_limits(text)
    if not text then return nil end
    local out = {}
    for name, n in text:gmatch("([%w_]+)=(%d+)") do out[name] = tonumber(n) end
    if not next(out) then bad("TIKTOK_RATE_LIMITS must be name=number pairs, got " .. text) end
    return out
end

--- config.load() -> cfg: reads and checks the configuration; a mistake
-- stops nginx from starting with a message, instead of failing on first use.
function _M.load()
    local app_url = env("APP_URL", true):gsub("/+$", "")
    local u = util.parse_url(app_url)
    if not u or (u.scheme ~= "http" and u.scheme ~= "https") or (u.path ~= "" and u.path ~= "/") then
        bad("APP_URL must be the app's http(s) origin (https://app.example), got " .. app_url)
    end
    if env("APP_TRUST_X_USER") then
        bad("APP_TRUST_X_USER is gone: identity headers are trusted only from APP_TRUSTED_PROXIES with "
            .. "APP_PROXY_SECRET (see examples/openresty/README.md, Who is asking)")
    end
    local c = {
        client_key = env("TIKTOK_CLIENT_KEY", true),
        client_secret = env("TIKTOK_CLIENT_SECRET", true),
        api_base = env("TIKTOK_API_BASE"),
        auth_base = env("TIKTOK_AUTH_BASE"),
        ca_file = env("TIKTOK_CA_FILE"),
        audited = env("TIKTOK_AUDITED") ~= "0",
        app_url = app_url,
        origin = app_url,
        secure = u.scheme == "https",
        store = env("APP_STORE", true),
        files_dir = env("APP_FILES_DIR"),
        signin = env("APP_SIGNIN") or "off",
        proxies = {},
        proxy_secret = env("APP_PROXY_SECRET"),
        rate_limits = rate_limits(env("TIKTOK_RATE_LIMITS")),
    }
    if c.files_dir then c.files_dir = c.files_dir:gsub("/+$", "") end
    for addr in (env("APP_TRUSTED_PROXIES") or ""):gmatch("[^%s,]+") do c.proxies[addr] = true end
    c.trust_proxy = next(c.proxies) ~= nil
    if c.trust_proxy and (not c.proxy_secret or #c.proxy_secret < 32) then
        bad("APP_TRUSTED_PROXIES needs APP_PROXY_SECRET: at least 32 characters that the proxy sends in "
            .. "X-Proxy-Secret (identity headers are trusted only with it)")
    end
    if c.signin ~= "standin" and c.signin ~= "off" then
        bad("APP_SIGNIN must be standin (local development) or off, got " .. c.signin)
    end
    -- The stand-in sign-in takes a name without any credential: it must
    -- never face a network, so it works only for a loopback APP_URL.
    if c.signin == "standin" and not util.is_loopback(u.host) then
        bad("APP_SIGNIN=standin (a sign-in without credentials) is for local development only: APP_URL must "
            .. "be a loopback address; in production put the app behind your proxy (APP_TRUSTED_PROXIES, "
            .. "APP_PROXY_SECRET) or your own sign-in")
    end
    if not c.trust_proxy and c.signin == "off" then
        bad("nobody could sign in: set APP_TRUSTED_PROXIES and APP_PROXY_SECRET (production) or "
            .. "APP_SIGNIN=standin (local development)")
    end
    c.redirect_uri = app_url .. "/tiktok/callback"
    cfg = c
    _M.cfg = c
    -- Build a connection once to check the options (nothing is sent).
    local conn, err = tiktok.connect(_M.conn_opts("tiktok"))
    if not conn then bad(tostring(err)) end
    conn:close()
    return c
end

function _M.conn_opts(pool)
    return {
        client_key = cfg.client_key, client_secret = cfg.client_secret, redirect_uri = cfg.redirect_uri,
        api_base = cfg.api_base, auth_base = cfg.auth_base, ca_file = cfg.ca_file, audited = cfg.audited,
        rate_limits = cfg.rate_limits,
        store = tiktok.store.file({ path = cfg.store }),
        thread_pool = pool, thread_pool_size = THREAD_POOL_SIZE,
        log = function(level, msg) ngx.log(level == "error" and ngx.ERR or ngx.INFO, "tiktok: ", msg) end,
    }
end

--- config.conn([kind]) -> this worker's connection: "main" (pool tiktok:
-- exchange, accounts, creator_info, post init, status) or "upload" (pool
-- tiktok_upload: the chunk uploads), both on the one store.
function _M.conn(kind)
    if not conns then
        local main = assert(tiktok.connect(_M.conn_opts("tiktok")))
        local upload = assert(tiktok.connect(_M.conn_opts("tiktok_upload")))
        conns = { main = main, upload = upload }
    end
    return conns[kind or "main"]
end

--- config.init_worker(): creates every worker-thread Lua VM now, with
-- lua-tiktok loaded in it. lua-nginx-module 0.10.23 makes a thread VM the
-- first time it needs one and runs `require` of the task's module in that
-- new VM *on the event loop* (before posting the task): for lua-tiktok that
-- is ~10-20 ms of loading per VM, up to lua_worker_thread_vm_pool_size
-- times per worker, which showed up as /ping stalls during the first
-- uploads. Here it is paid once, at start-up, before traffic arrives.
function _M.init_worker()
    local n = _M.VM_POOL_SIZE
    local started = ngx.now()
    local ok, err = tiktok.warm_threads({ pools = { "tiktok", "tiktok_upload" }, vms = n,
        on_done = function(ready, last_err)
            ngx.update_time()
            ngx.log(ready == n and ngx.NOTICE or ngx.WARN, "tiktok example: ", ready, " of ", n,
                    " worker-thread VMs ready in ", math.floor((ngx.now() - started) * 1000), " ms",
                    last_err and (" (" .. tostring(last_err) .. ")") or "")
        end })
    if not ok then ngx.log(ngx.WARN, "tiktok example: cannot warm the worker threads: ", err) end
end

return _M
