-- bench/status.lua SCHEME N PUBLISH_ID STORE
-- tiktok.status{} for one publish_id: one warm-up fetch (opens the
-- connection), then N fetches on that connection, timed in-process.
-- STORE "file": the default file store (read on every call, as processes
-- sharing it must); "memory": the account copied into tiktok.store.memory().
local lib = require "bench.lib"
local tiktok = require "tiktok"

local scheme, n, publish_id, store_kind = arg[1], tonumber(arg[2]), arg[3], arg[4] or "file"
local extra = { status_rate_per_min = 100000000 }
if store_kind == "memory" then
    local file = tiktok.store.file({ path = os.getenv("BENCH_STORE") })
    local mem = tiktok.store.memory()
    for _, rec in ipairs(assert(file:list())) do mem:put(rec) end
    extra.store = mem
end
local conn = lib.connect(scheme, extra)
local open_id = lib.open_id(conn)
local opts = { connection = conn, account = open_id, publish_id = publish_id }

local st, err = tiktok.status(opts)              -- warm-up: connects
if not st then lib.fail(err) end
local t0, c0 = lib.now_ms(), os.clock()
for _ = 1, n do
    st, err = tiktok.status(opts)
    if not st then lib.fail(err) end
end
local t1, c1 = lib.now_ms(), os.clock()
local stats = conn:stats()
lib.emit({ item = "status", scheme = scheme, n = n, store = store_kind, seconds = (t1 - t0) / 1000, cpu = c1 - c0,
           connects = stats.connects, requests = stats.requests, last_status = st.status })
