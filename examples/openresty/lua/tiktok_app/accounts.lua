-- tiktok_app.accounts: connecting TikTok accounts (Login Kit), listing
-- them and what the posting form needs to know about one (creator_info).
local tiktok = require "tiktok"
local settings = require "tiktok.settings"
local json = require "tiktok.json"
local config = require "tiktok_app.config"
local reply = require "tiktok_app.reply"
local identity = require "tiktok_app.identity"

local type, ipairs, tostring = type, ipairs, tostring
local ngx = ngx
local conn = config.conn
local as_of = identity.as_of

local _M = {}

local STATE_COOKIE = "tiktok_oauth"
local OAUTH_TTL = 600            -- seconds a connection attempt may take
local PROFILE_FIELDS = { "open_id", "display_name", "avatar_url" }

--- accounts.pick(who, open_id_or_nil) -> open_id | nil, err: the account
-- named (when `who` may use it), else the only one `who` can use. (The
-- library hides accounts a script stored without an owner from anyone
-- acting `as` a user, and records of another client key.)
function _M.pick(who, given)
    return conn():pick_account(given, { as = as_of(who) })
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
    -- PKCE: the verifier stays on the server, next to the state, with the
    -- user who started; the browser's cookie carries only the state.
    local url, state, verifier = conn():authorize_url({ disable_auto_auth = true })
    local ok, derr = ngx.shared.tiktok_oauth:set(state, json.encode({ verifier = verifier, access = access,
                                                                      user = who.user }), OAUTH_TTL)
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
    local account, err = conn():exchange({
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
local function account_view(who, a)
    local v = { open_id = a.open_id, scopes = reply.list(a.scopes), expires_at = a.expires_at,
                refresh_expires_at = a.refresh_expires_at, owner = a.owner, workspace = a.workspace,
                access = a.access, yours = a.owner == who.user }
    local profile = conn():user_info(a.open_id, { as = as_of(who), fields = PROFILE_FIELDS })
    if profile then v.nickname, v.avatar_url = profile.display_name, profile.avatar_url end
    return v
end

-- GET /tiktok/accounts: the user's active connections (the ones `who` may use).
function _M.accounts()
    local who = identity.request("GET")
    if not who then return end
    local list, err = conn():accounts({ as = as_of(who) })
    if not list then return reply.fail(err) end
    local out = reply.list()
    for i, a in ipairs(list) do out[i] = account_view(who, a) end
    return reply.send(200, { accounts = out })
end

-- POST /tiktok/accounts/<open_id>/disconnect: revokes the app's access at
-- TikTok and forgets the account. Only the user who connected it may.
function _M.disconnect()
    local who = identity.request("POST")
    if not who then return end
    local id = reply.path_id("open_id", "^[%w_%-]+$", "an open_id")
    if not id then return end
    local acc, err = conn():account(id, { as = as_of(who) })
    if not acc then return reply.fail(err) end
    if acc.owner ~= who.user then
        return reply.fail_with(403, "forbidden", "only the person who connected this TikTok account can "
                               .. "disconnect it")
    end
    local ok
    ok, err = conn():revoke(id, { as = as_of(who) })
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
    local open_id, err = _M.pick(who, reply.arg("account"))
    if not open_id then return reply.fail(err) end
    local ci
    ci, err = conn():creator_info(open_id, { as = as_of(who) })
    if not ci then return reply.fail(err) end
    local labels = {}
    for _, p in ipairs(ci.privacy_level_options or {}) do labels[p] = PRIVACY_LABELS[p] or p end
    return reply.send(200, {
        account = open_id,
        creator = {
            nickname = ci.nickname, username = ci.username, avatar_url = ci.avatar_url,
            privacy_level_options = reply.list(ci.privacy_level_options),
            comment_disabled = ci.comment_disabled == true, duet_disabled = ci.duet_disabled == true,
            stitch_disabled = ci.stitch_disabled == true,
            max_video_post_duration_sec = ci.max_video_post_duration_sec,
        },
        privacy_labels = labels,
        disclosure = {
            none = disclosure(false, false), your_brand = disclosure(true, false),
            branded_content = disclosure(false, true), both = disclosure(true, true),
        },
    })
end

return _M
