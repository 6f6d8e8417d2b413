-- Real, playable test videos made with ffmpeg, grown to exact sizes with a
-- trailing MP4 'free' box (sparse on disk), so every size test still sends
-- a valid MP4 whose header the sandbox and the probe can read.
local _M = {}

local function sh(cmd)
    local ok = os.execute(cmd)
    return ok == true or ok == 0
end

local function be32(n)
    return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                       math.floor(n / 256) % 256, n % 256)
end

local function size_of(path)
    local f = assert(io.open(path, "rb"))
    local n = f:seek("end")
    f:close()
    return n
end

-- media.mp4(dir, { seconds = 2, size = nil, container = "mp4"|"mov" }) -> path
function _M.mp4(dir, opts)
    opts = opts or {}
    local seconds = opts.seconds or 2
    local container = opts.container or "mp4"
    local base = ("%s/clip-%ss.%s"):format(dir, seconds, container)
    if not io.open(base, "rb") then
        assert(sh(("ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=360x640:rate=30 -t %s "
                   .. "-pix_fmt yuv420p -c:v libx264 -preset ultrafast -movflags +faststart -f %s '%s'")
                  :format(seconds, container, base)), "ffmpeg failed (apt-get install ffmpeg)")
    end
    if not opts.size then return base end
    local path = ("%s/clip-%ss-%d.%s"):format(dir, seconds, opts.size, container)
    local have = size_of(base)
    assert(opts.size >= have + 8, "requested size is smaller than the clip")
    assert(sh(("cp '%s' '%s'"):format(base, path)))
    local pad = opts.size - have
    local f = assert(io.open(path, "r+b"))
    f:seek("end")
    if pad < 4294967296 then
        f:write(be32(pad), "free")
    else
        f:write(be32(1), "free", be32(math.floor(pad / 4294967296)), be32(pad % 4294967296))
    end
    f:close()
    assert(sh(("truncate -s %d '%s'"):format(opts.size, path)))
    return path
end

-- A file of `size` bytes that is not a video.
function _M.junk(dir, size)
    local path = ("%s/junk-%d.bin"):format(dir, size)
    local f = assert(io.open(path, "wb"))
    f:write(("not a video "):rep(math.ceil(size / 12)):sub(1, size))
    f:close()
    return path
end

function _M.sha256(path)
    local p = io.popen("sha256sum '" .. path .. "'")
    local out = p:read("*a")
    p:close()
    return out:match("^(%x+)")
end

function _M.tmpdir()
    local p = io.popen("mktemp -d /tmp/tiktok-spec.XXXXXX")
    local d = p:read("*l")
    p:close()
    return d
end

return _M
