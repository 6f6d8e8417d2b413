-- Fault injection: "the next N requests to endpoint E" get a delay, a canned
-- status and body, a closed connection, or (for chunk PUTs and media GETs) a
-- connection closed after K body bytes.
local state = require "sandbox.state"
local reply = require "sandbox.reply"
local json = require "sandbox.json"
local util = require "sandbox.util"

local M = {}

local FIELDS = {
  endpoint = "string", count = "number", when = "string", delay_ms = "number", close = "boolean",
  status = "number", body = "string", json = "table", content_type = "string", headers = "table",
  chunk = "number", close_after_bytes = "number", rate_bps = "number", fail_reason = "string",
  publish_id = "string",
}

function M.validate(rule)
  if type(rule) ~= "table" then return nil, "fault must be a JSON object" end
  for k, v in pairs(rule) do
    local t = FIELDS[k]
    if not t then return nil, "unknown fault field: " .. tostring(k) end
    if type(v) ~= t then return nil, "fault field " .. k .. " must be a " .. t end
  end
  if not rule.endpoint or not util.contains(state.ENDPOINTS, rule.endpoint) then
    return nil, "endpoint must be one of: " .. table.concat(state.ENDPOINTS, ", ")
  end
  if rule.when and rule.when ~= "before" and rule.when ~= "after" then
    return nil, "when must be \"before\" or \"after\""
  end
  if rule.count and (not util.is_int(rule.count) or rule.count == 0 or rule.count < -1) then
    return nil, "count must be a positive integer, or -1 for every request"
  end
  if rule.status and (not util.is_int(rule.status) or rule.status < 100 or rule.status > 599) then
    return nil, "status must be an HTTP status code"
  end
  if rule.body and rule.json then return nil, "give body or json, not both" end
  if rule.endpoint == "post.processing" and not rule.fail_reason then
    return nil, "post.processing faults need fail_reason"
  end
  if rule.fail_reason and rule.endpoint ~= "post.processing" then
    return nil, "fail_reason only applies to endpoint post.processing"
  end
  if (rule.chunk or rule.close_after_bytes) and rule.endpoint ~= "upload.put" and rule.endpoint ~= "media.get" then
    return nil, "chunk and close_after_bytes apply to upload.put (and close_after_bytes to media.get)"
  end
  if rule.rate_bps and rule.endpoint ~= "media.get" then
    return nil, "rate_bps applies to media.get only"
  end
  local acts = rule.delay_ms or rule.close or rule.status or rule.close_after_bytes or rule.rate_bps or rule.fail_reason
  if not acts then
    return nil, "a fault needs at least one of delay_ms, close, status, close_after_bytes, rate_bps, fail_reason"
  end
  return true
end

function M.add(rule)
  state.fault_seq = state.fault_seq + 1
  rule.id = state.fault_seq
  rule.count = rule.count or 1
  rule.when = rule.when or "before"
  rule.used = 0
  state.faults[#state.faults + 1] = rule
  return rule
end

-- Take (consume one use of) the first matching rule.
function M.take(endpoint, when, info)
  info = info or {}
  for i, rule in ipairs(state.faults) do
    if rule.endpoint == endpoint and rule.when == when
      and (rule.chunk == nil or rule.chunk == info.chunk)
      and (rule.publish_id == nil or rule.publish_id == info.publish_id) then
      rule.used = rule.used + 1
      if rule.count > 0 then
        rule.count = rule.count - 1
        if rule.count == 0 then table.remove(state.faults, i) end
      end
      if ngx.get_phase() ~= "timer" then reply.note("fault", rule.id) end
      return rule
    end
  end
  return nil
end

-- The canned response of a rule, or nil when it has no status.
function M.response(rule)
  if not rule.status then return nil end
  local headers = {}
  for k, v in pairs(rule.headers or {}) do headers[k] = tostring(v) end
  local body = rule.body
  if rule.json then
    body = json.encode(rule.json)
    headers["Content-Type"] = headers["Content-Type"] or "application/json; charset=UTF-8"
    if type(rule.json.error) == "table" then reply.note("error_code", rule.json.error.code) end
    if type(rule.json.error) == "string" then reply.note("error_code", rule.json.error) end
  end
  if rule.content_type then headers["Content-Type"] = rule.content_type end
  if body and not headers["Content-Type"] then headers["Content-Type"] = "text/plain" end
  return reply.response(rule.status, body or "", headers)
end

-- Apply the request-level parts of a rule: delay, close, canned response.
-- Returns a response to send instead of the real one, or nil to carry on.
function M.apply(rule)
  if not rule then return nil end
  if rule.delay_ms and rule.delay_ms > 0 then ngx.sleep(rule.delay_ms / 1000) end
  if rule.close then
    reply.note("closed", "fault: closed before responding")
    return ngx.exit(444)
  end
  return M.response(rule)
end

return M
