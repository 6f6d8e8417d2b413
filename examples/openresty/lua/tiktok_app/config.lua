-- tiktok_app.config: the app's configuration (from the environment, read
-- once in nginx's master by init_by_lua) and each worker's connections.
local tiktok = require "tiktok"
local util = require "tiktok.util"

local error, tostring, tonumber, next, pcall, pairs = error, tostring, tonumber, next, pcall, pairs
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

-- APP_STORE: a file path, or a postgresql:// URL (tiktok.store.postgres,
-- the lua-tiktok-postgres rock; several machines may share it).
-- APP_STORE_KEY: 64 hex characters; tokens and app secrets are then
-- encrypted at rest (AES-256-GCM) in either store.
local function store_spec(text, key)
    if key and not key:match("^" .. ("%x"):rep(64) .. "$") then
        bad("APP_STORE_KEY must be 64 hex characters (32 random bytes: openssl rand -hex 32)")
    end
    if text:match("^postgres") then
        if not text:match("^postgres[q]?[l]?://") then
            bad("APP_STORE must be a file path or a postgresql:// URL")
        end
        local ok, why = pcall(require, "tiktok.store.postgres")
        if not ok then
            bad("APP_STORE is a PostgreSQL URL but the lua-tiktok-postgres module cannot be loaded ("
                .. tostring(why):match("^[^\n]*") .. "); build it with make")
        end
        return { kind = "postgres", conninfo = text, schema = "tiktok", key = key }
    end
    if text:sub(1, 1) ~= "/" then bad("APP_STORE must be an absolute file path or a postgresql:// URL") end
    return { kind = "file", path = text, dir = text:match("^(.*)/[^/]*$"), key = key }
end

--- config.store([suffix]) -> the store: the app's own (accounts of the
-- environment's TikTok app, the app configurations), or, with `suffix`
-- (a stored app configuration's id), that app's accounts, uploads and jobs.
-- Each TikTok app has a store of its own so that its jobs are run only with
-- its own credentials.
function _M.store(suffix)
    return require("tiktok_app.stores").make(cfg.store_spec, suffix)
end

-- The tiktok.connect options every TikTok app shares (hosts, limits, relay).
function _M.shared_opts()
    return {
        api_base = cfg.api_base, auth_base = cfg.auth_base, ca_file = cfg.ca_file,
        rate_limits = cfg.rate_limits, relay_allow_private = cfg.relay_allow_private,
        relay_ca_file = cfg.relay_ca_file,
    }
end

-- TIKTOK_VERIFIED_PREFIXES="https://cdn.example/ domain:example.com": the
-- URL prefixes and domains verified for the environment's TikTok app. A
-- Video URL outside them is relayed at once (relay = auto) instead of being
-- offered to TikTok first.
local function prefixes(text)
    if not text then return nil end
    local out = {}
    for p in text:gmatch("[^%s,]+") do out[#out + 1] = p end
    return out
end

local function check_jobs(c)
    if c.webhook_secret and #c.webhook_secret < 32 then
        bad("APP_WEBHOOK_SECRET must be at least 32 characters (it signs the job events the app sends itself)")
    end
    if not c.job_concurrency or c.job_concurrency < 1 or c.job_concurrency > 16 then
        bad("APP_JOB_CONCURRENCY must be 1 to 16")
    end
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
        -- the TikTok app of the environment (optional: without it every
        -- workspace configures its own on the page)
        client_key = env("TIKTOK_CLIENT_KEY"),
        client_secret = env("TIKTOK_CLIENT_SECRET"),
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
        relay_allow_private = env("APP_RELAY_ALLOW_PRIVATE") == "1",
        -- the relay's video hosts: APP_RELAY_CA_FILE, or (local sandbox,
        -- APP_RELAY_ALLOW_PRIVATE=1) the sandbox's CA like its API's
        relay_ca_file = env("APP_RELAY_CA_FILE")
                        or (env("APP_RELAY_ALLOW_PRIVATE") == "1" and env("TIKTOK_CA_FILE") or nil),
        webhook_secret = env("APP_WEBHOOK_SECRET"),
        verified_prefixes = prefixes(env("TIKTOK_VERIFIED_PREFIXES")),
        job_concurrency = tonumber(env("APP_JOB_CONCURRENCY") or "4"),
    }
    if (c.client_key == nil) ~= (c.client_secret == nil) then
        bad("TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET go together (or leave both unset: each workspace "
            .. "then configures its own TikTok app on the page)")
    end
    check_jobs(c)
    c.store_spec = store_spec(c.store, env("APP_STORE_KEY"))
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
    if c.client_key then
        local conn, err = tiktok.connect(_M.conn_opts("tiktok"))
        if not conn then bad(tostring(err)) end
        conn:close()
    end
    return c
end

local function log(level, msg)
    ngx.log(level == "error" and ngx.ERR or ngx.INFO, "tiktok: ", msg)
