-- bench/lib.lua: what the benchmark scripts share. Every script runs as its
-- own process (so /usr/bin/time sees only that client) under lua5.4 or
-- luajit with LUA_PATH/LUA_CPATH set by bench/run.
--
-- Environment:
--   BENCH_ENV    the sandbox's DIR/env file
--   BENCH_STORE  the account store (tiktok.store.file) written by account.lua
local tiktok = require "tiktok"
local cjson = require "cjson"

local M = {}

function M.read_env(path)
    local env = {}
    local f = assert(io.open(path, "rb"), "cannot read " .. tostring(path))
    for line in f:lines() do
        local k, v = line:match("^([%w_]+)='(.*)'$")
        if not k then k, v = line:match("^export%s+([%w_]+)='(.*)'$") end
        if k then env[k] = v:gsub("'\\''", "'") end
    end
    f:close()
    return env
end

M.env = M.read_env(assert(os.getenv("BENCH_ENV"), "BENCH_ENV is not set"))

-- A connection to the sandbox. scheme = "https" (TIKTOK_API_BASE) or "http"
-- (TIKTOK_API_BASE_PLAIN; the sandbox then hands out http upload URLs).
function M.connect(scheme, extra)
    local e = M.env
    local base = scheme == "http" and e.TIKTOK_API_BASE_PLAIN or e.TIKTOK_API_BASE
    local opts = {
        client_key = e.TIKTOK_CLIENT_KEY, client_secret = e.TIKTOK_CLIENT_SECRET,
        redirect_uri = e.TIKTOK_REDIRECT_URI, api_base = base, auth_base = base,
        ca_file = e.TIKTOK_CA_FILE ~= "" and e.TIKTOK_CA_FILE or nil,
        store = tiktok.store.file({ path = assert(os.getenv("BENCH_STORE"), "BENCH_STORE is not set") }),
        -- the transport is measured here, not the budgets (the sandbox's limits are off too)
        rate_limits = { init = 1000000, creator_info = 1000000, status = 1000000, inbox = 1000000 },
    }
    for k, v in pairs(extra or {}) do opts[k] = v end
    if opts.rate_limits == false then opts.rate_limits = nil end      -- the library's defaults (TikTok's)
    return assert(tiktok.connect(opts))
end

-- The one account in the store (account.lua put it there).
function M.open_id(conn)
    local list = assert(conn:accounts())
    assert(#list == 1, "expected one account in the bench store")
    return list[1].open_id
end

function M.now_ms()
    return tiktok.core.monotonic_ms()
end

-- One JSON object on stdout: the driver collects these lines.
function M.emit(t)
    io.stdout:write(cjson.encode(t), "\n")
    io.stdout:flush()
end

function M.fail(msg)
    io.stderr:write("bench: ", tostring(msg), "\n")
    os.exit(1)
end

return M
