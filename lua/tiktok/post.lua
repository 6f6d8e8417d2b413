-- tiktok.post / tiktok.status / tiktok.resume: creator_info -> validation
-- -> init -> upload -> status. After init succeeds nothing here inits again
-- for that post: chunks are retried and resumed from the server's
-- Content-Range, an expired token is refreshed once and the step repeated,
-- and every other failure returns an error carrying the publish_id.
--
-- Reading order for a video file: tiktok.post (below) -> tiktok.settings
-- (validation) -> tiktok.api (the init request, the chunk PUT, the status
-- fetch) -> src/session.c (the streaming PUT; a relayed URL: tiktok.relay
-- and src/relay.c). The connection's internal
-- interface (_option, _api, _record, _with_token, _budget) is the
-- only part of tiktok.connection used here.
local core = require "tiktok.core"
local util = require "tiktok.util"
local api = require "tiktok.api"
local errors = require "tiktok.errors"
local fields = require "tiktok.fields"
local settings = require "tiktok.settings"
local openresty = require "tiktok.openresty"
local relay = require "tiktok.relay"
local chunks = require "tiktok.chunks"

local type, pairs, ipairs, error, tostring, getmetatable = type, pairs, ipairs, error, tostring, getmetatable
local min, floor = math.min, math.floor

local _M = {}

-- tiktok.post's options: the post's fields (user data, judged by
-- tiktok.settings, so any type is accepted here) and the call's own options.
local POST_SPEC = {
    connection = "table", account = "string", as = "table", vars = "table", wait = "boolean",
    on_progress = "function", on_publish = "function", on_init = "function", wait_timeout_ms = "integer",
    detach = "boolean", wording = "string",
}
for _, f in ipairs(fields.list) do POST_SPEC[f.name] = "any" end

local FINAL = { PUBLISH_COMPLETE = true, SEND_TO_USER_INBOX = true, FAILED = true }

local function with_publish(err, publish_id)
    err.publish_id = publish_id
    return err
end

-- Reports ev to on_progress; returns false when on_progress asked to stop
-- (it returned false).
local function emit(opts, ev)
    if opts.on_progress then return opts.on_progress(ev) ~= false end
    return true
end

local function check_connection(fname, conn)
    local conn_mod = require "tiktok.connection"
    if type(conn) ~= "table" or getmetatable(conn) == nil or getmetatable(conn).__index ~= conn_mod then
        error(fname .. ": connection must be a connection from tiktok.connect", 3)
    end
end

local function has_scope(rec, scope)
    for _, s in ipairs(rec.scopes or {}) do if s == scope then return true end end
    return false
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

local function fetch_status(conn, open_id, as, publish_id, deadline_ms)
    return conn:_with_token(open_id, as, function(token)
        local ok, err = conn:_budget("status", open_id, deadline_ms)
        if not ok then return nil, err end
        return api.status(conn:_api(), token, publish_id)
    end)
end

-- Status fetches are reads: a transient failure, or an answer that could not
-- be read, is worth another poll before the deadline (an init never is).
local function poll_again(err, deadline_ms)
    local wait = err.class == "throttled" and 1000 or 0
    return errors.read_again(err) and core.monotonic_ms() + wait <= deadline_ms
end

-- Polls until a final status or the deadline; nothing re-inits.
local function wait_final(conn, open_id, opts, publish_id, deadline_ms)
    local delay = conn:_option("poll_ms")
    local last
    while true do
        local st, err = fetch_status(conn, open_id, opts.as, publish_id, deadline_ms)
        if st then
            last = st
            emit(opts, { stage = "status", status = st.status, publish_id = publish_id,
                         bytes = st.uploaded_bytes or st.downloaded_bytes })
            if FINAL[st.status] then return st end
        elseif not poll_again(err, deadline_ms) then
            return nil, with_publish(err, publish_id)
        end
        if core.monotonic_ms() + delay > deadline_ms then
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

-- ------------------------------------------------------------------ upload

-- After a lost answer to the last chunk: has TikTok got every byte?
local function upload_finished(conn, opts, file, publish_id)
    local st = fetch_status(conn, file.open_id, opts.as, publish_id)
    return st ~= nil and (st.uploaded_bytes == file.size or st.status ~= "PROCESSING_UPLOAD")
end

