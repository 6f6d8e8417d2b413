-- tiktok.cli.args: argv -> { command, opts, args }, through lua-argparse.
--
-- argparse (Debian's lua-argparse) does the parsing, the help text and the
-- "did you mean". Around it, this module:
--   * builds the parser from the command modules' option lists
--     ({ flag, metavar, help, repeat }, the shape of tiktok.fields);
--   * gives an option that takes a value the next argument whatever it
--     looks like, as getopt does: `--account -000hLNeF...` (TikTok's
--     open_ids may start with '-') and `--caption -30%` work;
--   * turns argparse's messages into the command line's own ("--caption
--     needs a value (--caption TEXT)", "--privacy is given more than once");
--   * returns nil, err (code "usage", exit 2) instead of exiting.
-- opts is keyed by flag ("--file"); repeated options give a list, switches
-- true. Every check beyond the shape of argv is the command's.
local argparse = require "argparse"
local output = require "tiktok.cli.output"

local ipairs, pairs, error = ipairs, pairs, error
local unpack = table.unpack or unpack
local concat = table.concat
local format = string.format
local tonumber, floor = tonumber, math.floor

local _M = {}

-- Options valid before or after the command.
_M.GLOBAL = {
    { flag = "--config", metavar = "FILE", ["repeat"] = true,
      help = "read KEY=value settings from FILE (may be repeated; a later file wins)" },
    { flag = "--env-file", metavar = "FILE", ["repeat"] = true, target = "--config",
      help = "the same as --config (the sandbox writes DIR/env)" },
    { flag = "--store", metavar = "PATH_OR_URL",
      help = "the account store: a file, or a postgresql:// URL (wins over TIKTOK_STORE)" },
    { flag = "--json", help = "print one JSON object (errors too) instead of text" },
    { flag = "--help", short = "-h", help = "show help" },
    { flag = "--version", help = "print the version" },
}

local function add_option(p, o, info)
    local names = o.short and (o.short .. " " .. o.flag) or o.flag
    local target = o.target or o.flag
    local el
    if o.metavar then
        el = p:option(names):argname(o.metavar)
        if o["repeat"] then el:count("*") else el:overwrite(false) end
        info.metavar[o.flag] = o.metavar
    else
        el = p:flag(names)   -- a switch given twice is still on, as before
    end
    el:target(target):description(o.help or "")
    local kind = o.metavar and "value" or "switch"
    if info.kind[o.flag] and info.kind[o.flag] ~= kind then
        error("tiktok.cli.args: " .. o.flag .. " takes a value in one command and not in another", 2)
    end
    info.kind[o.flag] = kind
    info.repeated[target] = o["repeat"] or nil
    return el
end

local function command_help(c)
    local text = c.summary:sub(1, 1):upper() .. c.summary:sub(2) .. "."
    if c.text then text = text .. "\n\n" .. c.text end
    return text
end

--- args.build(commands, order, main) -> parser, info
-- commands: name -> command module; order: their names as listed;
-- main: { description, usage, epilog } of `tiktok --help`.
function _M.build(commands, order, main)
    local info = { metavar = {}, kind = {}, repeated = {}, order = order, commands = commands, parsers = {} }
    local p = argparse("tiktok"):add_help(false):require_command(false):command_target("command")
        :help_usage_margin(2):help_description_margin(25):help_max_width(79)
        :usage(main.usage):description(main.description):epilog(main.epilog)
    local globals = {}
    for _, o in ipairs(_M.GLOBAL) do globals[#globals + 1] = add_option(p, o, info) end
    p:group("Global options (before or after the command)", unpack(globals))
    for _, name in ipairs(order) do
        local c = commands[name]
        local cp = p:command(name):add_help(false):summary(c.summary):description(command_help(c))
            :usage("Usage: " .. concat(c.usage, "\n       "))
            :epilog("Global options (tiktok --help): --config FILE, --env-file FILE,\n"
                    .. "--store PATH_OR_URL, --json, --help")
        for _, o in ipairs(c.options) do add_option(cp, o, info) end
        cp:argument("args"):args("*"):hidden(true)
        info.parsers[name] = cp
    end
    p:command("help"):add_help(false):hidden(true):argument("args"):args("*")
    return p, info
end

--- args.getopt(argv, info) -> argv with each value-taking option joined
-- to its value ("--account=-000..."), so that argparse never reads a value
-- that starts with '-' as an option.
function _M.getopt(argv, info)
    local out, i = {}, 1
    while i <= #argv do
        local a = argv[i]
        if a == "--" then
            for j = i, #argv do out[#out + 1] = argv[j] end
            break
        end
        if info.kind[a] == "value" and argv[i + 1] ~= nil then
            out[#out + 1] = a .. "=" .. argv[i + 1]
            i = i + 1
        else
            out[#out + 1] = a
        end
        i = i + 1
    end
    return out
end

--- args.wants_json(argv) -> whether --json is among the options (so that
-- even a parse error is printed as JSON)
function _M.wants_json(argv)
    for _, a in ipairs(argv) do
        if a == "--" then break end
        if a == "--json" then return true end
    end
    return false
end

-- argparse's "\nDid you mean 'x'?" / "one of these: 'x' 'y'?" -> "; did you mean x?"
local function tip(rest, quote)
    local one = rest:match("^\nDid you mean '(.-)'%?$")
    if one then return format("; did you mean %s?", quote and ("'" .. one .. "'") or one) end
    local several = rest:match("^\nDid you mean one of these: (.-)%?$")
    if several then
        local names = {}
        for n in several:gmatch("'(.-)'") do names[#names + 1] = quote and ("'" .. n .. "'") or n end
        return "; did you mean " .. concat(names, " or ") .. "?"
    end
    return ""
end

--- args.message(msg, info) -> argparse's message in the command line's words
function _M.message(msg, info)
    local name, rest = msg:match("^unknown command '(.-)'(.*)$")
    if name then
        return "unknown command '" .. name .. "'" .. tip(rest, true) .. " (commands: "
               .. concat(info.order, ", ") .. ")"
    end
    name, rest = msg:match("^unknown option '(.-)'(.*)$")
    if name then return "unknown option " .. name .. tip(rest) end
    name = msg:match("^option '(.-)' requires an argument$")
    if name then return format("%s needs a value (%s %s)", name, name, info.metavar[name] or "VALUE") end
    name = msg:match("^option '(.-)' does not take arguments$")
    if name then return name .. " takes no value" end
    name = msg:match("^option '(.-)' must be used at most 1 time$")
    if name then return name .. " is given more than once" end
    return msg
end

--- args.none(args) -> true | nil, err: for commands that take no arguments
function _M.none(args, hint)
    if #args == 0 then return true end
    return nil, output.usage("takes no arguments (got " .. #args .. "); options start with --"
                             .. (hint and ("; " .. hint) or ""))
end

--- args.seconds(opts, flag) -> milliseconds | nil (not given) | nil, err
function _M.seconds(opts, flag)
    local v = opts[flag]
    if v == nil then return nil end
    local n = tonumber(v)
    if not v:match("^%s*%d+%.?%d*%s*$") or not n or n <= 0 then
        return nil, output.usage(flag .. " takes a number of seconds greater than 0, got '" .. v .. "'")
    end
    return floor(n * 1000)
end

--- args.whole(opts, flag, what) -> integer | nil (not given) | nil, err
function _M.whole(opts, flag, what)
    local v = opts[flag]
    if v == nil then return nil end
    if not v:match("^%d+$") or #v > 15 then
        return nil, output.usage(flag .. " takes a whole number from 0 (" .. what .. "), got '" .. v .. "'")
    end
    return tonumber(v)
end

-- Days since 1970-01-01 of a civil date (proleptic Gregorian), so an
-- ISO-8601 UTC time needs no time zone from the C library.
local function days_from_civil(y, m, d)
    if m <= 2 then y = y - 1 end
    local era = floor(y / 400)
    local yoe = y - era * 400
    local mp = (m + 9) % 12
    local doy = floor((153 * mp + 2) / 5) + d - 1
    local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
    return era * 146097 + doe - 719468
end

local UNITS = { [""] = 1, s = 1, m = 60, h = 3600, d = 86400 }
local MONTH_DAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

--- args.parse_time(text, now) -> epoch seconds | nil, reason
-- "1767225600" (epoch seconds), "+10m" / "+2h" / "+30s" / "+1d" (from now),
-- "2026-12-06T14:00:00Z" or "2026-12-06T14:00Z" (UTC; "+00:00" for Z and a
-- space for T also do).
function _M.parse_time(text, now)
    local v = text:gsub("^%s+", ""):gsub("%s+$", "")
    if v:match("^%d+$") and #v <= 12 then return tonumber(v) end
    local n, unit = v:match("^%+(%d+)([smhd]?)$")
    if n and #n <= 9 then return floor(now) + tonumber(n) * UNITS[unit] end
    local y, mo, d, h, mi, sec, zone = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):?(%d*)(.*)$")
    if not y then
        return nil, "takes epoch seconds, +10m / +2h / +1d from now, or a UTC time like 2026-12-06T14:00:00Z"
    end
    if zone ~= "Z" and zone ~= "z" and zone ~= "+00:00" and zone ~= "+0000" then
        return nil, "takes a UTC time: end it with Z (like 2026-12-06T14:00:00Z)"
    end
    y, mo, d, h, mi = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi)
    if #sec ~= 0 and #sec ~= 2 then return nil, "has a malformed time of day (HH:MM or HH:MM:SS)" end
    sec = tonumber(sec) or 0
    if mo < 1 or mo > 12 or d < 1 or d > MONTH_DAYS[mo] or (mo == 2 and d == 29 and
        not (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0))) or h > 23 or mi > 59 or sec > 59 then
        return nil, "is not a valid date and time"
    end
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec
end

--- args.time(opts, flag, now) -> epoch seconds | nil (not given) | nil, err
function _M.time(opts, flag, now)
    local v = opts[flag]
    if v == nil then return nil end
    local t, why = _M.parse_time(v, now)
    if not t then return nil, output.usage(flag .. " " .. why .. ", got '" .. v:gsub("%c", "?"):sub(1, 40) .. "'") end
    return t
end

--- args.parse(parser, info, argv) -> { command, opts, args } | nil, err
function _M.parse(parser, info, argv)
    local ok, res = parser:pparse(_M.getopt(argv, info))
    if not ok then return nil, output.usage(_M.message(res, info)) end
    local opts, args = {}, res.args or {}
    for key, v in pairs(res) do
        if key:sub(1, 2) == "--" then
            if info.repeated[key] then
                if #v > 0 then opts[key] = v end
            elseif v ~= nil and v ~= false then
                opts[key] = v
            end
        end
    end
    return { command = res.command, opts = opts, args = args }
end

return _M
