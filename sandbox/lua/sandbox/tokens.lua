-- Grants, access/refresh/client tokens and authorization codes.
local state = require "sandbox.state"
local util = require "sandbox.util"

local M = {}

local function token(prefix)
  return prefix .. util.random_string(56) .. "!" .. util.random_digits(4) .. ".va"
end

function M.new_code(fields)
  -- Contains '*' and '!' so that the redirect carries it percent-encoded and a
  -- client has to URL-decode it before the token exchange (as TikTok's codes do).
  local code = util.random_string(44) .. "*0!" .. util.random_digits(4) .. ".va"
  fields.expires_at = state.now() + state.config.tokens.code_ttl_sec
  fields.used = false
  state.codes[code] = fields
  return code
end

function M.new_grant(client_key, username, scopes)
  local g = {
    id = util.random_string(16),
    client_key = client_key,
    username = username,
    open_id = state.open_id(client_key, username),
    scopes = scopes,
    created = state.now(),
    refresh_deadline = state.now() + state.config.tokens.refresh_ttl_sec,
    revoked = false,
  }
  state.grants[g.id] = g
  return g
end

-- Issue an access token (and a fresh refresh token) for a grant; the response
-- body of the token endpoint.
function M.issue(grant, rotate_from)
  local cfg = state.config.tokens
  local now = state.now()
  local at = token("act.")
  state.access_tokens[at] = { grant = grant.id, issued_at = now, expires_at = now + cfg.access_ttl_sec }
  if rotate_from then
    local old = state.refresh_tokens[rotate_from]
    if old then old.rotated = true end
    if cfg.refresh_rotation_resets_expiry then
      grant.refresh_deadline = now + cfg.refresh_ttl_sec
    end
  end
  local rt = token("rft.")
  state.refresh_tokens[rt] = { grant = grant.id, issued_at = now, expires_at = grant.refresh_deadline }
  local refresh_left = math.max(0, math.floor(grant.refresh_deadline - now))
  return {
    access_token = at,
    expires_in = cfg.access_ttl_sec,
    open_id = grant.open_id,
    refresh_expires_in = refresh_left,
    refresh_token = rt,
    scope = table.concat(grant.scopes, ","),
    token_type = "Bearer",
  }
end

function M.issue_client(client_key)
  local cfg = state.config.tokens
  local ct = token("clt.")
  state.client_tokens[ct] = { client_key = client_key, expires_at = state.now() + cfg.client_ttl_sec }
  return { access_token = ct, expires_in = cfg.client_ttl_sec, token_type = "Bearer" }
end

-- Resolve a bearer token for a user endpoint.
-- Returns ctx { grant, app, user, open_id, scopes } or nil, reason
-- (reason: "missing", "invalid", "expired", "revoked", "client_token").
function M.resolve(tok)
  if not tok then return nil, "missing" end
  local rec = state.access_tokens[tok]
  if not rec then
    if state.client_tokens[tok] then return nil, "client_token" end
    return nil, "invalid"
  end
  local grant = state.grants[rec.grant]
  if not grant or grant.revoked then return nil, "revoked" end
  if rec.expires_at <= state.now() then return nil, "expired" end
  local app = state.apps[grant.client_key]
  local user = state.users[grant.username]
  if not app or app.disabled or not user then return nil, "revoked" end
  local scopes = {}
  for _, s in ipairs(grant.scopes) do scopes[s] = true end
  return { grant = grant, app = app, user = user, open_id = grant.open_id, scopes = scopes, token = tok }
end

-- Revoke every grant of (client_key, username): access and refresh tokens stop working.
function M.revoke_user(client_key, username)
  local n = 0
  for _, g in pairs(state.grants) do
    if g.client_key == client_key and g.username == username and not g.revoked then
      g.revoked = true
      n = n + 1
    end
  end
  return n
end

-- Control API: expire tokens now (by token string, or all of an open_id).
function M.expire(spec)
  local now = state.now()
  local n = 0
  if spec.access_token and state.access_tokens[spec.access_token] then
    state.access_tokens[spec.access_token].expires_at = now
    n = n + 1
  end
  if spec.refresh_token and state.refresh_tokens[spec.refresh_token] then
    state.refresh_tokens[spec.refresh_token].expires_at = now
    n = n + 1
  end
  if spec.client_token and state.client_tokens[spec.client_token] then
    state.client_tokens[spec.client_token].expires_at = now
    n = n + 1
  end
  if spec.open_id then
    local kinds = spec.kind or "access"
    for _, rec in pairs(state.access_tokens) do
      local g = state.grants[rec.grant]
      if g and g.open_id == spec.open_id and (kinds == "access" or kinds == "both") and rec.expires_at > now then
        rec.expires_at = now; n = n + 1
      end
    end
    for _, rec in pairs(state.refresh_tokens) do
      local g = state.grants[rec.grant]
      if g and g.open_id == spec.open_id and (kinds == "refresh" or kinds == "both") and rec.expires_at > now then
        rec.expires_at = now; n = n + 1
      end
    end
  end
  return n
end

return M
