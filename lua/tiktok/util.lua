-- tiktok.util: option checking, URL checks and JSON, shared by every module.
local cjson = require "cjson.safe"
local core = require "tiktok.core"

local type, pairs, error, tostring, tonumber = type, pairs, error, tostring, tonumber
local concat, sort = table.concat, table.sort
local find, sub, lower, match = string.find, string.sub, string.lower, string.match
local gsub, format, byte, char = string.gsub, string.format, string.byte, string.char

local _M = {}

-- Raises on unknown keys and on values of the wrong type: typos and
-- programmer errors must not pass silently. `spec` maps key -> type name
-- ("string", "boolean", "number", "table", "function", "integer", "any").
function _M.check_opts(fname, opts, spec, level)
    level = (level or 2) + 1
    if type(opts) ~= "table" then
        error(fname .. ": expected an options table, got " .. type(opts), level)
    end
    for k, v in pairs(opts) do
        local want = spec[k]
        if want == nil then
            local names = {}
            for name in pairs(spec) do names[#names + 1] = name end
            sort(names)
            error(fname .. ": unknown option '" .. tostring(k) .. "' (known: "
                  .. concat(names, ", ") .. ")", level)
        end
        if want ~= "any" then
            local t = type(v)
            local ok = t == want
            if want == "integer" then
                ok = t == "number" and v == v and v >= 0 and v < 2^53 and v % 1 == 0
            end
            if not ok then
                error(fname .. ": option '" .. k .. "' must be "
                      .. (want == "integer" and "a non-negative integer" or ("a " .. want))
                      .. ", got " .. t, level)
            end
        end
    end
    return opts
end

-- A value for an error message: at most n bytes (default 200), marked when cut.
function _M.show(s, n)
    n = n or 200
    s = tostring(s)
    if #s <= n then return s end
    return s:sub(1, n) .. "...(" .. #s .. " bytes)"
end

function _M.copy(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return c
end

-- Splits an absolute http(s) URL. Returns nil for anything else.
function _M.parse_url(url)
    if type(url) ~= "string" or find(url, "[%z\1-\32\127]") then return nil end
    local scheme, rest = match(url, "^(%a[%w+.-]*)://(.*)$")
    if not scheme then return nil end
    scheme = lower(scheme)
    local authority, path = match(rest, "^([^/?#]*)(.*)$")
    local userinfo, hostport = match(authority, "^(.*)@(.*)$")
    if not userinfo then hostport = authority end
    local host, port = match(hostport, "^(%[[%x:.]+%])(.*)$")
    if not host then host, port = match(hostport, "^([^:]*)(.*)$") end
    if port ~= "" then
        port = match(port, "^:(%d+)$")
        if not port then return nil end
        port = tonumber(port)
        if port < 1 or port > 65535 then return nil end
    else
        port = nil
    end
    if host == "" then return nil end
    local p, query, fragment = path, nil, nil
    local hash = find(p, "#", 1, true)
    if hash then fragment = sub(p, hash + 1); p = sub(p, 1, hash - 1) end
    local q = find(p, "?", 1, true)
    if q then query = sub(p, q + 1); p = sub(p, 1, q - 1) end
    return { scheme = scheme, host = lower(host), port = port, path = p,
             query = query, fragment = fragment, userinfo = userinfo }
end

local LOOPBACK = { ["127.0.0.1"] = true, ["localhost"] = true, ["[::1]"] = true }

function _M.is_loopback(host)
    return LOOPBACK[host] == true or (match(host, "^127%.%d+%.%d+%.%d+$") ~= nil)
end

-- https, or http on loopback only. Returns the parsed URL or nil, sentence.
function _M.check_base_url(what, url)
    local u = _M.parse_url(url)
    if not u or (u.scheme ~= "https" and u.scheme ~= "http") then
        return nil, what .. " must be an absolute http(s) URL"
    end
    if u.scheme == "http" and not _M.is_loopback(u.host) then
        return nil, what .. " must use https (plain http is allowed only for loopback hosts)"
    end
    if u.userinfo or u.fragment then
        return nil, what .. " must not contain credentials or a fragment"
    end
    return u
end

-- TikTok's redirect URI rules (Login Kit for Web/Desktop).
function _M.check_redirect_uri(uri)
    if #uri >= 512 then return nil, "redirect_uri must be shorter than 512 characters" end
    local u, err = _M.check_base_url("redirect_uri", uri)
    if not u then return nil, err end
    if u.query then return nil, "redirect_uri must be static: TikTok refuses query parameters" end
    if u.path == "" then return nil, "redirect_uri must have a path, e.g. https://app.example/tiktok/callback" end
    return u
end

-- Decodes a JSON response. Integers longer than 15 digits become strings
-- first, so 19-digit ids survive on Lua 5.4 and LuaJIT alike.
function _M.json_decode(text)
    if type(text) ~= "string" or text == "" then return nil end
    local quoted = core.json_quote_bigints(text)
    if not quoted then return nil end
    local v = cjson.decode(quoted)
    if type(v) ~= "table" then return nil end
    return v
end

function _M.json_encode(v)
    return (cjson.encode(v))
end

-- Percent-encoding (RFC 3986): every byte but the unreserved A-Z a-z 0-9
-- - . _ ~ becomes %XX; with `plus`, a space becomes '+' instead. Explicit
-- ranges rather than %w, which follows the C locale.
local function pct_byte(c)
    return format("%%%02X", byte(c))
end

function _M.pct_encode(s, plus)
    if plus then
        return (gsub(gsub(s, "[^A-Za-z0-9%-%._~ ]", pct_byte), " ", "+"))
    end
    return (gsub(s, "[^A-Za-z0-9%-%._~]", pct_byte))
end

-- Decodes %XX escapes (and '+' as a space with `plus`); nil when a '%' is
-- not followed by two hex digits.
local function hex_byte(h)
    return char(tonumber(h, 16))
end

function _M.pct_decode(s, plus)
    if find(s, "%", 1, true) and find(gsub(s, "%%[0-9A-Fa-f][0-9A-Fa-f]", ""), "%", 1, true) then
        return nil
    end
    if plus then s = gsub(s, "%+", " ") end
    return (gsub(s, "%%([0-9A-Fa-f][0-9A-Fa-f])", hex_byte))
end

-- application/x-www-form-urlencoded from an array of {name, value} pairs
-- (an array keeps the order stable, which makes requests reproducible).
function _M.form(pairs_)
    local out = {}
    for i = 1, #pairs_ do
        local kv = pairs_[i]
        if kv[2] ~= nil then
            out[#out + 1] = _M.pct_encode(kv[1]) .. "=" .. _M.pct_encode(tostring(kv[2]))
        end
    end
    return concat(out, "&")
end

-- Parses a query string into a table (last value wins; a pair with a
-- malformed escape is left out).
function _M.parse_query(q)
    local t = {}
    if not q then return t end
    for pair in q:gmatch("[^&]+") do
        local k, v = match(pair, "^([^=]*)=?(.*)$")
        k = _M.pct_decode(k, true)
        v = _M.pct_decode(v, true)
        if k and v then t[k] = v end
    end
    return t
end

function _M.now()
    return core.now_ms() / 1000
end

return _M
