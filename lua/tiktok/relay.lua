-- tiktok.relay: a video URL that TikTok will not pull (url_ownership_unverified)
-- streamed into a FILE_UPLOAD, chunk by chunk, the download of each chunk's
-- byte range and its upload overlapping (src/relay.c: one curl multi handle,
-- a small ring buffer between the GET's write callback and the PUT's read
-- callback), so neither a chunk nor the file is ever in memory or on disk.
--
--   relay.open(ctx, url, opts) -> src | nil, err
--       Learns the size, whether ranges work and the container/duration (the
--       same tt_probe as a local file) from a ranged GET of the first 64 KiB
--       (and, for a moov box further on, a few more small ranges). Nothing is
--       uploaded. src = { url, size, ranges, content_type, container,
--       duration_ms, served_type, host }: content_type is the container's
--       (what the upload sends), served_type the server's Content-Type.
--   relay.put_chunk(ctx, src, upload_url, chunk) -> res | nil, err
--       THE SPLIT: the same contract as api.put_chunk (chunk = { offset,
--       length, total, content_type, timeout_ms, progress, nice, buffer_size
--       (default 256 KiB here) }; res = { status, first, last, total,
--       downloaded, reads } from the PUT's answer and its Content-Range), so
--       the upload loop of tiktok.post (classify, resync on 416, retries
--       without a second init, the journal, on_progress) drives a relay
--       exactly as it drives a file: it calls relay.put_chunk instead of
--       api.put_chunk. A failed download comes back as nil, err with
--       err.side == "download" (codes network, timeout, tls, http: retry the
--       chunk; relay_refused, unsupported_media, file: stop, a retry cannot
--       help); a failed upload as api.put_chunk's errors (err.side "upload").
--       Without range support and with more than one chunk, the first call
--       spools the whole body to an unlinked temporary file (capped by
--       opts.spool_max_bytes of open) and every chunk is uploaded from it.
--   relay.upload(ctx, src, upload_url, plan, opts) -> bytes_done | nil, err
--       A complete loop over plan = { size, chunk_size, count } on top of
--       put_chunk, for callers without one (and the specs): opts = { retries
--       = 3, chunk_timeout_ms, progress = fn(bytes), next = 0, nice = 0
--       (the thread's priority lowered by this while it transfers),
--       buffer_size (the PUT's upload buffer, as put_chunk's), on_chunk
--       = fn(index0, res, err, chunk) -> verdict, value }. on_chunk decides
--       each answer ("ok", bytes | "resync", bytes | "retry", err | "fatal",
--       err); the default is relay.classify, which reads answers as
--       tiktok.post's classify does.
--   relay.close(src)   releases the connections and deletes a spooled copy
--       (also done when src is garbage).
--
-- ctx is the connection's api context (conn:_api(): log, secrets) or nil.
-- Safety (the URL comes from users): https only, every redirect too and at
-- most 3; no loopback, private, link-local, shared, multicast, reserved or
-- unspecified address, IPv4 or IPv6 (IPv4-mapped included), checked on the
-- address actually connected to, unless allow_private = true (or a list of
-- the addresses allowed); no proxy from the environment; a size cap
-- (max_bytes, TikTok's 4 GB); the container checked by open before anything
-- is uploaded; connect and low-speed timeouts; Accept-Encoding: identity.
-- allow_http = true accepts plain http (a local test server or a benchmark
-- over loopback; never set it for URLs that come from users).
local core = require "tiktok.core"
local util = require "tiktok.util"
local errors = require "tiktok.errors"
local chunks = require "tiktok.chunks"

local type, tostring = type, tostring

local _M = {}

local OPEN_SPEC = {
    allow_private = "any", max_bytes = "integer", connect_timeout_ms = "integer", low_speed_ms = "integer",
    ca_file = "string", timeout_ms = "integer", buffer_size = "integer", spool_dir = "string",
    spool_max_bytes = "integer", allow_http = "boolean",
}
local UPLOAD_SPEC = {
    retries = "integer", chunk_timeout_ms = "integer", progress = "function", next = "integer",
    on_chunk = "function", nice = "integer", buffer_size = "integer",
}
local MAX_VIDEO = 4294967296
-- The PUT's upload buffer when the chunk names none (the connection's
-- upload_buffer_size unset): the relay's reads come from a ring that the
-- download fills, and fewer, larger reads keep the two sides overlapping.
local PUT_BUFFER = 262144

local function log(ctx, level, msg)
    if ctx and ctx.log then ctx.log(level, msg) end
end

-- Error codes of the engine's kinds; the download's transport failures get
-- a sentence about the video URL (the catalogue's talk about TikTok).
local KIND_CODE = {
    refused = "relay_refused", unsupported_media = "unsupported_media", http = "http",
    network = "network", timeout = "timeout", tls = "tls", file = "file", invalid = "invalid_argument",
    aborted = "network",
}
local HINT = {
    network = "check the URL and that its server is reachable, and retry",
    timeout = "the video's server is too slow or stalled; retry later",
    tls = "the video's server certificate could not be verified",
    http = "check that the URL still serves the video",
}

local function source_error(ctx, host, kind, message, sent)
    local code = KIND_CODE[kind] or "network"
    local text = "video URL (" .. tostring(host) .. "): " .. tostring(message)
    local hint = HINT[code]
    local err = errors.new(code, hint and (text .. "; " .. hint) or text)
    err.side = "download"
    if sent ~= nil then err.sent = sent == true end
    log(ctx, "warn", "tiktok: relay from " .. tostring(host) .. " failed: " .. code)
    return err
end

local function refused(why)
    local err = errors.new("relay_refused", why)
    err.side = "download"
    return err
end

function _M.open(ctx, url, opts)
    opts = opts or {}
    util.check_opts("tiktok.relay.open", opts, OPEN_SPEC, 2)
    local ap = opts.allow_private
    if ap ~= nil and type(ap) ~= "boolean" and type(ap) ~= "table" then
        error("tiktok.relay.open: option 'allow_private' must be a boolean or a list of addresses", 2)
    end
    if type(url) ~= "string" then error("tiktok.relay.open: url must be a string", 2) end
    local u = util.parse_url(url)
    if not u then return nil, refused("the video URL is not a valid absolute URL") end
    if u.scheme ~= "https" and not (opts.allow_http and u.scheme == "http") then
        return nil, refused("the video URL must be https to be relayed (it is " .. u.scheme .. ")")
    end
    local max_bytes = opts.max_bytes or MAX_VIDEO
    local engine = core.relay({
        ca_file = opts.ca_file, allow_private = ap, allow_http = opts.allow_http,
        connect_timeout_ms = opts.connect_timeout_ms or 10000, low_speed_ms = opts.low_speed_ms or 30000,
        buffer_size = opts.buffer_size,
    })
    local info, kind, message = engine:open({ url = url, max_bytes = max_bytes, timeout_ms = opts.timeout_ms })
    if not info then
        engine:close()
        return nil, source_error(ctx, u.host, kind, message, false)
    end
    local src = {
        url = url, host = u.host, size = info.size, ranges = info.ranges, content_type = info.content_type,
        container = info.container, duration_ms = info.duration_ms, served_type = info.served_type,
        engine = engine, spool_dir = opts.spool_dir, spool_max_bytes = opts.spool_max_bytes or max_bytes,
    }
    log(ctx, "debug", "tiktok: relay source " .. u.host .. ": " .. info.size .. " bytes, "
        .. info.container .. (info.ranges and ", ranges" or ", no ranges"))
    return src
end

function _M.close(src)
    if src and src.engine then src.engine:close(); src.engine = nil end
end

local function check_src(fname, src)
    if type(src) ~= "table" or src.engine == nil then
        error(fname .. ": src must be an open source from tiktok.relay.open", 3)
    end
end

-- Spools the whole body when the server has no ranges and the upload has
-- several chunks (once per src).
local function ensure_spool(ctx, src, nice)
    if src.spooled then return true end
    log(ctx, "info", "tiktok: " .. src.host .. " does not serve byte ranges; keeping a temporary copy of the "
        .. src.size .. " bytes while they are uploaded")
    local ok, kind, message = src.engine:spool({ url = src.url, size = src.size, max_bytes = src.spool_max_bytes,
                                                 dir = src.spool_dir, nice = nice })
    if not ok then return nil, source_error(ctx, src.host, kind, message, false) end
    src.spooled = true
    return true
end

function _M.put_chunk(ctx, src, upload_url, chunk)
    check_src("tiktok.relay.put_chunk", src)
    if type(upload_url) ~= "string" or type(chunk) ~= "table" then
        error("tiktok.relay.put_chunk: expected upload_url and a chunk table", 2)
    end
    local whole = chunk.offset == 0 and chunk.length == src.size
    if not src.ranges and not whole then
        local ok, err = ensure_spool(ctx, src, chunk.nice)
        if not ok then return nil, err end
    end
    local res, kind, message, sent, side = src.engine:put_chunk({
        url = src.url, upload_url = upload_url, offset = chunk.offset, length = chunk.length,
        total = chunk.total or src.size, content_type = chunk.content_type or src.content_type,
        timeout_ms = chunk.timeout_ms, progress = chunk.progress, nice = chunk.nice,
        buffer_size = chunk.buffer_size or PUT_BUFFER, ranges = src.ranges, spool = src.spooled or nil,
    })
    if not res then
        if side == "download" then return nil, source_error(ctx, src.host, kind, message, sent) end
        local err = errors.from_core("chunk upload", kind, message, sent, ctx and ctx.secrets)
        err.side = "upload"
        log(ctx, "warn", "tiktok: chunk upload failed: " .. err.code)
        return nil, err
    end
    local out = chunks.answer(res)
    out.downloaded, out.reads = res.downloaded, res.reads
    log(ctx, "debug", "tiktok: relayed chunk PUT -> HTTP " .. res.status)
    return out
end

-- The default reading of a chunk's answer: tiktok.chunks', as tiktok.post's.
_M.classify = chunks.classify


function _M.upload(ctx, src, upload_url, plan, opts)
    opts = opts or {}
    check_src("tiktok.relay.upload", src)
    util.check_opts("tiktok.relay.upload", opts, UPLOAD_SPEC, 2)
    if type(plan) ~= "table" or plan.size ~= src.size then
        error("tiktok.relay.upload: plan must be { size = src.size, chunk_size, count }", 2)
    end
    local ok, _, why = core.plan_check(plan.size, plan.chunk_size, plan.count)
    if not ok then error("tiktok.relay.upload: invalid plan: " .. tostring(why), 2) end
    return chunks.drive({ size = plan.size, chunk_size = plan.chunk_size, count = plan.count, next = opts.next }, {
        retries = opts.retries or 3,
        put = function(c)
            return _M.put_chunk(ctx, src, upload_url, {
                offset = c.offset, length = c.length, total = plan.size, content_type = src.content_type,
                timeout_ms = opts.chunk_timeout_ms, nice = opts.nice, buffer_size = opts.buffer_size,
                progress = opts.progress and function(sent) opts.progress(c.offset + sent) end or nil })
        end,
        classify = opts.on_chunk and function(res, err, c) return opts.on_chunk(c.index, res, err, c) end or nil,
        on_retry = function(c, e)
            log(ctx, "info", "tiktok: relay retries chunk " .. c.number .. " of " .. c.count .. " ("
                .. tostring(e.code) .. ")")
        end,
    })
end

return _M