-- Uploads every chunk from file.next (0-based) through the one upload loop
-- (tiktok.chunks.drive): from the file with pread, or from a relayed URL.
-- Progress goes to on_progress (false stops the upload: interrupted), every
-- chunk that arrived to the journal, every error carries the publish_id.
local function upload(conn, opts, publish_id, upload_url, file)
    local stopped, lost = false, false
    local put = file.relay and function(ctx, url, c) return relay.put_chunk(ctx, file.relay, url, c) end
        or api.put_chunk
    local done, err = chunks.drive(file, {
        retries = conn:_option("upload_retries"), who = "TikTok",
        put = function(c)
            local res, perr = put(conn:_api(), upload_url, {
                path = file.path, offset = c.offset, length = c.length, total = file.size,
                content_type = file.content_type, timeout_ms = conn:_option("chunk_timeout_ms"),
                nice = conn:_upload_nice(), buffer_size = conn:_option("upload_buffer_size"),
                progress = opts.on_progress and function(sent)
                    stopped = not emit(opts, { stage = "upload", bytes = c.offset + sent, total = file.size,
                                               chunk = c.number, chunks = c.count, publish_id = publish_id })
                    return not stopped
                end or nil,
            })
            if stopped then return nil, nil end
            return res, perr
        end,
        stopped = errors.new("interrupted", "the upload was stopped (on_progress returned false); "
                             .. "tiktok.resume continues it from the last chunk that arrived"),
        -- After a connection that died in the last chunk, a 4xx may mean it
        -- had arrived: TikTok's status says so.
        after = function(res, _, c, verdict, v)
            if verdict == "fatal" and lost and c.number == c.count and res and res.status < 500
               and upload_finished(conn, opts, file, publish_id) then
                verdict, v = "ok", file.size
            end
            lost = verdict == "retry" and not res
            return verdict, v
        end,
        on_ok = file.journal,
        on_retry = function(c, e)
            emit(opts, { stage = "retry", chunk = c.number, chunks = c.count, publish_id = publish_id,
                         error = e.code })
        end,
    })
    if not done then return nil, with_publish(err, publish_id) end
    return done
end

-- --------------------------------------------------------- upload journal

-- Records in the journal that chunks before `index` have arrived.
local function journal_progress(store, job)
    return function(index)
        job.next = index
        store:put_upload(job)
    end
end

-- The upload journal: what tiktok.resume needs to finish an upload that a
-- crash, a restart or tiktok.post{detach = true} left behind.
local function journal_start(conn, publish_id, open_id, upload_url, file, req)
    local store = conn.store
    if type(store.put_upload) ~= "function" then return nil end
    local job = { publish_id = publish_id, open_id = open_id, upload_url = upload_url, path = file.path, url = file.url,
                  size = file.size, chunk_size = file.chunk_size, count = file.count,
                  content_type = file.content_type, next = 0, mode = req.mode, privacy = req.privacy,
                  caption = req.caption, created_at = floor(util.now()) }
    local ok = store:put_upload(job)
    if not ok then return nil end
    file.journal = journal_progress(store, job)
    return job
end

local function journal_done(conn, publish_id)
    if type(conn.store.delete_upload) == "function" then conn.store:delete_upload(publish_id) end
end

-- A journal comes from a store that may be corrupt or edited by hand: its
-- plan must be one the planner accepts, its position inside it, its upload
-- URL https (or loopback http) before anything is sent.
local function check_journal(job)
    local function bad(why)
        return nil, errors.new("store", "the upload journal of " .. tostring(job.publish_id) .. " is "
                               .. "damaged (" .. why .. "); it cannot be resumed: post the video again")
    end
    for _, k in ipairs({ "size", "chunk_size", "count", "next" }) do
        local v = job[k]
        if type(v) ~= "number" or v ~= floor(v) or v < 0 or v > 2^53 then return bad(k .. " is not a count") end
    end
    if (type(job.path) ~= "string" and type(job.url) ~= "string") or type(job.upload_url) ~= "string"
       or type(job.content_type) ~= "string" or type(job.open_id) ~= "string" then
        return bad("a field is missing")
    end
    local ok, _, why = core.plan_check(job.size, job.chunk_size, job.count)
    if not ok then return bad(tostring(why)) end
    if job.next >= job.count then return bad("its position is past the last chunk") end
    local u = util.parse_url(job.upload_url)
    if not u or (u.scheme ~= "https" and not (u.scheme == "http" and util.is_loopback(u.host))) then
        return bad("its upload URL is not https")
    end
    return true
end

