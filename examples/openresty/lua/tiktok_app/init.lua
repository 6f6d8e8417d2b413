-- tiktok_app: the handlers of the OpenResty example (examples/openresty).
--
-- Every lua-tiktok call below is made from a content handler or a timer,
-- where the library runs it in an nginx worker thread: the event loop never
-- waits for TikTok. Two connections share one file store: `main` (thread
-- pool "tiktok") for the short calls (exchange, accounts, creator_info,
-- post init, status) and `upload` (thread pool "tiktok_upload") for the
-- long chunk uploads, so four uploads in flight never hold up a status poll.
--
-- Who is asking: the app's own user, taken from the request (see
-- principal()). An account is stored with that user as its owner and only
-- that user (or the workspace, when connected with access=workspace) can
-- list it, read its creator info, post with it or read its posts' status.
local tiktok = require "tiktok"
local json = require "tiktok_app.json"

local type, pairs, ipairs, tostring, tonumber, pcall, error = type, pairs, ipairs, tostring, tonumber, pcall,
    error
local concat, sort = table.concat, table.sort
local ngx = ngx

local _M = {}

local cfg            -- filled by _M.init() in the master, inherited by every worker
local conns          -- this worker's connections { main = ..., upload = ... }
local page           -- the HTML page, read once

local THREAD_POOL_SIZE = 68     -- threads + max_queue of both thread_pool lines in nginx.conf
local SESSION_COOKIE = "tiktok_app_session"
local STATE_COOKIE = "tiktok_oauth"
local SESSION_TTL = 7 * 86400
local POST_TTL = 86400           -- how long the shared dict remembers a post's account and owner

-- ------------------------------------------------------------------ config

local function env(name, required)
    local v = os.getenv(name)
    if v == "" then v = nil end
    if required and not v then
        error("tiktok example: the environment variable " .. name .. " is not set (examples/openresty/run "
              .. "sets it from DIR/env; with your own nginx.conf add `env " .. name .. ";` and export it)", 0)
    end
    return v
end

local function module_dir()
    local src = debug.getinfo(1, "S").source:gsub("^@", "")
    return src:match("^(.*)/lua/tiktok_app/[^/]*$") or "."
end

-- Reads the configuration (init_by_lua, in the master): a mistake stops
-- nginx from starting with a message, instead of failing on first use.
function _M.init()
    local app_url = env("APP_URL", true):gsub("/+$", "")
    local c = {
        client_key = env("TIKTOK_CLIENT_KEY", true),
        client_secret = env("TIKTOK_CLIENT_SECRET", true),
        api_base = env("TIKTOK_API_BASE"),
        auth_base = env("TIKTOK_AUTH_BASE"),
        ca_file = env("TIKTOK_CA_FILE"),
        audited = env("TIKTOK_AUDITED") ~= "0",
        app_url = app_url,
        origin = app_url:match("^(https?://[^/]+)"),
        secure = app_url:sub(1, 8) == "https://",
        secret = env("APP_SECRET", true),
        store = env("APP_STORE", true),
        files_dir = env("APP_FILES_DIR"),
        trust_x_user = env("APP_TRUST_X_USER") == "1",
    }
    if not c.origin then error("tiktok example: APP_URL must be an http(s) URL, got " .. app_url, 0) end
    if #c.secret < 32 then error("tiktok example: APP_SECRET must be at least 32 characters", 0) end
    c.redirect_uri = app_url .. "/tiktok/callback"
    cfg = c
    -- Build a connection once to check the options (nothing is sent).
    local conn, err = tiktok.connect(_M.conn_opts("tiktok"))
    if not conn then error("tiktok example: " .. tostring(err), 0) end
    conn:close()
    local f = assert(io.open(module_dir() .. "/html/index.html", "rb"))
    page = f:read("*a")
    f:close()
end

-- init_worker_by_lua: create every worker-thread Lua VM now, with
-- lua-tiktok loaded in it. lua-nginx-module 0.10.23 makes a thread VM the
-- first time it needs one and runs `require` of the task's module in that
-- new VM *on the event loop* (before posting the task): for lua-tiktok that
-- is ~10-20 ms of loading per VM, up to lua_worker_thread_vm_pool_size
-- times per worker, which showed up as /ping stalls during the first
-- uploads. Here it is paid once, at start-up, before traffic arrives.
local VM_POOL_SIZE = 16          -- lua_worker_thread_vm_pool_size in nginx.conf

