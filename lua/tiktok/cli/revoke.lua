-- tiktok revoke: revoke the app's access to an account and forget it.
-- Without --account it acts on the only connected account, so it asks
-- first: on a terminal it asks for a "yes"; otherwise it needs --yes.
local errors = require "tiktok.errors"
local args = require "tiktok.cli.args"
local config = require "tiktok.cli.config"
local output = require "tiktok.cli.output"

local _M = {
    summary = "revoke the app's access to an account and remove it from the store",
    needs = "connection",
    usage = { "tiktok revoke --account OPEN_ID", "tiktok revoke --yes      (the only connected account)" },
    text = [[
Without --account, the only connected account is revoked after you confirm
(on a terminal), or with --yes (scripts).]],
    options = {
        { flag = "--account", metavar = "OPEN_ID", help = "the account (default: the only connected one)" },
        { flag = "--yes", help = "revoke the only connected account without asking" },
    },
}

function _M.check(_, argv)
    return args.none(argv)
end

-- Asks on the terminal; true when the answer is y or yes.
local function confirm(ctx, open_id, store)
    local out = ctx.out
    out.stdout:write("Revoke the app's access to TikTok account ", open_id, " and remove it from ",
                     store.label, "? [y/N] ")
    out.stdout:flush()
    local answer = (ctx.stdin or io.stdin):read("*l") or ""
    answer = answer:lower():gsub("^%s+", ""):gsub("%s+$", "")
    return answer == "y" or answer == "yes"
end

function _M.run(ctx)
    local conn, store, opts, out = ctx.conn, ctx.store, ctx.opts, ctx.out
    local open_id, err = config.pick_account(conn, opts["--account"])
    if not open_id then return nil, err end
    if not opts["--account"] and not opts["--yes"] then
        local tty = ctx.is_tty or output.is_tty
        if out.json_mode or not tty(0) then
            return nil, output.usage("revoke without --account asks first; give --account " .. open_id
                                     .. " or --yes")
        end
        if not confirm(ctx, open_id, store) then
            return nil, errors.new("cancelled", "nothing was revoked", { class = "usage" })
        end
    end
    local ok
    ok, err = conn:revoke(open_id)
    if not ok then return nil, err end
    if out.json_mode then
        out:json({ revoked = open_id })
        return true
    end
    out:say("Revoked the app's access to " .. open_id .. " and removed it from " .. store.label .. ".")
    return true
end

return _M