end

-- Options common to every connection of this app: the thread pool and the
-- handlers' budget rule (a web handler never waits for a rate budget: it
-- answers 429 with Retry-After; the job workers wait).
local function runtime_opts(o, pool)
    o.thread_pool, o.thread_pool_size, o.log = pool, THREAD_POOL_SIZE, log
    if pool == "tiktok" then o.budget_wait_ms = 0 end
    return o
end

function _M.conn_opts(pool)
    local o = _M.shared_opts()
    o.client_key, o.client_secret, o.redirect_uri = cfg.client_key, cfg.client_secret, cfg.redirect_uri
    o.audited, o.verified_prefixes = cfg.audited, cfg.verified_prefixes
    o.store = _M.store()
    return runtime_opts(o, pool)
end

--- config.conn([kind]) -> this worker's connection of the environment's
-- TikTok app: "main" (pool tiktok: exchange, accounts, creator_info,
-- status) or "upload" (pool tiktok_upload: the job steps, chunk uploads),
-- both on the one store. nil when the environment names no TikTok app.
function _M.conn(kind)
    if not cfg.client_key then return nil end
    if not conns then
        local main = assert(tiktok.connect(_M.conn_opts("tiktok")))
        local upload = assert(tiktok.connect(_M.conn_opts("tiktok_upload")))
        conns = { main = main, upload = upload }
    end
    return conns[kind or "main"]
end

-- ---------------------------------------------------- stored TikTok apps

local app_conns = {}   -- id -> { version, main, upload }

--- config.app_conn(app, kind) -> the connection of a stored TikTok app
-- (the public view from apps:list / apps:get: id, updated_at, owner,
-- workspace), "main" or "upload"; nil, err. Made again when the
-- configuration changed. Like apps:connect: tiktok.connect with the stored
-- client key, secret, redirect URI, scopes and audit flag, on the app's
-- own store.
function _M.app_conn(app, kind)
    local c = app_conns[app.id]
    local version = tostring(app.updated_at) .. "/" .. tostring(app.secret_hint)
    if not c or c.version ~= version then
        -- the stored configuration, read in a store thread (as apps:connect
        -- would read it, but off the event loop)
        local own, err = _M.offload("apps_connect_opts", { id = app.id,
                                                           as = { user = app.owner, workspace = app.workspace } })
        if not own then return nil, err end
        c = { version = version }
        for k, pool in pairs({ main = "tiktok", upload = "tiktok_upload" }) do
            local o = runtime_opts(_M.shared_opts(), pool)
            for ok_, v in pairs(own) do o[ok_] = v end
            o.store = _M.store(app.id)
            -- (lua-tiktok's worker threads key their cached connections by
            -- every option, the secret included: an edited secret is used at once)
            local conn, cerr = tiktok.connect(o)
            if not conn then return nil, cerr end
            c[k] = conn
        end
        app_conns[app.id] = c
    end
    return c[kind or "main"]
end

-- ------------------------------------------- the app's own worker threads

-- Store work of this app (app configurations, jobs) runs in the thread
-- pool tiktok_app, never on the event loop: a file lock or a PostgreSQL
-- query may wait. A semaphore keeps the queue inside max_queue.
local APP_POOL, APP_POOL_SIZE = "tiktok_app", 34     -- threads + max_queue in nginx.conf
local app_sema

--- config.offload(op, args) -> what tiktok_app.work's op returns (res | nil, err)
function _M.offload(op, args)
    if not app_sema then app_sema = require("ngx.semaphore").new(APP_POOL_SIZE) end
    local ok, werr = app_sema:wait(30)
    if not ok then
        return nil, tiktok.errors.new("busy", "the app's store threads stayed busy (" .. tostring(werr) .. ")",
                                      { retryable = true })
    end
    local tok, res, err = ngx.run_worker_thread(APP_POOL, "tiktok_app.thread", "call",
                                                { store = cfg.store_spec, shared = _M.shared_opts() }, op, args)
    app_sema:post(1)
    if not tok then
        return nil, tiktok.errors.new("internal_error", "the app's store thread failed: " .. tostring(res))
    end
    if err ~= nil then return nil, tiktok.errors.restore(err) end
    return res
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
    local ok, err = tiktok.warm_threads({ pools = { "tiktok", "tiktok_upload", "tiktok_app" }, vms = n,
        on_done = function(ready, last_err)
            ngx.update_time()
            ngx.log(ready == n and ngx.NOTICE or ngx.WARN, "tiktok example: ", ready, " of ", n,
                    " worker-thread VMs ready in ", math.floor((ngx.now() - started) * 1000), " ms",
                    last_err and (" (" .. tostring(last_err) .. ")") or "")
        end })
    if not ok then ngx.log(ngx.WARN, "tiktok example: cannot warm the worker threads: ", err) end
end

return _M
