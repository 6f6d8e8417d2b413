-- tiktok.template: caption templates and UTF-16 length.
--
-- Syntax: {{name}}, {{ name }} (spaces and tabs inside the braces), dotted
-- paths {{a.b.c}} into nested tables, digit segments for list items
-- {{tags.1}}. A name segment is [A-Za-z_][A-Za-z0-9_]* or digits only.
-- Values: strings as they are, numbers (integers without ".0" on every Lua),
-- booleans. Everything else, and a missing value, is an error.
--
-- The template is parsed once and the values are inserted as plain text:
-- nothing is ever evaluated, and a value that contains "{{x}}" stays as it
-- is.

local type, tostring, error, ipairs, tonumber = type, tostring, error, ipairs,
    tonumber
local floor, huge = math.floor, math.huge
local concat = table.concat
local find, sub, match, format, byte =
    string.find, string.sub, string.match, string.format, string.byte

local errors = require "tiktok.errors"

local _M = { _VERSION = "0.1.0" }

-- Longest bit of a malformed tag quoted back in an error.
local MAX_QUOTE = 40
-- Bounds checked before any parsing, so hostile input costs little: the
-- longest template (bytes) and the longest text between {{ and }}.
local MAX_TEMPLATE = 65536
local MAX_TAG = 128
_M.MAX_TEMPLATE, _M.MAX_TAG = MAX_TEMPLATE, MAX_TAG


local function quote(s)
    if #s > MAX_QUOTE then
        return sub(s, 1, MAX_QUOTE) .. "..."
    end
    return s
end


