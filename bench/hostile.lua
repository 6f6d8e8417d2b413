-- bench/hostile.lua CASE BYTES: the CPU time of one hostile input of about
-- BYTES bytes through tiktok.template.render or tiktok.errors' cleaning of
-- an upstream error text (issue 12: bounded work on hostile input). Pure
-- Lua (no C core, no network); bench.py runs each case in its own process
-- under lua5.4 and luajit and stops it after 5 s.
--
-- Prints one JSON line: the case, the size, the interpreter, the number of
-- calls timed, the CPU seconds per call (os.clock, the input built outside
-- the timed region) and what the call answered.
local template = require "tiktok.template"
local errors = require "tiktok.errors"

local rep = string.rep

local SECRETS = { client_secret = "cs_" .. rep("s", 29), access_token = "act." .. rep("a", 60),
                  refresh_token = "rft." .. rep("r", 60) }

-- Each case: a maker of the input of n bytes and the call it goes through.
local function render(tpl)
    local out, err = template.render(tpl, { x = "X", y = "Y" })
    return out and "rendered" or err.code
end

local function transport(s)
    local err = errors.from_transport("network", s, SECRETS)
    return err.code .. ", detail " .. #(err.detail or "") .. " B"
end

local function api(s)
    local err = errors.from_api(400, { error = { code = "invalid_params", message = s } }, nil, SECRETS)
    return err.code .. ", detail " .. #(err.detail or "") .. " B"
end

local function letters(n) return rep("a", n) end
local function scheme_at_end(n) return rep("a", n - 3) .. "://" end
local function questions(n) return rep("?", n) end

local CASES = {
    ["template-spaces"] = { function(n) return "{{x" .. rep(" ", n - 6) .. "y}}" end, render },
    ["template-opens"] = { function(n) return rep("{{", n / 2) end, render },
    ["template-name"] = { function(n) return "{{" .. rep("x", n - 4) .. "}}" end, render },
    ["template-tags"] = { function(n) return rep("{{x}} ", math.floor(n / 6)) .. rep("a", n % 6) end, render },
    ["transport-letters"] = { letters, transport },
    ["transport-scheme"] = { scheme_at_end, transport },
    ["transport-questions"] = { questions, transport },
    ["api-letters"] = { letters, api },
    ["api-scheme"] = { scheme_at_end, api },
    ["api-questions"] = { questions, api },
}

local name, bytes = arg[1], tonumber(arg[2])
local case = CASES[name]
if not case or not bytes then
    io.stderr:write("usage: hostile.lua CASE BYTES; cases:")
    for k in pairs(CASES) do io.stderr:write(" ", k) end
    io.stderr:write("\n")
    os.exit(2)
end

local input = case[1](bytes)
local call = case[2]
-- Repeat short calls until 0.1 s of CPU has gone by; a long call runs once.
local calls, answer = 0
local t0 = os.clock()
local t1
repeat
    answer = call(input)
    calls = calls + 1
    t1 = os.clock()
until t1 - t0 >= 0.1

-- The bounds tiktok.template checks before parsing, when it has them.
local limits = template.MAX_TEMPLATE
    and string.format(',"max_template":%d,"max_tag":%d', template.MAX_TEMPLATE, template.MAX_TAG) or ""
io.write(string.format('{"item":"hostile","case":"%s","bytes":%d,"interpreter":"%s","calls":%d,'
                       .. '"seconds":%.9f,"answer":"%s"%s}\n', name, #input, jit and jit.version or _VERSION,
                       calls, (t1 - t0) / calls, answer, limits))