function _M.init_worker()
    local started = ngx.now()
    local ok, err = tiktok.warm_threads({ pools = { "tiktok", "tiktok_upload" }, vms = VM_POOL_SIZE,
        on_done = function(ready, last_err)
            ngx.update_time()
            ngx.log(ready == VM_POOL_SIZE and ngx.NOTICE or ngx.WARN, "tiktok example: ", ready, " of ",
                    VM_POOL_SIZE, " worker-thread VMs ready in ", math.floor((ngx.now() - started) * 1000), " ms",
                    last_err and (" (" .. tostring(last_err) .. ")") or "")
        end })
    if not ok then ngx.log(ngx.WARN, "tiktok example: cannot warm the worker threads: ", err) end
end

function _M.conn_opts(pool)
    return {
        client_key = cfg.client_key, client_secret = cfg.client_secret, redirect_uri = cfg.redirect_uri,
        api_base = cfg.api_base, auth_base = cfg.auth_base, ca_file = cfg.ca_file, audited = cfg.audited,
        store = tiktok.store.file({ path = cfg.store }),
        thread_pool = pool, thread_pool_size = THREAD_POOL_SIZE,
        log = function(level, msg) ngx.log(level == "error" and ngx.ERR or ngx.INFO, "tiktok: ", msg) end,
    }
end

local function conn(kind)
    if not conns then
        local main = assert(tiktok.connect(_M.conn_opts("tiktok")))
        local upload = assert(tiktok.connect(_M.conn_opts("tiktok_upload")))
        conns = { main = main, upload = upload }
    end
    return conns[kind or "main"]
end

-- ----------------------------------------------------------------- replies

local function send(status, body, headers)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Cache-Control"] = "no-store"
    for k, v in pairs(headers or {}) do ngx.header[k] = v end
    local s = assert(json.encode(body))
    ngx.print(s, "\n")
    return ngx.exit(status)
end

-- The HTTP status this app answers for a lua-tiktok error code.
local STATUS = {
    invalid_settings = 422, missing_variable = 422, invalid_template = 422, file = 422,
    unsupported_media = 422, privacy_level_option_mismatch = 422, url_ownership_unverified = 422,
    unaudited_client_can_only_post_to_private_accounts = 422, invalid_params = 422, invalid_param = 422,
    invalid_file_upload = 422, duration_check_failed = 422, file_format_check_failed = 422,
    frame_rate_check_failed = 422, picture_size_check_failed = 422,
    invalid_argument = 400, invalid_request = 400, state_mismatch = 400, invalid_json = 400,
    unauthenticated = 401,
    forbidden = 403, access_denied = 403, token_not_authorized_for_specified_publish_id = 403,
    spam_risk_user_banned_from_posting = 403,
    not_found = 404, invalid_publish_id = 404,
    reauthorize = 409, scope_not_authorized = 409, access_token_invalid = 409, invalid_grant = 409,
    scope_permission_missed = 409,
    rate_limit_exceeded = 429, spam_risk_too_many_posts = 429, spam_risk_too_many_pending_share = 429,
    reached_active_user_cap = 429, spam_risk = 429, spam_risk_text = 422,
    busy = 503,
    timeout = 504,
    network = 502, tls = 502, http = 502, bad_response = 502, internal_error = 502, upload_failed = 502,
    ambiguous = 502, server_error = 502, temporarily_unavailable = 503, invalid_client = 502,
    store = 500,
}
_M.STATUS = STATUS

local function status_for(err)
    local s = STATUS[err.code]
    if s then return s end
    if err.reauth then return 409 end
    if err.http_status and err.http_status >= 500 then return 502 end
    if err.http_status then return 502 end   -- TikTok refused with a code this app does not know
    return 500
end

local function error_body(err)
    local e = { code = err.code, message = err.message, retryable = err.retryable == true }
    if err.problems then
        local p = json.array()
        for i, s in ipairs(err.problems) do p[i] = s end
        e.problems = p
    end
    e.publish_id, e.log_id, e.detail = err.publish_id, err.log_id, err.detail
    e.retry_after, e.fail_reason = err.retry_after, err.fail_reason
    if err.reauth then e.reauth = true end
    return e
end

