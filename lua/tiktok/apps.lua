-- tiktok.apps: TikTok app configurations kept in the store, per user or
-- workspace (the no-code block's "Custom OAuth Provider Configuration").
--
-- Each workspace brings its own TikTok app: client key and secret, the
-- redirect URI registered in Login Kit, the scopes, whether TikTok audited
-- it, and who may use it (tiktok.access: only me / the workspace). The
-- secret is write-only: no answer of this module returns it (only its last
-- characters, `secret_hint`); a store with a `key` keeps it encrypted. A
-- new secret is checked with TikTok (a client access token) before it
-- replaces the old one, so a wrong secret never locks out the accounts
-- connected with the right one. apps:connect gives a connection that
-- behaves exactly like tiktok.connect with the stored configuration.
--
-- Store methods used (memory, file and postgres stores have them):
--   store:get_app(id) / store:put_app(rec) / store:delete_app(id) / store:list_apps()
local util = require "tiktok.util"
local errors = require "tiktok.errors"
local access = require "tiktok.access"

local type, pairs, ipairs, setmetatable, error = type, pairs, ipairs, setmetatable, error
local floor, sort = math.floor, table.sort

local _M = {}
local mt = { __index = _M }

local NEW_OPTS = { store = "table", connect = "table" }

--- tiktok.apps{ store, connect = { api_base, auth_base, ca_file, ... } }
-- `connect` holds the tiktok.connect options every stored app shares (the
-- TikTok hosts, timeouts, ...): everything but the app's own settings.
function _M.new(opts)
    util.check_opts("tiktok.apps", opts, NEW_OPTS, 3)
    local store = opts.store
    for _, m in ipairs({ "get_app", "put_app", "delete_app", "list_apps" }) do
        if type(store[m]) ~= "function" then
            error("tiktok.apps: the store lacks the method '" .. m .. "'", 3)
        end
    end
    return setmetatable({ store = store, shared = util.copy(opts.connect or {}) }, mt)
end

-- The public view of a stored configuration: never the secret.
local function public(rec)
    return {
        id = rec.id, name = rec.name, client_key = rec.client_key,
        secret_hint = rec.client_secret and ("..." .. rec.client_secret:sub(-4)) or nil,
        redirect_uri = rec.redirect_uri, scopes = util.copy(rec.scopes or {}), audited = rec.audited,
        owner = rec.owner, workspace = rec.workspace, access = rec.access,
        created_at = rec.created_at, updated_at = rec.updated_at, checked_at = rec.checked_at,
    }
end

local function load(self, id, as)
    if type(id) ~= "string" or id == "" then
        return nil, errors.new("invalid_argument", "an app configuration id is required")
    end
    local rec, err = self.store:get_app(id)
    if err then return nil, err end
    if not rec then
        return nil, errors.new("not_found", "no TikTok app configuration is saved as '" .. util.show(id, 64)
                               .. "'; add one first (client key, client secret, redirect URL)")
    end
    if not access.visible(rec, as) then
        return nil, errors.new("forbidden", "this TikTok app configuration belongs to someone else; ask its "
                               .. "owner to share it with the workspace")
    end
    return rec
end

-- The tiktok.connect options of a stored configuration.
local function connect_opts(self, rec, overrides)
    local o = util.copy(self.shared)
    for k, v in pairs(overrides or {}) do o[k] = v end
    o.client_key, o.client_secret, o.redirect_uri = rec.client_key, rec.client_secret, rec.redirect_uri
    o.scopes, o.audited = rec.scopes, rec.audited
    if o.store == nil then o.store = self.store end
    return o
end

local SAVE_OPTS = {
    id = "string", name = "string", client_key = "string", client_secret = "string",
    redirect_uri = "string", scopes = "table", audited = "boolean", as = "table", access = "string",
}

-- Checks the values a person typed; nil, err naming the field and the fix.
local function check_values(o)
    for _, k in ipairs({ "client_key", "redirect_uri" }) do
        if o[k] == nil or o[k] == "" then
            return nil, errors.new("invalid_argument", k .. " is required: copy it from your app on TikTok "
                                   .. "for Developers", { problems = { k } })
        end
    end
    if o.client_key:find("[^\33-\126]") or #o.client_key > 256 then
        return nil, errors.new("invalid_argument", "client_key must be the Client key as TikTok shows it "
                               .. "(printable characters, no spaces): copy it again", { problems = { "client_key" } })
    end
    local ok, why = util.check_redirect_uri(o.redirect_uri)
    if not ok then
        return nil, errors.new("invalid_argument", why .. "; register the exact URI this app answers on "
                               .. "(https://your.app/tiktok/callback)", { problems = { "redirect_uri" } })
    end
    return true
end

--- apps:save{ id, name, client_key, client_secret, redirect_uri, scopes, audited, as, access }
-- -> app | nil, err. A new configuration needs the secret; an update may
-- leave it out (the stored one is kept). A secret that is new is checked
-- with TikTok first: a refused one is not saved, the old one stays.
-- The record a save writes: the values given, the old record's where an
-- update leaves them out.
local function merged(opts, old, secret)
    old = old or {}
    local now = floor(util.now())
    local rec = {
        id = opts.id or opts.client_key, name = opts.name or old.name or opts.id or opts.client_key,
        client_key = opts.client_key, client_secret = secret, redirect_uri = opts.redirect_uri,
        scopes = opts.scopes or old.scopes or { "user.info.basic", "video.publish", "video.upload" },
        audited = opts.audited, created_at = old.created_at or now, updated_at = now,
        checked_at = old.checked_at,
    }
    if rec.audited == nil then rec.audited = old.audited == true end
    return rec
end

-- Checks a new client key or secret with TikTok (a client access token)
-- before it is saved; a refused one is said in the block's words.
local function verify_secret(self, rec, old)
    local conn, err = require("tiktok.connection").new(connect_opts(self, rec))
    if not conn then return nil, err end
    local tok
    tok, err = conn:client_token()
    conn:close()
    if tok then return true end
    if err.code == "invalid_client" or err.code == "unauthorized_client" then
        err = errors.new("invalid_client", "TikTok refused this Client key and Client secret, so nothing was "
                         .. "saved" .. (old and " (the saved ones stay in use)" or "") .. ": copy both again from "
                         .. "your app on TikTok for Developers",
                         { problems = { "client_secret" }, http_status = err.http_status })
    end
    return nil, err
end

function _M:save(opts)
    util.check_opts("apps:save", opts, SAVE_OPTS)
    access.check_as("apps:save", opts.as)
    local ok, err = check_values(opts)
    if not ok then return nil, err end
    local id = opts.id or opts.client_key
    local old = self.store:get_app(id)
    if old and not access.visible(old, opts.as) then
        return nil, errors.new("forbidden", "a TikTok app configuration '" .. util.show(id, 64) .. "' already "
                               .. "belongs to someone else; choose another id")
    end
    local secret = opts.client_secret
    if secret == "" then secret = nil end
    if not secret and not (old and old.client_key == opts.client_key) then
        return nil, errors.new("invalid_argument", "client_secret is required for a new app (or a new "
                               .. "client key): copy it from your app on TikTok for Developers",
                               { problems = { "client_secret" } })
    end
    local rec = merged(opts, old, secret or old.client_secret)
    local stamped, why = access.stamp(rec, opts.as, opts.access or (old and old.access), "apps:save")
    if not stamped then return nil, errors.new("invalid_argument", why) end
    if not old or rec.client_secret ~= old.client_secret or rec.client_key ~= old.client_key then
        ok, err = verify_secret(self, rec, old)
        if not ok then return nil, err end
        rec.checked_at = rec.updated_at
    end
    ok, err = self.store:put_app(rec)
    if not ok then return nil, err end
    return public(rec)
end

local ID_OPTS = { as = "table" }

--- apps:get(id, { as }) -> app | nil, err
function _M:get(id, opts)
    opts = util.check_opts("apps:get", opts or {}, ID_OPTS)
    access.check_as("apps:get", opts.as)
    local rec, err = load(self, id, opts.as)
    if not rec then return nil, err end
    return public(rec)
end

--- apps:list{ as } -> array of apps visible to `as`, by id
function _M:list(opts)
    opts = util.check_opts("apps:list", opts or {}, ID_OPTS)
    access.check_as("apps:list", opts.as)
    local all, err = self.store:list_apps()
    if not all then return nil, err end
    local out = {}
    for _, rec in ipairs(all) do
        if access.visible(rec, opts.as) then out[#out + 1] = public(rec) end
    end
    sort(out, function(a, b) return a.id < b.id end)
    return out
end

--- apps:delete(id, { as }) -> true | nil, err (accounts connected with it
-- stay in the store; they can be used again once the app is added back)
function _M:delete(id, opts)
    opts = util.check_opts("apps:delete", opts or {}, ID_OPTS)
    access.check_as("apps:delete", opts.as)
    local rec, err = load(self, id, opts.as)
    if not rec then return nil, err end
    return self.store:delete_app(rec.id)
end

--- apps:connect(id, { as, ...tiktok.connect options but the app's own }) -> conn | nil, err
function _M:connect(id, opts)
    opts = util.copy(opts or {})
    local as = opts.as
    opts.as = nil
    access.check_as("apps:connect", as)
    for _, k in ipairs({ "client_key", "client_secret", "redirect_uri", "scopes", "audited" }) do
        if opts[k] ~= nil then error("apps:connect: " .. k .. " comes from the stored configuration", 2) end
    end
    local rec, err = load(self, id, as)
    if not rec then return nil, err end
    return require("tiktok.connection").new(connect_opts(self, rec, opts))
end

--- apps:check(id, { as }) -> report | nil, err (tiktok.check, with the stored configuration)
function _M:check(id, opts)
    opts = util.check_opts("apps:check", opts or {}, ID_OPTS)
    return require("tiktok.check").with(self:connect(id, { as = opts.as }))
end

return _M
