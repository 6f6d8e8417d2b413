-- tiktok.cli.output: everything the command line prints.
--
-- An output object (`output.new{ json, stdout, stderr }`) writes results
-- (text lines or one JSON object), errors (text on stderr, or a JSON
-- `{"error":{...}}` on stdout, with the exit status from
-- tiktok.errors.exit_code) and, through `out:reporter(mode)`, the progress
-- of a post: a bar and a status line redrawn in place on a terminal, one
-- plain line per stage, chunk and status change otherwise, nothing with
-- --json. The streams are parameters so specs can read what was printed.
local errors = require "tiktok.errors"
local json = require "tiktok.json"
local core = require "tiktok.core"

local type, ipairs, tostring = type, ipairs, tostring
local concat = table.concat
local format, rep = string.format, string.rep
local floor = math.floor

local _M = {}

-- ------------------------------------------------------------- formatting

-- Sizes in decimal units: "812 kB", "5.2 MB"; `unit_of` picks the unit of a
-- larger number so "2.6/5.2 MB" reads well.
local function size_unit(n)
    if n >= 1e9 then return 1e9, "GB" end
    if n >= 1e6 then return 1e6, "MB" end
    if n >= 1e3 then return 1e3, "kB" end
    return 1, "B"
end

function _M.size(n, unit_of)
    local div, unit = size_unit(unit_of or n)
    if div == 1 then return format("%d %s", n, unit) end
    return format("%.1f %s", n / div, unit)
end

function _M.duration(sec)
    sec = floor(sec + 0.5)
    if sec < 60 then return sec .. "s" end
    if sec < 3600 then return format("%dm%02ds", floor(sec / 60), sec % 60) end
    if sec < 172800 then return format("%dh%02dm", floor(sec / 3600), floor(sec / 60) % 60) end
    return format("%dd", floor(sec / 86400))
end

--- output.when(epoch, now) -> "2026-12-06 14:00 (in 2h00m)" | "... (expired)" | "unknown"
function _M.when(epoch, now)
    if type(epoch) ~= "number" then return "unknown" end
    local left = epoch - (now or core.now_ms() / 1000)
    local stamp = os.date("%Y-%m-%d %H:%M", floor(epoch))
    if left <= 0 then return stamp .. " (expired)" end
    return stamp .. " (in " .. _M.duration(left) .. ")"
end

-- A number as TikTok meant it: 300, not 300.0 (cjson gives floats on 5.4).
function _M.num(n)
    if type(n) ~= "number" then return tostring(n) end
    if n == floor(n) then return format("%d", n) end
    return format("%.14g", n)
end

--- output.account_json(acc) -> what --json shows of an account (never a token)
function _M.account_json(a)
    return { open_id = a.open_id, scopes = json.array(a.scopes), expires_at = a.expires_at,
             refresh_expires_at = a.refresh_expires_at }
end

--- output.is_tty(fd) -> whether file descriptor fd (0, 1, 2) is a terminal
function _M.is_tty(fd)
    local ok = os.execute("test -t " .. fd)
    return ok == true or ok == 0
end

-- ------------------------------------------------------------- the object

local Output = {}
Output.__index = Output

--- output.new{ json = bool, stdout = file, stderr = file } -> out
-- out.command (set once known) names the command in messages.
function _M.new(opts)
    opts = opts or {}
    return setmetatable({ json_mode = opts.json == true, stdout = opts.stdout or io.stdout,
                          stderr = opts.stderr or io.stderr, command = nil }, Output)
end

function Output:say(...)
    local o = self.stdout
    o:write(...)
    o:write("\n")
    o:flush()
end

--- out:json(v): one line, the whole result (json.array marks lists)
function Output:json(v)
    local text = assert(json.encode(v))
    self:say(text)
end

function Output:warn(msg)
    self.stderr:write("tiktok: warning: ", msg, "\n")
end

function Output:prefix()
    return self.command and ("tiktok " .. self.command) or "tiktok"
end

-- What to do next, in command-line terms.
local HINTS = {
    missing_variable = "give each variable with --var NAME=VALUE",
    not_found = "run `tiktok connect` to connect an account, `tiktok accounts` to list them",
    reauthorize = "run `tiktok connect` again for this account",
    scope_not_authorized = "run `tiktok connect` again and approve every permission",
    tls = "set TIKTOK_CA_FILE to the CA bundle that signed the server's certificate",
    invalid_settings = "`tiktok creator` shows what this account allows",
}