local function fail(err, status)
    status = status or status_for(err)
    local headers
    if err.retry_after and (status == 429 or status == 503) then
        headers = { ["Retry-After"] = tostring(err.retry_after) }
    elseif status == 503 then
        headers = { ["Retry-After"] = "5" }
    end
    if status >= 500 then ngx.log(ngx.ERR, "tiktok example: ", tostring(err)) end
    return send(status, { error = error_body(err) }, headers)
end

local function fail_with(status, code, message, problems)
    return fail(tiktok.errors.new(code, message, problems and { problems = problems } or nil), status)
end

-- ------------------------------------------------------- who is asking

local NAME = "^[%w][%w%._@%-]*$"
local function valid_name(s)
    return type(s) == "string" and #s <= 64 and s:match(NAME) ~= nil
end

local function hex(s)
    return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local function sign(payload)
    return hex(ngx.hmac_sha1(cfg.secret, "tiktok-example-session|" .. payload))
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

-- The app's user: the X-User header (and X-Workspace) when the app sits
-- behind a proxy that authenticates users and sets it (APP_TRUST_X_USER=1),
-- else the signed session cookie set by POST /tiktok/session.
local function principal()
    if cfg.trust_x_user then
        local user = ngx.var.http_x_user
        if user then
            local ws = ngx.var.http_x_workspace
            if not valid_name(user) or (ws and not valid_name(ws)) then
                return nil, "X-User and X-Workspace must be 1 to 64 letters, digits, '.', '_', '@' or '-'"
            end
            return { user = user, workspace = ws }, "header"
        end
    end
    local s = read_session(ngx.var["cookie_" .. SESSION_COOKIE])
    if s then return s, "cookie" end
    return nil
end

local function need_principal()
    local who, why = principal()
    if who then return who end
    fail_with(401, "unauthenticated", why or ("sign in first: open /tiktok/ and give your name"
              .. (cfg.trust_x_user and ", or send the X-User header" or "")))
    return nil
end

-- Form posts and JSON posts from another site are refused (the cookies are
-- SameSite=Lax already; this also covers a browser that ignores it).
local function same_origin()
    local origin = ngx.var.http_origin
    if origin and origin ~= cfg.origin then
        fail_with(403, "forbidden", "cross-site request refused (Origin " .. origin .. ")")
        return false
    end
    return true
end

local function cookie(name, value, path, max_age)
    return name .. "=" .. value .. "; Path=" .. path .. "; Max-Age=" .. max_age .. "; HttpOnly; SameSite=Lax"
           .. (cfg.secure and "; Secure" or "")
end

local function add_cookie(c)
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

local function as_of(who)
    return { user = who.user, workspace = who.workspace }
end

-- A query argument as one string (nil when absent, repeated or valueless).
local function arg(name)
    local v = ngx.req.get_uri_args(20)[name]
    if type(v) == "string" and v ~= "" then return v end
    return nil
end

-- Shows a failure to a browser on the page rather than as raw JSON.
local function wants_html()
    local accept = ngx.var.http_accept or ""
    return accept:find("text/html", 1, true) ~= nil
end

-- Answers 405 unless the request uses `method`; true when it does.
local function method(m)
    local got = ngx.req.get_method()
    if got == m or (m == "GET" and got == "HEAD") then return true end
    ngx.header["Allow"] = m
    fail_with(405, "invalid_argument", "use " .. m .. " for " .. ngx.var.uri)
    return false
end

-- ------------------------------------------------------------------ routes

function _M.page()
    if not method("GET") then return end
    ngx.header["Content-Type"] = "text/html; charset=utf-8"
    ngx.header["Cache-Control"] = "no-store"
    ngx.header["X-Frame-Options"] = "DENY"
    ngx.header["Content-Security-Policy"] = "default-src 'self'; media-src * blob:; img-src * data:; "
        .. "frame-ancestors 'none'; form-action 'self'"
    ngx.print(page)
end

-- GET /tiktok/me: who the app thinks you are.
function _M.me()
    if not method("GET") then return end
    local who, how = principal()
    if not who then return need_principal() end
    return send(200, { user = who.user, workspace = who.workspace, via = how })
end