-- Checks a tag's inner text; returns the name and its segments, or nil and
-- the reason.
local function parse_name(inner)
    -- Trimmed by hand: a pattern like "^%s*(.-)%s*$" takes time quadratic
    -- in a run of spaces.
    local first, last = 1, #inner
    while first <= last and (byte(inner, first) == 32 or byte(inner, first) == 9) do first = first + 1 end
    while last >= first and (byte(inner, last) == 32 or byte(inner, last) == 9) do last = last - 1 end
    local name = sub(inner, first, last)
    if name == "" then
        return nil, "an empty tag"
    end
    local segs = {}
    local pos = 1
    while true do
        local dot = find(name, ".", pos, true)
        local seg = sub(name, pos, dot and dot - 1 or #name)
        if seg == "" then
            return nil, "an empty part in the name (a leading, trailing or "
                .. "double dot)"
        end
        if not (match(seg, "^[A-Za-z_][A-Za-z0-9_]*$") or match(seg, "^%d+$")) then
            return nil, "the name part '" .. quote(seg) .. "', which is not "
                .. "letters, digits and _ (spaces are allowed only around the "
                .. "name)"
        end
        segs[#segs + 1] = seg
        if not dot then
            break
        end
        pos = dot + 1
    end
    return name, segs
end


-- Parses a template into a list of pieces: strings (literal text) and tag
-- tables { name = "a.b", segs = { "a", "b" } }. Returns nil and an
-- invalid_template error listing every malformed tag.
local function parse(tpl)
    local pieces = {}
    local problems = {}
    if #tpl > MAX_TEMPLATE then
        local p = format("the template is %d bytes long; at most %d are allowed", #tpl, MAX_TEMPLATE)
        return nil, errors.new("invalid_template", p, { problems = { p } })
    end
    local pos = 1
    local len = #tpl
    while pos <= len do
        local s = find(tpl, "{{", pos, true)
        if not s then
            pieces[#pieces + 1] = sub(tpl, pos)
            break
        end
        if s > pos then
            pieces[#pieces + 1] = sub(tpl, pos, s - 1)
        end
        local e = find(tpl, "}}", s + 2, true)
        if not e then
            problems[#problems + 1] = format(
                "unclosed tag '%s' at byte %d: add '}}'",
                quote(sub(tpl, s)), s)
            break
        end
        local inner = sub(tpl, s + 2, e - 1)
        local name, segs
        if #inner > MAX_TAG then
            segs = format("a tag of %d characters (at most %d)", #inner, MAX_TAG)
        else
            name, segs = parse_name(inner)
        end
        if name then
            pieces[#pieces + 1] = { name = name, segs = segs }
        else
            problems[#problems + 1] = format("malformed tag '{{%s}}' at byte %d: %s",
                                             quote(inner), s, segs)
        end
        pos = e + 2
    end
    if #problems > 0 then
        return nil, errors.new("invalid_template",
            "the template has a malformed tag: " .. concat(problems, "; ")
            .. " (a tag is {{name}} or {{a.b}}, names made of letters, digits "
            .. "and _)",
            { problems = problems })
    end
    return pieces
end


-- Integers print without ".0" on Lua 5.4 and LuaJIT alike; other numbers
-- with 14 significant digits, as both interpreters' tostring does.
local function number_text(n)
    if n ~= n or n == huge or n == -huge then
        return nil
    end
    if n == floor(n) and n >= -2^63 and n < 2^63 then
        if n == 0 then
            return "0"
        end
        return format("%d", n)
    end
    return format("%.14g", n)
end


local function lookup(vars, segs)
    local cur = vars
    for _, seg in ipairs(segs) do
        if type(cur) ~= "table" then
            return nil
        end
        local v
        if byte(seg) >= 48 and byte(seg) <= 57 then
            v = cur[tonumber(seg)]
            if v == nil then
                v = cur[seg]
            end
        else
            v = cur[seg]
        end
        cur = v
    end
    return cur
end


--- template.render(tpl, vars) -> string | nil, err
function _M.render(tpl, vars)
    if type(tpl) ~= "string" then
        error("tiktok.template.render: template must be a string, got "
              .. type(tpl), 2)
    end
    if vars ~= nil and type(vars) ~= "table" then
        error("tiktok.template.render: vars must be a table or nil, got "
              .. type(vars), 2)
    end

    local pieces, err = parse(tpl)
    if not pieces then
        return nil, err
    end

    local out = {}
    local missing, seen_missing = {}, {}
    local bad = {}
    for i, piece in ipairs(pieces) do
        if type(piece) == "string" then
            out[i] = piece
        else
            local v = lookup(vars, piece.segs)
            local tv = type(v)
            if v == nil then
                if not seen_missing[piece.name] then
                    seen_missing[piece.name] = true
                    missing[#missing + 1] = piece.name
                end
                out[i] = ""
            elseif tv == "string" then
                out[i] = v
            elseif tv == "number" then
                local s = number_text(v)
                if s then
                    out[i] = s
                else
                    bad[#bad + 1] = "variable '" .. piece.name
                        .. "' is not a finite number; give a string or a number"
                end
            elseif tv == "boolean" then
                out[i] = tostring(v)
            else
                bad[#bad + 1] = "variable '" .. piece.name .. "' is a " .. tv
                    .. "; only strings, numbers and booleans can be inserted"
            end
        end
    end

    if #missing > 0 then
        return nil, errors.new("missing_variable",
            "the template uses variables that were not given: "
            .. concat(missing, ", ") .. "; add them to vars",
            { problems = missing })
    end
    if #bad > 0 then
        return nil, errors.new("invalid_argument",
            "the template variables cannot be inserted: " .. concat(bad, "; "),
            { problems = bad })
    end
    return concat(out)
end


--- template.variables(tpl) -> array of names | nil, err
-- Each name once, in order of first use.
function _M.variables(tpl)
    if type(tpl) ~= "string" then
        error("tiktok.template.variables: template must be a string, got "
              .. type(tpl), 2)
    end
    local pieces, err = parse(tpl)
    if not pieces then
        return nil, err
    end
    local names, seen = {}, {}
    for _, piece in ipairs(pieces) do
        if type(piece) == "table" and not seen[piece.name] then
            seen[piece.name] = true
            names[#names + 1] = piece.name
        end
    end
    return names
end


local function bad_utf8(pos)
    local p = "invalid UTF-8 at byte " .. pos
    return nil, errors.new("invalid_argument",
        "the text is not valid UTF-8 (" .. p .. "); save it as UTF-8",
        { problems = { p } })
end


--- template.set_var(vars, name, value) -> true | nil, reason
-- Puts value at a dotted name ("a.b.c") into the vars table, creating the
-- tables on the way, for forms and command lines that send flat names.
-- Refuses a name that is not letters, digits and _ with dots between
-- parts, and a name that clashes with another one ("a" and "a.b").
function _M.set_var(vars, name, value)
    if type(vars) ~= "table" then
        error("tiktok.template.set_var: vars must be a table, got " .. type(vars), 2)
    end
    if type(name) ~= "string" or #name > 256 or not match(name, "^[%a_][%w_]*[%w_.]*$")
       or sub(name, -1) == "." or find(name, "..", 1, true) then
        return nil, "'" .. quote(tostring(name)) .. "' is not a variable name (letters, digits and _, "
            .. "dots between parts)"
    end
    local t, pos = vars, 1
    while true do
        local dot = find(name, ".", pos, true)
        if not dot then break end
        local seg = sub(name, pos, dot - 1)
        if t[seg] == nil then t[seg] = {} end
        if type(t[seg]) ~= "table" then
            return nil, "'" .. name .. "' clashes with '" .. sub(name, 1, dot - 1) .. "'"
        end
        t = t[seg]
        pos = dot + 1
    end
    local last = sub(name, pos)
    if t[last] ~= nil then
        return nil, "'" .. name .. "' clashes with another variable under '" .. name .. "'"
    end
    t[last] = value
    return true
end


--- template.utf16_len(s) -> n | nil, err
-- Length in UTF-16 code units (what TikTok counts): 1 for a character up to
-- U+FFFF, 2 above it. Refuses overlong forms, surrogates, code points above
-- U+10FFFF and truncated sequences.
function _M.utf16_len(s)
    if type(s) ~= "string" then
        error("tiktok.template.utf16_len: text must be a string, got "
              .. type(s), 2)
    end
    local n = 0
    local i = 1
    local len = #s
    while i <= len do
        local c = byte(s, i)
        if c < 0x80 then
            n = n + 1
            i = i + 1
        else
            local need, lo, hi
            if c >= 0xC2 and c <= 0xDF then
                need, lo, hi = 1, 0x80, 0xBF
            elseif c == 0xE0 then
                need, lo, hi = 2, 0xA0, 0xBF
            elseif c == 0xED then
                need, lo, hi = 2, 0x80, 0x9F      -- no surrogates
            elseif c >= 0xE1 and c <= 0xEF then
                need, lo, hi = 2, 0x80, 0xBF
            elseif c == 0xF0 then
                need, lo, hi = 3, 0x90, 0xBF      -- no overlongs
            elseif c >= 0xF1 and c <= 0xF3 then
                need, lo, hi = 3, 0x80, 0xBF
            elseif c == 0xF4 then
                need, lo, hi = 3, 0x80, 0x8F      -- up to U+10FFFF
            else
                return bad_utf8(i)
            end
            if i + need > len then
                return bad_utf8(i)
            end
            local c2 = byte(s, i + 1)
            if c2 < lo or c2 > hi then
                return bad_utf8(i)
            end
            for k = 2, need do
                local ck = byte(s, i + k)
                if ck < 0x80 or ck > 0xBF then
                    return bad_utf8(i)
                end
            end
            n = n + (need == 3 and 2 or 1)
            i = i + need + 1
        end
    end
    return n
end


return _M
