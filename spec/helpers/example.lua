-- Spec helper for the OpenResty example app (examples/openresty): a
-- sandbox, the app started with its own `run` script in the production
-- identity configuration (this helper plays the trusted proxy), and the
-- steps a browser takes (connect, consent, callback), over real HTTP.
--
--   local ex = example.start({ env = "APP_STORE=... " })   -- sandbox + app
--   local status, body, headers, raw = ex:app("GET", "/tiktok/apps", { user = "alice", workspace = "acme" })
--   local open_id = ex:connect("alice", nil, { app = id, workspace = "acme" })
--   ex:stop()
local sandbox = require "helpers.sandbox"
local cjson = require "cjson.safe"

local sh = sandbox.shell_quote
local RUN = sandbox.root .. "/examples/openresty/run"

local _M = {}
local EX = {}
EX.__index = EX

_M.PROXY_SECRET = "spec-proxy-secret-" .. os.time() .. "-0123456789abcdef0123456789"
-- lua-tiktok's own per-account budgets, raised like the sandbox's limits
_M.LIMITS = "TIKTOK_RATE_LIMITS=init=1000,creator_info=1000,status=1000 "
_M.PRODUCTION = _M.LIMITS .. "APP_TRUSTED_PROXIES=127.0.0.1 APP_PROXY_SECRET=" .. _M.PROXY_SECRET .. " "

--- example.start{ env = "NAME=value ...", extra = " --workers 1", sandbox = sb, dir = dir } -> ex
function _M.start(opts)
    opts = opts or {}
    local self = setmetatable({ opts = opts }, EX)
    self.dir = opts.dir or (sandbox.exec("mktemp -d /tmp/tiktok-example.XXXXXX"):gsub("%s+$", ""))
    self.sb = opts.sandbox or sandbox.start({ dir = self.dir })
    self.own_sandbox = opts.sandbox == nil
    self.sb:configure({ delays = { processing_ms = 50, moderation_ms = 50 },
                        rate_limits = { ["video.init"] = 1000, ["creator_info"] = 1000, ["status.fetch"] = 1000 } })
    self:start_app()
    return self
end

function EX:start_app(extra_env, extra)
    local out, rc = sandbox.exec(_M.PRODUCTION .. (self.opts.env or "") .. (extra_env or "") .. sh(RUN)
                                 .. " start --dir " .. sh(self.dir) .. (extra or self.opts.extra or ""))
    assert(rc == 0, "examples/openresty/run start failed:\n" .. out)
    self.env = assert(sandbox.read_env(self.dir .. "/env"))
    assert(self.env.APP_URL, "run start did not append APP_URL to DIR/env")
end

function EX:stop_app()
    local out, rc = sandbox.exec(sh(RUN) .. " stop --dir " .. sh(self.dir))
    assert(rc == 0, out)
end

function EX:stop()
    if os.getenv("TIKTOK_EXAMPLE_KEEP") then return end
    pcall(self.stop_app, self)
    if self.own_sandbox and self.sb then self.sb:stop() end
    sandbox.exec("rm -rf " .. sh(self.dir))
end

function EX:error_log()
    return sandbox.read_file(self.dir .. "/app/logs/error.log") or ""
end

function EX:access_log()
    return sandbox.read_file(self.dir .. "/app/logs/access.log") or ""
end

--- ex:app(method, path, { user, workspace, json, body, headers }) -> status, decoded JSON, headers, raw body
function EX:app(method, path, opts)
    opts = opts or {}
    local headers = {}
    for k, v in pairs(opts.headers or {}) do headers[k] = v end
    if opts.user then   -- what the trusted proxy sends
        headers["X-User"] = opts.user
        headers["X-Workspace"] = opts.workspace
        headers["X-Proxy-Secret"] = headers["X-Proxy-Secret"] or _M.PROXY_SECRET
    end
    local status, h, body = sandbox.http(method, self.env.APP_URL .. path, {
        headers = headers, json = opts.json, body = opts.body, form = opts.form, timeout = opts.timeout,
    })
    return status, cjson.decode(body), h, body
end

--- ex:begin_connect(user, query, workspace) -> authorize URL, Set-Cookie
function EX:begin_connect(user, query, workspace)
    local status, _, h, body = self:app("GET", "/tiktok/connect" .. (query or ""),
                                        { user = user, workspace = workspace })
    assert(status == 302, "connect answered " .. tostring(status) .. ": " .. tostring(body))
    return h.location, h["set-cookie"]
end

--- ex:consent(location, username, decision) -> the callback URL TikTok sends the browser to
function EX:consent(location, username, decision, extra)
    local form = sandbox.parse_query(location)
    form.decision = decision or "approve"
    form.username = username
    for k, v in pairs(extra or {}) do form[k] = v end
    local status, h, body = self.sb:http("POST", self.env.TIKTOK_AUTH_BASE .. "/v2/auth/authorize/", { form = form })
    assert(status == 302, "consent answered " .. tostring(status) .. ": " .. tostring(body))
    return h.location
end

function EX:callback(url, user, cookie, workspace)
    assert(url:sub(1, #self.env.APP_URL) == self.env.APP_URL, url)
    return self:app("GET", url:sub(#self.env.APP_URL + 1), { user = user, workspace = workspace,
                                                              headers = { Cookie = cookie } })
end

--- ex:connect(user, username, { app, workspace, access, scopes }) -> open_id
function EX:connect(user, username, opts)
    opts = opts or {}
    local q = {}
    if opts.app then q[#q + 1] = "app=" .. opts.app end
    if opts.access then q[#q + 1] = "access=" .. opts.access end
    local loc, set_cookie = self:begin_connect(user, #q > 0 and ("?" .. table.concat(q, "&")) or "", opts.workspace)
    local status, _, h, body = self:callback(self:consent(loc, username, nil, opts.consent), user,
                                             set_cookie and set_cookie:match("^([^;]+)"), opts.workspace)
    assert(status == 302, "callback answered " .. tostring(status) .. ": " .. tostring(body))
    local id = h.location:match("connected=([^&]+)")
    assert(id, "the callback did not connect: " .. tostring(h.location))
    return sandbox.url_decode(id)
end

--- ex:wait_job(id, who, timeout_s) -> the job once final
function EX:wait_job(id, who, timeout_s)
    local deadline = os.time() + (timeout_s or 30)
    local last
    repeat
        local status, j, _, raw = self:app("GET", "/tiktok/jobs/" .. id, who)
        assert(status == 200, raw)
        last = j
        if j.final then return j end
        sandbox.sleep(0.3)
    until os.time() > deadline
    error("job " .. id .. " did not reach a final state: " .. cjson.encode(last))
end

return _M
