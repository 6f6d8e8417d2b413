-- tiktok.json: JSON for what lua-tiktok and its tools print or send to a
-- browser, with real arrays.
--
-- Debian's lua-cjson (2.1.0, not OpenResty's fork) has no empty_array and
-- encodes {} as an object, so an empty list of accounts or post ids would
-- come out as `{}`. Lists are marked with json.array(t) (a non-empty
-- sequence is an array anyway). Keys are sorted (stable output), UTF-8 is
-- kept as it is (invalid bytes become '?', so the output is always valid
-- JSON), '/' is never escaped, integers print without ".0" on every Lua.
-- decode() keeps integers of more than 15 digits exact, as strings.
local util = require "tiktok.util"

local type, pairs, ipairs, setmetatable, getmetatable, tostring, tonumber = type, pairs, ipairs,
    setmetatable, getmetatable, tostring, tonumber
local concat, sort = table.concat, table.sort
local format, gsub, byte = string.format, string.gsub, string.byte
local floor, huge = math.floor, math.huge

local _M = {}

local ARRAY = { __name = "tiktok.json.array" }
local MAX_DEPTH = 32
local NULL = setmetatable({}, { __name = "tiktok.json.null" })
_M.null = NULL

--- json.array(t) -> t marked as a JSON array (t may be empty or nil)
function _M.array(t)
    return setmetatable(t or {}, ARRAY)
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function valid_utf8(s)
    return not s:find("[\128-\255]") or require("tiktok.template").utf16_len(s) ~= nil
end

local function string_text(s)
    if not valid_utf8(s) then s = gsub(s, "[\128-\255]", "?") end
    s = gsub(s, '[%c"\\]', function(c) return ESCAPES[c] or format("\\u%04x", byte(c)) end)
    return '"' .. s .. '"'
end

local function number_text(v)
    if v ~= v or v == huge or v == -huge then return "null" end
    if v == floor(v) and v > -2^53 and v < 2^53 then return format("%d", v) end
    return format("%.14g", v)
end

-- A non-empty table whose keys are exactly 1..#t.
local function is_sequence(t)
    local n = #t
    if n == 0 then return false end
    local count = 0
    for _ in pairs(t) do count = count + 1 end
    return count == n
end

local encode

local function table_text(v, depth)
    local out = {}
    if getmetatable(v) == ARRAY or is_sequence(v) then
        for i = 1, #v do
            local s, err = encode(v[i], depth + 1)
            if not s then return nil, err end
            out[i] = s
        end
        return "[" .. concat(out, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do
        local tk = type(k)
        if tk == "string" or tk == "number" then keys[#keys + 1] = tostring(k) end
    end
    sort(keys)
    for _, k in ipairs(keys) do
        local x = v[k]
        if x == nil then x = v[tonumber(k)] end
        if type(x) ~= "function" then
            local s, err = encode(x, depth + 1)
            if not s then return nil, err end
            out[#out + 1] = string_text(k) .. ":" .. s
        end
    end
    return "{" .. concat(out, ",") .. "}"
end

function encode(v, depth)
    if depth > MAX_DEPTH then return nil, "nested more than " .. MAX_DEPTH .. " levels deep" end
    local tv = type(v)
    if tv == "string" then return string_text(v) end
    if tv == "number" then return number_text(v) end
    if tv == "boolean" then return tostring(v) end
    if v == nil or v == NULL then return "null" end
    if tv == "table" then return table_text(v, depth) end
    if tv == "userdata" then return "null" end   -- cjson.null
    return nil, "cannot encode a " .. tv
end

--- json.encode(v) -> text | nil, message
function _M.encode(v)
    return encode(v, 0)
end

--- json.decode(text) -> table | nil, message (big integers kept as strings)
function _M.decode(text)
    if type(text) ~= "string" or text == "" then return nil, "the body is empty" end
    local v = util.json_decode(text)
    if v == nil then return nil, "the body is not a JSON object or array" end
    return v
end

return _M
