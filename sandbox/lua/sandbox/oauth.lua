-- Login Kit: /v2/auth/authorize/ (consent page + approve/cancel POST),
-- /v2/oauth/token/ (authorization_code, refresh_token, client_credentials),
-- /v2/oauth/revoke/.
local state = require "sandbox.state"
local tokens = require "sandbox.tokens"
local reply = require "sandbox.reply"
local util = require "sandbox.util"
local webhooks = require "sandbox.webhooks"
local posts = require "sandbox.posts"

local esc = util.html_escape
local M = {}

local AUTH_PARAMS = { "client_key", "response_type", "scope", "redirect_uri", "state",
  "code_challenge", "code_challenge_method", "disable_auto_auth" }

-- Registered redirect URIs match exactly; a registered loopback URI with the
-- wildcard port "*" (desktop apps) matches any port.
local function redirect_matches(registered, given)
  if registered == given then return true end
  local pre, post = registered:match("^(https?://[^/:]+):%*(.*)$")
  if not pre then return false end
  local port, rest = given:sub(#pre + 1):match("^:(%d+)(.*)$")
  return given:sub(1, #pre) == pre and port ~= nil and rest == post
end

local function registered(app, uri)
  for _, r in ipairs(app.redirect_uris) do
    if redirect_matches(r, uri) then return true end
  end
  return false
end

local function fail(code, desc, param)
  return nil, { code = code, desc = desc, param = param }
end

-- Validate the authorization request parameters (GET query or POST form).
function M.validate_authorize(p)
  for _, k in ipairs(AUTH_PARAMS) do
    if type(p[k]) == "table" then return fail("invalid_request", "parameter " .. k .. " is repeated", k) end
    if p[k] == true then p[k] = "" end
  end
  local key = p.client_key
  if not key or key == "" then return fail("invalid_request", "client_key is missing", "client_key") end
  local app = state.apps[key]
  if not app then return fail("invalid_client", "client_key is unknown", "client_key") end
  if app.disabled then return fail("invalid_client", "this app is disabled (revoked)", "client_key") end
  local ru = p.redirect_uri
  if not ru or ru == "" then return fail("invalid_request", "redirect_uri is missing", "redirect_uri") end
  if not registered(app, ru) then
    return fail("invalid_request", "redirect_uri is not registered for this app (exact match required)", "redirect_uri")
  end
  if p.response_type ~= "code" then
    return fail("unsupported_response_type", "response_type must be code", "response_type")
  end
  local scope = p.scope
  if not scope or scope == "" then return fail("invalid_scope", "scope is missing", "scope") end
  local scopes, seen = {}, {}
  for _, s in ipairs(util.split_commas(scope)) do
    if not state.SCOPE_INDEX[s] then
      return fail("invalid_scope", "unknown scope '" .. s .. "' (scopes are comma-separated)", "scope")
    end
    if not util.contains(app.scopes, s) then
      return fail("invalid_scope", "scope '" .. s .. "' is not authorized for this app", "scope")
    end
    if not seen[s] then seen[s] = true; scopes[#scopes + 1] = s end
  end
  local cc, ccm = p.code_challenge, p.code_challenge_method
  if cc and cc ~= "" then
    if not cc:match("^[0-9a-f]+$") or #cc ~= 64 then
      return fail("invalid_request",
        "Code verifier or code challenge is invalid. (code_challenge must be the hex SHA-256 of the verifier, " ..
        "64 lower-case hex characters, not base64url)",
        "code_challenge")
    end
    if ccm ~= "S256" then
      return fail("invalid_request", "code_challenge_method must be S256", "code_challenge_method")
    end
  else
    cc = nil
    if ccm and ccm ~= "" then
      return fail("invalid_request", "code_challenge_method given without code_challenge", "code_challenge")
    end
    if app.pkce_required then
      return fail("invalid_request",
        "code_challenge is required: web apps must use PKCE (code_challenge = lower-case hex SHA-256 of the " ..
        "code_verifier, code_challenge_method=S256)", "code_challenge")
    end
  end
  local daa = p.disable_auto_auth
  if daa and daa ~= "" and daa ~= "0" and daa ~= "1" then
    return fail("invalid_request", "disable_auto_auth must be 0 or 1", "disable_auto_auth")
  end
  return { app = app, redirect_uri = ru, scopes = scopes, state = p.state, code_challenge = cc }
end

local PAGE_HEAD = [[<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%s</title>
<style>body{font-family:sans-serif;max-width:36em;margin:3em auto;padding:0 1em}
.scope{margin:.4em 0}.err{color:#b00}button{margin-right:1em;padding:.5em 1.5em}</style>
</head><body>
]]

local function error_page(e)
  local html = string.format(PAGE_HEAD, "TikTok sandbox: authorization error") ..
    "<h1>Something went wrong</h1>\n" ..
    "<p class=\"err\">This app's authorization request is invalid. " ..
    "If you are the developer, correct the following and try again:</p>\n" ..
    "<p>Error: <code id=\"error\">" .. esc(e.code) .. "</code></p>\n" ..
    "<p>Parameter: <code id=\"param\">" .. esc(e.param or "") .. "</code></p>\n" ..
    "<p id=\"error_description\">" .. esc(e.desc) .. "</p>\n</body></html>\n"
  reply.note("error_code", e.code)
  return reply.response(400, html, {
    ["Content-Type"] = "text/html; charset=utf-8",
    ["X-Sandbox-Error"] = e.code,
    ["Cache-Control"] = "no-store",
  })
end

local function consent_page(req, p)
  local app = req.app
  local out = { string.format(PAGE_HEAD, "Authorize " .. esc(app.name)) }
  out[#out + 1] = "<h1>" .. esc(app.name) .. " wants to access your TikTok account</h1>\n"
  out[#out + 1] = "<form method=\"POST\" action=\"/v2/auth/authorize/\">\n"
  for _, k in ipairs(AUTH_PARAMS) do
    if p[k] and p[k] ~= "" then
      out[#out + 1] = "<input type=\"hidden\" name=\"" .. k .. "\" value=\"" .. esc(p[k]) .. "\">\n"
    end
  end
  out[#out + 1] = "<input type=\"hidden\" name=\"scope_choice\" value=\"1\">\n"
  out[#out + 1] = "<p><label>Log in as <select name=\"username\">\n"
  local chosen = p.username or state.boot_config().default_user
  for _, name in ipairs(state.user_order) do
    local u = state.users[name]
    out[#out + 1] = "<option value=\"" .. esc(name) .. "\"" .. (name == chosen and " selected" or "") .. ">" ..
      esc(u.display_name) .. " (@" .. esc(name) .. ")</option>\n"
  end
  out[#out + 1] = "</select></label></p>\n<p>This app will be able to:</p>\n"
  for _, s in ipairs(req.scopes) do
    local info = state.SCOPE_INDEX[s]
    if info.toggleable then
      out[#out + 1] = "<div class=\"scope\"><label><input type=\"checkbox\" name=\"granted_scope\" value=\"" ..
        esc(s) .. "\" checked> " .. esc(info.desc) .. " <code>" .. esc(s) .. "</code></label></div>\n"
    else
      out[#out + 1] = "<div class=\"scope\"><input type=\"hidden\" name=\"granted_scope\" value=\"" .. esc(s) ..
        "\"><label><input type=\"checkbox\" checked disabled> " .. esc(info.desc) .. " <code>" .. esc(s) ..
        "</code></label></div>\n"
    end
  end
  out[#out + 1] = "<p>You will be redirected to <code>" .. esc(req.redirect_uri) .. "</code></p>\n"
  out[#out + 1] = "<button type=\"submit\" name=\"decision\" value=\"approve\">Authorize</button>" ..
    "<button type=\"submit\" name=\"decision\" value=\"cancel\">Cancel</button>\n</form>\n</body></html>\n"
  return reply.response(200, table.concat(out), {
    ["Content-Type"] = "text/html; charset=utf-8",
    ["Cache-Control"] = "no-store",
  })
end

local function redirect(uri, params)
  local parts = {}
  for _, kv in ipairs(params) do
    if kv[2] ~= nil then parts[#parts + 1] = kv[1] .. "=" .. util.escape_component(kv[2]) end
  end
  return reply.response(302, "", { Location = uri .. "?" .. table.concat(parts, "&"), ["Cache-Control"] = "no-store",
    ["Content-Type"] = "text/html; charset=utf-8" })
end

local function form_args()
  local mt = util.media_type(ngx.var.http_content_type)
  if mt ~= "application/x-www-form-urlencoded" then
    return nil, "Content-Type must be application/x-www-form-urlencoded"
  end
  ngx.req.read_body()
  local args = ngx.req.get_post_args(200)
  return args or {}
end

function M.authorize()
  local method = ngx.req.get_method()
  if method == "GET" then
    local p = ngx.req.get_uri_args(200)
    local req, e = M.validate_authorize(p)
    if not req then return error_page(e) end
    reply.note("client_key", req.app.client_key)
    if type(p.username) == "string" and not state.users[p.username] then
      return error_page({ code = "invalid_request", desc = "unknown sandbox user", param = "username" })
    end
    return consent_page(req, p)
  elseif method ~= "POST" then
    return reply.response(405, "method not allowed\n", { Allow = "GET, POST", ["Content-Type"] = "text/plain" })
  end
  local p, err = form_args()
  if not p then return error_page({ code = "invalid_request", desc = err, param = "Content-Type" }) end
  local req, e = M.validate_authorize(p)
  if not req then return error_page(e) end
  reply.note("client_key", req.app.client_key)
  local decision = p.decision
  if decision ~= "approve" and decision ~= "cancel" then
    return error_page({ code = "invalid_request", desc = "decision must be approve or cancel", param = "decision" })
  end
  local username = p.username
  if username == nil or username == "" then username = state.boot_config().default_user end
  if type(username) ~= "string" or not state.users[username] then
    return error_page({ code = "invalid_request", desc = "unknown sandbox user", param = "username" })
  end
  if decision == "cancel" then
    return redirect(req.redirect_uri, {
      { "error", "access_denied" },
      { "error_description", "The user denied the authorization request." },
      { "state", req.state },
    })
  end
  -- Which of the requested scopes the user left checked.
  local granted = req.scopes
  local choice
  if p.scope_choice then
    choice = p.granted_scope or {}
    if type(choice) == "string" then choice = { choice } end
  elseif type(p.granted_scopes) == "string" then
    choice = util.split_commas(p.granted_scopes)
  end
  if choice then
    local set = {}
    for _, s in ipairs(choice) do
      if not util.contains(req.scopes, s) then
        return error_page({ code = "invalid_request", param = "granted_scopes",
          desc = "granted scope '" .. tostring(s) .. "' was not requested" })
      end
      set[s] = true
    end
    granted = {}
    for _, s in ipairs(req.scopes) do
      if set[s] or not state.SCOPE_INDEX[s].toggleable then granted[#granted + 1] = s end
    end
  end
  local code = tokens.new_code {
    client_key = req.app.client_key,
    redirect_uri = req.redirect_uri,
    username = username,
    scopes = granted,
    code_challenge = req.code_challenge,
  }
  return redirect(req.redirect_uri, {
    { "code", code },
    { "scopes", table.concat(granted, ",") },
    { "state", req.state },
  })
end

-- Check client_key/client_secret of a token or revoke request.
local function client_auth(p)
  for _, k in ipairs({ "client_key", "client_secret", "grant_type", "code", "redirect_uri", "code_verifier",
    "refresh_token", "token" }) do
    if type(p[k]) == "table" then
      return nil, reply.oauth_error(400, "invalid_request",
        "The request parameters are malformed. (repeated " .. k .. ")")
    end
    if p[k] == true then p[k] = "" end
  end
  if not p.client_key or p.client_key == "" then
    return nil, reply.oauth_error(400, "invalid_request", "Client key is missed in request.")
  end
  if not p.client_secret or p.client_secret == "" then
    return nil, reply.oauth_error(400, "invalid_request", "Client secret is missed in request.")
  end
  local app = state.apps[p.client_key]
  if not app then return nil, reply.oauth_error(401, "invalid_client", "Client key is invalid.") end
  if app.disabled then
    local res = reply.oauth_error(401, "invalid_client", "Client key is invalid.")
    res.headers["X-Sandbox-Reason"] = "the app is disabled (revoked)"
    return nil, res
  end
  if app.client_secret ~= p.client_secret then
    return nil, reply.oauth_error(401, "invalid_client", "Client secret is invalid.")
  end
  reply.note("client_key", app.client_key)
  return app
end

local function token_headers(res)
  res.headers["Cache-Control"] = "no-store"
  res.headers["Pragma"] = "no-cache"
  return res
end

local function grant_code(app, p)
  local code = p.code
  if not code or code == "" then return reply.oauth_error(400, "invalid_request", "Code is missed in request.") end
  local rec = state.codes[code]
  if not rec or rec.client_key ~= app.client_key then
    return reply.oauth_error(400, "invalid_grant", "Authorization code is invalid.")
  end
  if rec.used then return reply.oauth_error(400, "invalid_grant", "Authorization code has been used.") end
  if rec.expires_at <= state.now() then
    return reply.oauth_error(400, "invalid_grant", "Authorization code is expired.")
  end
  if not p.redirect_uri or p.redirect_uri == "" then
    return reply.oauth_error(400, "invalid_request", "Redirect_uri is missed in request.")
  end
  if p.redirect_uri ~= rec.redirect_uri then
    return reply.oauth_error(400, "invalid_request", "Redirect_uri is not matched with the uri when requesting code.")
  end
  if rec.code_challenge then
    local v = p.code_verifier
    if not v or v == "" then
      return reply.oauth_error(400, "invalid_request",
        "Code verifier or code challenge is invalid. (code_verifier is missing)")
    end
    if #v < 43 or #v > 128 or not v:match("^[%w%-%._~]+$") then
      return reply.oauth_error(400, "invalid_request",
        "Code verifier or code challenge is invalid. (code_verifier must be 43-128 unreserved characters)")
    end
    if util.sha256_hex(v) ~= rec.code_challenge then
      return reply.oauth_error(400, "invalid_grant", "Code verifier or code challenge is invalid.")
    end
  end
  rec.used = true
  local grant = tokens.new_grant(app.client_key, rec.username, rec.scopes)
  reply.note("open_id", grant.open_id)
  return token_headers(reply.json(200, tokens.issue(grant)))
end

local function grant_refresh(app, p)
  local rt = p.refresh_token
  if not rt or rt == "" then return reply.oauth_error(400, "invalid_request", "Refresh token is missed in request.") end
  local rec = state.refresh_tokens[rt]
  local grant = rec and state.grants[rec.grant]
  if not rec or not grant or grant.client_key ~= app.client_key then
    return reply.oauth_error(400, "invalid_grant", "Refresh token is invalid.")
  end
  if rec.rotated then
    return reply.oauth_error(400, "invalid_grant",
      "Refresh token is invalid: it was replaced by a newer refresh token.")
  end
  if grant.revoked then return reply.oauth_error(400, "invalid_grant", "Refresh token is revoked.") end
  if rec.expires_at <= state.now() then return reply.oauth_error(400, "invalid_grant", "Refresh token is expired.") end
  reply.note("open_id", grant.open_id)
  return token_headers(reply.json(200, tokens.issue(grant, rt)))
end

-- token and revoke: a form POST authenticated by client_key/client_secret.
-- Returns the app and the form, or nil and the answer.
local function client_request()
  if ngx.req.get_method() ~= "POST" then
    return nil, reply.oauth_error(405, "invalid_request", "Use POST.")
  end
  local p, err = form_args()
  if not p then return nil, reply.oauth_error(400, "invalid_request", err) end
  local app, res = client_auth(p)
  if not app then return nil, res end
  return app, p
end

-- With the app setting oauth_errors_http_200 (§15.4), error answers of the
-- token and revoke endpoints keep their {"error": ...} body but come with
-- HTTP 200. The app is the one named by client_key; when that is missing or
-- unknown, the default app's setting decides. A wrong method stays 405.
local function oauth_status(handler)
  return function()
    local res = handler()
    if res.status >= 400 and res.status ~= 405 then
      ngx.req.read_body()
      local okp, args = pcall(ngx.req.get_post_args, 200)
      if not okp or type(args) ~= "table" then args = {} end
      local key = type(args.client_key) == "string" and args.client_key or nil
      local app = key and state.apps[key] or state.default_app()
      if app and app.oauth_errors_http_200 then
        res.headers["X-Sandbox-Status"] = tostring(res.status)
        res.status = 200
      end
    end
    return res
  end
end

local function token()
  local app, p = client_request()
  if not app then return p end
  local gt = p.grant_type
  if not gt or gt == "" then return reply.oauth_error(400, "invalid_request", "Grant type is missed in request.") end
  if gt == "authorization_code" then return grant_code(app, p) end
  if gt == "refresh_token" then return grant_refresh(app, p) end
  if gt == "client_credentials" then return token_headers(reply.json(200, tokens.issue_client(app.client_key))) end
  return reply.oauth_error(400, "unsupported_grant_type", "Grant type " .. gt .. " is not supported.")
end

M.token = oauth_status(token)

local function revoke()
  local app, p = client_request()
  if not app then return p end
  local tok = p.token
  if not tok or tok == "" then return reply.oauth_error(400, "invalid_request", "Token is missed in request.") end
  local rec = state.access_tokens[tok]
  local grant = rec and state.grants[rec.grant]
  if grant then
    if grant.client_key ~= app.client_key then
      return reply.oauth_error(400, "invalid_request", "The token was not issued to this client.")
    end
    if not grant.revoked then
      tokens.revoke_user(app.client_key, grant.username)
      reply.note("open_id", grant.open_id)
      posts.auth_removed(app.client_key, grant.open_id)
      webhooks.emit(app, grant.open_id, "authorization.removed", { reason = 5 })
    end
  end
  -- Unknown or already revoked tokens: success (RFC 7009), nothing to do.
  return token_headers(reply.json(200, {}))
end

M.revoke = oauth_status(revoke)

return M