local function result(req, publish_id, st, open_id)
    return {
        publish_id = publish_id, open_id = open_id,
        status = st and st.status or "PROCESSING_" .. (req.source == "FILE_UPLOAD" and "UPLOAD" or "DOWNLOAD"),
        post_ids = st and st.post_ids or {}, fail_reason = st and st.fail_reason or nil,
        uploaded_bytes = st and st.uploaded_bytes, downloaded_bytes = st and st.downloaded_bytes,
        privacy = req.privacy, caption = req.caption, mode = req.mode, source = req.source,
    }
end

-- -------------------------------------------------------------- tiktok.post

-- The file of a request with exactly one source, a video_file: checked
-- before anything is sent, its duration read for validation.
local function media_of(opts)
    if type(opts.video_file) ~= "string" or opts.video_url ~= nil or opts.photo_urls ~= nil then
        return nil
    end
    return inspect_file(opts.video_file)
end

-- The chunk plan of a file (or a relayed URL) of `size` bytes.
local function plan_file(conn, size, what)
    local chunk_size, count, why = core.plan(size, conn:_option("chunk_size"))
    if not chunk_size then
        return nil, errors.new("invalid_settings", what .. " cannot be uploaded: " .. why, { problems = { why } })
    end
    return chunk_size, count
end

-- Everything before init: account, scope, file, creator_info, validation,
-- chunk plan. Returns the normalized request, the account and the file plan
-- (and `ctx`: what a relay needs later, the creator info and the request).
local function prepare(conn, opts)
    local open_id, err = conn:pick_account(opts.account, { as = opts.as })
    if not open_id then return nil, err end
    local rec
    rec, err = conn:_record(open_id, opts.as)
    if not rec then return nil, err end
    local need = opts.mode == "inbox" and "video.upload" or "video.publish"
    if not has_scope(rec, need) then
        return nil, errors.new("scope_not_authorized", "the account did not grant " .. need
                               .. "; connect it again and approve that permission")
    end
    local media
    media, err = media_of(opts)
    if err then return nil, err end
    -- Creator info is fetched fresh for every post (Content Sharing
    -- Guidelines); the inbox flow without video.publish cannot read it.
    local creator
    if has_scope(rec, "video.publish") then
        emit(opts, { stage = "creator_info" })
        creator, err = conn:creator_info(open_id, { as = opts.as })
        if not creator then return nil, err end
    end
    local req = {}
    for k, v in pairs(opts) do req[k] = v end
    req.duration_sec = media and media.duration_ms and media.duration_ms / 1000 or nil
    -- An unverified video URL is a problem only when it may not be relayed.
    local verified = conn:_option("verified_prefixes")
    local relayable = type(req.video_url) == "string" and req.relay ~= "never"
    local valid
    valid, err = settings.validate(req, creator, { audited = conn:_option("audited"), wording = opts.wording,
                                                   verified_prefixes = not relayable and verified or nil })
    if not valid then return nil, err end
    local ctx = { creator = creator, req = req }
    if valid.relay and verified and settings.url_verified(valid.video_url, verified) == false then
        ctx.unverified = true          -- TikTok would refuse the pull: relay at once (auto)
    end
    local file
    if valid.source == "FILE_UPLOAD" then
        local chunk_size, count = plan_file(conn, media.size, "video_file")
        if not chunk_size then return nil, count end
        file = { path = valid.video_file, size = media.size, chunk_size = chunk_size, count = count,
                 content_type = media.content_type, open_id = open_id }
    end
    return valid, open_id, file, ctx
end

-- Opens the relay of a video URL TikTok will not pull: the source is
-- probed (size, container, duration), the request validated again with the
-- duration, the chunks planned. valid becomes a FILE_UPLOAD fed from the URL.
local function relay_file(conn, opts, valid, open_id, ctx)
    emit(opts, { stage = "relay", url = valid.video_url })
    local src, err = relay.open(conn:_api(), valid.video_url, {
        allow_private = conn:_option("relay_allow_private"), ca_file = conn:_option("relay_ca_file"),
        spool_dir = conn:_option("relay_spool_dir"), connect_timeout_ms = conn:_option("connect_timeout_ms"),
        low_speed_ms = conn:_option("low_speed_ms") })
    if not src then return nil, err end
    local req = ctx.req
    req.duration_sec = src.duration_ms and src.duration_ms / 1000 or nil
    local again
    again, err = settings.validate(req, ctx.creator, { audited = conn:_option("audited"), wording = opts.wording })
    if not again then relay.close(src); return nil, err end
    local chunk_size, count = plan_file(conn, src.size, "video_url")
    if not chunk_size then relay.close(src); return nil, count end
    valid.source = "FILE_UPLOAD"
    return { relay = src, url = valid.video_url, size = src.size, chunk_size = chunk_size, count = count,
             content_type = src.content_type, open_id = open_id }