--- output.hint(err) -> the next step in command-line terms, or nil
function _M.hint(err)
    local class = errors.class(err).name
    if err.publish_id and (class == "transient" or class == "upstream" or class == "network") then
        return "the post may still finish at TikTok; follow it with: tiktok status " .. err.publish_id .. " --wait"
    end
    return HINTS[err.code]
end

-- Only these fields of an error are printed: nothing else can carry a
-- secret into the output.
local ERROR_FIELDS = { "code", "message", "problems", "publish_id", "log_id", "http_status", "retryable",
                       "detail", "fail_reason", "retry_after", "reauth", "choices" }

--- output.error_json(err) -> the { error = {...} } object --json prints
function _M.error_json(err)
    local e = {}
    for _, k in ipairs(ERROR_FIELDS) do e[k] = err[k] end
    if e.problems then e.problems = json.array(e.problems) end
    if e.choices then e.choices = json.array(e.choices) end
    e.hint = _M.hint(err)
    e.exit_code = errors.exit_code(err)
    return { error = e }
end

--- output.error_text(err, prefix) -> the lines printed on stderr
function _M.error_text(err, prefix)
    local lines = {}
    local problems = err.problems
    if err.code == "invalid_settings" and problems and #problems > 0 then
        lines[1] = format("%s: the post breaks %d rule%s (invalid_settings):", prefix, #problems,
                          #problems == 1 and "" or "s")
        for _, p in ipairs(problems) do lines[#lines + 1] = "  - " .. p end
    elseif err.code == "usage" or err.code == "config" then
        lines[1] = prefix .. ": " .. err.message
    else
        lines[1] = format("%s: %s (%s)", prefix, err.message, err.code)
    end
    local extra = {}
    if err.detail and not err.message:find(err.detail, 1, true) then
        extra[#extra + 1] = (err.http_status and "TikTok said: " or "details: ") .. err.detail
    end
    if err.publish_id then extra[#extra + 1] = "publish_id " .. err.publish_id end
    if err.http_status then extra[#extra + 1] = "HTTP " .. format("%d", err.http_status) end
    if err.log_id then extra[#extra + 1] = "log_id " .. err.log_id end
    if #extra > 0 then lines[#lines + 1] = "  " .. concat(extra, ", ") end
    local hint = _M.hint(err)
    if hint then lines[#lines + 1] = "  hint: " .. hint end
    if err.code == "usage" then
        lines[#lines + 1] = "Run '" .. prefix .. " --help' for usage."
    end
    return concat(lines, "\n")
end

--- out:error(err) -> exit status. Prints err (a library error, or one made
-- by output.usage / output.config) on stderr, or as JSON on stdout.
function Output:error(err)
    if self.json_mode then
        self:json(_M.error_json(err))
    else
        self.stdout:flush()
        self.stderr:write(_M.error_text(err, self:prefix()), "\n")
    end
    return errors.exit_code(err)
end

--- output.usage(msg) -> err: the command line was wrong (exit 2)
function _M.usage(msg)
    return errors.new("usage", msg, { class = "usage" })
end

--- output.config(msg) -> err: a setting is missing or wrong (exit 2)
function _M.config(msg)
    return errors.new("config", msg, { class = "usage" })
end

-- --------------------------------------------------------------- progress

-- A rate is shown once this much of the upload has passed: before that it
-- measures the first buffer, not the network ("593.0 MB/s in 0.0s").
_M.RATE_AFTER_MS = 500

local function bar_line(ev, now, t_upload)
    local size = _M.size
    local frac = ev.total > 0 and ev.bytes / ev.total or 1
    local width = 20
    local filled = floor(frac * width + 0.5)
    local elapsed_ms = now - (t_upload or now)
    local elapsed = elapsed_ms / 1000
    local rate = elapsed_ms >= _M.RATE_AFTER_MS and ev.bytes / elapsed or nil
    local done = ev.bytes >= ev.total
    local tail
    if done then
        tail = (rate and format("%.1f MB/s  ", rate / 1e6) or "")
               .. "in " .. (elapsed < 0.1 and "<0.1s" or elapsed < 10 and format("%.1fs", elapsed)
                            or _M.duration(elapsed))
    elseif rate and rate > 0 then
        tail = format("%.1f MB/s  ETA %s", rate / 1e6, _M.duration((ev.total - ev.bytes) / rate))
    else
        tail = "-- MB/s  ETA --"
    end
    local div = size_unit(ev.total)
    return format("%s [%s%s] %3d%%  %s/%s  %s",
                  done and "Uploaded " or "Uploading",
                  rep("#", filled), rep("-", width - filled), floor(frac * 100),
                  div == 1 and format("%d", ev.bytes) or format("%.1f", ev.bytes / div),
                  size(ev.total), tail)
end
_M.bar_line = bar_line

--- out:reporter(mode) -> r with r.event(ev) (tiktok.post's on_progress)
-- and r.finish() (leaves the screen clean). mode: "tty" | "plain" | "none".
-- opts.clock (specs) replaces core.monotonic_ms.
function Output:reporter(mode, opts)
    local stdout = self.stdout
    local clock = opts and opts.clock or core.monotonic_ms
    local r = { mode = mode }
    local transient = false      -- a \r line is on the screen
    local t_upload = nil         -- when the upload began (the init answer)
    local bar_done = false
    local last_status, wait_start = nil, nil
    local chunk_seen = nil       -- plain mode: the chunk being sent { chunk, chunks, bytes, total }
    local chunk_said = nil       -- plain mode: the chunk whose line is printed
    local say = function(s) self:say(s) end

    local function draw(s)
        stdout:write("\r", s, "\27[K")
        stdout:flush()
        transient = true
    end
    local function commit(s)
        draw(s)
        stdout:write("\n")
        stdout:flush()
        transient = false
    end
    -- The line of the chunk in flight, once (curl reports the last byte
    -- several times while it waits for the answer).
    local function chunk_line()
        local c = chunk_seen
        if c and chunk_said ~= c.chunk then
            say(format("upload: chunk %d/%d: %d of %d bytes sent", c.chunk, c.chunks, c.bytes, c.total))
            chunk_said = c.chunk
        end
    end

    local function upload(ev, now)
        t_upload = t_upload or now
        if mode == "tty" then
            if not bar_done then
                bar_done = ev.bytes >= ev.total
                if bar_done then commit(bar_line(ev, now, t_upload)) else draw(bar_line(ev, now, t_upload)) end
            end
        else
            if chunk_seen and chunk_seen.chunk ~= ev.chunk then chunk_line() end
            chunk_seen = { chunk = ev.chunk or 1, chunks = ev.chunks or 1, bytes = ev.bytes, total = ev.total }
        end
    end

    local STAGES = {}
    function STAGES.creator_info()
        if mode == "tty" then draw("Checking the creator's current settings on TikTok...")
        else say("creator_info: checking the creator's current settings") end
    end
    function STAGES.init(ev, now)
        if ev.publish_id then
            t_upload = now
            if mode == "tty" then commit("Post created: publish_id " .. ev.publish_id)
            else say("init: publish_id " .. ev.publish_id) end
        elseif mode == "tty" then
            draw("Creating the post on TikTok...")
        else
            say("init: creating the post")
        end
    end
    function STAGES.upload(ev, now)
        if ev.total then upload(ev, now) end
    end
    function STAGES.retry(ev)
        local s = format("chunk %d/%d failed (%s); retrying", ev.chunk or 0, ev.chunks or 0,
                         tostring(ev.error or "error"))
        if mode == "tty" then
            commit("Upload: " .. s)
        else
            chunk_seen, chunk_said = nil, nil
            say("upload: " .. s)
        end
    end
    function STAGES.status(ev, now)
        wait_start = wait_start or now
        if mode == "tty" then
            draw(format("Waiting for TikTok: %s (%s)", tostring(ev.status),
                        _M.duration((now - wait_start) / 1000)))
        elseif ev.status ~= last_status then
            say("status: " .. tostring(ev.status))
        end
        last_status = ev.status
    end

    function r.event(ev)
        if mode == "none" then return end
        local stage = STAGES[ev.stage]
        if not stage then return end
        if mode == "plain" and ev.stage ~= "upload" then chunk_line() end
        stage(ev, clock())
    end

    function r.finish()
        if mode == "plain" then chunk_line() end
        if transient then
            stdout:write("\r\27[K")
            stdout:flush()
            transient = false
        end
    end
    return r
end

return _M
