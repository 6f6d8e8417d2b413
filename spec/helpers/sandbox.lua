-- Spec helper: start/stop the local TikTok sandbox (sandbox/run) and talk plain
-- HTTP to it with the curl CLI. Works in Lua 5.1, LuaJIT and Lua 5.4.
--
--   local sandbox = require "spec.helpers.sandbox"
--   local sb = sandbox.start()               -- fresh temp dir; sb.dir, sb.env
--   local body, status = sb:admin("PATCH", "/config", { delays = { processing_ms = 50 } })
--   local status, headers, body = sandbox.http("GET", url, { cacert = sb.env.TIKTOK_CA_FILE })
--   sb:stop()
local cjson = require "cjson.safe"

local M = {}

local function sh(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = sh

-- Run a shell command; returns its combined output and exit status
-- (io.popen's close() does not report the status in Lua 5.1).
local function exec(cmd)
  local p = assert(io.popen("( " .. cmd .. " ) 2>&1; echo \"__rc=$?\""))
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  out = out:gsub("__rc=%d+%s*$", "")
  return out, rc
end
M.exec = exec

local function script_dir()
  local src = debug.getinfo(1, "S").source
  src = src:gsub("^@", "")
  local dir = src:match("^(.*)/[^/]*$") or "."
  local out = exec("cd " .. sh(dir) .. " && pwd")
  return (out:gsub("%s+$", ""))
end

M.root = os.getenv("TIKTOK_SANDBOX_ROOT") or (script_dir() .. "/../..")
M.run = M.root .. "/sandbox/run"

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_file = read_file

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end
M.write_file = write_file

local function tmpname()
  return os.tmpname()
end

-- [export ]KEY='value' lines as written by sandbox/run.
function M.read_env(path)
  local env = {}
  local s = read_file(path)
  if not s then return nil end
  for line in s:gmatch("[^\n]+") do
    local k, v = line:gsub("^export%s+", ""):match("^([%w_]+)=(.*)$")
    if k then
      if v:sub(1, 1) == "'" and v:sub(-1) == "'" then
        v = v:sub(2, -2):gsub("'\\''", "'")
      end
      env[k] = v
    end
  end
  return env
end

function M.url_encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function M.url_decode(s)
  return (tostring(s):gsub("%+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- form: { key = value, ... } (sorted by key) or { {key, value}, ... } (as given).
function M.form_encode(form)
  local parts = {}
  if form[1] ~= nil then
    for _, kv in ipairs(form) do parts[#parts + 1] = M.url_encode(kv[1]) .. "=" .. M.url_encode(kv[2]) end
  else
    local keys = {}
    for k in pairs(form) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = M.url_encode(k) .. "=" .. M.url_encode(form[k]) end
  end
  return table.concat(parts, "&")
end

-- Query string of a URL as a table (last value wins).
function M.parse_query(url)
  local q = {}
  local qs = tostring(url):match("%?(.*)$") or ""
  qs = qs:gsub("#.*$", "")
  for pair in qs:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    q[M.url_decode(k)] = M.url_decode(v)
  end
  return q
end

M.json_encode = cjson.encode
M.json_decode = cjson.decode

local function parse_headers(raw)
  -- curl -D writes every response head (100 Continue, redirects); keep the last.
  local last
  for block in (raw .. "\r\n\r\n"):gmatch("(HTTP/.-)\r\n\r\n") do last = block end
  local headers = {}
  if last then
    for line in last:gmatch("[^\r\n]+") do
      local k, v = line:match("^([^:]+):%s*(.-)%s*$")
      if k then headers[k:lower()] = v end
    end
  end
  return headers
end

--- Plain HTTP with the curl CLI.
-- opts: headers (table; a false value removes a curl default header), body (string),
-- body_file (path), upload_file (path, sent with -T), form (table), json (table),
-- cacert (path), timeout (seconds), extra (array of extra curl arguments).
-- Returns status (0 when no final response), headers (lower-case keys), body, curl exit code, curl stderr.
function M.http(method, url, opts)
  opts = opts or {}
  local hfile, bfile = tmpname(), tmpname()
  local args = { "curl", "-sS", "-o", bfile, "-D", hfile, "-w", "%{http_code}" }
  if method == "HEAD" then
    args[#args + 1] = "--head"
  else
    args[#args + 1] = "-X"; args[#args + 1] = method
  end
  if opts.cacert then args[#args + 1] = "--cacert"; args[#args + 1] = opts.cacert end
  args[#args + 1] = "--max-time"; args[#args + 1] = tostring(opts.timeout or 30)
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k:lower()] = { k, v } end
  local data_file
  if opts.form then
    data_file = tmpname()
    write_file(data_file, M.form_encode(opts.form))
    headers["content-type"] = headers["content-type"] or { "Content-Type", "application/x-www-form-urlencoded" }
  elseif opts.json then
    data_file = tmpname()
    write_file(data_file, cjson.encode(opts.json))
    headers["content-type"] = headers["content-type"] or { "Content-Type", "application/json; charset=UTF-8" }
  elseif opts.body then
    data_file = tmpname()
    write_file(data_file, opts.body)
    headers["content-type"] = headers["content-type"] or { "Content-Type", false }
  elseif opts.body_file then
    headers["content-type"] = headers["content-type"] or { "Content-Type", false }
  end
  if data_file or opts.body_file then
    args[#args + 1] = "--data-binary"; args[#args + 1] = "@" .. (data_file or opts.body_file)
  elseif opts.upload_file then
    args[#args + 1] = "-T"; args[#args + 1] = opts.upload_file
  end
  for _, kv in pairs(headers) do
    args[#args + 1] = "-H"
    if kv[2] == false then
      args[#args + 1] = kv[1] .. ":"
    elseif kv[2] == "" then
      args[#args + 1] = kv[1] .. ";"
    else
      args[#args + 1] = kv[1] .. ": " .. tostring(kv[2])
    end
  end
  for _, a in ipairs(opts.extra or {}) do args[#args + 1] = a end
  args[#args + 1] = url
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = sh(a) end
  local out, rc = exec(table.concat(quoted, " "))
  local status = tonumber(out:match("(%d%d%d)%s*$")) or 0
  if status < 200 then status = 0 end -- e.g. only "100 Continue" before the connection closed
  local stderr = out:gsub("%d%d%d%s*$", "")
  local hdrs = parse_headers(read_file(hfile) or "")
  local body = read_file(bfile) or ""
  os.remove(hfile)
  os.remove(bfile)
  if data_file then os.remove(data_file) end
  return status, hdrs, body, rc, stderr
end

-- Sandbox object --------------------------------------------------------------------

local SB = {}
SB.__index = SB

--- Start a sandbox. opts: dir (default: a fresh temp dir, removed by stop),
-- http_only (boolean), keep (keep the temp dir after stop).
function M.start(opts)
  opts = opts or {}
  local dir = opts.dir
  local owns = false
  if not dir then
    dir = (exec("mktemp -d /tmp/tiktok-sandbox.XXXXXX"):gsub("%s+$", ""))
    owns = true
  end
  local cmd = sh(M.run) .. " start --dir " .. sh(dir) .. (opts.http_only and " --http-only" or "")
  local out, rc = exec(cmd)
  if rc ~= 0 then
    if owns then exec("rm -rf " .. sh(dir)) end
    error("sandbox/run start failed (exit " .. tostring(rc) .. "):\n" .. out, 2)
  end
  local env = assert(M.read_env(dir .. "/env"), "no env file in " .. dir)
  return setmetatable({ dir = dir, env = env, owns_dir = owns, keep = opts.keep }, SB)
end

--- For a describe() block: one sandbox, started before its first test and
-- stopped after its last, and reset before each test (then configured with
-- opts.config when given). opts.tmpdir adds a scratch folder, removed after;
-- opts.reset = false skips the per-test reset. `bind(sb, dir)` receives them
-- once started. Setup, teardown and before_each blocks that the spec adds
-- after this call run after these.
function M.use(bind, opts)
  opts = opts or {}
  local busted = require "busted"
  local sb, dir
  busted.lazy_setup(function()
    sb = M.start(opts.start)
    if opts.tmpdir then dir = (exec("mktemp -d /tmp/tiktok-spec.XXXXXX"):gsub("%s+$", "")) end
    bind(sb, dir)
  end)
  busted.lazy_teardown(function()
    if sb then sb:stop() end
    if dir then exec("rm -rf " .. sh(dir)) end
  end)
  if opts.reset ~= false then
    busted.before_each(function()
      sb:reset()
      if opts.config then sb:configure(opts.config) end
    end)
  end
end

function SB:stop()
  local out, rc = exec(sh(M.run) .. " stop --dir " .. sh(self.dir))
  if self.owns_dir and not self.keep and not os.getenv("TIKTOK_SANDBOX_KEEP") then
    exec("rm -rf " .. sh(self.dir))
  end
  return rc == 0, out
end

-- HTTP with the sandbox CA trusted.
function SB:http(method, url, opts)
  opts = opts or {}
  if opts.cacert == nil and self.env.TIKTOK_CA_FILE ~= "" then opts.cacert = self.env.TIKTOK_CA_FILE end
  return M.http(method, url, opts)
end

--- Control API call: returns decoded JSON (or the raw body), HTTP status.
function SB:admin(method, path, tbl)
  local status, _, body = M.http(method, self.env.TIKTOK_SANDBOX_ADMIN .. path, { json = tbl })
  local v = cjson.decode(body)
  if v == nil then v = body end
  return v, status
end

function SB:reset()
  local v, status = self:admin("POST", "/reset")
  assert(status == 200, "reset failed: " .. tostring(status))
  return v
end

function SB:log(query)
  local v = self:admin("GET", "/log" .. (query and ("?" .. M.form_encode(query)) or ""))
  return v
end

function SB:posts()
  return (self:admin("GET", "/posts"))
end

function SB:post(publish_id)
  return (self:admin("GET", "/posts/" .. publish_id))
end

function SB:configure(cfg)
  local v, status = self:admin("PATCH", "/config", cfg)
  assert(status == 200, "config failed: " .. tostring(status) .. " " .. cjson.encode(v))
  return v
end

--- Authorize through the non-interactive POST approve path.
-- params: scope, username, state, code_challenge, decision ("approve"), client_key,
-- redirect_uri, granted_scopes. Returns status, query table of the redirect, Location, body.
function SB:authorize(params)
  params = params or {}
  local form = {
    client_key = params.client_key or self.env.TIKTOK_CLIENT_KEY,
    response_type = params.response_type or "code",
    scope = params.scope or "user.info.basic,user.info.profile,user.info.stats,video.publish,video.upload",
    redirect_uri = params.redirect_uri or self.env.TIKTOK_REDIRECT_URI,
    decision = params.decision or "approve",
  }
  for _, k in ipairs({ "state", "code_challenge", "code_challenge_method", "username", "granted_scopes", "disable_auto_auth" }) do
    if params[k] ~= nil then form[k] = params[k] end
  end
  local status, headers, body = self:http("POST", self.env.TIKTOK_AUTH_BASE .. "/v2/auth/authorize/", { form = form })
  local loc = headers.location
  return status, loc and M.parse_query(loc) or {}, loc, body
end

--- POST /v2/oauth/token/ with a form; returns status, decoded JSON, raw body.
function SB:token(form)
  local f = {}
  for k, v in pairs(form) do f[k] = v end
  f.client_key = f.client_key or self.env.TIKTOK_CLIENT_KEY
  f.client_secret = f.client_secret or self.env.TIKTOK_CLIENT_SECRET
  local status, _, body = self:http("POST", self.env.TIKTOK_API_BASE .. "/v2/oauth/token/", { form = f })
  return status, cjson.decode(body), body
end

--- Authorize + exchange: the token response table (access_token, refresh_token, open_id, ...).
function SB:login(params)
  params = params or {}
  local status, q = self:authorize(params)
  assert(status == 302 and q.code, "authorize failed: " .. tostring(status))
  local st, tok, raw = self:token({
    grant_type = "authorization_code", code = q.code,
    redirect_uri = params.redirect_uri or self.env.TIKTOK_REDIRECT_URI,
    code_verifier = params.code_verifier, client_key = params.client_key, client_secret = params.client_secret,
  })
  assert(st == 200 and tok and tok.access_token, "token exchange failed: " .. tostring(st) .. " " .. tostring(raw))
  return tok
end

--- A PKCE pair as TikTok wants it: a 64-character verifier of unreserved
-- characters and its challenge, the lower-case hex SHA-256 of the verifier.
function M.pkce_pair()
  local f = assert(io.open("/dev/urandom", "rb"))
  local raw = f:read(64)
  f:close()
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
  local out = {}
  for i = 1, #raw do
    local k = raw:byte(i) % #alphabet + 1
    out[i] = alphabet:sub(k, k)
  end
  local verifier = table.concat(out)
  return verifier, M.sha256_hex(verifier)
end

--- authorize() with PKCE (the sandbox's default app requires it): adds a
-- fresh code_challenge unless params has one. Returns status, query table of
-- the redirect, Location, body, and the code_verifier to send on exchange.
function SB:authorize_pkce(params)
  local p = {}
  for k, v in pairs(params or {}) do p[k] = v end
  local verifier = p.code_verifier
  if p.code_challenge == nil then
    local challenge
    verifier, challenge = M.pkce_pair()
    p.code_challenge, p.code_challenge_method = challenge, "S256"
  end
  p.code_verifier = nil
  local status, q, loc, body = self:authorize(p)
  return status, q, loc, body, verifier
end

--- login() with PKCE: authorize with a fresh challenge, exchange with its verifier.
function SB:login_pkce(params)
  local p = {}
  for k, v in pairs(params or {}) do p[k] = v end
  if p.code_challenge == nil then
    local verifier, challenge = M.pkce_pair()
    p.code_challenge, p.code_challenge_method, p.code_verifier = challenge, "S256", verifier
  end
  return self:login(p)
end

--- Register another app through the control API (fields as POST /apps takes);
-- returns the app (client_key, client_secret, ...).
function SB:add_app(fields)
  local v, status = self:admin("POST", "/apps", fields or {})
  assert(status == 201, "POST /apps failed: " .. tostring(status) .. " " .. cjson.encode(v))
  return v
end

--- Write a media file of `size` bytes served at TIKTOK_MEDIA_BASE .. name: it
-- starts with the media file `copy_from` (or nothing) and the rest is a hole,
-- so 300 MB or 4 GB cost no disk. Returns its URL.
function SB:media_file(name, size, copy_from)
  local v, status = self:admin("PUT", "/media/" .. name, { size = size, copy_from = copy_from })
  assert(status == 201, "PUT /media failed: " .. tostring(status) .. " " .. cjson.encode(v))
  return v.url
end

--- Call an API endpoint with a bearer token and a JSON body (nil: no body).
-- Returns status, decoded JSON, raw body, headers.
function SB:api(method, path, token, json_body, opts)
  opts = opts or {}
  local headers = opts.headers or {}
  if token then headers.Authorization = headers.Authorization or ("Bearer " .. token) end
  if json_body ~= nil and headers["Content-Type"] == nil then
    headers["Content-Type"] = "application/json; charset=UTF-8"
  end
  local base = opts.base or self.env.TIKTOK_API_BASE
  local status, h, body = self:http(method, base .. path, {
    headers = headers, body = json_body ~= nil and (type(json_body) == "string" and json_body or cjson.encode(json_body)) or nil,
  })
  return status, cjson.decode(body), body, h
end

--- Poll status/fetch until the status is one of `want` (a set) or timeout_s passes.
function SB:wait_status(token, publish_id, want, timeout_s)
  local deadline = os.time() + (timeout_s or 10)
  local last
  repeat
    local _, v = self:api("POST", "/v2/post/publish/status/fetch/", token, { publish_id = publish_id })
    last = v
    if v and v.data and want[v.data.status] then return v end
    exec("sleep 0.05")
  until os.time() > deadline
  return last
end

--- Poll the control API until fn(post) is true (or timeout_s passes); returns the post.
function SB:wait_post(publish_id, fn, timeout_s)
  local deadline = os.time() + (timeout_s or 10)
  local p
  repeat
    p = self:post(publish_id)
    if fn(p) then return p end
    exec("sleep 0.05")
  until os.time() > deadline
  return p
end

-- Media helpers ----------------------------------------------------------------------

--- Make a real video with ffmpeg. opts: seconds (2), fps (30), size ("360x640"),
-- format ("mp4"|"mov"|"webm"), faststart (false).
function M.make_video(path, opts)
  opts = opts or {}
  local fmt = opts.format or (path:match("%.(%w+)$") or "mp4")
  local codec = fmt == "webm" and "-c:v libvpx -b:v 200k" or "-c:v libx264 -preset ultrafast -pix_fmt yuv420p"
  local cmd = string.format("ffmpeg -loglevel error -y -f lavfi -i testsrc=size=%s:rate=%d -t %s %s %s %s",
    opts.size or "360x640", opts.fps or 30, tostring(opts.seconds or 2), codec,
    opts.faststart and "-movflags +faststart" or "", sh(path))
  local out, rc = exec(cmd)
  assert(rc == 0, "ffmpeg failed: " .. out)
  return path
end

--- Make a still image (jpg or webp) with ffmpeg.
function M.make_image(path, size)
  local out, rc = exec(string.format("ffmpeg -loglevel error -y -f lavfi -i testsrc=size=%s -frames:v 1 %s",
    size or "640x480", sh(path)))
  assert(rc == 0, "ffmpeg failed: " .. out)
  return path
end

function M.file_size(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

function M.sha256_file(path)
  local out = exec("sha256sum " .. sh(path))
  return out:match("^(%x+)")
end

function M.sha256_hex(s)
  local p = tmpname()
  write_file(p, s)
  local h = M.sha256_file(p)
  os.remove(p)
  return h
end

function M.hmac_sha256_hex(key, msg)
  local p = tmpname()
  write_file(p, msg)
  local out = exec("openssl dgst -sha256 -hmac " .. sh(key) .. " -r " .. sh(p))
  os.remove(p)
  return out:match("^(%x+)")
end

function M.sleep(seconds)
  exec("sleep " .. tostring(seconds))
end

return M
