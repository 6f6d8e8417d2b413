-- tiktok_app.apps: the settings section, the no-code block's "Custom OAuth
-- Provider Configuration": each workspace (or user) adds, edits and removes
-- its own TikTok app (Client key, Client secret, the Redirect URL to copy),
-- runs the check, then connects accounts with it (GET /tiktok/connect?app=).
--
-- The configurations live in the app's store (lua-tiktok's tiktok.apps):
-- the secret is write-only (no answer returns it, only `secret_hint`, its
-- last characters), encrypted at rest when the store has a key, and a new
-- secret is checked with TikTok before it replaces the old one. Who may see
-- and use a configuration follows the accounts' rule (only me / the
-- workspace): anyone else gets 403, and lists never show it.
local tiktok = require "tiktok"
local util = require "tiktok.util"
local json = require "tiktok.json"
local config = require "tiktok_app.config"
local reply = require "tiktok_app.reply"
local identity = require "tiktok_app.identity"
local accounts = require "tiktok_app.accounts"

local type, ipairs, pairs, tostring, pcall = type, ipairs, pairs, tostring, pcall
local ngx = ngx
local as_of = identity.as_of

local _M = {}

-- The page's labels of the configuration's fields.
local LABELS = {
    name = "Name", client_key = "Client key", client_secret = "Client secret", redirect_uri = "Redirect URL",
    scopes = "Scopes", audited = "Audited by TikTok", access = "Who can use it",
}
local DEFAULT_SCOPES = { "user.info.basic", "video.publish", "video.upload" }

local function view(a)
    return {
        id = a.id, name = a.name, client_key = a.client_key, secret_hint = a.secret_hint,
        redirect_uri = a.redirect_uri, scopes = reply.list(a.scopes), audited = a.audited == true,
        owner = a.owner, workspace = a.workspace, access = a.access,
        created_at = a.created_at, updated_at = a.updated_at, checked_at = a.checked_at,
    }
end

-- A problem with one field of the form: 400 (or `status`), with the field.
local function field_error(field, message, code, status)
    local err = tiktok.errors.new(code or "invalid_argument", message, { problems = { message } })
    err.fields = { field }
    return reply.fail(err, status)
end

-- apps:save's errors name the field in err.problems (field names): the
-- answer carries the sentence as the problem and the field as its field.
local function save_failed(err)
    local field = type(err.problems) == "table" and type(err.problems[1]) == "string"
                  and LABELS[err.problems[1]] and err.problems[1] or nil
    local e = tiktok.errors.restore(err)
    local msg = e.message:gsub("^client_key ", "Client key "):gsub("^client_secret ", "Client secret ")
    e.problems, e.fields = { msg }, { field or false }
    e.message = msg
    return reply.fail(e)
end

local function read_body()
    local ctype = ngx.var.http_content_type or ""
    if not ctype:find("^application/json") then
        return nil, "send the configuration as JSON (Content-Type: application/json)"
    end
    ngx.req.read_body()
    local raw = ngx.req.get_body_data()
    if not raw then return nil, "the body is empty (or too large); send a JSON object" end
    local ok, v = pcall(json.decode, raw)
    if not ok or type(v) ~= "table" or v[1] ~= nil then return nil, "the body must be a JSON object" end
    return v
end

local SHAPES = {
    name = "string", client_key = "string", client_secret = "string", redirect_uri = "string",
    scopes = "table", audited = "boolean", access = "string",
}

