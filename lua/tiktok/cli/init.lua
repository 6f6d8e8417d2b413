-- tiktok.cli: the command line of lua-tiktok, as a module.
--
-- `require("tiktok.cli").main(argv)` runs one command and returns the exit
-- status; bin/tiktok only finds the library and calls it. The commands are
-- modules of their own (tiktok.cli.connect, accounts, creator, post,
-- status, revoke, jobs, worker, check, store), each { summary, usage, text,
-- options, needs, check, run }:
-- check(opts, args) judges the command line before any configuration is
-- read; run(ctx) does the work. Both return nil, err on failure, and the
-- exit status comes from tiktok.errors.exit_code(err). tiktok.cli.args
-- parses argv (lua-argparse), tiktok.cli.config reads the settings,
-- tiktok.cli.output prints.
local tiktok = require "tiktok"
local args = require "tiktok.cli.args"
local config = require "tiktok.cli.config"
local output = require "tiktok.cli.output"

local concat = table.concat
local tostring = tostring

local _M = { _VERSION = tiktok._VERSION }

local ORDER = { "connect", "accounts", "creator", "post", "status", "revoke", "jobs", "worker", "check", "store" }
local COMMANDS = {}
for _, name in ipairs(ORDER) do COMMANDS[name] = require("tiktok.cli." .. name) end
_M.COMMANDS, _M.ORDER = COMMANDS, ORDER

local EXIT_TEXT = [[
Exit status:
  0  success
  1  internal error (a bug in tiktok; please report it)
  2  usage or configuration error: bad option or value, missing setting, a
     callback that does not match the pending connection, several accounts
     and no --account
  3  TikTok refused the request or failed the post (a TikTok error code), or
     the post breaks TikTok's rules or the creator's settings (invalid_settings)
  4  network, TLS or timeout (also: TikTok still processing when the wait
     ended)
  5  other: the account store, the video file, no connected account

With --json, stdout holds one JSON object; an error is {"error":{"code",
"message",...}} with the same exit status. No secret (client secret, token,
authorization code, PKCE verifier) is ever printed.]]

local parser, info

--- cli.parser() -> the argparse parser and its info (built once)
function _M.parser()
    if not parser then
        parser, info = args.build(COMMANDS, ORDER, {
            usage = "Usage: tiktok [--config FILE] [--json] COMMAND [OPTIONS]\n       tiktok COMMAND --help",
            description = "tiktok - connect TikTok accounts and post videos (lua-tiktok " .. tiktok._VERSION .. ")",
            epilog = "Configuration, from TIKTOK_* environment variables or --config files of\n"
                     .. "KEY=value lines (a file given on the command line wins over the environment):\n"
                     .. config.help() .. "\n\n" .. EXIT_TEXT,
        })
    end
    return parser, info
end

--- cli.help(command) -> the help text of command (nil: of tiktok itself)
function _M.help(command)
    local p, i = _M.parser()
    return (command and i.parsers[command] or p):get_help()
end

-- The command named on the command line, if any (for "tiktok post: ...").
local function named_command(argv)
    for _, a in ipairs(argv) do
        if a == "--" then return nil end
        if a:sub(1, 1) ~= "-" then return COMMANDS[a] and a or nil end
    end
end

local function run(argv, out, state, env)
    local _, i = _M.parser()
    out.command = named_command(args.getopt(argv, i))
    local parsed, err = args.parse(parser, i, argv)
    if not parsed then return out:error(err) end
    local command, opts, rest = parsed.command, parsed.opts, parsed.args
    if opts["--version"] then
        if out.json_mode then out:json({ version = tiktok._VERSION })
        else out:say("tiktok (lua-tiktok) " .. tiktok._VERSION) end
        return 0
    end
    if command == "help" then
        local topic = rest[1]
        if topic and not COMMANDS[topic] then
            return out:error(output.usage("no help for '" .. topic .. "'; commands: " .. concat(ORDER, ", ")))
        end
        out:say(_M.help(topic))
        return 0
    end
    if opts["--help"] then
        out:say(_M.help(command))
        return 0
    end
    if not command then
        out.stderr:write("Usage: tiktok [--config FILE] [--json] COMMAND [OPTIONS]\n",
                         "Commands: ", concat(ORDER, ", "), ". Run 'tiktok --help' for details.\n")
        if out.json_mode then return out:error(output.usage("no command given")) end
        return 2
    end
    local cmd = COMMANDS[command]
    local checked
    checked, err = cmd.check(opts, rest)
    if not checked then return out:error(err) end
    local ctx = {
        out = out, opts = opts, args = rest, checked = checked, state = state,
        files = opts["--config"] or {}, store_arg = opts["--store"],
        stdin = env.stdin, is_tty = env.is_tty, getenv = env.getenv,
        warn = function(msg) out:warn(msg) end,
    }
    function ctx.reporter()
        local mode = out.json_mode and "none" or ((env.is_tty or output.is_tty)(1) and "tty" or "plain")
        state.progress = out:reporter(mode)
        return state.progress
    end
    if cmd.needs == "connection" then
        ctx.conn, ctx.store, ctx.own = config.connect(ctx.files, ctx)
        if not ctx.conn then return out:error(ctx.store) end
    end
    local ok
    ok, err = cmd.run(ctx)
    if ctx.conn then ctx.conn:close() end
    if not ok then return out:error(err) end
    return ctx.exit_code or 0   -- a command that printed its own answer (tiktok check) may set it
end

--- cli.main(argv, env) -> exit status
-- env (for specs) may replace stdout, stderr, stdin, getenv and is_tty(fd).
function _M.main(argv, env)
    env = env or {}
    local _, i = _M.parser()
    local out = output.new({ json = args.wants_json(args.getopt(argv, i)), stdout = env.stdout,
                             stderr = env.stderr })
    local state = {}
    local ok, rc = xpcall(function() return run(argv, out, state, env) end, function(e)
        if tostring(e):find("interrupted!", 1, true) then return "interrupted" end
        return debug.traceback(e, 2)
    end)
    if ok then
        out.stdout:flush()
        return rc
    end
    if state.progress then state.progress.finish() end
    out.stdout:flush()
    if rc == "interrupted" then
        -- Ctrl-C: the interpreter raises "interrupted!" at the next Lua step.
        out.stderr:write("tiktok: interrupted")
        if state.publish_id then
            out.stderr:write("; TikTok may still publish ", state.publish_id, " (tiktok status ",
                             state.publish_id, ")")
        end
        out.stderr:write("\n")
        return 130
    end
    out.stderr:write("tiktok: internal error (a bug; please report it): ", tostring(rc), "\n")
    return 1
end

return _M
