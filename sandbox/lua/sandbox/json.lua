-- JSON for the sandbox. Decoding uses cjson; encoding is our own so that we can
-- emit real empty arrays and raw 64-bit integers (post ids above 2^53), which
-- Debian's lua-cjson 2.1.0 cannot do. Object keys are sorted for stable output.
local cjson = require "cjson.safe"

local type, pairs, ipairs, tostring, concat, sort, floor, fmt =
  type, pairs, ipairs, tostring, table.concat, table.sort, math.floor, string.format

local M = {}

local ARRAY = { __name = "sandbox.json.array" }
local RAW = { __name = "sandbox.json.raw" }

M.null = cjson.null

-- Mark a table as a JSON array (so an empty one encodes as []).
function M.array(t)
  return setmetatable(t or {}, ARRAY)
end

-- A 64-bit integer given as a decimal string, written raw (unquoted) in the output.
function M.int64(digits)
  assert(type(digits) == "string" and digits:match("^%-?%d+$"), "int64 expects a decimal string")
  return setmetatable({ raw = digits }, RAW)
end

function M.decode(s)
  if type(s) ~= "string" then return nil, "no body" end
  return cjson.decode(s)
end

local encode_value

-- cjson escapes "/" as "\/"; valid, but noisy in URLs. In cjson's output a
-- literal backslash is always doubled, so every remaining "\/" is an escaped slash.
local function encode_string(s)
  return (cjson.encode(s):gsub("\\/", "/"))
end

local function is_array(t)
  if getmetatable(t) == ARRAY then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function encode_number(v)
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return fmt("%d", v) end
  return fmt("%.16g", v)
end

encode_value = function(v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = encode_string(v)
  elseif t == "number" then
    out[#out + 1] = encode_number(v)
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif v == nil or v == cjson.null then
    out[#out + 1] = "null"
  elseif t == "table" then
    local mt = getmetatable(v)
    if mt == RAW then
      out[#out + 1] = v.raw
    elseif is_array(v) then
      out[#out + 1] = "["
      for i, x in ipairs(v) do
        if i > 1 then out[#out + 1] = "," end
        encode_value(x, out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ":"
        local val = v[k]
        if val == nil then val = v[tonumber(k)] end
        encode_value(val, out)
      end
      out[#out + 1] = "}"
    end
  else
    out[#out + 1] = "null"
  end
end

function M.encode(v)
  local out = {}
  encode_value(v, out)
  return concat(out)
end

return M