-- Scopes and access of the save options; false after answering 400.
local function scopes_and_access(o, body, who, id)
    if body.scopes then
        o.scopes = {}
        for _, sc in ipairs(body.scopes) do
            if type(sc) ~= "string" or not sc:match("^[%w][%w%._]*$") or #sc > 64 then
                field_error("scopes", "Scopes must be TikTok scope names such as video.publish")
                return false
            end
            o.scopes[#o.scopes + 1] = sc
        end
    elseif not id then
        o.scopes = DEFAULT_SCOPES
    end
    if body.access ~= nil then
        if body.access ~= "only_me" and body.access ~= "workspace" then
            field_error("access", "Who can use it must be only_me or workspace")
            return false
        end
        if body.access == "workspace" and not who.workspace then
            field_error("access", "Anyone in this workspace needs a workspace; you have none")
            return false
        end
        o.access = body.access
    elseif not id then
        o.access = who.workspace and "workspace" or "only_me"
    end
    return true
end

-- The save options from a request body; nil after answering 400.
local function save_opts(body, who, id)
    for k, v in pairs(body) do
        local want = SHAPES[k]
        if not want then return field_error(false, "unknown field '" .. tostring(k) .. "'") end
        if type(v) ~= want and v ~= json.null then
            return field_error(k, LABELS[k] .. " must be " .. (want == "table" and "a list of scopes"
                                                              or want == "boolean" and "true or false" or "text"))
        end
        if v == json.null then body[k] = nil end
    end
    local o = { id = id, as = as_of(who) }
    for _, k in ipairs({ "name", "client_key", "client_secret", "audited" }) do o[k] = body[k] end
    if o.name ~= nil and (#o.name > 80 or o.name:find("%c")) then
        return field_error("name", "Name must be at most 80 characters, on one line")
    end
    if type(o.client_key) == "string" then o.client_key = o.client_key:match("^%s*(.-)%s*$") end
    if type(o.client_secret) == "string" then o.client_secret = o.client_secret:match("^%s*(.-)%s*$") end
    if not o.client_key or o.client_key == "" then
        return field_error("client_key", "Client key is required: copy it from your app on TikTok for Developers "
                           .. "(Manage apps > your app)")
    end
    -- The Redirect URL is this app's own callback: the one URL TikTok may
    -- send the browser back to. A URL given is checked by lua-tiktok's rule
    -- first (query, fragment, http to a public host), then against it.
    if body.redirect_uri and body.redirect_uri ~= config.cfg.redirect_uri then
        local ok, why = util.check_redirect_uri(body.redirect_uri)
        local msg = ok and ("it must be this app's callback URL, " .. config.cfg.redirect_uri)
                    or why:gsub("^redirect_uri ", "")
        return field_error("redirect_uri", "Redirect URL: " .. msg .. "; register exactly "
                           .. config.cfg.redirect_uri .. " in your app's Login Kit settings and leave this field "
                           .. "as it is")
    end
    o.redirect_uri = config.cfg.redirect_uri
    if not scopes_and_access(o, body, who, id) then return nil end
    return o
end

-- What to do next, in the block's order: configure, check, connect, post.
local function next_step(apps, has_default)
    if #apps == 0 and not has_default then return "configure" end
    for _, a in ipairs(apps) do if not a.checked_at then return "check" end end
    return "connect"
end

-- GET /tiktok/apps: the user's TikTok app configurations, the environment's
-- app (when there is one) and the Redirect URL to register.
function _M.list()
    local who = identity.request("GET")
    if not who then return end
    local apps, err = config.offload("apps_list", { as = as_of(who) })
    if not apps then return reply.fail(err) end
    local out = reply.list()
    for i, a in ipairs(apps) do out[i] = view(a) end
    local default = config.conn() and { id = "default", name = "This server's TikTok app",
                                        client_key = config.cfg.client_key, redirect_uri = config.cfg.redirect_uri }
    return reply.send(200, { apps = out, default = default or json.null, redirect_uri = config.cfg.redirect_uri,
                             next = next_step(apps, default ~= nil) })
end

local function app_id()
    return reply.path_id("app_id", "^[%w][%w_%-]*$", "an app configuration id")
end

-- POST /tiktok/apps (JSON): a new configuration. Its secret is checked
-- with TikTok first: a refused one is not saved.
function _M.create()
    local who = identity.request("POST")
    if not who then return end
    local body, berr = read_body()
    if not body then return reply.fail_with(400, "invalid_argument", berr) end
    local o = save_opts(body, who, nil)
    if not o then return end
    o.id = "app-" .. tiktok.core.random_hex(6)
    if not o.client_secret or o.client_secret == "" then
        return field_error("client_secret", "Client secret is required: copy it from your app on TikTok for "
                           .. "Developers (it is shown once there; it is never shown here again)")
    end
    local app, err = config.offload("apps_save", { opts = o })
    if not app then return save_failed(err) end
    ngx.header["Location"] = "/tiktok/apps/" .. app.id
    return reply.send(201, view(app))
end

-- POST /tiktok/apps/<id> (JSON): an edit; a Client secret left out keeps
-- the saved one, a new one replaces it only once TikTok accepted it.
function _M.update()
    local who = identity.request("POST")
    if not who then return end
    local id = app_id()
    if not id then return end
    local old, err = config.offload("apps_get", { id = id, as = as_of(who) })
    if not old then return reply.fail(err) end
    local body, berr = read_body()
    if not body then return reply.fail_with(400, "invalid_argument", berr) end
    if body.client_key == nil then body.client_key = old.client_key end
    local o = save_opts(body, who, id)
    if not o then return end
    if o.audited == nil then o.audited = old.audited end
    local app
    app, err = config.offload("apps_save", { opts = o })
    if not app then return save_failed(err) end
    return reply.send(200, view(app))
end

-- DELETE /tiktok/apps/<id>: removes the configuration (the accounts
-- connected with it stay in its store, usable again once it is added back).
function _M.delete()
    local who = identity.request("DELETE")
    if not who then return end
    local id = app_id()
    if not id then return end
    local ok, err = config.offload("apps_delete", { id = id, as = as_of(who) })
    if not ok then return reply.fail(err) end
    return reply.send(200, { id = id, deleted = true })
end

-- One route for /tiktok/apps/<id>: POST edits, DELETE removes.
function _M.one()
    local m = ngx.req.get_method()
    if m == "DELETE" then return _M.delete() end
    if m == "POST" then return _M.update() end
    ngx.header["Allow"] = "POST, DELETE"
    return reply.fail_with(405, "invalid_argument", "use POST (edit) or DELETE (remove) for " .. ngx.var.uri)
end

local function report_view(rep)
    local checks = reply.list()
    for i, c in ipairs(rep.checks or {}) do
        checks[i] = { name = c.name, ok = c.ok == true, message = c.message, code = c.code }
    end
    return { ok = rep.ok == true, checks = checks, redirect_uri = rep.redirect_uri }
end

-- POST /tiktok/apps/<id>/check ("default": the environment's app): is the
-- app set up right? Each part's sentence says what is wrong and the fix.
function _M.check()
    local who = identity.request("POST")
    if not who then return end
    local id = app_id()
    if not id then return end
    local rep, err
    if id == "default" then
        local src
        src, err = accounts.source(who, "default")
        if not src then return reply.fail(err) end
        rep, err = src.conn:check()
    else
        rep, err = config.offload("apps_check", { id = id, as = as_of(who) })
    end
    if not rep then return reply.fail(err) end
    return reply.send(200, report_view(rep))
end

-- GET /tiktok/accounts/<open_id>/check: after a connect, the permissions
-- the person granted against what posting needs.
function _M.check_account()
    local who, id, src = accounts.account_request("GET")
    if not who then return end
    local rep, err = src.conn:check_account(id, { as = as_of(who) })
    if not rep then return reply.fail(err) end
    return reply.send(200, report_view(rep))
end

return _M
