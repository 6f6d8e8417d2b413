-- Control API (JSON in/out) under TIKTOK_SANDBOX_ADMIN. See sandbox/README.md.
local state = require "sandbox.state"
local reply = require "sandbox.reply"
local json = require "sandbox.json"
local util = require "sandbox.util"
local faults = require "sandbox.faults"
local tokens = require "sandbox.tokens"
local posts = require "sandbox.posts"
local webhooks = require "sandbox.webhooks"

local M = {}

local function ok(v) return reply.json(200, v) end
local function bad(msg, status) return reply.json(status or 400, { error = msg }) end
local function not_found(what) return bad(what .. " not found", 404) end

local function body()
  local s = reply.read_body()
  if s == "" then return {} end
  local v, err = json.decode(s)
  if type(v) ~= "table" then return nil, "body must be a JSON object: " .. tostring(err) end
  return v
end

local function arr(t) return json.array(util.copy(t or {})) end

-- Serializers --------------------------------------------------------------------

local function app_view(app)
  return {
    client_key = app.client_key, client_secret = app.client_secret, name = app.name,
    redirect_uris = arr(app.redirect_uris), scopes = arr(app.scopes), audited = app.audited,
    verified_prefixes = arr(app.verified_prefixes), verified_domains = arr(app.verified_domains),
    webhook_url = app.webhook_url, active_user_cap = app.active_user_cap, pkce_required = app.pkce_required,
    oauth_errors_http_200 = app.oauth_errors_http_200 or false, disabled = app.disabled or false,
    default = app.default or false,
  }
end

local function user_view(u)
  local v = util.copy(u)
  v.privacy_level_options = arr(state.privacy_options(u))
  local override = u.privacy_level_options
  v.privacy_level_options_override = type(override) == "table" and arr(override) or json.null
  v.open_ids = {}
  for _, key in ipairs(state.app_order) do v.open_ids[key] = state.open_id(key, u.username) end
  return v
end

local function post_view(p)
  local v = {
    publish_id = p.publish_id, client_key = p.client_key, open_id = p.open_id, username = p.username,
    media_type = p.media_type, mode = p.mode, source = p.source, status = p.status,
    fail_reason = p.fail_reason or json.null, post_info = p.post_info or json.null,
    source_info = p.source_info or json.null, privacy_level = p.privacy_level or json.null,
    effective = p.effective or json.null, restricted = p.restricted, created_at = p.created_at,
    history = arr(p.history), bytes_received = p.bytes_received, sha256 = p.sha256 or json.null,
    uploaded_bytes = p.uploaded_bytes, downloaded_bytes = p.downloaded_bytes,
    post_ids = arr(p.post_ids), public = p.public, pull_error = p.pull_error or json.null,
    analysis = p.analysis and arr(p.analysis) or json.null,
  }
  if p.upload then
    local u = p.upload
    v.upload = {
      upload_id = u.upload_id, video_size = u.video_size, chunk_size = u.chunk_size,
      total_chunk_count = u.total_chunk_count, chunks_done = u.chunks_done, committed = u.committed,
      expires_at = u.expires_at, hashing = u.hash, complete = u.complete or false,
    }
  end
  return v
end

-- Validation ---------------------------------------------------------------------

local function string_list(v, name)
  if type(v) ~= "table" then return nil, name .. " must be an array of strings" end
  local out = {}
  for i, s in ipairs(v) do
    if type(s) ~= "string" then return nil, name .. " must be an array of strings" end
    out[i] = s
  end
  if next(v) ~= nil and #out == 0 then return nil, name .. " must be an array" end
  return out
end

