-- tiktok.check: is a TikTok app set up right, before anybody connects with
-- it, and did an account grant what posting needs, after? Each answer is a
-- sentence that names the field and the fix, in the order a person sets the
-- app up (the no-code block's order): credentials, redirect URL, scopes,
-- audit.
--
-- A report: { ok = boolean, checks = { { name, ok, message }, ... },
--             redirect_uri = the exact string to register, client_key }
-- `ok` is false when any check failed; checks that are only advice
-- (an unaudited app's limits) have ok = true.
local util = require "tiktok.util"

local ipairs, concat = ipairs, table.concat

local _M = {}

-- What posting needs, by mode: Login Kit's basic scope, then Direct Post or
-- the inbox upload.
local NEEDED = {
    { scope = "user.info.basic", why = "Login Kit (every connection needs it)" },
    { scope = "video.publish", why = "Direct Post (posting straight to the profile, and reading "
      .. "creator_info)", mode = "direct" },
    { scope = "video.upload", why = "uploads to the creator's inbox as drafts", mode = "inbox" },
}

local function has(list, scope)
    for _, s in ipairs(list or {}) do if s == scope then return true end end
    return false
end

local function report(conn, checks)
    local ok = true
    for _, c in ipairs(checks) do if not c.ok then ok = false end end
    return { ok = ok, checks = checks, redirect_uri = conn:_option("redirect_uri"),
             client_key = conn:_option("client_key") }
end

-- The client key and secret: TikTok gives a client access token for them.
local function credentials(conn)
    local tok, err = conn:client_token()
    if tok then
        return { name = "credentials", ok = true,
                 message = "TikTok accepted the Client key and Client secret." }
    end
    local msg
    if err.code == "invalid_client" or err.code == "unauthorized_client" then
        msg = "TikTok refused the Client key and Client secret (" .. err.code .. "): copy both again from "
            .. "your app on TikTok for Developers (Manage apps > your app > Client key / Client secret); a "
            .. "sandbox has its own key and secret, different from the production app's, and a disabled or "
            .. "deleted app is refused too."
    elseif err.class == "transient" or err.class == "upstream" or err.class == "network" then
        msg = "Could not reach TikTok to check the Client key and Client secret (" .. err.code .. "); try "
            .. "the check again in a moment."
    else
        msg = "TikTok did not accept the Client key and Client secret: " .. err.message
    end
    return { name = "credentials", ok = false, message = msg, code = err.code }
end

local function redirect(conn)
    local uri = conn:_option("redirect_uri")
    local u = util.parse_url(uri)
    local local_only = u and u.scheme == "http"
    return { name = "redirect_uri", ok = true,
             message = "Register this Redirect URI in your app's Login Kit settings, exactly as written (no "
                 .. "query string, no trailing change): " .. uri
                 .. (local_only and " (plain http works only on this machine: TikTok accepts it for "
                     .. "localhost or 127.0.0.1 only)" or "") }
end

-- Posting needs user.info.basic and at least one of the posting scopes;
-- a missing second one is named as what the app then cannot do.
local function scopes(conn)
    local asked = conn:_option("scopes")
    local missing = {}
    for _, n in ipairs(NEEDED) do
        if not has(asked, n.scope) then missing[#missing + 1] = n end
    end
    local can_post = has(asked, "video.publish") or has(asked, "video.upload")
    local lines = {}
    for _, n in ipairs(missing) do lines[#lines + 1] = n.scope .. " (" .. n.why .. ")" end
    if has(asked, "user.info.basic") and can_post then
        return { name = "scopes", ok = true,
                 message = "The app asks for " .. concat(asked, ", ") .. "."
                     .. (#lines > 0 and (" Without " .. concat(lines, ", ") .. " it cannot do that.") or "") }
    end
    return { name = "scopes", ok = false,
             message = "The app does not ask for what posting needs: add " .. concat(lines, ", ")
                 .. ". In TikTok for Developers add the products Login Kit and Content Posting API (with "
                 .. "Direct Post on) to the app, then list these scopes." }
end

local function audit(conn)
    if conn:_option("audited") ~= false then
        return { name = "audit", ok = true,
                 message = "The app is marked as audited by TikTok: every privacy level the creator offers "
                     .. "can be used." }
    end
    return { name = "audit", ok = true,
             message = "The app has not passed TikTok's audit: posts can only be SELF_ONLY (\"Only me\"), only "
                 .. "to private TikTok accounts (Settings and privacy > Privacy > Private account), and at "
                 .. "most 5 users a day can post through it; the posting form offers only \"Only me\"." }
end

--- check.with(conn, err) -> report | nil, err: check.app on a connection
-- made for the purpose (tiktok.check, apps:check), closed afterwards.
function _M.with(conn, err)
    if not conn then return nil, err end
    local rep = conn:check()
    conn:close()
    return rep
end

--- check.app(conn) -> report
function _M.app(conn)
    return report(conn, { credentials(conn), redirect(conn), scopes(conn), audit(conn) })
end

--- check.account(conn, open_id, { as }) -> report | nil, err
-- After a connect: the scopes the user actually granted against what the
-- app asked for and what posting needs.
function _M.account(conn, open_id, opts)
    local acc, err = conn:account(open_id, opts)
    if not acc then return nil, err end
    local checks = {}
    for _, n in ipairs(NEEDED) do
        if has(conn:_option("scopes"), n.scope) then
            local granted = has(acc.scopes, n.scope)
            checks[#checks + 1] = {
                name = n.scope, ok = granted,
                message = granted and (n.scope .. " granted (" .. n.why .. ").")
                    or ("The account did not grant " .. n.scope .. ", needed for " .. n.why .. ": on "
                        .. "TikTok's consent page the user unticked that permission (or TikTok has not "
                        .. "approved it for the app). Connect the account again and leave every permission "
                        .. "on; if it stays off, check the app's products and scopes in TikTok for "
                        .. "Developers."),
            }
        end
    end
    return report(conn, checks)
end

return _M
