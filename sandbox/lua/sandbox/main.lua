-- Entry points called from the generated nginx.conf.
local M = {}

local state, reply, faults

function M.init(conf_path)
  local cjson = require "cjson.safe"
  local f = assert(io.open(conf_path, "rb"))
  local boot = assert(cjson.decode(f:read("*a")))
  f:close()
  -- Load every module in the master, so a syntax error fails the start.
  for _, m in ipairs({ "util", "json", "state", "reply", "faults", "tokens", "httpc", "webhooks",
    "analyzer", "posts", "oauth", "api", "upload", "media", "admin", "reqlog" }) do
    require("sandbox." .. m)
  end
  state = require "sandbox.state"
  reply = require "sandbox.reply"
  faults = require "sandbox.faults"
  state.set_boot(boot)
end

function M.init_worker()
  -- Random state must differ per start: seed the state from the worker.
  state.reset()
end

local API = {
  ["/v2/auth/authorize/"] = { "oauth.authorize", "oauth", "authorize" },
  ["/v2/oauth/token/"] = { "oauth.token", "oauth", "token" },
  ["/v2/oauth/revoke/"] = { "oauth.revoke", "oauth", "revoke" },
  ["/v2/user/info/"] = { "user.info", "api", "user_info" },
  ["/v2/post/publish/creator_info/query/"] = { "creator_info", "api", "creator_info" },
  ["/v2/post/publish/video/init/"] = { "video.init", "api", "video_init" },
  ["/v2/post/publish/inbox/video/init/"] = { "inbox.init", "api", "inbox_init" },
  ["/v2/post/publish/content/init/"] = { "content.init", "api", "content_init" },
  ["/v2/post/publish/status/fetch/"] = { "status.fetch", "api", "status_fetch" },
  ["/v2/post/publish/cancel/"] = { "cancel", "api", "cancel" },
}

function M.api()
  local uri = ngx.var.uri
  local route = API[uri]
  if not route then
    reply.note("endpoint", "unknown")
    return reply.send(reply.api_error(404, "not_found", "No such endpoint: " .. uri ..
      " (TikTok paths end with a slash, e.g. /v2/oauth/token/)"))
  end
  local endpoint = route[1]
  reply.note("endpoint", endpoint)
  local before = faults.take(endpoint, "before")
  if before then
    local r = faults.apply(before)
    if r then return reply.send(r) end
  end
  local handler = require("sandbox." .. route[2])[route[3]]
  local ok, res = pcall(handler)
  if not ok then
    ngx.log(ngx.ERR, "sandbox: ", endpoint, ": ", res)
    res = reply.api_error(500, "internal_error", "sandbox bug: " .. tostring(res))
  end
  local after = faults.take(endpoint, "after")
  if after then
    local r = faults.apply(after)
    if r then res = r end
  end
  return reply.send(res)
end

function M.upload()
  local uri = ngx.var.uri
  if uri == "/upload/" then return require("sandbox.upload").put() end
  if uri == "/_sink" then return require("sandbox.upload").sink() end
  reply.note("endpoint", "unknown")
  return reply.send(reply.response(404, "", {}))
end

function M.admin()
  return require("sandbox.admin").handle()
end

function M.media()
  return require("sandbox.media").handle()
end

function M.log_request()
  local c = ngx.ctx.sbx or {}
  if c.skip_log then return end
  require("sandbox.reqlog").add({
    time = ngx.req.start_time(),
    method = ngx.req.get_method(),
    path = ngx.var.uri,
    endpoint = c.endpoint or "unknown",
    status = ngx.status,
    connection = tonumber(ngx.var.connection),
    connection_requests = tonumber(ngx.var.connection_requests),
    port = tonumber(ngx.var.server_port),
    scheme = ngx.var.scheme,
    request_length = tonumber(ngx.var.request_length),
    request_time = tonumber(ngx.var.request_time),
    error_code = c.error_code,
    client_key = c.client_key,
    open_id = c.open_id,
    token = c.token,
    publish_id = c.publish_id,
    chunk = c.chunk,
    fault = c.fault,
    closed = c.closed,
    range = c.range,
  })
end

return M
