-- Response builders and request readers. Handlers return a response table
-- { status, body, headers } instead of writing it, so that "after" faults can
-- replace or drop a response whose side effects already happened.
local json = require "sandbox.json"
local util = require "sandbox.util"

local M = {}

local JSON_CT = "application/json; charset=UTF-8"

function M.note(key, value)
  local c = ngx.ctx.sbx
  if not c then c = {}; ngx.ctx.sbx = c end
  c[key] = value
end

function M.response(status, body, headers)
  return { status = status, body = body or "", headers = headers or {} }
end

function M.json(status, tbl, headers)
  headers = headers or {}
  headers["Content-Type"] = headers["Content-Type"] or JSON_CT
  return M.response(status, json.encode(tbl), headers)
end

-- Content Posting / Display API envelope.
function M.api_ok(data)
  M.note("error_code", "ok")
  local body = { error = { code = "ok", message = "", log_id = util.log_id() } }
  if data ~= nil then body.data = data end
  return M.json(200, body)
end

-- Error answers carry "data": {} unless there is data (TikTok's 401s and
-- 400s do, §15.8).
function M.api_error(status, code, message, data)
  M.note("error_code", code)
  local body = { error = { code = code, message = message or "", log_id = util.log_id() } }
  if data == nil then data = {} end
  body.data = data
  return M.json(status, body)
end

-- OAuth error shape: { error, error_description, log_id }.
function M.oauth_error(status, err, desc)
  M.note("error_code", err)
  return M.json(status, { error = err, error_description = desc, log_id = util.log_id() },
    { ["Cache-Control"] = "no-store", ["Pragma"] = "no-cache" })
end

function M.send(res)
  ngx.status = res.status
  for k, v in pairs(res.headers or {}) do ngx.header[k] = v end
  if res.body and #res.body > 0 then
    ngx.header["Content-Length"] = #res.body
    ngx.print(res.body)
  else
    ngx.header["Content-Length"] = 0
  end
  return ngx.exit(ngx.HTTP_OK)
end

-- Whole (small) request body as a string; API servers keep bodies in memory
-- (client_body_buffer_size == client_max_body_size), but read a spilled file too.
function M.read_body()
  ngx.req.read_body()
  local data = ngx.req.get_body_data()
  if data then return data end
  local file = ngx.req.get_body_file()
  if file then
    local f = io.open(file, "rb")
    if f then
      local s = f:read("*a")
      f:close()
      return s
    end
  end
  return ""
end

function M.bearer()
  local h = ngx.var.http_authorization
  if not h then return nil end
  local tok = h:match("^%s*[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$")
  return tok
end

return M
