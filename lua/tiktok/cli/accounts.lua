-- tiktok accounts: the accounts in the store, read without the app's
-- credentials and without a request to TikTok.
local json = require "tiktok.json"
local args = require "tiktok.cli.args"
local config = require "tiktok.cli.config"
local output = require "tiktok.cli.output"

local ipairs = ipairs
local concat = table.concat
local format = string.format

local _M = {
    summary = "list the connected accounts (from the store; no request to TikTok)",
    usage = { "tiktok accounts" },
    text = [[
Needs only TIKTOK_STORE (or the default store); with TIKTOK_CLIENT_KEY set,
only that app's accounts are listed.]],
    options = {},
}

function _M.check(_, argv)
    return args.none(argv)
end

function _M.run(ctx)
    local out = ctx.out
    local list, store = config.stored_accounts(ctx.files, ctx)
    if not list then return nil, store end
    if out.json_mode then
        local items = json.array()
        for i, a in ipairs(list) do items[i] = output.account_json(a) end
        out:json({ accounts = items, store = store.label })
        return true
    end
    if #list == 0 then
        out:say("No TikTok account is connected (store: " .. store.label .. "). Run `tiktok connect`.")
        return true
    end
    out:say(format("%d connected account%s (store: %s):", #list, #list == 1 and "" or "s", store.label))
    for _, a in ipairs(list) do
        out:say("")
        out:say("  " .. a.open_id)
        out:say("    scopes:         " .. concat(a.scopes, ", "))
        out:say("    access token:   expires " .. output.when(a.expires_at))
        out:say("    refresh token:  expires " .. output.when(a.refresh_expires_at))
    end
    return true
end

return _M