-- Login Kit redirect URI registration rules (web: https; desktop: loopback
-- http/https with a port or the wildcard port *).
local function check_redirect_uri(uri)
  if #uri >= 512 then return "redirect URIs must be shorter than 512 characters" end
  if uri:find("#", 1, true) then return "redirect URIs must not contain a fragment: " .. uri end
  if uri:find("?", 1, true) then return "redirect URIs must be static (no query parameters): " .. uri end
  local scheme, host, port = uri:match("^(https?)://([^/:]+):?([%d*]*)/")
  if not scheme then scheme, host, port = uri:match("^(https?)://([^/:]+):?([%d*]*)$") end
  if not scheme then return "redirect URIs must be absolute http(s) URIs: " .. uri end
  local loopback = host == "localhost" or host == "127.0.0.1"
  if scheme == "http" and not loopback then
    return "redirect URIs must use https (http only for localhost/127.0.0.1): " .. uri
  end
  if loopback and port == "" then return "loopback (desktop) redirect URIs need a port (or *): " .. uri end
  if port == "*" and not loopback then return "the wildcard port is only allowed for localhost/127.0.0.1: " .. uri end
  return nil
end

local function check_prefix(p)
  local u = util.parse_url(p)
  local http_only = state.boot_config().http_only
  if not u or (u.scheme ~= "https" and not (http_only and u.scheme == "http")) then
    return "URL prefixes must start with https://: " .. p
  end
  if util.is_ip(u.host) then return "URL prefixes need a domain name, not an IP address: " .. p end
  if p:sub(-1) ~= "/" then return "URL prefixes must end with /: " .. p end
  if u.query or u.fragment then return "URL prefixes must not contain ? or #: " .. p end
end

local function check_domain(d)
  if not d:match("^[%w%-]+[%w%.%-]*$") or d:find("..", 1, true) or d:sub(-1) == "." then
    return "domains must be host names like example.com (no scheme, port or path): " .. d
  end
  if util.is_ip(d) then return "domains must be names, not IP addresses: " .. d end
end

local APP_FIELDS = {
  name = "string", client_secret = "string", redirect_uris = "list", scopes = "list", audited = "boolean",
  verified_prefixes = "list", verified_domains = "list", webhook_url = "url", active_user_cap = "int",
  pkce_required = "boolean", client_key = "key", oauth_errors_http_200 = "boolean", disabled = "boolean",
}

