-- Signed webhook deliveries (TikTok-Signature: t=<ts>,s=<hex HMAC-SHA256(client_secret, ts.."."..body)>),
-- retried with exponential backoff until the receiver answers 200.
local state = require "sandbox.state"
local json = require "sandbox.json"
local util = require "sandbox.util"
local httpc = require "sandbox.httpc"

local M = {}

local deliver

local function schedule(d, delay_s)
  local gen = state.generation
  local ok, err = ngx.timer.at(delay_s, function(premature)
    if premature or gen ~= state.generation then return end
    deliver(d)
  end)
  if not ok then
    d.attempts[#d.attempts + 1] = { time = ngx.now(), error = "timer: " .. tostring(err) }
  end
end

deliver = function(d)
  local cfg = state.config.webhooks
  local attempt = { time = ngx.now() }
  d.attempts[#d.attempts + 1] = attempt
  local res, err = httpc.request {
    method = "POST", url = d.url, body = d.body,
    headers = { ["Content-Type"] = "application/json", ["TikTok-Signature"] = d.signature },
    connect_timeout_ms = cfg.timeout_ms, read_timeout_ms = cfg.timeout_ms,
  }
  if res then
    attempt.status = res.status
    httpc.close(res)
    if res.status == 200 then
      d.delivered = true
      return
    end
  else
    attempt.error = err
  end
  if #d.attempts < cfg.max_attempts then
    schedule(d, cfg.retry_base_ms / 1000 * 2 ^ (#d.attempts - 1))
  else
    d.gave_up = true
  end
end

-- Emit an event for an app; a no-op (but still recorded) without a webhook URL.
function M.emit(app, open_id, event, content)
  local now = math.floor(state.now())
  local body = json.encode({
    client_key = app.client_key,
    event = event,
    create_time = now,
    user_openid = open_id,
    content = json.encode(content),
  })
  local ts = tostring(now)
  local d = {
    id = nil, event = event, client_key = app.client_key, user_openid = open_id,
    publish_id = content.publish_id, body = body,
    signature = "t=" .. ts .. ",s=" .. util.hmac_sha256_hex(app.client_secret, ts .. "." .. body),
    attempts = json.array(), delivered = false,
  }
  state.delivery_seq = state.delivery_seq + 1
  d.id = state.delivery_seq
  state.deliveries[#state.deliveries + 1] = d
  local url = app.webhook_url
  if type(url) ~= "string" or url == "" then
    d.url = json.null
    d.skipped = "no webhook_url configured"
    return d
  end
  d.url = url
  schedule(d, 0)
  return d
end

return M
