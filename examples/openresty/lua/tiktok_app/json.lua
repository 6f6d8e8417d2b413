-- tiktok_app.json: JSON out of Lua tables with real arrays.
--
-- Debian's lua-cjson (2.1.0, not OpenResty's fork) has no empty_array and
-- encodes {} as an object, so an empty list of accounts or post ids would
-- reach the browser as `{}`. Lists this app sends are marked with
-- json.array(t), and everything else goes through cjson as usual.
local cjson = require "cjson.safe"

local type, pairs, ipairs, setmetatable, getmetatable, tostring, tonumber = type, pairs, ipairs,
    setmetatable, getmetatable, tostring, tonumber
local concat, sort = table.concat, table.sort

local _M = {}

local ARRAY = {}

-- Marks t (a Lua sequence, possibly empty) as a JSON array; returns t.
function _M.array(t)
    return setmetatable(t or {}, ARRAY)
end

-- A non-empty table whose keys are exactly 1..#t.
local function is_sequence(t)
    local n = #t
    if n == 0 then return false end
    local count = 0
    for _ in pairs(t) do count = count + 1 end
    return count == n
end

local function encode(v, depth)
    if depth > 32 then return nil, "nested too deeply" end
    local tv = type(v)
    if tv ~= "table" then
        if v == nil or v == cjson.null then return "null" end
        return cjson.encode(v)
    end
    local out = {}
    if getmetatable(v) == ARRAY or is_sequence(v) then
        for i, x in ipairs(v) do
            local s, err = encode(x, depth + 1)
            if not s then return nil, err end
            out[i] = s
        end
        return "[" .. concat(out, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    sort(keys)
    for _, k in ipairs(keys) do
        local x = v[k]
        if x == nil then x = v[tonumber(k)] end
        if type(x) ~= "function" then
            local s, err = encode(x, depth + 1)
            if not s then return nil, err end
            out[#out + 1] = cjson.encode(k) .. ":" .. s
        end
    end
    return "{" .. concat(out, ",") .. "}"
end

function _M.encode(v)
    return encode(v, 0)
end

-- Decodes a JSON text; nil, message when it is not JSON.
function _M.decode(text)
    if type(text) ~= "string" or text == "" then return nil, "the body is empty" end
    local v, err = cjson.decode(text)
    if v == nil then return nil, "the body is not JSON (" .. tostring(err) .. ")" end
    return v
end

_M.null = cjson.null

return _M