local function apply_app(app, b, creating)
  for k, v in pairs(b) do
    local t = APP_FIELDS[k]
    if not t then return "unknown app field: " .. k end
    if t == "key" then
      if not creating then return "client_key cannot be changed" end
      if type(v) ~= "string" or not v:match("^[%w_%-]+$") then return "client_key must be letters, digits, _ or -" end
    elseif t == "list" then
      local list, err = string_list(v, k)
      if not list then return err end
      b[k] = list
    elseif t == "int" then
      if not util.is_int(v) or v < 0 then return k .. " must be a non-negative integer" end
    elseif t == "url" then
      if v ~= json.null then
        if type(v) ~= "string" then return "webhook_url must be a string or null" end
        local u = util.parse_url(v)
        local loopback = u and u.scheme == "http" and (u.host == "127.0.0.1" or u.host == "localhost")
        if not u or (u.scheme ~= "https" and not loopback) then
          return "webhook_url must be an https URL (plain http is accepted for 127.0.0.1/localhost only)"
        end
      end
    elseif type(v) ~= t then
      return k .. " must be a " .. t
    end
  end
  if b.client_secret == "" then return "client_secret must not be empty" end
  if b.redirect_uris then
    if #b.redirect_uris == 0 then return "an app needs at least one redirect URI" end
    if #b.redirect_uris > 10 then return "at most 10 redirect URIs" end
    for _, r in ipairs(b.redirect_uris) do
      local e = check_redirect_uri(r)
      if e then return e end
    end
  end
  if b.scopes then
    local s = { "user.info.basic" }
    for _, name in ipairs(b.scopes) do
      if not state.SCOPE_INDEX[name] then return "unknown scope: " .. name end
      if not util.contains(s, name) then s[#s + 1] = name end
    end
    b.scopes = s
  end
  for _, p in ipairs(b.verified_prefixes or {}) do
    local e = check_prefix(p)
    if e then return e end
  end
  for i, d in ipairs(b.verified_domains or {}) do
    local e = check_domain(d)
    if e then return e end
    b.verified_domains[i] = d:lower()
  end
  for k, v in pairs(b) do app[k] = v end
  return nil
end

local USER_FIELDS = {
  username = "name", display_name = "string", is_private = "boolean", privacy_level_options = "privacy",
  comment_disabled = "boolean", duet_disabled = "boolean", stitch_disabled = "boolean",
  max_video_post_duration_sec = "posint", banned = "boolean", posting_cap_reached = "boolean",
  daily_post_cap = "int", app_version = "string", bio_description = "string", is_verified = "boolean",
  follower_count = "int", following_count = "int", likes_count = "int", video_count = "int",
}
local PRIVACY = {
  PUBLIC_TO_EVERYONE = true, MUTUAL_FOLLOW_FRIENDS = true, FOLLOWER_OF_CREATOR = true, SELF_ONLY = true,
}

local function check_user(b, creating)
  for k, v in pairs(b) do
    local t = USER_FIELDS[k]
    if not t then return "unknown user field: " .. k end
    if t == "name" then
      if not creating then return "username cannot be changed" end
      if type(v) ~= "string" or not v:match("^[%w_%.]+$") or #v > 24 then
        return "username must be 1-24 letters, digits, _ or ."
      end
    elseif t == "int" or t == "posint" then
      if not util.is_int(v) or v < (t == "posint" and 1 or 0) then
        return k .. " must be a " .. (t == "posint" and "positive" or "non-negative") .. " integer"
      end
    elseif t == "privacy" then
      if v ~= json.null then
        local list, err = string_list(v, k)
        if not list then return err end
        for _, p in ipairs(list) do if not PRIVACY[p] then return "unknown privacy level: " .. p end end
        b[k] = list
      end
    elseif type(v) ~= t then
      return k .. " must be a " .. t
    end
  end
end

local function merge_config(dst, src, defaults, path)
  for k, v in pairs(src) do
    local d = defaults[k]
    local name = path .. k
    if d == nil then return "unknown config key: " .. name end
    if type(d) == "table" then
      if type(v) ~= "table" then return name .. " must be an object" end
      local e = merge_config(dst[k], v, d, name .. ".")
      if e then return e end
    else
      if type(v) ~= type(d) then return name .. " must be a " .. type(d) end
      if type(v) == "number" and v < 0 then return name .. " must not be negative" end
      dst[k] = v
    end
  end
end

-- Routes ---------------------------------------------------------------------------

local function log_view(q)
  return require("sandbox.reqlog").list(tonumber(q.since) or 0, q.endpoint)
end

local function info()
  local b = state.boot_config()
  local apps, users = json.array(), json.array()
  for _, k in ipairs(state.app_order) do apps[#apps + 1] = k end
  for _, u in ipairs(state.user_order) do users[#users + 1] = u end
  return { env = b.env, apps = apps, users = users, clock_offset_sec = state.clock_offset, now = state.now(),
    lua_memory_kb = math.floor(collectgarbage("count")), worker_pid = ngx.worker.pid() }
end

function M.route()
  local method = ngx.req.get_method()
  local path = ngx.var.uri:sub(#state.boot_config().admin_prefix + 1)
  path = path:gsub("/+$", "")
  local seg = {}
  for s in path:gmatch("[^/]+") do seg[#seg + 1] = s end
  local q = ngx.req.get_uri_args(20)
  local b, berr
  if method == "POST" or method == "PATCH" or method == "PUT" then
    b, berr = body()
    if not b then return bad(berr) end
  end
  local r1, r2, r3 = seg[1], seg[2], seg[3]

  if not r1 then return ok(info()) end
  if r1 == "health" then return ok({ ok = true }) end

  if r1 == "reset" and method == "POST" then
    state.reset()
    return ok({ ok = true })
  end

  if r1 == "config" then
    if method == "GET" then return ok(state.config) end
    if method == "PATCH" then
      local cfg = util.copy(state.config)
      local e = merge_config(cfg, b, state.DEFAULT_CONFIG, "")
      if e then return bad(e) end
      state.config = cfg
      return ok(state.config)
    end
  end

  if r1 == "clock" then
    if method == "POST" then
      if b.advance_sec ~= nil then
        if type(b.advance_sec) ~= "number" then return bad("advance_sec must be a number") end
        state.clock_offset = state.clock_offset + b.advance_sec
      elseif b.offset_sec ~= nil then
        if type(b.offset_sec) ~= "number" then return bad("offset_sec must be a number") end
        state.clock_offset = b.offset_sec
      else
        return bad("give advance_sec or offset_sec")
      end
    elseif method ~= "GET" then
      return bad("use GET or POST", 405)
    end
    return ok({ offset_sec = state.clock_offset, now = state.now() })
  end

  if r1 == "apps" then
    if not r2 then
      if method == "GET" then
        local out = json.array()
        for _, k in ipairs(state.app_order) do out[#out + 1] = app_view(state.apps[k]) end
        return ok(out)
      elseif method == "POST" then
        local key = b.client_key or ("sbx" .. util.random_string(13, "abcdefghijklmnopqrstuvwxyz0123456789"))
        if state.apps[key] then return bad("an app with this client_key exists", 409) end
        local base = state.default_app()
        local app = {
          client_key = key, client_secret = util.random_string(32), name = "Sandbox App " .. (#state.app_order + 1),
          redirect_uris = util.copy(base.redirect_uris),
          scopes = (function() local t = {} for i, sc in ipairs(state.SCOPES) do t[i] = sc.name end return t end)(),
          audited = true, verified_prefixes = { state.boot_config().media_base }, verified_domains = {},
          webhook_url = json.null, active_user_cap = 1000, pkce_required = true,
          oauth_errors_http_200 = false, disabled = false,
        }
        local e = apply_app(app, b, true)
        if e then return bad(e) end
        state.add_app(app)
        return reply.json(201, app_view(app))
      end
    else
      local app = state.find_app(r2)
      if not app then return not_found("app") end
      if method == "GET" then return ok(app_view(app)) end
      if method == "PATCH" then
        local e = apply_app(app, b, false)
        if e then return bad(e) end
        return ok(app_view(app))
      end
      if method == "DELETE" then
        if app.default then return bad("the default app cannot be deleted (use reset)", 409) end
        state.apps[app.client_key] = nil
        for i, k in ipairs(state.app_order) do
          if k == app.client_key then table.remove(state.app_order, i) break end
        end
        return ok({ ok = true })
      end
    end
  end

  if r1 == "users" then
    if not r2 then
      if method == "GET" then
        local out = json.array()
        for _, name in ipairs(state.user_order) do out[#out + 1] = user_view(state.users[name]) end
        return ok(out)
      elseif method == "POST" then
        if type(b.username) ~= "string" then return bad("username is required") end
        local e = check_user(b, true)
        if e then return bad(e) end
        if state.users[b.username] then return bad("a user with this username exists", 409) end
        local u = state.new_user(b)
        if b.is_private and b.duet_disabled == nil then u.duet_disabled = true end
        if b.is_private and b.stitch_disabled == nil then u.stitch_disabled = true end
        state.add_user(u)
        return reply.json(201, user_view(u))
      end
    else
      local u = state.users[r2]
      if not u then return not_found("user") end
      if not r3 then
        if method == "GET" then return ok(user_view(u)) end
        if method == "PATCH" then
          local e = check_user(b, false)
          if e then return bad(e) end
          for k, v in pairs(b) do u[k] = v end
          return ok(user_view(u))
        end
        if method == "DELETE" then
          if u.username == state.boot_config().default_user then
            return bad("the default user cannot be deleted (use reset)", 409)
          end
          state.users[u.username] = nil
          for i, n in ipairs(state.user_order) do
            if n == u.username then table.remove(state.user_order, i) break end
          end
          return ok({ ok = true })
        end
      elseif r3 == "deauthorize" and method == "POST" then
        local app = state.find_app(b.client_key or "default")
        if not app then return not_found("app") end
        local reason = b.reason or 1
        if not util.is_int(reason) or reason < 0 or reason > 5 then return bad("reason must be an integer 0-5") end
        local n = tokens.revoke_user(app.client_key, u.username)
        local open_id = state.open_id(app.client_key, u.username)
        posts.auth_removed(app.client_key, open_id)
        webhooks.emit(app, open_id, "authorization.removed", { reason = reason })
        return ok({ revoked_grants = n, open_id = open_id })
      end
    end
  end

  if r1 == "tokens" then
    if not r2 and method == "GET" then
      local out = json.array()
      for _, g in pairs(state.grants) do
        out[#out + 1] = { client_key = g.client_key, username = g.username, open_id = g.open_id,
          scopes = arr(g.scopes), revoked = g.revoked, refresh_deadline = g.refresh_deadline, created = g.created }
      end
      return ok(out)
    end
    if r2 == "expire" and method == "POST" then
      return ok({ expired = tokens.expire(b) })
    end
  end

  if r1 == "faults" then
    if not r2 then
      if method == "GET" then
        local out = json.array()
        for _, f in ipairs(state.faults) do out[#out + 1] = f end
        return ok(out)
      elseif method == "POST" then
        local okv, e = faults.validate(b)
        if not okv then return bad(e) end
        return reply.json(201, faults.add(b))
      elseif method == "DELETE" then
        state.faults = {}
        return ok({ ok = true })
      end
    elseif method == "DELETE" then
      for i, f in ipairs(state.faults) do
        if tostring(f.id) == r2 then table.remove(state.faults, i); return ok({ ok = true }) end
      end
      return not_found("fault")
    end
  end

  if r1 == "media" then
    local dir = state.boot_config().media_dir
    if not r2 and method == "GET" then
      local out = json.array()
      local pipe = io.popen("ls -1A " .. util.shell_quote(dir) .. " 2>/dev/null")
      for name in pipe:lines() do
        local f = io.open(dir .. "/" .. name, "rb")
        if f then
          local size = f:seek("end")
          f:close()
          if size then out[#out + 1] = { name = name, size = size, url = state.boot_config().media_base .. name } end
        end
      end
      pipe:close()
      return ok(out)
    end
    if r2 and not r3 then
      local name = ngx.unescape_uri(r2)
      if not name:match("^[%w][%w%._%-]*$") then
        return bad("media file names are letters, digits, '.', '_' and '-' (no folders)")
      end
      local file = dir .. "/" .. name
      if method == "DELETE" then
        if not os.remove(file) then return not_found("media file") end
        return ok({ ok = true })
      end
      if method == "PUT" then
        local size = b.size
        local head = ""
        if b.content_base64 ~= nil then
          if type(b.content_base64) ~= "string" then return bad("content_base64 must be a string") end
          head = ngx.decode_base64(b.content_base64)
          if not head then return bad("content_base64 is not valid base64") end
        elseif b.copy_from ~= nil then
          if type(b.copy_from) ~= "string" or not b.copy_from:match("^[%w][%w%._%-]*$") then
            return bad("copy_from names a file of the media folder")
          end
          local f = io.open(dir .. "/" .. b.copy_from, "rb")
          if not f then return not_found("media file " .. b.copy_from) end
          head = f:read("*a")
          f:close()
        end
        if size == nil then size = #head end
        if not util.is_int(size) or size < #head or size > 2 ^ 42 then
          return bad("size must be an integer of at least the content's length (bytes)")
        end
        local f, err = io.open(file, "wb")
        if not f then return bad("cannot write " .. name .. ": " .. tostring(err), 500) end
        f:write(head)
        f:close()
        -- The rest is a hole: a 4 GB file costs no disk and no time.
        if not util.truncate(file, size) then return bad("cannot extend " .. name, 500) end
        return reply.json(201, { name = name, size = size, url = state.boot_config().media_base .. name })
      end
    end
  end

  if r1 == "log" then
    if method == "GET" then return ok(log_view(q)) end
    if method == "DELETE" then require("sandbox.reqlog").clear(); return ok({ ok = true }) end
  end

  if r1 == "posts" then
    if not r2 and method == "GET" then
      local out = json.array()
      for _, id in ipairs(state.post_order) do out[#out + 1] = post_view(state.posts[id]) end
      return ok(out)
    end
    local p = r2 and state.posts[r2]
    if r2 and not p then return not_found("post") end
    if p and not r3 and method == "GET" then return ok(post_view(p)) end
    if p and r3 == "publish" and method == "POST" then
      local user = state.users[p.username]
      local privacy = b.privacy_level or (user and not user.is_private and "PUBLIC_TO_EVERYONE" or "SELF_ONLY")
      if not PRIVACY[privacy] then return bad("unknown privacy_level") end
      local count = b.post_count or 1
      if not util.is_int(count) or count < 1 or count > 10 then return bad("post_count must be 1-10") end
      local done, e = posts.user_publish(p, privacy, count)
      if not done then return bad(e, 409) end
      return ok(post_view(p))
    end
    if p and r3 == "visibility" and method == "POST" then
      if type(b.public) ~= "boolean" then return bad("public must be a boolean") end
      local done, e = posts.set_public(p, b.public)
      if not done then return bad(e, 409) end
      return ok(post_view(p))
    end
  end

  if r1 == "webhooks" then
    if not r2 then
      if method == "GET" then
        local out = json.array()
        for _, d in ipairs(state.deliveries) do out[#out + 1] = d end
        return ok(out)
      elseif method == "DELETE" then
        state.deliveries = {}
        return ok({ ok = true })
      end
    elseif r2 == "received" then
      if method == "GET" then
        local out = json.array()
        for _, d in ipairs(state.received_hooks) do out[#out + 1] = d end
        return ok(out)
      elseif method == "DELETE" then
        state.received_hooks = {}
        return ok({ ok = true })
      end
    end
  end

  return bad("no such control API route: " .. method .. " " .. ngx.var.uri, 404)
end

-- The control API is a developer tool on loopback. A web page open in the
-- developer's browser must not be able to drive it: by DNS rebinding (its
-- requests then carry the page's own host name in Host), or by a form post
-- or a "simple" cross-origin fetch (they cannot send application/json without
-- a CORS preflight, which is never answered, and they carry Origin or
-- Sec-Fetch-Site). Returns nil when the request may proceed, else the answer.
local function loopback_host(h)
  if type(h) ~= "string" then return false end
  local host, port = h:match("^(%[[^%]]+%])(.*)$")
  if not host then host, port = h:match("^([^:]+)(.*)$") end
  if not host then return false end
  if port ~= "" then
    port = port:match("^:(%d+)$")
    if not port or tonumber(port) ~= tonumber(ngx.var.server_port) then return false end
  end
  host = host:lower()
  if host == "localhost" or host == "[::1]" then return true end
  local a, b, c = host:match("^127%.(%d+)%.(%d+)%.(%d+)$")
  return a ~= nil and tonumber(a) <= 255 and tonumber(b) <= 255 and tonumber(c) <= 255
end

function M.guard()
  local h = ngx.req.get_headers(100)
  local host = h["host"]
  if type(host) == "table" or not loopback_host(host) then
    return bad("the control API answers only requests whose Host is a loopback name or address " ..
      "(localhost, 127.x.x.x or [::1], with this port)", 403)
  end
  if h["origin"] ~= nil then
    return bad("the control API does not answer requests sent by a web page (Origin header)", 403)
  end
  local site = h["sec-fetch-site"]
  if site ~= nil and site ~= "none" then
    return bad("the control API does not answer requests sent by a web page (Sec-Fetch-Site: " ..
      tostring(site) .. ")", 403)
  end
  local ct = h["content-type"]
  local has_body = (tonumber(h["content-length"]) or 0) > 0 or h["transfer-encoding"] ~= nil
  if ct ~= nil then
    if util.media_type(ct) ~= "application/json" then
      return bad("the control API takes JSON only: send Content-Type: application/json (got " ..
        tostring(type(ct) == "table" and ct[1] or ct) .. ")", 415)
    end
  elseif has_body then
    return bad("the control API takes JSON only: a request with a body needs Content-Type: application/json", 415)
  end
  return nil
end

function M.handle()
  reply.note("skip_log", true)
  local refused = M.guard()
  if refused then return reply.send(refused) end
  local okc, res = pcall(M.route)
  if not okc then
    ngx.log(ngx.ERR, "sandbox control API: ", res)
    res = reply.json(500, { error = "sandbox bug: " .. tostring(res) })
  end
  return reply.send(res)
end

return M
