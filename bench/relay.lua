-- bench/relay.lua URL UPLOAD_URL SIZE CHUNK_SIZE COUNT  (bench item 8, issue 16)
-- One relay of a video URL into a FILE_UPLOAD through the library's API
-- (tiktok.relay.open, then tiktok.relay.upload with the one planner's plan
-- the driver used for its init): each chunk's byte range is downloaded from
-- the sandbox's media host and uploaded to its upload host at the same time.
-- allow_private (loopback) and, for an http:// URL, allow_http: loopback
-- only, never for URLs that come from users. The CA is the sandbox's (its
-- env file, BENCH_ENV). The driver runs this under /usr/bin/time (peak RSS
-- of this whole process). Prints one JSON line.
local lib = require "bench.lib"
local relay = require "tiktok.relay"

local url, upload_url = arg[1], arg[2]
local size, chunk_size, count = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
local ca = lib.env.TIKTOK_CA_FILE
local t0 = lib.now_ms()
local src, err = relay.open(nil, url, { allow_private = true, allow_http = url:sub(1, 5) == "http:",
                                         ca_file = ca ~= "" and ca or nil })
if not src then lib.fail(err) end
local t1 = lib.now_ms()
if src.size ~= size then lib.fail("the media host says " .. src.size .. " bytes, the init " .. size) end
local done
done, err = relay.upload(nil, src, upload_url, { size = size, chunk_size = chunk_size, count = count })
local t2 = lib.now_ms()
if not done then lib.fail(err) end
local stats = src.engine:stats()
relay.close(src)
lib.emit({ item = "relay", size = size, chunks = count, open_seconds = (t1 - t0) / 1000,
           seconds = (t2 - t0) / 1000, upload_seconds = (t2 - t1) / 1000, ranges = src.ranges,
           spooled = stats.spooled, stats = stats })
