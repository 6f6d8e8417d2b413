-- Small helpers shared by the sandbox handlers: CSPRNG, SHA-256 / HMAC through
-- LuaJIT FFI into libcrypto (streaming, never a whole body), ids, strings, URLs.
local ffi = require "ffi"

local byte, concat, floor, fmt = string.byte, table.concat, math.floor, string.format

local M = {}

ffi.cdef [[
void *EVP_MD_CTX_new(void);
void EVP_MD_CTX_free(void *ctx);
int EVP_MD_CTX_copy_ex(void *out, const void *in);
const void *EVP_sha256(void);
int EVP_DigestInit_ex(void *ctx, const void *type, void *impl);
int EVP_DigestUpdate(void *ctx, const void *d, size_t cnt);
int EVP_DigestFinal_ex(void *ctx, unsigned char *md, unsigned int *s);
unsigned char *HMAC(const void *evp_md, const void *key, int key_len,
                    const void *d, size_t n, unsigned char *md, unsigned int *md_len);
int RAND_bytes(unsigned char *buf, int num);
int truncate(const char *path, int64_t length);
]]

local crypto = ffi.load("libcrypto.so.3")
local md_buf = ffi.new("unsigned char[64]")
local md_len = ffi.new("unsigned int[1]")

local HEX = {}
for i = 0, 255 do HEX[i] = fmt("%02x", i) end

function M.tohex(s)
  local out = {}
  for i = 1, #s do out[i] = HEX[byte(s, i)] end
  return concat(out)
end

function M.random_bytes(n)
  local buf = ffi.new("unsigned char[?]", n)
  if crypto.RAND_bytes(buf, n) ~= 1 then error("RAND_bytes failed") end
  return ffi.string(buf, n)
end

local B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

-- Unbiased random string over an alphabet (rejection sampling on CSPRNG bytes).
function M.random_string(n, alphabet)
  alphabet = alphabet or B62
  local k = #alphabet
  local limit = 256 - (256 % k)
  local out, have = {}, 0
  while have < n do
    local bytes = M.random_bytes(n * 2)
    for i = 1, #bytes do
      local b = byte(bytes, i)
      if b < limit then
        have = have + 1
        local j = b % k + 1
        out[have] = alphabet:sub(j, j)
        if have == n then break end
      end
    end
  end
  return concat(out)
end

function M.random_digits(n)
  return M.random_string(n, "0123456789")
end

function M.uuid()
  local h = M.tohex(M.random_bytes(16))
  return h:sub(1, 8) .. "-" .. h:sub(9, 12) .. "-" .. h:sub(13, 16) .. "-" .. h:sub(17, 20) .. "-" .. h:sub(21, 32)
end

-- TikTok-shaped log id: UTC timestamp + 20 upper-case hex digits.
function M.log_id()
  return os.date("!%Y%m%d%H%M%S") .. M.tohex(M.random_bytes(10)):upper()
end

-- Streaming SHA-256 -------------------------------------------------------------

local Sha = {}
Sha.__index = Sha

function M.sha256_new()
  local ctx = crypto.EVP_MD_CTX_new()
  if ctx == nil then error("EVP_MD_CTX_new failed") end
  ffi.gc(ctx, crypto.EVP_MD_CTX_free)
  if crypto.EVP_DigestInit_ex(ctx, crypto.EVP_sha256(), nil) ~= 1 then error("EVP_DigestInit_ex failed") end
  return setmetatable({ ctx = ctx }, Sha)
end