-- POST /tiktok/session (form: user, workspace): the example's stand-in for
-- your app's own sign-in. An empty user signs out.
function _M.session()
    if not method("POST") then return end
    if not same_origin() then return end
    ngx.req.read_body()
    local form = ngx.req.get_post_args(10) or {}
    local user, ws = form.user, form.workspace
    if type(ws) ~= "string" or ws == "" then ws = nil end
    if user == nil or user == "" then
        add_cookie(cookie(SESSION_COOKIE, "", "/tiktok/", 0))
        return ngx.redirect("/tiktok/", 303)
    end
    if not valid_name(user) or (ws and not valid_name(ws)) then
        return fail_with(400, "invalid_argument", "user and workspace must be 1 to 64 letters, digits, "
                         .. "'.', '_', '@' or '-'")
    end
    add_cookie(cookie(SESSION_COOKIE, session_value(user, ws), "/tiktok/", SESSION_TTL))
    return ngx.redirect("/tiktok/", 303)
end

-- GET /tiktok/connect[?access=workspace]: off to TikTok's consent page.
function _M.connect()
    if not method("GET") then return end
    local who = need_principal()
    if not who then return end
    local access = arg("access") or "only_me"
    if access ~= "only_me" and access ~= "workspace" then
        return fail_with(400, "invalid_argument", "access must be only_me or workspace")
    end
    if access == "workspace" and not who.workspace then
        return fail_with(400, "invalid_argument", "access=workspace needs a workspace (X-Workspace or the "
                         .. "sign-in form)")
    end
    local url, state = conn():authorize_url({ disable_auto_auth = true })
    add_cookie(cookie(STATE_COOKIE, state .. "." .. access, "/tiktok/callback", 600))
    ngx.header["Cache-Control"] = "no-store"
    return ngx.redirect(url, 302)
end

local function callback_failed(err)
    if wants_html() then
        return ngx.redirect("/tiktok/?" .. ngx.encode_args({ connect_error = err.code, message = err.message }), 302)
    end
    return fail(err)
end

-- GET /tiktok/callback?code=...&state=...: where TikTok sends the browser back.
function _M.callback()
    if not method("GET") then return end
    add_cookie(cookie(STATE_COOKIE, "", "/tiktok/callback", 0))   -- one use only
    local who = need_principal()
    if not who then return end
    local q = ngx.req.get_uri_args(20)
    local oauth_error = type(q.error) == "string" and q.error or nil
    if oauth_error then
        local code = oauth_error:match("^[%w_]+$") and #oauth_error <= 64 and oauth_error or "invalid_request"
        return callback_failed(tiktok.errors.new(code, nil))
    end
    local jar = ngx.var["cookie_" .. STATE_COOKIE] or ""
    local expected, access = jar:match("^(%x+)%.([%w_]+)$")
    local account, err = conn():exchange({
        code = type(q.code) == "string" and q.code or nil,
        state = type(q.state) == "string" and q.state or "",
        expected_state = expected or "",
        as = as_of(who),
        access = (access == "workspace" and who.workspace) and "workspace" or "only_me",
    })
    if not account then return callback_failed(err) end
    ngx.header["Cache-Control"] = "no-store"
    return ngx.redirect("/tiktok/?" .. ngx.encode_args({ connected = account.open_id }), 302)
end

local function account_view(a)
    local scopes = json.array()
    for i, s in ipairs(a.scopes or {}) do scopes[i] = s end
    return { open_id = a.open_id, scopes = scopes, expires_at = a.expires_at,
             refresh_expires_at = a.refresh_expires_at, owner = a.owner, workspace = a.workspace,
             access = a.access }
end

-- GET /tiktok/accounts
function _M.accounts()
    if not method("GET") then return end
    local who = need_principal()
    if not who then return end
    local list, err = conn():accounts({ as = as_of(who) })
    if not list then return fail(err) end
    local out = json.array()
    for i, a in ipairs(list) do out[i] = account_view(a) end
    return send(200, { accounts = out })
end

-- The account named by ?account= (or in a body), else the only one visible.
local function pick_account(who, given)
    if given then return given end
    local list, err = conn():accounts({ as = as_of(who) })
    if not list then return nil, err end
    if #list == 1 then return list[1].open_id end
    if #list == 0 then
        return nil, tiktok.errors.new("not_found", "no TikTok account is connected for you yet; connect one "
                                      .. "with GET /tiktok/connect")
    end
    return nil, tiktok.errors.new("invalid_argument", "several TikTok accounts are connected; say which one "
                                  .. "with account (an open_id from GET /tiktok/accounts)")
end

local PRIVACY_LABELS = {
    PUBLIC_TO_EVERYONE = "Everyone", MUTUAL_FOLLOW_FRIENDS = "Friends",
    FOLLOWER_OF_CREATOR = "Followers", SELF_ONLY = "Only me",
}

