-- tiktok.chunks: how the answer to one chunk PUT is read, for every upload
-- loop (tiktok.post's, for a file or a relayed URL, and tiktok.relay.upload):
-- one reading of TikTok's upload host, in one place.
local core = require "tiktok.core"
local errors = require "tiktok.errors"

local min = math.min

local _M = {}

-- Failures of a chunk's transfer that another attempt cannot fix (the
-- file, or a relayed URL the relay refuses or cannot read as a video).
local FATAL_TRANSFER = { file = true, invalid_argument = true, relay_refused = true, unsupported_media = true }

local REFUSED = {
    [400] = "TikTok refused the chunk's headers (HTTP 400)",
    [403] = "the upload URL expired (TikTok allows one hour); post again",
    [404] = "TikTok has no upload task for this URL (HTTP 404); post again",
    [416] = "TikTok refused the chunk's Content-Range (HTTP 416)",
}

-- Reads TikTok's answer to one chunk PUT. Returns one of
--   "ok", bytes_done        the chunk arrived (the last one: the whole file)
--   "resync", bytes_done    TikTok has another idea of our progress (416 with
--                           its Content-Range): continue from there
--   "retry", err            worth sending the chunk again (5xx, 429, reset, timeout)
--   "fatal", err            stop: the post cannot be uploaded
-- `last` says whether this was the final chunk. chunk = { offset, length,
-- number, count }.
function _M.classify(res, err, chunk, size, last)
    if not res then
        if FATAL_TRANSFER[err.code] then return "fatal", err end
        return "retry", err
    end
    local status, range_end = res.status, res.last and res.last + 1
    if status >= 200 and status < 300 then
        if last then
            -- 201 is TikTok's documented answer; any 2xx whose Content-Range
            -- covers the whole file means the same.
            if status == 201 or range_end == size then return "ok", size end
            return "fatal", errors.new("upload_failed", "TikTok answered HTTP " .. status .. " to the last "
                                       .. "chunk" .. (range_end and (" with " .. range_end .. " of " .. size
                                       .. " bytes acknowledged") or " without saying the file is complete"),
                                       { http_status = status })
        end
        local got = range_end or (chunk.offset + chunk.length)
        if status ~= 206 then
            return "fatal", errors.new("upload_failed", "TikTok answered HTTP " .. status .. " to chunk "
                                       .. chunk.number .. " of " .. chunk.count .. " (206 expected)",
                                       { http_status = status })
        end
        if got ~= chunk.offset + chunk.length then
            return "retry", errors.new("upload_failed", "TikTok acknowledged " .. got .. " bytes where "
                                       .. (chunk.offset + chunk.length) .. " were sent",
                                       { class = "transient" })
        end
        return "ok", got
    end
    if status == 416 and (range_end or (res.total == size and res.first == nil)) then
        return "resync", range_end or 0        -- "bytes */total": nothing has arrived
    end
    if status >= 500 or status == 429 then
        return "retry", errors.new(status == 429 and "rate_limit_exceeded" or "internal_error",
                                   "TikTok's upload host answered HTTP " .. status, { http_status = status })
    end
    return "fatal", errors.new("upload_failed", REFUSED[status] or ("TikTok answered HTTP " .. status
                               .. " to a chunk upload"), { http_status = status })
end

--- chunks.chunk_at(plan, have) -> the index of the chunk that starts at byte
-- `have` (plan.count when have == plan.size), or nil off a boundary.
function _M.chunk_at(file, have)
    if have == file.size then return file.count end
    for i = 0, file.count - 1 do
        if core.chunk_range(file.size, file.chunk_size, file.count, i) == have then return i end
    end
    return nil
end

--- chunks.answer(res) -> { status, first, last, total }: a chunk PUT's answer
-- with the host's progress from its Content-Range (absent fields: nil).
function _M.answer(res)
    local out = { status = res.status }
    local cr = res.headers and res.headers["content-range"]
    local range = cr and core.parse_content_range(cr)
    if range then out.first, out.last, out.total = range.first, range.last, range.total end
    return out
end

--- chunks.drive(plan, o) -> bytes_done | nil, err
-- THE upload loop: sends every chunk of plan = { size, chunk_size, count,
-- next (0-based, default 0) } through o.put(chunk) -> res | nil, err
-- (chunk = { offset, length, number, count }), reads each answer with
-- o.classify (default: classify above) and goes on, resyncs or retries. At
-- most o.retries attempts in a row may fail to move the upload past the
-- furthest point it ever reached (a retry, or a resync that is not ahead of
-- it), so a host that answers every PUT the same way, or sends us back and
-- forth, cannot keep us here. Hooks (all optional):
--   o.after(res, err, chunk, verdict, v) -> verdict, v   a second look at an answer
--   o.on_ok(next_index)         a chunk arrived (journal it)
--   o.on_retry(chunk, err, attempts)   before the backoff sleep
--   o.who                       who answers, for messages ("TikTok", "the upload host")
function _M.drive(plan, o)
    local retries, who = o.retries or 3, o.who or "the upload host"
    local index, attempts, done = plan.next or 0, 0, 0
    local best = index < plan.count and core.chunk_range(plan.size, plan.chunk_size, plan.count, index) or plan.size
    local classify = o.classify or _M.classify
    while index < plan.count do
        local offset, length = core.chunk_range(plan.size, plan.chunk_size, plan.count, index)
        local chunk = { offset = offset, length = length, number = index + 1, count = plan.count, index = index }
        local res, err = o.put(chunk)
        if res == nil and err == nil then return nil, o.stopped end     -- put asked to stop
        local verdict, v = classify(res, err, chunk, plan.size, index == plan.count - 1)
        if o.after then verdict, v = o.after(res, err, chunk, verdict, v) end
        if verdict == "ok" then
            done, index = v, index + 1
            if done > best then best, attempts = done, 0 end
            if o.on_ok and index < plan.count then o.on_ok(index) end
        elseif verdict == "resync" then
            local at = _M.chunk_at(plan, v)
            if not at then
                return nil, errors.new("upload_failed", who .. "'s upload progress (" .. tostring(v)
                                       .. " bytes) is not on a chunk boundary")
            end
            if v > best then best, attempts = v, 0 else attempts = attempts + 1 end
            if attempts > retries then
                return nil, errors.new("upload_failed", who .. " keeps refusing chunk " .. (index + 1) .. " of "
                                       .. plan.count .. " (HTTP 416) without moving forward; post again",
                                       { http_status = 416 })
            end
            index, done = at, v
        elseif verdict == "retry" then
            attempts = attempts + 1
            if attempts > retries then
                v.message = v.message .. " (chunk " .. (index + 1) .. " of " .. plan.count .. ", after "
                            .. retries .. " retries)"
                return nil, v
            end
            if o.on_retry then o.on_retry(chunk, v, attempts) end
            core.sleep_ms(min(250 * 2 ^ (attempts - 1), 4000))
        else
            return nil, v
        end
    end
    return done
end

return _M
