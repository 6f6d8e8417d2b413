-- Minimal outbound HTTP/1.1 client on cosockets, for webhook deliveries and
-- PULL_FROM_URL downloads. Never follows redirects; verifies TLS against
-- lua_ssl_trusted_certificate (the sandbox CA plus the system bundle).
local util = require "sandbox.util"

local M = {}

-- The sandbox only ever talks to loopback: *.localhost names resolve to 127.0.0.1
-- here (nginx's resolver does not read /etc/hosts).
local function address(host)
  if host == "localhost" or host:match("%.localhost$") then return "127.0.0.1" end
  return host
end

-- Open a connection and send a request. opts: method, url, headers, body,
-- connect_timeout_ms, read_timeout_ms. Returns a response object
-- { status, headers, sock, ... } or nil, err.
function M.request(opts)
  local u = util.parse_url(opts.url)
  if not u or (u.scheme ~= "http" and u.scheme ~= "https") then return nil, "unsupported URL" end
  local sock = ngx.socket.tcp()
  sock:settimeouts(opts.connect_timeout_ms or 5000, opts.send_timeout_ms or 30000, opts.read_timeout_ms or 30000)
  local ok, err = sock:connect(address(u.host), u.port)
  if not ok then return nil, "connect: " .. tostring(err) end
  if u.scheme == "https" then
    local sess, serr = sock:sslhandshake(nil, u.host, true)
    if not sess then
      sock:close()
      return nil, "tls: " .. tostring(serr)
    end
  end
  local host_header = u.host
  if not ((u.scheme == "https" and u.port == 443) or (u.scheme == "http" and u.port == 80)) then
    host_header = host_header .. ":" .. u.port
  end
  local lines = { (opts.method or "GET") .. " " .. u.request_target .. " HTTP/1.1", "Host: " .. host_header,
    "User-Agent: tiktok-sandbox", "Connection: close" }
  for k, v in pairs(opts.headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  local body = opts.body
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  local req = table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
  local _, serr = sock:send(req)
  if serr then sock:close(); return nil, "send: " .. serr end
  local status_line, rerr = sock:receive("*l")
  if not status_line then sock:close(); return nil, "read: " .. tostring(rerr) end
  local status = tonumber(status_line:match("^HTTP/1%.[01] (%d%d%d)"))
  if not status then sock:close(); return nil, "bad status line" end
  local headers = {}
  while true do
    local line, herr = sock:receive("*l")
    if not line then sock:close(); return nil, "read headers: " .. tostring(herr) end
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  return { status = status, headers = headers, sock = sock, head_only = opts.method == "HEAD" }
end

-- Iterate over body pieces: calls fn(piece) for each; fn may return false to stop.
-- Returns true when the body was complete, or nil, err.
function M.read_body(res, fn, max_piece)
  local sock = res.sock
  max_piece = max_piece or 65536
  if res.head_only or res.status == 204 or res.status == 304 then return true end
  local te = res.headers["transfer-encoding"]
  if te and te:lower():find("chunked", 1, true) then
    while true do
      local line, err = sock:receive("*l")
      if not line then return nil, "read: " .. tostring(err) end
      local size = tonumber(line:match("^%s*(%x+)"), 16)
      if not size then return nil, "bad chunk size" end
      if size == 0 then
        repeat line = sock:receive("*l") until not line or line == ""
        return true
      end
      local left = size
      while left > 0 do
        local piece, perr = sock:receive(left < max_piece and left or max_piece)
        if not piece then return nil, "read: " .. tostring(perr) end
        left = left - #piece
        if fn(piece) == false then return nil, "stopped" end
      end
      sock:receive("*l")
    end
  end
  local cl = tonumber(res.headers["content-length"] or "")
  if cl then
    local left = cl
    while left > 0 do
      local piece, err = sock:receiveany(left < max_piece and left or max_piece)
      if not piece then
        return nil, "read: " .. tostring(err) .. " after " .. (cl - left) .. " of " .. cl .. " bytes"
      end
      left = left - #piece
      if fn(piece) == false then return nil, "stopped" end
    end
    return true
  end
  while true do
    local piece, err = sock:receiveany(max_piece)
    if not piece then
      if err == "closed" then return true end
      return nil, "read: " .. tostring(err)
    end
    if fn(piece) == false then return nil, "stopped" end
  end
end

function M.close(res)
  if res and res.sock then res.sock:close() end
end

return M
