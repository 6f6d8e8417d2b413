-- What the command line's subprocess specs share (spec/cli/*_spec.lua
-- besides cli_spec.lua): bin/tiktok run with a clean environment, in the
-- foreground or in the background (to signal it), and the JSON it printed.
--
--   local H = require "cli.helper"
--   local r = H.run({ "--json", "accounts" }, { env = { TIKTOK_STORE = path } })  -- { code, out, err }
--   local p = H.start({ "worker" }, { env = ... }); H.wait_for(p, "event=init"); p:signal("TERM"); p:wait()
local sandbox = require "helpers.sandbox"
local media = require "helpers.media"
local cjson = require "cjson.safe"

local H = {}

H.LUA = (type(jit) == "table") and "luajit" or "lua5.4"
H.ROOT = os.getenv("TIKTOK_ROOT") or (sandbox.exec("pwd"):gsub("%s+$", ""))
H.BIN = H.ROOT .. "/bin/tiktok"
local q = sandbox.shell_quote
H.q = q

function H.read(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

function H.write(path, s)
    local f = assert(io.open(path, "wb"))
    f:write(s)
    f:close()
    return path
end

H.TMP = media.tmpdir()
local n_runs = 0

-- Every output of every run, for the checks that no secret was printed.
H.transcript = {}

local function command(args, opts)
    local env = { "PATH=" .. q(os.getenv("PATH")), "HOME=" .. q(H.TMP .. "/home"), "LANG=C.UTF-8" }
    for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. q(v) end
    local argv = { H.LUA .. " " .. q(H.BIN) }
    for _, a in ipairs(args) do argv[#argv + 1] = q(a) end
    return "env -i " .. table.concat(env, " ") .. " " .. table.concat(argv, " ")
end

local function files()
    n_runs = n_runs + 1
    local base = H.TMP .. "/run-" .. n_runs
    return base .. ".out", base .. ".err", base .. ".rc", base .. ".pid"
end

local function result(out, err, code)
    local r = { code = code, out = H.read(out) or "", err = H.read(err) or "" }
    H.transcript[#H.transcript + 1] = r.out
    H.transcript[#H.transcript + 1] = r.err
    return r
end

--- H.run(args, { env }) -> { code, out, err }
function H.run(args, opts)
    opts = opts or {}
    local out, err = files()
    local p = io.popen(command(args, opts) .. " >" .. out .. " 2>" .. err .. " </dev/null; echo $?")
    local code = tonumber(p:read("*a"))
    p:close()
    return result(out, err, code)
end

local Proc = {}
Proc.__index = Proc

--- H.start(args, { env }) -> a process running in the background
function H.start(args, opts)
    opts = opts or {}
    local out, err, rc, pidf = files()
    os.execute("( " .. command(args, opts) .. " >" .. out .. " 2>" .. err .. " </dev/null & echo $! >" .. pidf
               .. "; wait $!; echo $? >" .. rc .. ".tmp; mv " .. rc .. ".tmp " .. rc .. " ) >/dev/null 2>&1 &")
    local pid
    for _ = 1, 200 do
        pid = tonumber(H.read(pidf) or "")
        if pid then break end
        sandbox.sleep(0.05)
    end
    assert(pid, "the process did not start")
    return setmetatable({ pid = pid, out = out, err = err, rc = rc }, Proc)
end

function Proc:output()
    return H.read(self.out) or ""
end

function Proc:signal(name)
    os.execute("kill -" .. name .. " " .. self.pid .. " 2>/dev/null")
end

--- p:wait(seconds) -> { code, out, err } (code nil when it did not end in time)
function Proc:wait(seconds)
    local code
    for _ = 1, (seconds or 120) * 20 do
        code = tonumber(H.read(self.rc) or "")
        if code then break end
        sandbox.sleep(0.05)
    end
    return result(self.out, self.err, code)
end

--- H.wait_for(p, needle, seconds) -> true once p's stdout holds needle
-- (a plain string), false when it never did (or the process ended first)
function H.wait_for(p, needle, seconds)
    for _ = 1, (seconds or 60) * 20 do
        if p:output():find(needle, 1, true) then return true end
        if H.read(p.rc) then return p:output():find(needle, 1, true) ~= nil end
        sandbox.sleep(0.05)
    end
    return false
end

--- H.json(r) -> the single JSON object a --json run printed
function H.json(r)
    local line = r.out:gsub("\n$", "")
    assert(not line:find("\n"), "more than one line on stdout: " .. r.out)
    local v = cjson.decode(line)
    assert(type(v) == "table", "stdout is not JSON: " .. r.out .. r.err)
    return v
end

--- H.json_lines(text) -> every JSON object of a --json worker's output
function H.json_lines(text)
    local out = {}
    for line in text:gmatch("[^\n]+") do out[#out + 1] = assert(cjson.decode(line), line) end
    return out
end

function H.cleanup()
    os.execute("rm -rf " .. q(H.TMP))
end

return H
