-- tiktok.access: who may see and use a stored thing (an account, an app
-- configuration, a job). One rule for all of them:
--   * stored with an owner and access "only_me": that owner only;
--   * access "workspace": anyone acting in that workspace;
--   * stored without an owner (a single-user script's): only callers that
--     act as nobody, never a web user acting `as` someone.
local util = require "tiktok.util"

local _M = {}

local AS_SPEC = { user = "string", workspace = "string" }

--- access.check_as(fname, as) -> as (raises on a malformed principal)
function _M.check_as(fname, as)
    if as ~= nil then util.check_opts(fname .. ": as", as, AS_SPEC, 3) end
    return as
end

--- access.acting(as) -> true when the caller acts as a user or workspace
function _M.acting(as)
    return as ~= nil and (as.user ~= nil or as.workspace ~= nil)
end

--- access.visible(rec, as) -> boolean
function _M.visible(rec, as)
    if rec.owner == nil and rec.workspace == nil then return not _M.acting(as) end
    if not _M.acting(as) then return false end
    if rec.access == "workspace" then
        return as.workspace ~= nil and as.workspace == rec.workspace
    end
    return as.user ~= nil and as.user == rec.owner
end

--- access.stamp(rec, as, access) -> rec with owner, workspace and access set
-- from the acting principal; nil, message when access is "workspace"
-- without a workspace. Raises on an access that is neither value.
function _M.stamp(rec, as, access, fname)
    access = access or "only_me"
    if access ~= "only_me" and access ~= "workspace" then
        error(fname .. ": access must be \"only_me\" or \"workspace\"", 3)
    end
    as = as or {}
    if access == "workspace" and not as.workspace then
        return nil, "access = \"workspace\" needs as.workspace"
    end
    rec.owner, rec.workspace, rec.access = as.user, as.workspace, access
    return rec
end

return _M