local function disclosure(own, third)
    local label, declaration, links = tiktok.settings.disclosure_label(own, third)
    local l = json.array()
    for i, u in ipairs(links or {}) do l[i] = u end
    return { label = label, declaration = declaration, links = l }
end

-- GET /tiktok/creator[?account=open_id]: what the posting form needs, read
-- fresh from TikTok each time (Content Sharing Guidelines).
function _M.creator()
    if not method("GET") then return end
    local who = need_principal()
    if not who then return end
    local open_id, err = pick_account(who, arg("account"))
    if not open_id then return fail(err) end
    local ci
    ci, err = conn():creator_info(open_id, { as = as_of(who) })
    if not ci then return fail(err) end
    local options = json.array()
    local labels = {}
    for i, p in ipairs(ci.privacy_level_options or {}) do
        options[i] = p
        labels[p] = PRIVACY_LABELS[p] or p
    end
    return send(200, {
        account = open_id,
        creator = {
            nickname = ci.nickname, username = ci.username, avatar_url = ci.avatar_url,
            privacy_level_options = options, comment_disabled = ci.comment_disabled == true,
            duet_disabled = ci.duet_disabled == true, stitch_disabled = ci.stitch_disabled == true,
            max_video_post_duration_sec = ci.max_video_post_duration_sec,
        },
        privacy_labels = labels,
        disclosure = {
            none = disclosure(false, false), your_brand = disclosure(true, false),
            branded_content = disclosure(false, true), both = disclosure(true, true),
        },
    })
end

local function read_json_body()
    local ctype = ngx.var.http_content_type or ""
    if not ctype:find("^application/json") then
        return nil, tiktok.errors.new("invalid_argument", "send the post as JSON (Content-Type: application/json)")
    end
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then
        if ngx.req.get_body_file() then
            return nil, tiktok.errors.new("invalid_argument", "the JSON body is too large")
        end
        return nil, tiktok.errors.new("invalid_argument", "the body is empty; send a JSON object")
    end
    local v, msg = json.decode(body)
    if type(v) ~= "table" then
        return nil, tiktok.errors.new("invalid_argument", msg or "the body must be a JSON object")
    end
    return v
end

