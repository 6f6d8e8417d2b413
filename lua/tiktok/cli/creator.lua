-- tiktok creator: what an account may post now (TikTok's creator info).
local json = require "tiktok.json"
local args = require "tiktok.cli.args"
local config = require "tiktok.cli.config"
local output = require "tiktok.cli.output"

local concat = table.concat

local _M = {
    summary = "show what an account may post now (privacy levels, interactions, max duration)",
    needs = "connection",
    usage = { "tiktok creator [--account OPEN_ID]" },
    text = [[
Queries TikTok's creator info: the privacy levels this creator may use today,
whether comments, duets and stitches are off in the creator's settings, and
the longest video allowed. `tiktok post` checks the same before uploading.]],
    options = {
        { flag = "--account", metavar = "OPEN_ID", help = "the account (default: the only connected one)" },
    },
}

function _M.check(_, argv)
    return args.none(argv)
end

local function off(disabled)
    return disabled and "off in the creator's settings" or "may be allowed"
end

function _M.run(ctx)
    local conn, out = ctx.conn, ctx.out
    local open_id, err = config.pick_account(conn, ctx.opts["--account"])
    if not open_id then return nil, err end
    local info
    info, err = conn:creator_info(open_id)
    if not info then return nil, err end
    if out.json_mode then
        out:json({ account = open_id, creator = {
            nickname = info.nickname, username = info.username, avatar_url = info.avatar_url,
            privacy_level_options = json.array(info.privacy_level_options),
            comment_disabled = info.comment_disabled, duet_disabled = info.duet_disabled,
            stitch_disabled = info.stitch_disabled,
            max_video_post_duration_sec = info.max_video_post_duration_sec,
        } })
        return true
    end
    local who = info.username and ("@" .. info.username) or open_id
    out:say("Creator " .. who .. (info.nickname and (" (" .. info.nickname .. ")") or ""))
    out:say("  account:             " .. open_id)
    out:say("  privacy levels:      " .. concat(info.privacy_level_options or {}, ", "))
    out:say("  comments:            " .. off(info.comment_disabled))
    out:say("  duets:               " .. off(info.duet_disabled))
    out:say("  stitches:            " .. off(info.stitch_disabled))
    out:say("  longest video:       " .. (info.max_video_post_duration_sec
                                          and (output.num(info.max_video_post_duration_sec) .. " s") or "unknown"))
    return true
end

return _M
