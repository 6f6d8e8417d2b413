-- tiktok.chunks: how the answer to one chunk PUT is read, for every upload
-- loop (tiktok.post's, for a file or a relayed URL, and tiktok.relay.upload):
-- one reading of TikTok's upload host, in one place.
local core = require "tiktok.core"
local errors = require "tiktok.errors"

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

return _M