end

-- Init: once. A 401 means TikTok refused it (nothing was created), so one
-- refresh and one repeat are safe; an ambiguous failure is not.
local function init_once(conn, opts, open_id, valid, file, deadline_ms)
    emit(opts, { stage = "init" })
    local init, err = conn:_with_token(open_id, opts.as, function(token)
        local ok, berr = true, nil
        if valid.mode == "inbox" then ok, berr = conn:_budget("inbox", open_id, nil) end
        if ok then ok, berr = conn:_budget("init", open_id, deadline_ms) end
        if not ok then return nil, berr end
        -- The last moment before the post may exist at TikTok: journal it.
        if opts.on_init then opts.on_init() end
        return api.init(conn:_api(), token, valid, file)
    end)
    if init then return init end
    if err.sent and (err.code == "network" or err.code == "timeout") then
        err = errors.new("ambiguous", "the connection failed after the post was sent to TikTok; it may "
                         .. "have been created: check the creator's profile before posting again")
    end
    return nil, err
end

local function post(opts)
    util.check_opts("tiktok.post", opts, POST_SPEC, 2)
    check_connection("tiktok.post", opts.connection)
    local conn = opts.connection
    if opts.as then util.check_opts("tiktok.post: as", opts.as, { user = "string", workspace = "string" }, 2) end
    local deadline = core.monotonic_ms() + (opts.wait_timeout_ms or conn:_option("wait_timeout_ms"))

    local valid, open_id, file, ctx = prepare(conn, opts)
    if not valid then return nil, open_id end
    local err
    if valid.relay == "always" or ctx.unverified then
        file, err = relay_file(conn, opts, valid, open_id, ctx)
        if not file then return nil, err end
    end
    local init
    init, err = init_once(conn, opts, open_id, valid, file, deadline)
    if not init and valid.relay == "auto" and not file and err.code == "url_ownership_unverified" then
        -- TikTok refused to pull the URL and created nothing: relay it.
        file, err = relay_file(conn, opts, valid, open_id, ctx)
        if not file then return nil, err end
        init, err = init_once(conn, opts, open_id, valid, file, deadline)
    end
    if not init then
        if file and file.relay then relay.close(file.relay) end
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
            if file.relay then relay.close(file.relay) end
            if not job then
                return nil, with_publish(errors.new("store", "detach needs a store that journals uploads "
                                         .. "(put_upload/get_upload/delete_upload)"), publish_id)
            end
            return result(valid, publish_id, nil, open_id)
        end
        local ok, uerr = upload(conn, opts, publish_id, init.upload_url, file)
        if file.relay then relay.close(file.relay) end
        if not ok then return nil, uerr end
        journal_done(conn, publish_id)
    end

    if opts.wait == false or opts.detach then return result(valid, publish_id, nil, open_id) end
    local st
    st, err = wait_done(conn, open_id, opts, publish_id, deadline)
    if not st then return nil, err end
    return result(valid, publish_id, st, open_id)
end

-- ---------------------------------------------------- tiktok.resume, status

local RESUME_SPEC = { connection = "table", publish_id = "string", account = "string", as = "table", wait = "boolean",
                      wait_timeout_ms = "integer", on_progress = "function" }
local STATUS_SPEC = { connection = "table", account = "string", publish_id = "string", as = "table",
                      wait = "boolean", wait_timeout_ms = "integer", on_progress = "function" }

-- The checks tiktok.resume and tiktok.status share. Returns the connection.
local function check_publish_call(fname, opts, spec)
    util.check_opts(fname, opts, spec, 3)
    check_connection(fname, opts.connection)
    if not opts.publish_id or opts.publish_id == "" or #opts.publish_id > 128 then
        return nil, errors.new("invalid_argument", "publish_id is required (the id tiktok.post returned)")
    end
    return opts.connection
end

