-- Streaming analysis of received media bytes: SHA-256, container magic, and an
-- MP4/MOV box walker that reads mvhd (duration), and per track tkhd (size),
-- mdhd (timescale/duration), hdlr (track kind) and stsz (sample count) without
-- ever holding more than ~100 bytes of the file (wherever the moov box sits).
-- Images: format magic and dimensions from the first 256 KiB.
local util = require "sandbox.util"

local byte, sub, min = string.byte, string.sub, math.min

local M = {}
local A = {}
A.__index = A

local HUGE = 2 ^ 62
local CONTAINERS = { moov = "", trak = "moov", mdia = "trak", minf = "mdia", stbl = "minf" }
-- leaf box -> { parent box, bytes of payload to read }
local LEAVES = {
  mvhd = { "moov", 32 }, tkhd = { "trak", 96 }, mdhd = { "mdia", 32 }, hdlr = { "mdia", 12 }, stsz = { "stbl", 12 },
}
local ISO_FIRST = { ftyp = true, moov = true, mdat = true, free = true, skip = true, wide = true, pnot = true }

local function u16(s, i) local a, b = byte(s, i, i + 1); return a * 256 + b end
local function u32(s, i) local a, b, c, d = byte(s, i, i + 3); return ((a * 256 + b) * 256 + c) * 256 + d end
local function u64(s, i) return u32(s, i) * 4294967296 + u32(s, i + 4) end
local function le16(s, i) local a, b = byte(s, i, i + 1); return a + b * 256 end
local function le24(s, i) local a, b, c = byte(s, i, i + 2); return a + b * 256 + c * 65536 end

-- kind: "video" or "image"; hash: compute SHA-256.
function M.new(kind, hash)
  local self = setmetatable({
    kind = kind, bytes = 0, head = "", head_max = kind == "image" and 262144 or 64,
    sha = hash and util.sha256_new() or nil,
    -- box walker
    w_at = 0, w_len = 8, w_kind = "hdr", w_buf = "", w_box = nil, w_done = kind ~= "video",
    stack = {}, tracks = {}, mvhd = nil, malformed = nil, moov_done = false,
  }, A)
  return self
end

function A:snapshot()
  return {
    bytes = self.bytes, head = self.head, sha = self.sha and self.sha:copy() or nil,
    w_at = self.w_at, w_len = self.w_len, w_kind = self.w_kind, w_buf = self.w_buf, w_box = util.copy(self.w_box),
    w_done = self.w_done, stack = util.copy(self.stack), tracks = util.copy(self.tracks),
    mvhd = util.copy(self.mvhd), malformed = self.malformed, moov_done = self.moov_done,
    moov_seen = self.moov_seen, top_end = self.top_end,
  }
end

local SNAP_KEYS = { "bytes", "head", "w_at", "w_len", "w_kind", "w_buf", "w_box", "w_done", "stack", "tracks",
                    "mvhd", "malformed", "moov_done", "moov_seen", "top_end" }

-- Every key is put back, also those that were nil in the snapshot (pairs()
-- would skip them and leave state from the discarded bytes behind).
function A:restore(s)
  local sha = self.sha
  for _, k in ipairs(SNAP_KEYS) do self[k] = s[k] end
  if sha and s.sha then sha:restore(s.sha); self.sha = sha end
end

local function want_header(self, pos)
  local st = self.stack
  while #st > 0 and pos >= st[#st].e do
    local top = table.remove(st)
    if top.t == "moov" then self.moov_done = true end
  end
  self.w_at, self.w_len, self.w_kind, self.w_box = pos, 8, "hdr", nil
end

local function stop(self, why)
  self.malformed = self.malformed or why
  self.w_done = true
end

