-- tiktok_app.identity: who is asking. The app's own user (and workspace)
-- comes from the request: the X-User header behind a trusted proxy, or the
-- session cookie set by the stand-in sign-in (POST /tiktok/session).
local tiktok = require "tiktok"
local config = require "tiktok_app.config"
local reply = require "tiktok_app.reply"

local type, tonumber = type, tonumber
local ngx = ngx

local _M = {}

local SESSION_COOKIE = "tiktok_app_session"
local SESSION_TTL = 7 * 86400

local NAME = "^[%w][%w%._@%-]*$"

--- identity.valid_name(s) -> true for a user or workspace name
function _M.valid_name(s)
    return type(s) == "string" and #s <= 64 and s:match(NAME) ~= nil
end
local valid_name = _M.valid_name
local NAME_RULE = "1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"

local function hex(s)
    return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local function sign(payload)
    return hex(ngx.hmac_sha1(config.cfg.secret, "tiktok-example-session|" .. payload))
end

local function session_value(user, workspace)
    local payload = user .. "~" .. (workspace or "") .. "~" .. ngx.time()
    return payload .. "~" .. sign(payload)
end

local function read_session(value)
    if type(value) ~= "string" then return nil end
    local user, ws, ts, mac = value:match("^([^~]+)~([^~]*)~(%d+)~(%x+)$")
    if not user then return nil end
    local payload = user .. "~" .. ws .. "~" .. ts
    if not tiktok.core.consteq(mac, sign(payload)) then return nil end
    if tonumber(ts) + SESSION_TTL < ngx.time() then return nil end
    if not valid_name(user) or (ws ~= "" and not valid_name(ws)) then return nil end
    return { user = user, workspace = ws ~= "" and ws or nil }
end

--- identity.principal() -> { user, workspace }, how | nil, why
function _M.principal()
    local cfg = config.cfg
    if cfg.trust_x_user then
        local user = ngx.var.http_x_user
        if user then
            local ws = ngx.var.http_x_workspace
            if not valid_name(user) or (ws and not valid_name(ws)) then
                return nil, "X-User and X-Workspace must be " .. NAME_RULE
            end
            return { user = user, workspace = ws }, "header"
        end
    end
    local s = read_session(ngx.var["cookie_" .. SESSION_COOKIE])
    if s then return s, "cookie" end
    return nil
end

--- identity.need() -> who | nil (after answering 401)
function _M.need()
    local who, why = _M.principal()
    if who then return who end
    reply.fail_with(401, "unauthenticated", why or ("sign in first: open /tiktok/ and give your name"
                    .. (config.cfg.trust_x_user and ", or send the X-User header" or "")))
    return nil
end

--- identity.as_of(who) -> the `as` table lua-tiktok's access checks take
function _M.as_of(who)
    return { user = who.user, workspace = who.workspace }
end

--- identity.same_origin() -> true, or false after answering 403: state-changing
-- requests from another site are refused (the cookies are SameSite=Lax
-- already; this also covers a browser that ignores it).
function _M.same_origin()
    local origin = ngx.var.http_origin
    if origin and origin ~= config.cfg.origin then
        reply.fail_with(403, "forbidden", "cross-site request refused (Origin " .. origin .. ")")
        return false
    end
    return true
end

--- identity.cookie(name, value, path, max_age) -> a Set-Cookie value
function _M.cookie(name, value, path, max_age)
    return name .. "=" .. value .. "; Path=" .. path .. "; Max-Age=" .. max_age .. "; HttpOnly; SameSite=Lax"
           .. (config.cfg.secure and "; Secure" or "")
end

--- identity.add_cookie(c): one more Set-Cookie header
function _M.add_cookie(c)
    local cur = ngx.header["Set-Cookie"]
    if cur == nil then
        ngx.header["Set-Cookie"] = c
    elseif type(cur) == "table" then
        cur[#cur + 1] = c
        ngx.header["Set-Cookie"] = cur
    else
        ngx.header["Set-Cookie"] = { cur, c }
    end
end

-- GET /tiktok/me: who the app thinks you are.
function _M.me()
    if not reply.method("GET") then return end
    local who, how = _M.principal()
    if not who then return _M.need() end
    return reply.send(200, { user = who.user, workspace = who.workspace, via = how })
end

-- POST /tiktok/session (form: user, workspace): the example's stand-in for
-- your app's own sign-in. An empty user signs out.
function _M.session()
    if not reply.method("POST") then return end
    if not _M.same_origin() then return end
    ngx.req.read_body()
    local form = ngx.req.get_post_args(10) or {}
    local user, ws = form.user, form.workspace
    if type(ws) ~= "string" or ws == "" then ws = nil end
    if user == nil or user == "" then
        _M.add_cookie(_M.cookie(SESSION_COOKIE, "", "/tiktok/", 0))
        return reply.redirect("/tiktok/", 303)
    end
    if not valid_name(user) or (ws and not valid_name(ws)) then
        return reply.fail_with(400, "invalid_argument", "user and workspace must be " .. NAME_RULE)
    end
    _M.add_cookie(_M.cookie(SESSION_COOKIE, session_value(user, ws), "/tiktok/", SESSION_TTL))
    return reply.redirect("/tiktok/", 303)
end

return _M