-- Uploads what the journal says is left. Returns the account's open_id.
local function resume_upload(conn, opts, job)
    local ok, err = check_journal(job)
    if not ok then return nil, with_publish(err, opts.publish_id) end
    local rec
    rec, err = conn:_record(job.open_id, opts.as)
    if not rec then return nil, with_publish(err, opts.publish_id) end
    local file = { path = job.path, url = job.url, size = job.size, chunk_size = job.chunk_size, count = job.count,
                   content_type = job.content_type, next = job.next, open_id = job.open_id }
    if job.url then
        file.relay, err = relay.open(conn:_api(), job.url, {
            allow_private = conn:_option("relay_allow_private"), ca_file = conn:_option("relay_ca_file"),
            spool_dir = conn:_option("relay_spool_dir") })
        if not file.relay then return nil, with_publish(err, opts.publish_id) end
        if file.relay.size ~= job.size then
            relay.close(file.relay)
            return nil, with_publish(errors.new("file", "the video at the URL changed size since the post "
                                     .. "started; it cannot be resumed"), opts.publish_id)
        end
    else
        local st = core.stat(job.path)
        if not st or st.size ~= job.size then
            return nil, with_publish(errors.new("file", "the video file " .. util.show(job.path)
                                     .. " changed or vanished since the post started; it cannot be resumed"),
                                     opts.publish_id)
        end
    end
    file.journal = journal_progress(conn.store, job)
    ok, err = upload(conn, opts, job.publish_id, job.upload_url, file)
    if file.relay then relay.close(file.relay) end
    if not ok then return nil, err end
    journal_done(conn, job.publish_id)
    return job.open_id
end

-- Finishes a post: uploads what the journal says is left (after a crash,
-- a restart or tiktok.post{detach = true}), then waits like tiktok.post.
-- A publish without a journal entry (pulled from a URL, or fully uploaded)
-- is only waited for. Never inits.
local function resume(opts)
    local conn, cerr = check_publish_call("tiktok.resume", opts, RESUME_SPEC)
    if not conn then return nil, cerr end
    local deadline = core.monotonic_ms() + (opts.wait_timeout_ms or conn:_option("wait_timeout_ms"))
    local job, open_id, err
    if type(conn.store.get_upload) == "function" then
        job, err = conn.store:get_upload(opts.publish_id)
        if err then return nil, err end
    end
    if job then
        open_id, err = resume_upload(conn, opts, job)
    else
        open_id, err = conn:pick_account(opts.account, { as = opts.as })
        if err then err = with_publish(err, opts.publish_id) end
    end
    if not open_id then return nil, err end
    local st
    if opts.wait == false then
        st, err = fetch_status(conn, open_id, opts.as, opts.publish_id)
        if not st then return nil, with_publish(err, opts.publish_id) end
    else
        st, err = wait_done(conn, open_id, opts, opts.publish_id, deadline)
        if not st then return nil, err end
        if job then st.privacy, st.caption, st.mode = job.privacy, job.caption, job.mode end
    end
    st.publish_id, st.open_id = opts.publish_id, open_id
    return st
end

local function status(opts)
    local conn, cerr = check_publish_call("tiktok.status", opts, STATUS_SPEC)
    if not conn then return nil, cerr end
    local open_id, err = conn:pick_account(opts.account, { as = opts.as })
    if not open_id then return nil, err end
    if opts.wait then
        -- Like tiktok.post: a FAILED post is an error carrying its fail_reason.
        local deadline = core.monotonic_ms() + (opts.wait_timeout_ms or conn:_option("wait_timeout_ms"))
        return wait_done(conn, open_id, opts, opts.publish_id, deadline)
    end
    local st
    st, err = fetch_status(conn, open_id, opts.as, opts.publish_id)
    if not st then return nil, with_publish(err, opts.publish_id) end
    return st
end

-- Inside nginx each of these runs in a worker thread (tiktok.openresty):
-- the options are checked here, and a plain copy without the connection
-- crosses into the thread, where _io's functions run.
local function splitter(name, spec)
    return function(opts)
        util.check_opts("tiktok." .. name, opts, spec, 3)
        check_connection("tiktok." .. name, opts.connection)
        local copy = {}
        for k, v in pairs(opts) do if k ~= "connection" then copy[k] = v end end
        return opts.connection, copy
    end
end

_M._io = { post = post, status = status, resume = resume }
_M.post = openresty.method("post", "post", post, splitter("post", POST_SPEC))
_M.status = openresty.method("post", "status", status, splitter("status", STATUS_SPEC))
_M.resume = openresty.method("post", "resume", resume, splitter("resume", RESUME_SPEC))

return _M
