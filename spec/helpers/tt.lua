-- Helpers for the library's specs: a connection pointed at a running
-- sandbox, and an account connected through the real OAuth flow.
local tiktok = require "tiktok"

local _M = {}

-- A connection to the sandbox `sb` (spec/helpers/sandbox.lua) with a
-- memory store unless overridden.
function _M.connect(sb, overrides)
    local e = sb.env
    local o = {
        client_key = e.TIKTOK_CLIENT_KEY, client_secret = e.TIKTOK_CLIENT_SECRET,
        redirect_uri = e.TIKTOK_REDIRECT_URI, api_base = e.TIKTOK_API_BASE,
        auth_base = e.TIKTOK_AUTH_BASE, ca_file = e.TIKTOK_CA_FILE,
        store = tiktok.store.memory(), poll_ms = 100, timeout_ms = 10000,
        -- specs that post many times configure the sandbox's limits; the
        -- library's own budgets are exercised by spec/core/budget_spec.lua
        rate_limits = { init = 100000, creator_info = 100000, status = 100000, inbox = 100000 },
    }
    for k, v in pairs(overrides or {}) do
        if v == false and k ~= "audited" then o[k] = nil else o[k] = v end
    end
    return assert(tiktok.connect(o))
end

-- Goes through authorize -> consent (approved without a browser) -> exchange.
function _M.account(conn, opts)
    opts = opts or {}
    local url, state, verifier = conn:authorize_url({ pkce = opts.pkce })
    local cb = assert(conn:sandbox_approve(url, { username = opts.username }))
    assert(cb.code, "no code in the callback: " .. tostring(cb.error))
    return assert(conn:exchange({ code = cb.code, state = cb.state, expected_state = state,
                                  code_verifier = verifier, as = opts.as, access = opts.access }))
end

-- Counts request-log entries whose endpoint or path matches `pattern`.
function _M.count(sb, pattern)
    local n = 0
    for _, e in ipairs(sb:log()) do
        if (e.endpoint and e.endpoint:find(pattern)) or (e.path and e.path:find(pattern)) then n = n + 1 end
    end
    return n
end

return _M
