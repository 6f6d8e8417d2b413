-- tiktok_app.accounts: connecting TikTok accounts (Login Kit), listing
-- them and what the posting form needs to know about one (creator_info).
local tiktok = require "tiktok"
local settings = require "tiktok.settings"
local json = require "tiktok.json"
local config = require "tiktok_app.config"
local reply = require "tiktok_app.reply"
local identity = require "tiktok_app.identity"

local type, ipairs, tostring = type, ipairs, tostring
local conn_of_nothing
local ngx = ngx
local as_of = identity.as_of

local _M = {}

-- ------------------------------------------------- which TikTok app

-- The TikTok apps `who` may use, each with this worker's connection:
-- { id, name, app (the stored configuration's public view, nil for the
-- environment's app), conn }. The environment's app (TIKTOK_CLIENT_KEY,
-- development) comes first, as "default".
function _M.sources(who)
    local out = {}
    if config.conn() then
        out[1] = { id = "default", name = "This server's TikTok app", conn = config.conn() }
    end
    local apps, err = config.offload("apps_list", { as = as_of(who) })
    if not apps then return nil, err end
    for _, a in ipairs(apps) do
        local c, cerr = config.app_conn(a)
        if not c then return nil, cerr end
        out[#out + 1] = { id = a.id, name = a.name, app = a, conn = c }
    end
    return out
end

--- accounts.source(who, id) -> the source of TikTok app `id` ("default":
-- the environment's) for `who` | nil, err (not_found, forbidden)
function _M.source(who, id)
    if id == nil or id == "default" then
        if config.conn() then return { id = "default", name = "This server's TikTok app", conn = config.conn() } end
        if id == "default" then
            return nil, tiktok.errors.new("not_found", "this server has no TikTok app of its own; add your "
                                          .. "TikTok app in Settings first")
        end
        local list, err = _M.sources(who)
        if not list then return nil, err end
        if #list == 0 then
            return nil, tiktok.errors.new("not_found", "no TikTok app is configured yet: first add your TikTok "
                                          .. "app's Client key and Client secret in Settings, register its "
                                          .. "Redirect URL, run the check, then connect")
        end
        if #list > 1 then
            local ids = {}
            for i, s in ipairs(list) do ids[i] = s.id end
            return nil, tiktok.errors.new("invalid_argument", "several TikTok apps are configured; say which one "
                                          .. "(app = one of " .. table.concat(ids, ", ") .. ")", { choices = ids })
        end
        return list[1]
    end
    local a, err = config.offload("apps_get", { id = id, as = as_of(who) })
    if not a then return nil, err end
    local c
    c, err = config.app_conn(a)
    if not c then return nil, err end
    return { id = a.id, name = a.name, app = a, conn = c }
end

--- accounts.locate(who, open_id_or_nil) -> source, open_id | nil, err: the
-- account named (through whichever TikTok app connected it, when `who` may
-- use it), else the only one `who` can use.
function _M.locate(who, given)
    local list, err = _M.sources(who)
    if not list then return nil, err end
    local as = as_of(who)
    if given then
        for _, src in ipairs(list) do
            local acc, aerr = src.conn:account(given, { as = as })
            if acc then return src, given end
            if aerr and aerr.code ~= "not_found" then return nil, aerr end
        end
        return nil, tiktok.errors.new("not_found", "no connected TikTok account " .. given .. "; connect it first")
    end
    local found, choices = nil, {}
    for _, src in ipairs(list) do
        local accs, aerr = src.conn:accounts({ as = as })
        if not accs then return nil, aerr end
        for _, a in ipairs(accs) do
            found = found or { src, a.open_id }
            choices[#choices + 1] = a.open_id
        end
    end
    if #choices == 0 then
        return nil, tiktok.errors.new("not_found", "no TikTok account is connected yet: connect one first")
    end
    if #choices > 1 then
        return nil, tiktok.errors.new("invalid_argument", "several TikTok accounts are connected; say which one "
                                      .. "(account = an open_id)", { choices = choices })
    end
    return found[1], found[2]
end

local STATE_COOKIE = "tiktok_oauth"
local OAUTH_TTL = 600            -- seconds a connection attempt may take
local PROFILE_FIELDS = { "open_id", "display_name", "avatar_url" }

--- accounts.pick(who, open_id_or_nil) -> open_id, source | nil, err (see
-- locate; the library hides accounts a script stored without an owner from
-- anyone acting `as` a user, and records of another client key)
function _M.pick(who, given)
    local src, open_id = _M.locate(who, given)
    if not src then return nil, open_id end
    return open_id, src
end

-- GET /tiktok/connect[?access=workspace]: off to TikTok's consent page.
function _M.connect()
    local who = identity.request("GET")
    if not who then return end
    local access = reply.arg("access") or "only_me"
    if access ~= "only_me" and access ~= "workspace" then
        return reply.fail_with(400, "invalid_argument", "access must be only_me or workspace")
    end
    if access == "workspace" and not who.workspace then
        return reply.fail_with(400, "invalid_argument", "access=workspace needs a workspace (X-Workspace or "
                               .. "the sign-in form)")
    end
    local src, serr = _M.source(who, reply.arg("app"))
    if not src then return reply.fail(serr) end
    -- PKCE: the verifier stays on the server, next to the state, with the
    -- user who started and the TikTok app; the browser's cookie carries
    -- only the state.
    local url, state, verifier = src.conn:authorize_url({ disable_auto_auth = true })
    local ok, derr = ngx.shared.tiktok_oauth:set(state, json.encode({ verifier = verifier, access = access,
                                                                      user = who.user, app = src.id }), OAUTH_TTL)
    if not ok then
        return reply.fail_with(503, "busy", "cannot start a connection now (" .. tostring(derr) .. "); retry")
    end
    identity.add_cookie(identity.cookie(STATE_COOKIE, state, "/tiktok/callback", OAUTH_TTL))
    ngx.header["Cache-Control"] = "no-store"
    return ngx.redirect(url, 302)
end

-- The connection attempt this browser started (one use only): the state
-- of its cookie, and what was kept with it (verifier, access, user).
local function take_attempt(who)
    local state = ngx.var["cookie_" .. STATE_COOKIE] or ""
    if not state:match("^%x+$") then return "", {} end
    local dict = ngx.shared.tiktok_oauth
    local kept = dict:get(state)
    dict:delete(state)
    kept = kept and json.decode(kept)
    if type(kept) ~= "table" or kept.user ~= who.user then return "", {} end
    return state, kept
end

-- A callback without a kept attempt: the exchange refuses it on the state
-- (before anything is sent to TikTok); any connection can say so.
local nothing
conn_of_nothing = function()
    if not nothing then
        nothing = assert(tiktok.connect({ client_key = "none", client_secret = "none",
                                          redirect_uri = config.cfg.redirect_uri, store = tiktok.store.memory() }))
    end
    return nothing
end

local function callback_failed(err)
    if reply.wants_html() then
        return reply.redirect("/tiktok/?" .. ngx.encode_args({ connect_error = err.code, message = err.message }))
    end
    return reply.fail(err)
end

-- GET /tiktok/callback?code=...&state=...: where TikTok sends the browser back.
function _M.callback()
    if not reply.method("GET") then return end
    identity.add_cookie(identity.cookie(STATE_COOKIE, "", "/tiktok/callback", 0))   -- one use only
    local who = identity.need()
    if not who then return end
    local q = ngx.req.get_uri_args(20)
    local oauth_error = type(q.error) == "string" and q.error or nil
    if oauth_error then
        local code = oauth_error:match("^[%w_]+$") and #oauth_error <= 64 and oauth_error or "invalid_request"
        return callback_failed(tiktok.errors.new(code, nil))
    end
    local expected, kept = take_attempt(who)
    -- the TikTok app this attempt belongs to (kept with the state)
    local src = { conn = config.conn() or conn_of_nothing() }
    if kept.app then
        local serr
        src, serr = _M.source(who, kept.app)
        if not src then return callback_failed(serr) end
    end
    local account, err = src.conn:exchange({
        code = type(q.code) == "string" and q.code or nil,
        state = type(q.state) == "string" and q.state or "",
        expected_state = expected,
        code_verifier = kept.verifier,
        as = as_of(who),
        access = (kept.access == "workspace" and who.workspace) and "workspace" or "only_me",
    })
    if not account then return callback_failed(err) end
    return reply.redirect("/tiktok/?" .. ngx.encode_args({ connected = account.open_id }))
end

-- An account as the page shows it: who can use it, until when, and the
-- TikTok profile (nickname, avatar) read with the account's own token.
local function account_view(who, a, src)
    local v = { open_id = a.open_id, scopes = reply.list(a.scopes), expires_at = a.expires_at,
                refresh_expires_at = a.refresh_expires_at, owner = a.owner, workspace = a.workspace,
                access = a.access, yours = a.owner == who.user,
                app = { id = src.id, name = src.name, client_key = src.conn:_option("client_key") } }
    local profile = src.conn:user_info(a.open_id, { as = as_of(who), fields = PROFILE_FIELDS })
    if profile then v.nickname, v.avatar_url = profile.display_name, profile.avatar_url end
    return v
end

-- GET /tiktok/accounts: the user's active connections (the ones `who` may use).
function _M.accounts()
    local who = identity.request("GET")
    if not who then return end
    local srcs, err = _M.sources(who)
    if not srcs then return reply.fail(err) end
    local out = reply.list()
    for _, src in ipairs(srcs) do
        local list
        list, err = src.conn:accounts({ as = as_of(who) })
        if not list then return reply.fail(err) end
        for _, a in ipairs(list) do out[#out + 1] = account_view(who, a, src) end
    end
    return reply.send(200, { accounts = out })
end

-- POST /tiktok/accounts/<open_id>/disconnect: revokes the app's access at
-- TikTok and forgets the account. Only the user who connected it may.
-- The preamble of a route about one account (/tiktok/accounts/<open_id>/...):
-- who is asking, the open_id and where the account lives; nil when the
-- answer has already been sent.
function _M.account_request(method)
    local who = identity.request(method)
    if not who then return nil end
    local id = reply.path_id("open_id", "^[%w_%-]+$", "an open_id")
    if not id then return nil end
    local src, err = _M.locate(who, id)
    if not src then return nil, reply.fail(err) end
    return who, id, src
end

function _M.disconnect()
    local who, id, src = _M.account_request("POST")
    if not who then return end
    local acc, err = src.conn:account(id, { as = as_of(who) })
    if not acc then return reply.fail(err) end
    if acc.owner ~= who.user then
        return reply.fail_with(403, "forbidden", "only the person who connected this TikTok account can "
                               .. "disconnect it")
    end
    local ok
    ok, err = src.conn:revoke(id, { as = as_of(who) })
    if not ok then return reply.fail(err) end
    return reply.send(200, { open_id = id, disconnected = true })
end

local PRIVACY_LABELS = {
    PUBLIC_TO_EVERYONE = "Everyone", MUTUAL_FOLLOW_FRIENDS = "Friends",
    FOLLOWER_OF_CREATOR = "Followers", SELF_ONLY = "Only me",
}

local function disclosure(own, third)
    local label, declaration, links = settings.disclosure_label(own, third)
    return { label = label, declaration = declaration, links = reply.list(links) }
end

-- GET /tiktok/creator[?account=open_id]: what the posting form needs, read
-- fresh from TikTok each time (Content Sharing Guidelines).
function _M.creator()
    local who = identity.request("GET")
    if not who then return end
    local open_id, src = _M.pick(who, reply.arg("account"))
    if not open_id then return reply.fail(src) end
    local ci, err = src.conn:creator_info(open_id, { as = as_of(who) })
    if not ci then return reply.fail(err) end
    -- An app TikTok has not audited may post only SELF_ONLY, to private
    -- accounts: the form offers nothing else.
    local audited
    if src.app then audited = src.app.audited == true else audited = config.cfg.audited end
    local options = ci.privacy_level_options or {}
    if not audited then
        local only = {}
        for _, p in ipairs(options) do if p == "SELF_ONLY" then only[1] = p end end
        options = only
    end
    local labels = {}
    for _, p in ipairs(options) do labels[p] = PRIVACY_LABELS[p] or p end
    return reply.send(200, {
        account = open_id,
        creator = {
            nickname = ci.nickname, username = ci.username, avatar_url = ci.avatar_url,
            privacy_level_options = reply.list(options),
            comment_disabled = ci.comment_disabled == true, duet_disabled = ci.duet_disabled == true,
            stitch_disabled = ci.stitch_disabled == true,
            max_video_post_duration_sec = ci.max_video_post_duration_sec,
        },
        privacy_labels = labels,
        unaudited = not audited or nil,
        disclosure = {
            none = disclosure(false, false), your_brand = disclosure(true, false),
            branded_content = disclosure(false, true), both = disclosure(true, true),
        },
    })
end

return _M
