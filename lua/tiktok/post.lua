-- tiktok.post / tiktok.status: creator_info -> validation -> init -> upload
-- -> status. After init succeeds nothing here inits again for that post:
-- chunks are retried and resumed from the server's Content-Range, an
-- expired token is refreshed once and the step repeated, and every other
-- failure returns an error carrying the publish_id.
local core = require "tiktok.core"
local util = require "tiktok.util"
local api = require "tiktok.api"
local errors = require "tiktok.errors"
local template = require "tiktok.template"
local settings = require "tiktok.settings"

local type, pairs, ipairs, error, tostring, getmetatable = type, pairs, ipairs, error, tostring, getmetatable
local min = math.min

local _M = {}

local POST_SPEC = {
    connection = "table", account = "string", as = "table",
    video_url = "string", video_file = "string", photo_urls = "table",
    caption = "string", title = "string", vars = "table", privacy = "string",
    comments = "boolean", duets = "boolean", stitches = "boolean",
    brand_own = "boolean", brand_third_party = "boolean", ai_generated = "boolean",
    auto_add_music = "boolean", cover_ms = "integer", photo_cover_index = "integer",
    mode = "string", wait = "boolean", on_progress = "function", on_publish = "function",
    wait_timeout_ms = "integer", detach = "boolean",
}

-- Fields handed to tiktok.settings.validate as they are.
local SETTINGS_FIELDS = {
    "video_url", "video_file", "photo_urls", "caption", "title", "privacy", "comments", "duets",
    "stitches", "brand_own", "brand_third_party", "ai_generated", "auto_add_music", "cover_ms",
    "photo_cover_index", "mode",
}

local FINAL = { PUBLISH_COMPLETE = true, SEND_TO_USER_INBOX = true, FAILED = true }
local journal_start, journal_done, upload_finished
-- Status fetches are reads: a garbled or cut-off answer is worth another
-- poll before the deadline (an init never is).
local TRANSIENT_STATUS = { bad_response = true, http = true, network = true, timeout = true,
                           internal_error = true, ambiguous = true }

local function with_publish(err, publish_id)
    err.publish_id = publish_id
    return err
end

local function emit(opts, ev)
    if opts.on_progress then opts.on_progress(ev) end
end

local function check_connection(fname, conn)
    local conn_mod = require "tiktok.connection"
    if type(conn) ~= "table" or getmetatable(conn) == nil or getmetatable(conn).__index ~= conn_mod then
        error(fname .. ": connection must be a connection from tiktok.connect", 3)
    end
end

-- The account to act on: the one named, or the only one visible to `as`.
local function pick_account(conn, opts)
    if opts.account then return opts.account end
    local list, err = conn:accounts({ as = opts.as })
    if not list then return nil, err end
    if #list == 1 then return list[1].open_id end
    if #list == 0 then
        return nil, errors.new("not_found", "no connected TikTok account is visible to you; connect one first")
    end
    return nil, errors.new("invalid_argument",
                           "several TikTok accounts are connected; say which one with account = open_id")
end

local function has_scope(rec, scope)
    for _, s in ipairs(rec.scopes or {}) do if s == scope then return true end end
    return false
end

-- Renders the caption and the media URLs (they may contain variables).
local function render(opts)
    local out = {}
    for _, k in ipairs(SETTINGS_FIELDS) do out[k] = opts[k] end
    local vars = opts.vars or {}
    for _, k in ipairs({ "caption", "title", "video_url" }) do
        if out[k] then
            local s, err = template.render(out[k], vars)
            if not s then return nil, err end
            out[k] = s
        end
    end
    if out.photo_urls then
        local urls = {}
        for i, u in ipairs(out.photo_urls) do
            if type(u) ~= "string" then
                error("tiktok.post: photo_urls[" .. i .. "] must be a string", 3)
            end
            local s, err = template.render(u, vars)
            if not s then return nil, err end
            urls[i] = s
        end
        out.photo_urls = urls
    end
    return out
end

-- Local checks of the file: it exists, is a regular non-empty file, and is
-- an MP4, MOV or WebM (whose header gives the duration when it can).
local function inspect_file(path)
    local what = "video_file " .. util.show(path)
    local st, kind, msg = core.stat(path)
    if not st then return nil, errors.from_core(what, kind, msg) end
    if st.type ~= "file" then
        return nil, errors.new("file", what .. " is a " .. st.type .. ", not a file")
    end
    if st.size == 0 then return nil, errors.new("file", what .. " is empty") end
    local media
    media, kind, msg = core.probe(path)
    if not media then
        if kind == "unsupported_media" then msg = msg .. " (TikTok takes MP4, MOV or WebM)" end
        return nil, errors.from_core(what, kind, msg)
    end
    return media
