-- tiktok status: a post's status, or --wait for a final one.
local tiktok = require "tiktok"
local errors = require "tiktok.errors"
local json = require "tiktok.json"
local args = require "tiktok.cli.args"
local config = require "tiktok.cli.config"
local output = require "tiktok.cli.output"

local concat = table.concat
local format = string.format
local tostring = tostring

local _M = {
    summary = "show a post's status (or --wait for a final one)",
    needs = "connection",
    usage = { "tiktok status PUBLISH_ID [--wait] [--account OPEN_ID]" },
    text = [[
Exits 0 unless the post FAILED (exit 3, with TikTok's reason) or the status
cannot be read. Final states: PUBLISH_COMPLETE, SEND_TO_USER_INBOX, FAILED.]],
    options = {
        { flag = "--wait", help = "poll until the post reaches a final state" },
        { flag = "--wait-timeout", metavar = "SECONDS",
          help = string.format("with --wait: how long to wait (default %d)", tiktok.DEFAULTS.wait_timeout_ms / 1000) },
        { flag = "--account", metavar = "OPEN_ID", help = "the account that made the post (default: the only one)" },
    },
}

function _M.check(opts, argv)
    local usage = output.usage
    if #argv == 0 then return nil, usage("give the publish_id (tiktok status PUBLISH_ID)") end
    if #argv > 1 then return nil, usage("takes one publish_id (got " .. #argv .. " arguments)") end
    local publish_id = argv[1]
    if not publish_id:match("^[%w_.~:%-]+$") or #publish_id > 128 then
        return nil, usage("'" .. publish_id:gsub("%c", "?"):sub(1, 40)
                          .. "' is not a publish_id (like v_pub_file~v2-1.123...)")
    end
    if opts["--wait-timeout"] and not opts["--wait"] then
        return nil, usage("--wait-timeout works only with --wait")
    end
    local ms, err = args.seconds(opts, "--wait-timeout")
    if err then return nil, err end
    return { publish_id = publish_id, wait_timeout_ms = ms }
end

function _M.run(ctx)
    local conn, opts, out = ctx.conn, ctx.opts, ctx.out
    local publish_id = ctx.checked.publish_id
    local open_id, err = config.pick_account(conn, opts["--account"])
    if not open_id then return nil, err end
    local progress = ctx.reporter()
    ctx.state.publish_id = publish_id
    local st
    st, err = tiktok.status({ connection = conn, account = open_id, publish_id = publish_id,
                              wait = opts["--wait"] == true, wait_timeout_ms = ctx.checked.wait_timeout_ms,
                              on_progress = progress.event })
    progress.finish()
    if not st then return nil, err end
    if st.status == "FAILED" then
        return nil, errors.from_fail_reason(st.fail_reason, publish_id)
    end
    if out.json_mode then
        out:json({ account = open_id, publish_id = publish_id, status = st.status,
                   post_ids = json.array(st.post_ids), uploaded_bytes = st.uploaded_bytes,
                   downloaded_bytes = st.downloaded_bytes })
        return true
    end
    out:say("publish_id:  " .. publish_id)
    out:say("status:      " .. tostring(st.status))
    if st.post_ids and #st.post_ids > 0 then out:say("post ids:    " .. concat(st.post_ids, ", ")) end
    if st.uploaded_bytes then out:say("uploaded:    " .. format("%d bytes", st.uploaded_bytes)) end
    if st.downloaded_bytes then out:say("downloaded:  " .. format("%d bytes", st.downloaded_bytes)) end
    return true
end

return _M
