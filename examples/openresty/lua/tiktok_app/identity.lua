-- tiktok_app.identity: who is asking. The app's own user (and workspace)
-- comes from the request: the X-User header set by the trusted proxy in
-- front of the app (production), or the session of the stand-in sign-in
-- (POST /tiktok/session, local development only).
local tiktok = require "tiktok"
local config = require "tiktok_app.config"
local reply = require "tiktok_app.reply"
local json = require "tiktok.json"

local type, tostring = type, tostring
local ngx = ngx

local _M = {}

local SESSION_COOKIE = "tiktok_app_session"
local SESSION_TTL = 7 * 86400
local PROXY_SECRET_HEADER = "X-Proxy-Secret"

local NAME = "^[%w][%w%._@%-]*$"

--- identity.valid_name(s) -> true for a user or workspace name
function _M.valid_name(s)
    return type(s) == "string" and #s <= 64 and s:match(NAME) ~= nil
end
local valid_name = _M.valid_name
local NAME_RULE = "1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"

-- ------------------------------------------------------- server-side sessions
-- A session is a random id in the cookie and { user, workspace } in the
-- shared dict tiktok_sessions: signing out deletes it, so a copy of the
-- cookie is worth nothing afterwards.

--- identity.start_session(user, workspace) -> Set-Cookie value | nil, err
-- (your own sign-in calls this once it has checked the person's credentials)
function _M.start_session(user, workspace)
    local sid = tiktok.core.random_hex(16)
    local ok, err = ngx.shared.tiktok_sessions:set(sid, json.encode({ user = user, workspace = workspace }),
                                                   SESSION_TTL)
    if not ok then return nil, err end
    return _M.cookie(SESSION_COOKIE, sid, "/tiktok/", SESSION_TTL)
end

local function session_id()
    local sid = ngx.var["cookie_" .. SESSION_COOKIE]
    if type(sid) == "string" and #sid == 32 and sid:match("^%x+$") then return sid end
    return nil
end

local function read_session()
    local sid = session_id()
    local s = sid and ngx.shared.tiktok_sessions:get(sid)
    s = s and json.decode(s)
    if type(s) ~= "table" or not valid_name(s.user) then return nil end
    return { user = s.user, workspace = s.workspace }
end

--- identity.end_session() -> Set-Cookie value that clears the cookie
function _M.end_session()
    local sid = session_id()
    if sid then ngx.shared.tiktok_sessions:delete(sid) end
    return _M.cookie(SESSION_COOKIE, "", "/tiktok/", 0)
end

-- ----------------------------------------------------------- who is asking

-- The proxy's identity headers count only from a configured proxy address
-- that also sends the shared secret.
local function from_trusted_proxy(cfg)
    if not cfg.trust_proxy or not cfg.proxies[ngx.var.remote_addr] then return false end
    local given = ngx.req.get_headers(50)[PROXY_SECRET_HEADER]
    return type(given) == "string" and tiktok.core.consteq(given, cfg.proxy_secret)
end

--- identity.principal() -> { user, workspace }, how | nil, why
-- X-User (and X-Workspace) from the trusted proxy; otherwise the session of
-- the stand-in sign-in. A request that carries identity headers any other
-- way is refused outright (never quietly mixed with a cookie).
function _M.principal()
    local cfg = config.cfg
    local user, ws = ngx.var.http_x_user, ngx.var.http_x_workspace
    if user or ws then
        if not from_trusted_proxy(cfg) then
            return nil, "X-User and X-Workspace are accepted only from the app's trusted proxy (with its "
                        .. "secret); this request is not from it"
        end
        if not valid_name(user) or (ws and not valid_name(ws)) then
            return nil, "X-User and X-Workspace must be " .. NAME_RULE
        end
        return { user = user, workspace = ws }, "proxy"
    end
    if cfg.signin == "standin" then
        local s = read_session()
        if s then return s, "session" end
    end
    return nil
end

local function not_signed_in_text(cfg)
    if cfg.signin == "standin" then return "sign in first: open /tiktok/ and give your name" end
    return "not signed in: this app takes its users from the proxy in front of it"
end

--- identity.need() -> who | nil (after answering 401)
function _M.need()
    local who, why = _M.principal()
    if who then return who end
    reply.fail_with(401, "unauthenticated", why or not_signed_in_text(config.cfg))
    return nil
end

--- identity.request(m) -> who | nil (after answering): how every route
-- that acts for a user begins: the method (405), the user (401) and, for
-- a POST or DELETE, the same-origin check (403).
function _M.request(m)
    if not reply.method(m) then return nil end
    local who = _M.need()
    if not who then return nil end
    if m ~= "GET" and not _M.same_origin() then return nil end
    return who
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

-- GET /tiktok/me: who the app thinks you are, and which sign-in it offers
-- (`signin`: "standin" when the page may show the stand-in sign-in form).
function _M.me()
    if not reply.method("GET") then return end
    local cfg = config.cfg
    local signin = cfg.signin == "standin" and "standin" or nil
    local who, how = _M.principal()
    if not who then
        return reply.send(401, { error = reply.error_body(tiktok.errors.new("unauthenticated",
                                 how or not_signed_in_text(cfg))), signin = signin })
    end
    return reply.send(200, { user = who.user, workspace = who.workspace, via = how, signin = signin })
end

-- POST /tiktok/session (form: user, workspace): the stand-in for your app's
-- own sign-in, for local development only (APP_SIGNIN=standin, loopback
-- APP_URL): a name, no credential. An empty user signs out.
function _M.session()
    if not reply.method("POST") then return end
    if config.cfg.signin ~= "standin" then
        return reply.fail_with(404, "not_found", "the stand-in sign-in is off (APP_SIGNIN); sign in through the "
                               .. "app's own sign-in")
    end
    if not _M.same_origin() then return end
    ngx.req.read_body()
    local form = ngx.req.get_post_args(10) or {}
    local user, ws = form.user, form.workspace
    if type(ws) ~= "string" or ws == "" then ws = nil end
    if user == nil or user == "" then
        _M.add_cookie(_M.end_session())
        return reply.redirect("/tiktok/", 303)
    end
    if not valid_name(user) or (ws and not valid_name(ws)) then
        return reply.fail_with(400, "invalid_argument", "user and workspace must be " .. NAME_RULE)
    end
    local c, err = _M.start_session(user, ws)
    if not c then return reply.fail_with(503, "busy", "cannot sign in now (" .. tostring(err) .. ")") end
    _M.add_cookie(c)
    return reply.redirect("/tiktok/", 303)
end

return _M
