-- The media host (TIKTOK_MEDIA_BASE): files from DIR/media over HTTPS, with
-- Range support and fault injection (status/redirect, delay, throttle, cut);
-- avatars; and a webhook sink that records what it receives.
local state = require "sandbox.state"
local reply = require "sandbox.reply"
local faults = require "sandbox.faults"
local json = require "sandbox.json"

local M = {}

local TYPES = {
  mp4 = "video/mp4", m4v = "video/mp4", mov = "video/quicktime", webm = "video/webm",
  jpg = "image/jpeg", jpeg = "image/jpeg", webp = "image/webp", png = "image/png",
}

local AVATAR = ngx.decode_base64(
  "/9j/4AAQSkZJRgABAgAAAQABAAD//gAQTGF2YzU5LjM3LjEwMAD/2wBDAAgUFBcUFxsbGxsbGyAeICEhISAgICAhISEkJCQq" ..
  "KiokJCQhISQkKCgqKi4vLisrKisvLzIyMjw8OTlGRkhWVmf/xABMAAEBAAAAAAAAAAAAAAAAAAAABgEBAQAAAAAAAAAAAAAA" ..
  "AAAABgcQAQAAAAAAAAAAAAAAAAAAAAARAQAAAAAAAAAAAAAAAAAAAAD/wAARCAAQABADASIAAhEAAxEA/9oADAMBAAIRAxEA" ..
  "PwC2AIEZf//Z")

local function serve_file()
  local method = ngx.req.get_method()
  if method ~= "GET" and method ~= "HEAD" then
    return reply.send(reply.response(405, "method not allowed\n",
      { Allow = "GET, HEAD", ["Content-Type"] = "text/plain" }))
  end
  local rel = ngx.var.uri:match("^/media/(.+)$")
  if not rel or rel:find("..", 1, true) or rel:find("%z") then
    return reply.send(reply.response(404, "not found\n", { ["Content-Type"] = "text/plain" }))
  end
  local rule = faults.take("media.get", "before", {})
  local cut, rate
  if rule then
    local r = faults.apply(rule)
    if r then return reply.send(r) end
    cut, rate = rule.close_after_bytes, rule.rate_bps
  end
  local f = io.open(state.boot_config().media_dir .. "/" .. rel, "rb")
  if not f then return reply.send(reply.response(404, "not found\n", { ["Content-Type"] = "text/plain" })) end
  local size = f:seek("end")
  local from, to = 0, size - 1
  local code = 200
  local ranges = state.config.media.ranges
  local range = ngx.var.http_range
  if range then reply.note("range", range:sub(1, 100)) end
  -- One range, "bytes=A-B", "bytes=A-" or "bytes=-N" (RFC 9110). Anything
  -- else (several ranges, other units, garbage) is ignored: 200, whole body.
  -- With media.ranges = false every Range is ignored, like a server without
  -- range support.
  local a, b
  if range and ranges then a, b = range:match("^bytes=(%d*)%-(%d*)$") end
  if a and (a ~= "" or b ~= "") then
    a, b = tonumber(a), tonumber(b)
    if not a then a, b = math.max(0, size - b), size - 1 end
    if a >= size or (b and b < a) then
      f:close()
      return reply.send(reply.response(416, "", { ["Content-Range"] = "bytes */" .. size }))
    end
    from, to, code = a, math.min(b or size - 1, size - 1), 206
    ngx.header["Content-Range"] = string.format("bytes %d-%d/%d", from, to, size)
  end
  local ext = rel:match("%.(%w+)$")
  ngx.status = code
  ngx.header["Content-Type"] = TYPES[ext and ext:lower() or ""] or "application/octet-stream"
  ngx.header["Content-Length"] = to - from + 1
  ngx.header["Accept-Ranges"] = ranges and "bytes" or "none"
  ngx.send_headers()
  if method == "HEAD" then f:close(); return ngx.exit(ngx.HTTP_OK) end
  f:seek("set", from)
  local left, sent = to - from + 1, 0
  while left > 0 do
    local want = left < 65536 and left or 65536
    if rate and rate > 0 then want = math.min(want, math.max(1, math.floor(rate / 10))) end
    if cut and cut - sent < want then want = cut - sent end
    if want <= 0 then
      f:close()
      ngx.flush(true)
      reply.note("closed", "fault: closed after " .. sent .. " bytes")
      return ngx.exit(444)
    end
    local data = f:read(want)
    if not data then break end
    local ok = ngx.print(data)
    if not ok then break end
    ngx.flush(true)
    left, sent = left - #data, sent + #data
    if rate and rate > 0 then ngx.sleep(#data / rate) end
  end
  f:close()
  return ngx.exit(ngx.HTTP_OK)
end

function M.handle()
  local uri = ngx.var.uri
  if uri:sub(1, 7) == "/media/" then
    reply.note("endpoint", "media.get")
    return serve_file()
  end
  if uri:sub(1, 9) == "/avatars/" then
    reply.note("endpoint", "media.get")
    return reply.send(reply.response(200, AVATAR, { ["Content-Type"] = "image/jpeg" }))
  end
  if uri == "/webhook-sink/" or uri:sub(1, 14) == "/webhook-sink/" then
    reply.note("endpoint", "webhook.sink")
    return M.sink()
  end
  reply.note("endpoint", "unknown")
  return reply.send(reply.response(404, "not found\n", { ["Content-Type"] = "text/plain" }))
end

-- Records every delivery (headers and raw body) and answers 200, unless a
-- webhook.sink fault says otherwise.
function M.sink()
  local body = reply.read_body()
  local entry = {
    time = ngx.now(), method = ngx.req.get_method(), path = ngx.var.uri,
    signature = ngx.var.http_tiktok_signature or json.null,
    content_type = ngx.var.http_content_type or json.null,
    body = body,
  }
  state.received_hooks[#state.received_hooks + 1] = entry
  local rule = faults.take("webhook.sink", "before", {})
  local res = faults.apply(rule) or reply.json(200, {})
  entry.status = res.status
  return reply.send(res)
end

return M