-- Turns { "a.b": "x" } into { a = { b = "x" } }, so a form can send flat names.
local function expand_vars(vars, problems)
    local out = {}
    for k, v in pairs(vars) do
        if type(k) ~= "string" then
            problems[#problems + 1] = "vars must be an object of names to values"
        elseif v ~= json.null then
            local cur, segs = out, {}
            for s in k:gmatch("[^.]+") do segs[#segs + 1] = s end
            for i = 1, #segs - 1 do
                local s = segs[i]
                if cur[s] == nil then cur[s] = {} end
                if type(cur[s]) ~= "table" then
                    problems[#problems + 1] = "vars: '" .. k .. "' clashes with '" .. s .. "'"
                    break
                end
                cur = cur[s]
            end
            if #segs > 0 then cur[segs[#segs]] = v end
        end
    end
    return out
end

local POST_FIELDS = {
    account = "string", video_url = "string", video_file = "string", photo_urls = "strings",
    caption = "string", title = "string", vars = "object", privacy = "string",
    comments = "boolean", duets = "boolean", stitches = "boolean",
    brand_own = "boolean", brand_third_party = "boolean", ai_generated = "boolean",
    auto_add_music = "boolean", cover_ms = "integer", photo_cover_index = "integer", mode = "string",
}

-- Checks the JSON shapes (the library raises on wrong Lua types, which is
-- right for code and wrong for a request body: here they become a 400).
local function post_request(body)
    local req, problems = {}, {}
    local names = {}
    for k in pairs(body) do names[#names + 1] = tostring(k) end
    sort(names)
    for _, k in ipairs(names) do
        local v, want = body[k], POST_FIELDS[k]
        if not want then
            problems[#problems + 1] = "unknown field '" .. k .. "'"
        elseif v ~= json.null then
            local ok
            if want == "integer" then
                ok = type(v) == "number" and v == math.floor(v) and v >= 0 and v < 2^53
            elseif want == "strings" then
                ok = type(v) == "table" and #v > 0
                for _, x in pairs(ok and v or {}) do ok = ok and type(x) == "string" end
            elseif want == "object" then
                ok = type(v) == "table"
            else
                ok = type(v) == want
            end
            if ok then
                req[k] = v
            else
                problems[#problems + 1] = "'" .. k .. "' must be " .. (want == "strings" and "a list of strings"
                    or want == "object" and "an object" or want == "integer" and "a whole number >= 0"
                    or ("a " .. want))
            end
        end
    end
    if req.mode and req.mode ~= "direct" and req.mode ~= "inbox" then
        problems[#problems + 1] = "'mode' must be direct or inbox"
    end
    if req.vars then req.vars = expand_vars(req.vars, problems) end
    if req.video_file then
        local name = req.video_file
        if not cfg.files_dir then
            problems[#problems + 1] = "video_file is off: start the app with APP_FILES_DIR"
        elseif not name:match("^[%w_][%w%._%-/]*$") or name:find("..", 1, true) or name:find("//", 1, true) then
            problems[#problems + 1] = "video_file must be a file name inside the app's files directory "
                                      .. "(letters, digits, '.', '_', '-', '/'; no '..')"
        else
            req.video_file = cfg.files_dir .. "/" .. name
        end
    end
    if #problems > 0 then
        return nil, tiktok.errors.new("invalid_argument", "the post request is malformed: "
                                      .. concat(problems, "; "), { problems = problems })
    end
    return req
end

local function remember(publish_id, t)
    local dict = ngx.shared.tiktok_posts
    local old = dict:get(publish_id)
    local rec = old and json.decode(old) or {}
    for k, v in pairs(t) do rec[k] = v end
    dict:set(publish_id, assert(json.encode(rec)), POST_TTL)
end

local function recall(publish_id)
    local s = ngx.shared.tiktok_posts:get(publish_id)
    return s and json.decode(s) or nil
end

-- Timer: sends the file of a detached post (the journal in the store says
-- what is left), on the upload thread pool. The handler has answered already.
local function upload_job(premature, publish_id, who)
    if premature then return end   -- nginx is stopping: the journal keeps the rest for POST .../resume
    remember(publish_id, { upload = "running" })
    local ok, res, err = pcall(tiktok.resume, { connection = conn("upload"), publish_id = publish_id,
                                                as = who, wait = false })
    if not ok then
        err = tiktok.errors.new("internal_error", "the upload stopped: " .. tostring(res))
        res = nil
    end
    if res then
        remember(publish_id, { upload = "done" })
    else
        ngx.log(ngx.ERR, "tiktok example: upload of ", publish_id, " failed: ", tostring(err))
        remember(publish_id, { upload = "failed", error = error_body(err) })
    end
end

local function start_upload(publish_id, who)
    local ok, terr = ngx.timer.at(0, upload_job, publish_id, as_of(who))
    if not ok then
        return nil, tiktok.errors.new("busy", "cannot start the upload now (" .. tostring(terr)
                                      .. "); resume it with POST /tiktok/posts/" .. publish_id .. "/resume",
                                      { retryable = true, publish_id = publish_id })
    end
    return true
end

-- POST /tiktok/posts (JSON): validates, starts the post, answers 202 with
-- the publish_id as soon as TikTok has accepted the init.
function _M.create_post()
    if not method("POST") then return end
    local who = need_principal()
    if not who then return end
    if not same_origin() then return end
    local body, err = read_json_body()
    if not body then return fail(err) end
    local req
    req, err = post_request(body)
    if not req then return fail(err) end
    local open_id
    open_id, err = pick_account(who, req.account)
    if not open_id then return fail(err) end
    req.connection, req.account, req.as = conn(), open_id, as_of(who)
    if req.video_file then
        req.detach = true      -- creator_info + validation + init + journal; the bytes go from a timer
    else
        req.wait = false       -- TikTok pulls the URL itself: nothing to wait for here
    end
    local res
    res, err = tiktok.post(req)
    if not res then return fail(err) end
    remember(res.publish_id, { open_id = open_id, owner = who.user, workspace = who.workspace,
                               source = req.video_file and "FILE_UPLOAD" or "PULL_FROM_URL",
                               upload = req.video_file and "queued" or nil })
    if req.video_file then
        local ok, terr = start_upload(res.publish_id, who)
        if not ok then return fail(terr) end
    end
    ngx.header["Location"] = "/tiktok/posts/" .. res.publish_id
    return send(202, { publish_id = res.publish_id, status = res.status, open_id = open_id,
                       privacy = res.privacy, caption = res.caption, mode = res.mode })
end

local FINAL = { PUBLISH_COMPLETE = true, SEND_TO_USER_INBOX = true, FAILED = true }

local function publish_id_arg()
    local id = ngx.var.publish_id
    if not id or #id > 128 or not id:match("^[%w%._~%-]+$") then
        fail_with(400, "invalid_argument", "not a publish_id")
        return nil
    end
    return id
end

-- GET /tiktok/posts/<publish_id>[?account=open_id]
function _M.post_status()
    if not method("GET") then return end
    local who = need_principal()
    if not who then return end
    local id = publish_id_arg()
    if not id then return end
    local rec = recall(id) or {}
    local mine = rec.owner == who.user or (rec.workspace ~= nil and rec.workspace == who.workspace)
    if rec.upload == "failed" and type(rec.error) == "table" and mine then
        return send(200, { publish_id = id, status = "FAILED", final = true, fail_reason = rec.error.code,
                           error = rec.error, upload = "failed", post_ids = json.array() })
    end
    local open_id, err = pick_account(who, arg("account") or rec.open_id)
    if not open_id then return fail(err) end
    local st
    st, err = tiktok.status({ connection = conn(), account = open_id, publish_id = id, as = as_of(who) })
    if not st then return fail(err) end
    local ids = json.array()
    for i, p in ipairs(st.post_ids or {}) do ids[i] = p end
    local out = { publish_id = id, open_id = open_id, status = st.status, final = FINAL[st.status] == true,
                  fail_reason = st.fail_reason, post_ids = ids, uploaded_bytes = st.uploaded_bytes,
                  downloaded_bytes = st.downloaded_bytes, upload = rec.upload }
    if st.status == "FAILED" then
        out.error = error_body(tiktok.errors.from_fail_reason(st.fail_reason, id))
    end
    return send(200, out)
end

-- POST /tiktok/posts/<publish_id>/resume[?account=open_id]: finish an upload
-- that a restart of nginx interrupted (the store's journal knows where it
-- stopped). Answers 200 with the status when there is nothing left to do.
function _M.resume_post()
    if not method("POST") then return end
    local who = need_principal()
    if not who then return end
    if not same_origin() then return end
    local id = publish_id_arg()
    if not id then return end
    local rec = recall(id) or {}
    if rec.upload == "running" or rec.upload == "queued" then
        return send(202, { publish_id = id, upload = rec.upload })
    end
    -- The status call checks that this user may use the post's account.
    local open_id, err = pick_account(who, arg("account") or rec.open_id)
    if not open_id then return fail(err) end
    local st
    st, err = tiktok.status({ connection = conn(), account = open_id, publish_id = id, as = as_of(who) })
    if not st then return fail(err) end
    if st.status ~= "PROCESSING_UPLOAD" then
        return send(200, { publish_id = id, status = st.status, final = FINAL[st.status] == true })
    end
    remember(id, { open_id = open_id, owner = rec.owner or who.user, workspace = rec.workspace or who.workspace,
                   upload = "queued", error = json.null })
    local ok
    ok, err = start_upload(id, who)
    if not ok then return fail(err) end
    return send(202, { publish_id = id, upload = "queued" })
end

-- POST /tiktok/preview (JSON { caption, video_url, vars }): the variables
-- the templates use and what they render to, for the form.
function _M.preview()
    if not method("POST") then return end
    local who = need_principal()
    if not who then return end
    local body, err = read_json_body()
    if not body then return fail(err) end
    local problems = {}
    local vars = type(body.vars) == "table" and expand_vars(body.vars, problems) or {}
    local names, seen = json.array(), {}
    local out = { variables = names }
    for _, field in ipairs({ "caption", "video_url" }) do
        local tpl = body[field]
        if type(tpl) == "string" then
            local list, terr = tiktok.template.variables(tpl)
            if list then
                for _, n in ipairs(list) do
                    if not seen[n] then seen[n] = true; names[#names + 1] = n end
                end
                local s, rerr = tiktok.template.render(tpl, vars)
                out[field] = s
                if not s and rerr.code ~= "missing_variable" then problems[#problems + 1] = rerr.message end
            else
                problems[#problems + 1] = field .. ": " .. terr.message
            end
        end
    end
    if out.caption then out.caption_utf16 = tiktok.template.utf16_len(out.caption) end
    local p = json.array()
    for i, s in ipairs(problems) do p[i] = s end
    out.problems = p
    return send(200, out)
end

return _M