end

-- Sleeps until another status call fits into TikTok's per-token budget.
local function status_budget(conn, open_id)
    local calls = conn._status_calls[open_id]
    if not calls then calls = {}; conn._status_calls[open_id] = calls end
    local limit = conn.opts.status_rate_per_min
    local now = core.monotonic_ms()
    while #calls > 0 and calls[1] <= now - 60000 do table.remove(calls, 1) end
    if #calls >= limit then
        core.sleep_ms(calls[1] + 60000 - now)
        table.remove(calls, 1)
    end
    calls[#calls + 1] = core.monotonic_ms()
end

local function fetch_status(conn, open_id, as, publish_id)
    return conn:_with_token(open_id, as, function(token)
        status_budget(conn, open_id)
        return api.status(conn._ctx, token, publish_id)
    end)
end

-- Polls until a final status or the deadline. Transient failures (5xx,
-- 429, network) are retried until the deadline; nothing re-inits.
local function wait_final(conn, open_id, opts, publish_id, deadline_ms)
    local delay = conn.opts.poll_ms
    local last
    while true do
        local st, err = fetch_status(conn, open_id, opts.as, publish_id)
        if st then
            last = st
            emit(opts, { stage = "status", status = st.status, publish_id = publish_id,
                         bytes = st.uploaded_bytes or st.downloaded_bytes })
            if FINAL[st.status] then return st end
        elseif not (err.retryable or TRANSIENT_STATUS[err.code]) then
            return nil, with_publish(err, publish_id)
        end
        local now = core.monotonic_ms()
        if now + delay > deadline_ms then
            local e = errors.new("timeout", "TikTok is still processing the post (last status "
                                 .. tostring(last and last.status or "unknown") .. "); call tiktok.status "
                                 .. "with this publish_id later", { retryable = true })
            return nil, with_publish(e, publish_id)
        end
        core.sleep_ms(delay)
        delay = min(delay * 2, 5000)
    end
end

-- wait_final, with a FAILED post turned into an error carrying its fail_reason.
local function wait_done(conn, open_id, opts, publish_id, deadline_ms)
    local st, err = wait_final(conn, open_id, opts, publish_id, deadline_ms)
    if not st then return nil, err end
    if st.status == "FAILED" then return nil, errors.from_fail_reason(st.fail_reason, publish_id) end
    return st
end


-- After a lost answer to the last chunk: has TikTok got every byte?
function upload_finished(conn, opts, file, publish_id)
    local st = fetch_status(conn, file.open_id, opts.as, publish_id)
    return st ~= nil and (st.uploaded_bytes == file.size or st.status ~= "PROCESSING_UPLOAD")
end

-- Uploads every chunk from file.next (0-based); resumes from the server's
-- progress after a retry; journals progress in the store when it can.
local function upload(conn, opts, publish_id, upload_url, file)
    local o = conn.opts
    local ctx = conn._ctx
    local index, attempts = file.next or 0, 0
    local size, chunk, count = file.size, file.chunk_size, file.count
    local done = 0
    local lost = false          -- the previous attempt died in transit
    while index < count do
        local offset, length = core.chunk_range(size, chunk, count, index)
        local base = offset
        local res, err = api.put_chunk(ctx, upload_url, {
            path = file.path, offset = offset, length = length, total = size,
            content_type = file.content_type, timeout_ms = o.chunk_timeout_ms,
            progress = opts.on_progress and function(sent)
                emit(opts, { stage = "upload", bytes = base + sent, total = size,
                             chunk = index + 1, chunks = count, publish_id = publish_id })
            end or nil,
        })
        local expect = (index == count - 1) and 201 or 206
        if res and (res.status == 201 or res.status == 206) then
            local got = res.last and (res.last + 1) or (offset + length)
            if got ~= offset + length and res.status ~= 201 then
                err = errors.new("upload_failed", "TikTok acknowledged " .. tostring(got)
                                 .. " bytes where " .. (offset + length) .. " were sent")
            elseif res.status ~= expect then
                return nil, with_publish(errors.new("upload_failed", "TikTok answered HTTP " .. res.status
                                         .. " to chunk " .. (index + 1) .. " of " .. count), publish_id)
            else
                done = offset + length
                index = index + 1
                attempts = 0
                if file.journal and index < count then file.journal(index) end
            end
        elseif res and res.status == 416 and res.last then
            -- The server has a different idea of our progress (a retried
            -- chunk it already had): continue from its Content-Range.
            local have = res.last + 1
            local moved = false
            for i = 0, count - 1 do
                local off = core.chunk_range(size, chunk, count, i)
                if off == have then index = i; moved = true; break end
            end
            if have == size then index = count; moved = true end
            if not moved then
                return nil, with_publish(errors.new("upload_failed", "TikTok's upload progress ("
                                         .. have .. " bytes) is not on a chunk boundary"), publish_id)
            end
            done = have
            attempts = attempts + 1
        elseif res and res.status >= 400 and res.status < 500 and res.status ~= 429 and lost
               and index == count - 1 and upload_finished(conn, opts, file, publish_id) then
            -- The last chunk arrived before the connection died; TikTok says so.
            done = size
            index = count
        elseif res then
            local status = res.status
            if status >= 500 or status == 429 then
                err = errors.new(status == 429 and "rate_limit_exceeded" or "internal_error",
                                 "TikTok's upload host answered HTTP " .. status,
                                 { http_status = status, retryable = true })
            else
                local why = ({ [400] = "TikTok refused the chunk's headers (HTTP 400)",
                               [403] = "the upload URL expired (TikTok allows one hour); post again",
                               [404] = "TikTok has no upload task for this URL (HTTP 404); post again",
                               [416] = "TikTok refused the chunk's Content-Range (HTTP 416)" })[status]
                              or ("TikTok answered HTTP " .. status .. " to a chunk upload")
                return nil, with_publish(errors.new("upload_failed", why,
                                         { http_status = status, retryable = false }), publish_id)
            end
        end
        lost = err ~= nil and (err.code == "network" or err.code == "timeout")
        if err then
            if err.code == "file" or err.code == "invalid_argument" then
                return nil, with_publish(err, publish_id)
            end
            attempts = attempts + 1
            if attempts > o.upload_retries then
                err.message = err.message .. " (chunk " .. (index + 1) .. " of " .. count .. ", after "
                              .. o.upload_retries .. " retries)"
                return nil, with_publish(err, publish_id)
            end
            emit(opts, { stage = "retry", chunk = index + 1, chunks = count, publish_id = publish_id,
                         error = err.code })
            core.sleep_ms(min(250 * 2 ^ (attempts - 1), 4000))
        end
        if index > count then index = count end
    end
    return done
end

-- Records in the journal that chunks before `index` have arrived.
local function journal_progress(store, job)
    return function(index)
        job.next = index
        store:put_upload(job)
    end
end

-- The upload journal: what tiktok.resume needs to finish an upload that a
-- crash, a restart or tiktok.post{detach = true} left behind.
function journal_start(conn, publish_id, open_id, upload_url, file, req)
    local store = conn.store
    if type(store.put_upload) ~= "function" then return nil end
    local job = { publish_id = publish_id, open_id = open_id, upload_url = upload_url, path = file.path,
                  size = file.size, chunk_size = file.chunk_size, count = file.count,
                  content_type = file.content_type, next = 0, mode = req.mode, privacy = req.privacy,
                  caption = req.caption, created_at = math.floor(util.now()) }
    local ok = store:put_upload(job)
    if not ok then return nil end
    file.journal = journal_progress(store, job)
    return job
end

function journal_done(conn, publish_id)
    if type(conn.store.delete_upload) == "function" then conn.store:delete_upload(publish_id) end
end

local function result(req, publish_id, st, open_id)
    return {
        publish_id = publish_id, open_id = open_id,
        status = st and st.status or "PROCESSING_" .. (req.source == "FILE_UPLOAD" and "UPLOAD" or "DOWNLOAD"),
        post_ids = st and st.post_ids or {}, fail_reason = st and st.fail_reason or nil,
        uploaded_bytes = st and st.uploaded_bytes, downloaded_bytes = st and st.downloaded_bytes,
        privacy = req.privacy, caption = req.caption, mode = req.mode,
    }
end

function _M.post(opts)
    util.check_opts("tiktok.post", opts, POST_SPEC, 2)
    check_connection("tiktok.post", opts.connection)
    local conn = opts.connection
    if opts.as then util.check_opts("tiktok.post: as", opts.as, { user = "string", workspace = "string" }, 2) end
    local n = (opts.video_url and 1 or 0) + (opts.video_file and 1 or 0) + (opts.photo_urls and 1 or 0)
    if n ~= 1 then
        return nil, errors.new("invalid_settings", "give exactly one of video_url, video_file or photo_urls",
                               { problems = { "give exactly one of video_url, video_file or photo_urls" } })
    end
    local mode = opts.mode or "direct"
    if mode ~= "direct" and mode ~= "inbox" then
        error("tiktok.post: mode must be \"direct\" or \"inbox\"", 2)
    end
    local deadline = core.monotonic_ms() + (opts.wait_timeout_ms or conn.opts.wait_timeout_ms)

    local req, err = render(opts)
    if not req then return nil, err end

    local open_id
    open_id, err = pick_account(conn, opts)
    if not open_id then return nil, err end
    local rec
    rec, err = conn:_record(open_id, opts.as)
    if not rec then return nil, err end
    local need = mode == "inbox" and "video.upload" or "video.publish"
    if not has_scope(rec, need) then
        return nil, errors.new("scope_not_authorized", "the account did not grant " .. need
                               .. "; connect it again and approve that permission")
    end

    local media
    if req.video_file then
        media, err = inspect_file(req.video_file)
        if not media then return nil, err end
        req.duration_sec = media.duration_ms and media.duration_ms / 1000 or nil
    end

    -- Creator info is fetched fresh for every post (Content Sharing
    -- Guidelines); the inbox flow without video.publish cannot read it.
    local creator
    if has_scope(rec, "video.publish") then
        emit(opts, { stage = "creator_info" })
        creator, err = conn:creator_info(open_id, { as = opts.as })
        if not creator then return nil, err end
    end

    local valid
    valid, err = settings.validate(req, creator, { audited = conn.opts.audited,
                                                   verified_prefixes = conn.opts.verified_prefixes })
    if not valid then return nil, err end

    local file
    if valid.source == "FILE_UPLOAD" then
        local chunk_size, count, why = core.plan(media.size, conn.opts.chunk_size)
        if not chunk_size then
            return nil, errors.new("invalid_settings", "video_file cannot be uploaded: " .. why,
                                   { problems = { why } })
        end
        file = { path = valid.video_file, size = media.size, chunk_size = chunk_size, count = count,
                 content_type = media.content_type, open_id = open_id }
    end

    -- Init: once. A 401 means TikTok refused it (nothing was created), so
    -- one refresh and one repeat are safe; an ambiguous failure is not.
    emit(opts, { stage = "init" })
    local init
    init, err = conn:_with_token(open_id, opts.as, function(token)
        return api.init(conn._ctx, token, valid, file)
    end)
    if not init then
        if err.sent and (err.code == "network" or err.code == "timeout") then
            err = errors.new("ambiguous", "the connection failed after the post was sent to TikTok; it may "
                             .. "have been created: check the creator's profile before posting again",
                             { retryable = false })
        end
        return nil, err
    end
    local publish_id = init.publish_id
    if opts.on_publish then opts.on_publish(publish_id) end
    emit(opts, { stage = "init", publish_id = publish_id })

    if file then
        local url = util.parse_url(init.upload_url)
        if not url or (url.scheme ~= "https" and not (url.scheme == "http" and util.is_loopback(url.host))) then
            return nil, with_publish(errors.new("bad_response", "TikTok's upload_url is not an https URL; "
                                     .. "refusing to send the video there"), publish_id)
        end
        local job = journal_start(conn, publish_id, open_id, init.upload_url, file, valid)
        if opts.detach then
            if not job then
                return nil, with_publish(errors.new("store", "detach needs a store that journals uploads "
                                         .. "(put_upload/get_upload/delete_upload)"), publish_id)
            end
            return result(valid, publish_id, nil, open_id)
        end
        local ok, uerr = upload(conn, opts, publish_id, init.upload_url, file)
        if not ok then return nil, uerr end
        journal_done(conn, publish_id)
    end

    if opts.wait == false or opts.detach then return result(valid, publish_id, nil, open_id) end
    local st
    st, err = wait_done(conn, open_id, opts, publish_id, deadline)
    if not st then return nil, err end
    return result(valid, publish_id, st, open_id)
end

local RESUME_SPEC = { connection = "table", publish_id = "string", account = "string", as = "table", wait = "boolean",
                      wait_timeout_ms = "integer", on_progress = "function" }

-- The checks tiktok.resume and tiktok.status share. Returns the connection.
local function check_publish_call(fname, opts, spec)
    util.check_opts(fname, opts, spec, 3)
    check_connection(fname, opts.connection)
    if not opts.publish_id or opts.publish_id == "" or #opts.publish_id > 128 then
        return nil, errors.new("invalid_argument", "publish_id is required (the id tiktok.post returned)")
    end
    return opts.connection
end

-- Finishes a post: uploads what the journal says is left (after a crash,
-- a restart or tiktok.post{detach = true}), then waits like tiktok.post.
-- A publish without a journal entry (pulled from a URL, or fully uploaded)
-- is only waited for. Never inits.
function _M.resume(opts)
    local conn, cerr = check_publish_call("tiktok.resume", opts, RESUME_SPEC)
    if not conn then return nil, cerr end
    local deadline = core.monotonic_ms() + (opts.wait_timeout_ms or conn.opts.wait_timeout_ms)
    local job, open_id, err
    if type(conn.store.get_upload) == "function" then
        job, err = conn.store:get_upload(opts.publish_id)
        if err then return nil, err end
    end
    if job then
        open_id = job.open_id
        local rec
        rec, err = conn:_record(open_id, opts.as)
        if not rec then return nil, with_publish(err, opts.publish_id) end
        local st = core.stat(job.path)
        if not st or st.size ~= job.size then
            return nil, with_publish(errors.new("file", "the video file " .. util.show(job.path)
                                     .. " changed or vanished since the post started; it cannot be resumed"),
                                     opts.publish_id)
        end
        local file = { path = job.path, size = job.size, chunk_size = job.chunk_size, count = job.count,
                       content_type = job.content_type, next = job.next, open_id = open_id }
        file.journal = journal_progress(conn.store, job)
        local ok, uerr = upload(conn, opts, job.publish_id, job.upload_url, file)
        if not ok then return nil, uerr end
        journal_done(conn, job.publish_id)
    else
        open_id, err = pick_account(conn, opts)
        if not open_id then return nil, with_publish(err, opts.publish_id) end
    end
    if opts.wait == false then
        local st
        st, err = fetch_status(conn, open_id, opts.as, opts.publish_id)
        if not st then return nil, with_publish(err, opts.publish_id) end
        st.publish_id, st.open_id = opts.publish_id, open_id
        return st
    end
    local st
    st, err = wait_done(conn, open_id, opts, opts.publish_id, deadline)
    if not st then return nil, err end
    st.publish_id, st.open_id = opts.publish_id, open_id
    if job then st.privacy, st.caption, st.mode = job.privacy, job.caption, job.mode end
    return st
end

local STATUS_SPEC = { connection = "table", account = "string", publish_id = "string", as = "table",
                      wait = "boolean", wait_timeout_ms = "integer", on_progress = "function" }

function _M.status(opts)
    local conn, cerr = check_publish_call("tiktok.status", opts, STATUS_SPEC)
    if not conn then return nil, cerr end
    local open_id, err = pick_account(conn, opts)
    if not open_id then return nil, err end
    if opts.wait then
        -- Like tiktok.post: a FAILED post is an error carrying its fail_reason.
        local deadline = core.monotonic_ms() + (opts.wait_timeout_ms or conn.opts.wait_timeout_ms)
        return wait_done(conn, open_id, opts, opts.publish_id, deadline)
    end
    local st
    st, err = fetch_status(conn, open_id, opts.as, opts.publish_id)
    if not st then return nil, with_publish(err, opts.publish_id) end
    return st
end

-- Inside nginx the whole flow runs in a worker thread (tiktok.openresty).
local openresty = require "tiktok.openresty"
_M._direct = {}
for _, name in ipairs({ "post", "status", "resume" }) do
    local direct = _M[name]
    _M._direct[name] = direct
    _M[name] = function(opts)
        local off, err = openresty.offload()
        if off == nil then return nil, err end
        if not off then return direct(opts) end
        util.check_opts("tiktok." .. name, opts, name == "post" and POST_SPEC
                        or name == "status" and STATUS_SPEC or RESUME_SPEC, 2)
        check_connection("tiktok." .. name, opts.connection)
        local copy = {}
        for k, v in pairs(opts) do if k ~= "connection" then copy[k] = v end end
        return openresty.call(opts.connection, "post", name, copy)
    end
end

return _M
