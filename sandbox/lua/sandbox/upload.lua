-- PUT {upload_url}: sequential chunk uploads, streamed from the socket in 32 KiB
-- pieces into SHA-256 and the MP4 box walker; never buffered whole. (32 KiB reads
-- are as fast as 64 KiB ones here and leave the Lua allocator less fragmented:
-- the worker's RSS stays ~7 MB lower and flat across many GiB.)
local state = require "sandbox.state"
local reply = require "sandbox.reply"
local util = require "sandbox.util"
local faults = require "sandbox.faults"
local posts = require "sandbox.posts"
local analyzer = require "sandbox.analyzer"

local M = {}

local ALLOWED_TYPES = { ["video/mp4"] = true, ["video/quicktime"] = true, ["video/webm"] = true }
local PIECE = 32768
-- The docs define only the statuses; these body codes are the sandbox's own.
local ERROR_CODES = {
  [400] = "invalid_file_upload", [403] = "upload_url_expired", [404] = "upload_not_found",
  [405] = "method_not_allowed", [408] = "timeout", [416] = "range_not_satisfiable",
}

local function progress(up)
  if up.committed == 0 then return "bytes */" .. string.format("%d", up.video_size) end
  return string.format("bytes 0-%d/%d", up.committed - 1, up.video_size)
end

local function status(code, msg, up)
  local headers = {}
  if up then headers["Content-Range"] = progress(up) end
  if not msg then return reply.response(code, "", headers) end
  local res = reply.api_error(code, ERROR_CODES[code] or "internal_error", msg)
  for k, v in pairs(headers) do res.headers[k] = v end
  return res
end

local function handle()
  if ngx.req.get_method() ~= "PUT" then
    local res = status(405, "Use PUT to send chunks to the upload URL.")
    res.headers.Allow = "PUT"
    return res
  end
  local args = ngx.req.get_uri_args(20)
  local upload_id, tok = args.upload_id, args.upload_token
  local pid = type(upload_id) == "string" and state.uploads[upload_id]
  local post = pid and state.posts[pid]
  local up = post and post.upload
  if not up or type(tok) ~= "string" or up.token ~= tok then
    return status(404, "No valid upload task exists for this upload_url.")
  end
  reply.note("publish_id", pid)
  reply.note("client_key", post.client_key)
  if up.closed or up.complete or post.status ~= "PROCESSING_UPLOAD" then
    return status(404, "No upload is in progress for this upload_url (the upload is " ..
      (up.complete and "complete" or post.status) .. ").", up)
  end
  if state.now() >= up.expires_at then
    return status(403, "The upload_url has expired (valid for " .. state.config.upload.url_ttl_sec ..
      " s after init).", up)
  end
  if ngx.var.http_transfer_encoding then
    return status(400, "Transfer-Encoding is not supported: send Content-Length with each chunk.", up)
  end
  local cl_raw = ngx.var.http_content_length
  local cl = cl_raw and cl_raw:match("^%d+$") and tonumber(cl_raw)
  if not cl then return status(400, "Content-Length is required.", up) end
  local ct = util.media_type(ngx.var.http_content_type)
  if not ct or not ALLOWED_TYPES[ct] then
    return status(400, "Content-Type must be video/mp4, video/quicktime or video/webm.", up)
  end
  local cr = ngx.var.http_content_range
  local first, last, total = (cr or ""):match("^%s*bytes%s+(%d+)%-(%d+)/(%d+)%s*$")
  first, last, total = tonumber(first), tonumber(last), tonumber(total)
  if not first then
    return status(400, "Content-Range must be \"bytes FIRST-LAST/TOTAL\".", up)
  end
  if total ~= up.video_size then
    return status(400, "Content-Range total " .. string.format("%d", total) .. " does not match video_size " ..
      string.format("%d", up.video_size) .. ".", up)
  end
  if last < first or last >= total then
    return status(400, "Content-Range is not a valid byte range.", up)
  end
  if cl ~= last - first + 1 then
    return status(400, "Content-Length " .. cl_raw .. " does not match the Content-Range length " ..
      string.format("%d", last - first + 1) .. ".", up)
  end
  if up.in_flight then
    return status(416, "Another chunk of this upload is being received; chunks must be sent sequentially.", up)
  end
  if first ~= up.committed then
    return status(416, "Content-Range does not match the upload progress: the next chunk starts at byte " ..
      string.format("%d", up.committed) .. ".", up)
  end
  local k, n = up.chunks_done, up.total_chunk_count
  local expected = (k == n - 1) and (up.video_size - k * up.chunk_size) or up.chunk_size
  if cl ~= expected then
    return status(400, string.format("Chunk %d of %d must be %d bytes (chunk_size %d%s), not %d.", k + 1, n, expected,
      up.chunk_size, k == n - 1 and ", the final chunk takes the remainder" or "", cl), up)
  end
  reply.note("chunk", k + 1)

  local rule = faults.take("upload.put", "before", { chunk = k + 1, publish_id = pid })
  local cut
  if rule then
    local r = faults.apply(rule)
    if r then
      r.headers["Content-Range"] = r.headers["Content-Range"] or progress(up)
      return r
    end
    cut = rule.close_after_bytes
  end

  up.an = up.an or analyzer.new("video", up.hash)
  local an = up.an
  local snap = an:snapshot()
  local sock, serr = ngx.req.socket()
  if not sock then return status(400, "Cannot read the request body: " .. tostring(serr), up) end
  up.in_flight = true
  local gen = state.generation
  local remaining, got = cl, 0
  while remaining > 0 do
    local want = remaining < PIECE and remaining or PIECE
    if cut and cut - got < want then want = cut - got end
    if want <= 0 then
      up.in_flight = false
      an:restore(snap)
      reply.note("closed", "fault: closed after " .. got .. " bytes")
      return ngx.exit(444)
    end
    local data, err = sock:receiveany(want)
    if not data then
      up.in_flight = false
      an:restore(snap)
      reply.note("closed", "client: " .. tostring(err) .. " after " .. got .. " of " .. cl .. " bytes")
      if err == "timeout" then return status(408, "Timed out reading the chunk body.", up) end
      return ngx.exit(444)
    end
    remaining = remaining - #data
    got = got + #data
    an:feed(data)
  end
  up.in_flight = false
  if gen ~= state.generation or post.status ~= "PROCESSING_UPLOAD" or up.closed then
    return status(404, "The upload task was cancelled while this chunk was being received.", up)
  end
  up.committed = up.committed + cl
  up.chunks_done = k + 1
  post.uploaded_bytes = up.committed
  post.bytes_received = up.committed
  local final = up.chunks_done == n
  local res
  if final then
    up.complete = true
    up.an = nil
    posts.media_complete(post, { an:result() })
    res = status(201, nil, up)
  else
    res = status(206, nil, up)
  end
  local after = faults.take("upload.put", "after", { chunk = k + 1, publish_id = pid })
  if after then
    local r = faults.apply(after)
    if r then
      r.headers["Content-Range"] = r.headers["Content-Range"] or progress(up)
      res = r
    end
  end
  return res
end

function M.put()
  reply.note("endpoint", "upload.put")
  return reply.send(handle())
end

-- A plain sink with the same framing rules, for throughput comparisons.
function M.sink()
  reply.note("endpoint", "sink")
  local cl = tonumber(ngx.var.http_content_length or "")
  if not cl then return reply.send(reply.response(411, "")) end
  local sock = assert(ngx.req.socket())
  local remaining = cl
  while remaining > 0 do
    local data = sock:receiveany(remaining < PIECE and remaining or PIECE)
    if not data then return ngx.exit(444) end
    remaining = remaining - #data
  end
  local a, b, t = (ngx.var.http_content_range or ""):match("bytes (%d+)%-(%d+)/(%d+)")
  local done = not a or tonumber(b) + 1 == tonumber(t)
  local range = a and ("bytes 0-" .. b .. "/" .. t) or nil
  return reply.send(reply.response(done and 201 or 206, "", { ["Content-Range"] = range }))
end

return M