function Sha:update(s, n)
  crypto.EVP_DigestUpdate(self.ctx, s, n or #s)
end

-- A snapshot of the running state, so a failed chunk can be rolled back.
function Sha:copy()
  local ctx = crypto.EVP_MD_CTX_new()
  ffi.gc(ctx, crypto.EVP_MD_CTX_free)
  crypto.EVP_MD_CTX_copy_ex(ctx, self.ctx)
  return setmetatable({ ctx = ctx }, Sha)
end

function Sha:restore(from)
  crypto.EVP_MD_CTX_copy_ex(self.ctx, from.ctx)
end

function Sha:hex()
  crypto.EVP_DigestFinal_ex(self.ctx, md_buf, md_len)
  return M.tohex(ffi.string(md_buf, md_len[0]))
end

function M.sha256_hex(s)
  local h = M.sha256_new()
  h:update(s)
  return h:hex()
end

function M.hmac_sha256_hex(key, msg)
  local r = crypto.HMAC(crypto.EVP_sha256(), key, #key, msg, #msg, md_buf, md_len)
  if r == nil then error("HMAC failed") end
  return M.tohex(ffi.string(md_buf, md_len[0]))
end

-- Strings ---------------------------------------------------------------------

-- Length in UTF-16 code units of a UTF-8 string; nil when it is not valid UTF-8.
function M.utf16_len(s)
  local i, n, len = 1, #s, 0
  while i <= n do
    local c = byte(s, i)
    local extra, cp
    if c < 0x80 then extra, cp = 0, c
    elseif c >= 0xC2 and c <= 0xDF then extra, cp = 1, c - 0xC0
    elseif c >= 0xE0 and c <= 0xEF then extra, cp = 2, c - 0xE0
    elseif c >= 0xF0 and c <= 0xF4 then extra, cp = 3, c - 0xF0
    else return nil end
    if i + extra > n then return nil end
    for k = 1, extra do
      local cc = byte(s, i + k)
      if cc < 0x80 or cc > 0xBF then return nil end
      cp = cp * 64 + (cc - 0x80)
    end
    if (extra == 2 and (cp < 0x800 or (cp >= 0xD800 and cp <= 0xDFFF))) or
       (extra == 3 and (cp < 0x10000 or cp > 0x10FFFF)) then
      return nil
    end
    len = len + (cp >= 0x10000 and 2 or 1)
    i = i + extra + 1
  end
  return len
end

-- Percent-encode a query component: everything but A-Z a-z 0-9 - . _ ~
function M.escape_component(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", byte(c)) end))
end

function M.html_escape(s)
  s = tostring(s or "")
  return (s:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }))
end

function M.split_commas(s)
  local out = {}
  for item in (s .. ","):gmatch("([^,]*),") do out[#out + 1] = item end
  return out
end

-- Token hint for logs: never the whole secret.
function M.hint(s)
  if type(s) ~= "string" or s == "" then return nil end
  return s:sub(1, 8) .. "..."
end

function M.is_int(v)
  return type(v) == "number" and v == v and v == floor(v) and v > -2 ^ 63 and v < 2 ^ 63
end

-- Media type checks: "application/json; charset=UTF-8" -> "application/json"
function M.media_type(ct)
  if type(ct) == "table" then ct = ct[1] end
  if not ct then return nil end
  return (ct:match("^%s*([^;%s]+)") or ""):lower()
end

-- URL parsing (absolute http/https URLs only) -----------------------------------

function M.parse_url(url)
  if type(url) ~= "string" then return nil end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil end
  scheme = scheme:lower()
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  if authority == "" or authority:find("@", 1, true) then return nil end
  local host, port = authority:match("^%[(.+)%]:?(%d*)$")
  if not host then
    host, port = authority:match("^([^:]+):?(%d*)$")
  end
  if not host or host == "" then return nil end
  port = tonumber(port ~= "" and port or nil) or (scheme == "https" and 443 or scheme == "http" and 80 or nil)
  if path == "" then path = "/" end
  local query = path:match("%?([^#]*)")
  local fragment = path:match("#(.*)$")
  local p = path:match("^([^?#]*)")
  return {
    scheme = scheme, host = host:lower(), port = port, path = p, query = query, fragment = fragment,
    request_target = (path:match("^([^#]*)")),
  }
end

function M.is_ip(host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil or host:find(":", 1, true) ~= nil
end

-- Set a file's length (a longer file gets a hole, no disk blocks).
function M.truncate(path, size)
  return ffi.C.truncate(path, size) == 0
end

function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = M.copy(v) end
  return setmetatable(c, getmetatable(t))
end

function M.contains(list, v)
  for _, x in ipairs(list or {}) do if x == v then return true end end
  return false
end

return M
