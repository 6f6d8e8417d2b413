-- tiktok check: is the TikTok app of this configuration set up right
-- (credentials, redirect URI, scopes, audit; conn:check), or, with
-- --account, did that account grant what posting needs (conn:check_account)?
-- Prints the report's sentences; exit 0 when every check passed, else the
-- exit status of the failed check's error class (3: TikTok refused, 4: the
-- network). The client secret is never printed.
local errors = require "tiktok.errors"
local json = require "tiktok.json"
local args = require "tiktok.cli.args"

local ipairs, tostring = ipairs, tostring
local concat = table.concat

local _M = {
    summary = "check the TikTok app's setup (or, with --account, what an account granted)",
    needs = "connection",
    usage = { "tiktok check", "tiktok check --account OPEN_ID" },
    text = [[
Before connecting: asks TikTok whether the client key and secret work (a
client access token), shows the exact redirect URI to register in Login Kit,
whether the scopes include what posting needs, and what an unaudited app may
do. After a connect, --account OPEN_ID compares the scopes the account
granted with those posting needs. Exit 0 when everything is in order, 3 when
TikTok refused something or a setting must change, 4 when TikTok could not
be reached.]],
    options = {
        { flag = "--account", metavar = "OPEN_ID", help = "check what this connected account granted" },
    },
}

function _M.check(opts, argv)
    local ok, err = args.none(argv)
    if not ok then return nil, err end
    return { account = opts["--account"] }
end

-- A sentence wrapped at 79 columns under an indent.
local function wrap(text, indent, first)
    local lines, line = {}, first
    for word in tostring(text):gmatch("%S+") do
        if #line + 1 + #word > 79 and #line > #indent then
            lines[#lines + 1] = line
            line = indent .. word
        else
            line = (line:match("%S$") and (line .. " ") or line) .. word
        end
    end
    lines[#lines + 1] = line
    return concat(lines, "\n")
end
_M.wrap = wrap

--- check.exit_code(report) -> 0, or the exit status of the first failed
-- check (its TikTok code's class; a setting to change: class refused)
function _M.exit_code(rep)
    if rep.ok then return 0 end
    for _, c in ipairs(rep.checks) do
        if not c.ok then
            return errors.exit_code(errors.new(c.code or "check_failed", c.message,
                                               { class = not c.code and "refused" or nil }))
        end
    end
    return errors.exit_code(errors.new("check_failed", "the check failed", { class = "refused" }))
end

local function print_report(out, rep, headline)
    out:say(headline)
    for _, c in ipairs(rep.checks) do
        out:say(wrap(c.message, "            ", "  " .. (c.ok and "ok    " or "FAIL  ") .. "    "))
    end
end

function _M.run(ctx)
    local conn, out, open_id = ctx.conn, ctx.out, ctx.checked.account
    local rep, err
    if open_id then
        rep, err = conn:check_account(open_id)
        if not rep then return nil, err end
    else
        rep = conn:check()
    end
    local code = _M.exit_code(rep)
    ctx.exit_code = code
    if out.json_mode then
        local checks = json.array()
        for i, c in ipairs(rep.checks) do
            checks[i] = { name = c.name, ok = c.ok, message = c.message, code = c.code }
        end
        out:json({ ok = rep.ok, checks = checks, redirect_uri = rep.redirect_uri, account = open_id,
                   client_key = conn:_option("client_key"), exit_code = code })
        return true
    end
    local key = conn:_option("client_key")
    if open_id then
        print_report(out, rep, "TikTok account " .. open_id .. " (app " .. key .. "):")
        out:say(rep.ok and "The account granted what posting needs."
                or "The account cannot post until the problem above is fixed.")
    else
        print_report(out, rep, "TikTok app " .. key .. ":")
        out:say("Redirect URI to register: " .. tostring(rep.redirect_uri))
        out:say(rep.ok and "The app is ready: connect an account with `tiktok connect`."
                or "Fix what is marked FAIL, then run `tiktok check` again.")
    end
    return true
end

return _M
