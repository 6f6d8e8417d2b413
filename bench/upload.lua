-- bench/upload.lua SCHEME FILE MODE [STORE]
--   MODE "post": a real tiktok.post of FILE (creator_info, validation, plan,
--     init, then the chunk PUTs on one session, with an on_progress callback
--     as an app would pass) against the sandbox; wait = false, so no polling.
--     The upload is timed from on_publish (right after the init answered) to
--     the 201 of the last chunk (seen through the connection's log function),
--     so it includes the library's per-chunk work (journal writes, Lua) and
--     the connection to the upload host. STORE "file" (default): the file
--     store (it fsyncs the journal after every chunk); "memory": the account
--     copied into tiktok.store.memory().
--   MODE "init": the same post with detach = true (creator_info, validation,
--     plan, init, journal): prints the upload URL and the chunk plan for the
--     curl comparison, and drops the journal entry.
local lib = require "bench.lib"
local tiktok = require "tiktok"
local core = tiktok.core

local scheme, file, mode, store = arg[1], arg[2], arg[3] or "post", arg[4] or "file"
local t0, t1, progress = nil, nil, 0
local extra = {
    log = function(_, msg)
        if msg == "tiktok: chunk PUT -> HTTP 201" then t1 = lib.now_ms() end
    end,
}
if store == "memory" then
    local mem = tiktok.store.memory()
    for _, rec in ipairs(assert(tiktok.store.file({ path = os.getenv("BENCH_STORE") }):list())) do mem:put(rec) end
    extra.store = mem
end
local conn = lib.connect(scheme, extra)
local open_id = lib.open_id(conn)

-- Time spent writing the upload journal (the store's put_upload), to tell
-- it apart from the transfers.
local journal_ms, journal_writes = 0, 0
do
    local s = conn.store
    local put_upload = s.put_upload
    s.put_upload = function(self, job)
        local t = lib.now_ms()
        local ok, err = put_upload(self, job)
        journal_ms, journal_writes = journal_ms + (lib.now_ms() - t), journal_writes + 1
        return ok, err
    end
end

local st = assert(core.stat(file))
local chunk, count = core.plan(st.size)

if mode == "init" then
    local res, err = tiktok.post({ connection = conn, account = open_id, video_file = file,
                                   privacy = "SELF_ONLY", detach = true })
    if not res then lib.fail(err) end
    local job = assert(conn.store:get_upload(res.publish_id))
    conn.store:delete_upload(res.publish_id)
    local ranges = {}
    for i = 0, count - 1 do
        local off, len = core.chunk_range(st.size, chunk, count, i)
        ranges[#ranges + 1] = { off, len }
    end
    lib.emit({ item = "init", publish_id = res.publish_id, upload_url = job.upload_url, size = st.size,
               chunk_size = chunk, count = count, ranges = ranges })
    os.exit(0)
end

local res, err = tiktok.post({
    connection = conn, account = open_id, video_file = file, privacy = "SELF_ONLY", wait = false,
    on_publish = function() t0 = lib.now_ms() end,
    on_progress = function(ev) if ev.stage == "upload" then progress = progress + 1 end end,
})
if not res then lib.fail(err) end
if not (t0 and t1) then
    lib.fail("the upload window was not seen (t0=" .. tostring(t0) .. ", t1=" .. tostring(t1) .. ")")
end
local stats = conn:stats()
lib.emit({ item = "upload", client = "library", scheme = scheme, size = st.size, chunks = count,
           chunk_size = chunk, seconds = (t1 - t0) / 1000, connects = stats.connects,
           requests = stats.requests, progress_events = progress, publish_id = res.publish_id,
           journal_seconds = journal_ms / 1000, journal_writes = journal_writes })