local function on_box(self, t, start, hdrlen, size)
  local st = self.stack
  local parent = st[#st]
  local box_end = size == 0 and (parent and parent.e or HUGE) or start + size
  if size ~= 0 and size < hdrlen then return stop(self, "box size too small") end
  if parent and box_end > parent.e then return stop(self, "box overruns its parent") end
  if start == 0 and not ISO_FIRST[t] then return stop(self, "not an ISO base media file") end
  local ptype = parent and parent.t or ""
  if not parent and size ~= 0 and box_end > (self.top_end or 0) then self.top_end = box_end end
  if CONTAINERS[t] and CONTAINERS[t] == ptype and not (t == "moov" and self.moov_seen) then
    if t == "moov" then self.moov_seen = true end
    st[#st + 1] = { t = t, e = box_end }
    if t == "trak" then self.tracks[#self.tracks + 1] = {} end
    return want_header(self, start + hdrlen)
  end
  local leaf = LEAVES[t]
  if leaf and leaf[1] == ptype then
    self.w_at, self.w_len, self.w_kind = start + hdrlen, min(leaf[2], box_end - start - hdrlen), t
    self.w_box = { e = box_end }
    if self.w_len <= 0 then return want_header(self, box_end) end
    return
  end
  return want_header(self, box_end)
end

local function on_leaf(self, t, d)
  local track = self.tracks[#self.tracks]
  local v = byte(d, 1)
  if t == "mvhd" then
    if v == 1 and #d >= 32 then self.mvhd = { timescale = u32(d, 21), duration = u64(d, 25) }
    elseif #d >= 20 then self.mvhd = { timescale = u32(d, 13), duration = u32(d, 17) } end
  elseif track and t == "tkhd" then
    if v == 1 and #d >= 96 then track.width, track.height = u32(d, 89) / 65536, u32(d, 93) / 65536
    elseif v ~= 1 and #d >= 84 then track.width, track.height = u32(d, 77) / 65536, u32(d, 81) / 65536 end
  elseif track and t == "mdhd" then
    if v == 1 and #d >= 32 then track.timescale, track.duration = u32(d, 21), u64(d, 25)
    elseif #d >= 20 then track.timescale, track.duration = u32(d, 13), u32(d, 17) end
  elseif track and t == "hdlr" then
    if #d >= 12 then track.handler = sub(d, 9, 12) end
  elseif track and t == "stsz" then
    if #d >= 12 then track.samples = u32(d, 9) end
  end
end

local function handle(self, d)
  local kind, start = self.w_kind, self.w_at
  if kind == "hdr" then
    local size, t = u32(d, 1), sub(d, 5, 8)
    if size == 1 then
      self.w_at, self.w_len, self.w_kind, self.w_box = start + 8, 8, "hdr64", { t = t, start = start }
      return
    end
    return on_box(self, t, start, 8, size)
  elseif kind == "hdr64" then
    return on_box(self, self.w_box.t, self.w_box.start, 16, u64(d, 1))
  end
  on_leaf(self, kind, d)
  return want_header(self, self.w_box.e)
end

local function walk(self, piece, off)
  local pend = off + #piece
  while not self.w_done and self.w_at < pend do
    local need_from = self.w_at + #self.w_buf
    if need_from < off then return stop(self, "internal: walker fell behind") end
    local take = min(self.w_len - #self.w_buf, pend - need_from)
    local from = need_from - off + 1
    self.w_buf = self.w_buf .. sub(piece, from, from + take - 1)
    if #self.w_buf < self.w_len then return end
    local d = self.w_buf
    self.w_buf = ""
    handle(self, d)
  end
end

function A:feed(piece)
  local n = #piece
  if self.sha then self.sha:update(piece, n) end
  if #self.head < self.head_max then self.head = self.head .. sub(piece, 1, self.head_max - #self.head) end
  if not self.w_done then walk(self, piece, self.bytes) end
  self.bytes = self.bytes + n
end

local function jpeg_size(h)
  local i = 3
  while i + 8 <= #h do
    if byte(h, i) ~= 0xFF then return nil end
    local m = byte(h, i + 1)
    if m == 0xFF then
      i = i + 1
    elseif m == 0xD8 or m == 0x01 or (m >= 0xD0 and m <= 0xD7) then
      i = i + 2
    elseif m >= 0xC0 and m <= 0xCF and m ~= 0xC4 and m ~= 0xC8 and m ~= 0xCC then
      return u16(h, i + 7), u16(h, i + 5)
    else
      i = i + 2 + u16(h, i + 2)
    end
  end
  return nil
end

local function webp_size(h)
  if #h < 30 then return nil end
  local c = sub(h, 13, 16)
  if c == "VP8 " then return le16(h, 27) % 16384, le16(h, 29) % 16384 end
  if c == "VP8L" and byte(h, 21) == 0x2f then
    local b1, b2, b3, b4 = byte(h, 22, 25)
    local w = b1 + (b2 % 64) * 256 + 1
    local hh = math.floor(b2 / 64) + b3 * 4 + (b4 % 16) * 1024 + 1
    return w, hh
  end
  if c == "VP8X" then return le24(h, 25) + 1, le24(h, 28) + 1 end
  return nil
end

-- Facts about what was received.
function A:result()
  local r = { bytes = self.bytes, sha256 = nil }
  if self.sha then r.sha256 = self.sha:hex(); self.sha = nil end
  local h = self.head
  if self.kind == "image" then
    if sub(h, 1, 3) == "\255\216\255" then
      r.container = "jpeg"; r.width, r.height = jpeg_size(h)
    elseif sub(h, 1, 4) == "RIFF" and sub(h, 9, 12) == "WEBP" then
      r.container = "webp"; r.width, r.height = webp_size(h)
    end
    return r
  end
  if #h >= 8 and ISO_FIRST[sub(h, 5, 8)] then
    r.container = (sub(h, 5, 8) == "ftyp" and sub(h, 9, 12) == "qt  ") and "mov" or "mp4"
    r.malformed = self.malformed
    if not r.malformed then
      if not self.moov_done then r.malformed = "no complete moov box"
      elseif (self.top_end or 0) > self.bytes then r.malformed = "truncated: a box ends after the last byte" end
    end
    if self.mvhd and self.mvhd.timescale > 0 then
      r.duration_sec = self.mvhd.duration / self.mvhd.timescale
    end
    local video
    for _, t in ipairs(self.tracks) do
      if t.handler == "vide" then
        video = t
        r.width, r.height = t.width, t.height
        if t.samples and t.timescale and t.timescale > 0 and t.duration and t.duration > 0 then
          r.fps = t.samples / (t.duration / t.timescale)
        end
        break
      end
    end
    if not video then r.malformed = r.malformed or "no video track" end
  elseif sub(h, 1, 4) == "\26\69\223\163" then
    r.container = "webm"
  end
  return r
end

return M
