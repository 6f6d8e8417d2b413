-- tiktok connect: connect a TikTok account (Login Kit OAuth, with PKCE).
--
-- Step 1 writes the state and the PKCE code_verifier to a pending file next
-- to the account store (mode 0600; neither is printed) and prints the
-- authorize URL; step 2 (--callback URL, or --code and --state) checks the
-- state, sends the code and the verifier to TikTok and stores the tokens.
-- --approve does both against the local sandbox.
local tiktok = require "tiktok"
local core = require "tiktok.core"
local errors = require "tiktok.errors"
local json = require "tiktok.json"
local args = require "tiktok.cli.args"
local config = require "tiktok.cli.config"
local output = require "tiktok.cli.output"

local type, tostring = type, tostring
local concat = table.concat
local floor = math.floor

local _M = {
    summary = "connect a TikTok account (Login Kit OAuth)",
    needs = "connection",
    usage = {
        "tiktok connect [--no-pkce]",
        "tiktok connect --callback URL",
        "tiktok connect --code CODE --state STATE",
        "tiktok connect --approve [--username NAME]      (the local sandbox only)",
    },
    text = [[
Connecting takes two steps, because a person must approve in a browser:

  1. `tiktok connect` prints the redirect URI to register for your app (TikTok
     developer portal > Login Kit > Redirect URI, exactly as printed) and the
     authorize URL. Open the URL, sign in to the TikTok account and approve.
     The state and the PKCE verifier are kept in a small file next to the
     account store.
  2. TikTok sends the browser to the redirect URI with ?code=...&state=... in
     the address. Give that address back with --callback URL (or its two values
     with --code and --state). The tokens go into the account store; nothing
     secret is printed.

Against the local sandbox, --approve does both steps at once without a browser.]],
    options = {
        { flag = "--callback", metavar = "URL", help = "the address TikTok redirected the browser to (step 2)" },
        { flag = "--code", metavar = "CODE", help = "the code parameter of that address (step 2, with --state)" },
        { flag = "--state", metavar = "STATE", help = "the state parameter of that address (step 2, with --code)" },
        { flag = "--pkce", help = "use PKCE (the default; TikTok requires it on web authorize)" },
        { flag = "--no-pkce", help = "leave out PKCE (only for an app TikTok still lets in without it)" },
        { flag = "--approve", help = "approve on the local sandbox's consent page, without a browser" },
        { flag = "--username", metavar = "NAME", help = "with --approve: the sandbox user to sign in as "
          .. "(default TIKTOK_SANDBOX_USER)" },
    },
}

local usage = output.usage

function _M.check(opts, argv)
    local ok, err = args.none(argv)
    if not ok then return nil, err end
    local has_cb, has_code, has_state = opts["--callback"] ~= nil, opts["--code"] ~= nil, opts["--state"] ~= nil
    if opts["--approve"] and (has_cb or has_code or has_state) then
        return nil, usage("--approve does both steps; it cannot be combined with --callback, --code or --state")
    end
    if has_cb and (has_code or has_state) then
        return nil, usage("give either --callback URL or --code CODE --state STATE, not both")
    end
    if has_code ~= has_state then
        return nil, usage("--code and --state go together (both are in the callback address)")
    end
    if opts["--username"] and not opts["--approve"] then
        return nil, usage("--username works only with --approve (the local sandbox)")
    end
    if opts["--pkce"] and opts["--no-pkce"] then
        return nil, usage("give --pkce or --no-pkce, not both")
    end
    for _, flag in ipairs({ "--pkce", "--no-pkce" }) do
        if opts[flag] and (has_cb or has_code) then
            return nil, usage(flag .. " belongs to the first step (`tiktok connect " .. flag .. "`)")
        end
    end
    local url = opts["--callback"]
    if url and not url:find("?", 1, true) and not url:find("=", 1, true) then
        return nil, usage("--callback takes the whole address the browser was sent to "
                          .. "(https://...?code=...&state=...)")
    end
    return { pkce = not opts["--no-pkce"] }
end

-- Beside a file store; for a database store, in the default store's
-- folder, named after the store's URL (without its password).
local function pending_path(store)
    if store.path then return store.path .. ".pending" end
    local dir = config.default_store_path():match("^(.*)/[^/]*$") or "."
    return dir .. "/pending-" .. core.sha256_hex(store.label or ""):sub(1, 16) .. ".json"
end

-- Writes the pending file next to the store, under the store's lock: the
-- store makes its folder (0700) and refuses one others can write to.
local function write_pending(store, ppath, pending)
    local text = assert(json.encode(pending))
    if not store.path then
        local made, mkind, mmsg = core.mkdir_p(ppath:match("^(.*)/[^/]*$") or ".", 448)   -- 0700
        if not made then
            return nil, errors.from_core("cannot write the pending connection " .. ppath, mkind, mmsg, nil, nil,
                                         "store")
        end
    end
    local ok, kind, msg = store:locked(function() return core.write_file_atomic(ppath, text) end)
    if ok then return true end
    if errors.is(kind) then return nil, kind end
    return nil, errors.from_core("cannot write the pending connection " .. ppath, kind, msg, nil, nil, "store")
end

local function print_connected(ctx, acc)
    local out, conn = ctx.out, ctx.conn
    local name
    local info = conn:user_info(acc.open_id)
    if info then name = info.display_name end
    if out.json_mode then
        local j = output.account_json(acc)
        j.display_name = name
        out:json({ connected = j })
        return true
    end
    out:say("Connected TikTok account " .. acc.open_id .. (name and (" (" .. name .. ")") or ""))
    out:say("  scopes:         " .. concat(acc.scopes, ", "))
    out:say("  access token:   expires " .. output.when(acc.expires_at) .. "; refreshed automatically")
    out:say("  refresh token:  expires " .. output.when(acc.refresh_expires_at) .. "; connect again before then")
    return true
end

-- TikTok's ?error= in a callback, as an error (its code kept, cleaned).
local function callback_error(cb)
    local code = tostring(cb.error):gsub("[^%w_.%-]", "_"):sub(1, 64)
    local detail = cb.error_description and tostring(cb.error_description):gsub("%c", " "):sub(1, 300)
    return errors.new(code, nil, { detail = detail })
end

local function finish(ctx, cb)
    local conn, store = ctx.conn, ctx.store
    local ppath = pending_path(store)
    local text = core.read_file(ppath)
    local pending = text and json.decode(text)
    if type(pending) ~= "table" or type(pending.state) ~= "string" then
        return nil, errors.new("pending", "no connection is waiting to be finished (" .. ppath
                               .. " is missing or unreadable); run `tiktok connect` first", { class = "local" })
    end
    if pending.client_key ~= conn.opts.client_key or pending.redirect_uri ~= conn.opts.redirect_uri then
        return nil, usage("the pending connection was started with another client key or redirect URI; "
                          .. "run `tiktok connect` again")
    end
    if cb.error then
        os.remove(ppath)
        return nil, callback_error(cb)
    end
    if not cb.code or cb.code == "" then
        return nil, usage("the callback has no code parameter; give the whole address the browser was sent to")
    end
    local verifier = type(pending.code_verifier) == "string" and pending.code_verifier or nil
    local acc, err = conn:exchange({ code = cb.code, state = cb.state or "", expected_state = pending.state,
                                     code_verifier = verifier })
    if not acc then
        if err.code == "state_mismatch" then
            err.message = "the state in the callback does not match the connection started by `tiktok "
                          .. "connect`; use the address from the latest authorize URL, or start again"
        end
        return nil, err
    end
    os.remove(ppath)
    return print_connected(ctx, acc)
end

local function approve(ctx)
    local conn = ctx.conn
    local url, state, verifier = conn:authorize_url({ pkce = ctx.checked.pkce })
    local cb, err = conn:sandbox_approve(url, { username = ctx.opts["--username"] or ctx.own.sandbox_user })
    if not cb then return nil, err end
    if cb.error then return nil, callback_error(cb) end
    local acc
    acc, err = conn:exchange({ code = cb.code or "", state = cb.state or "", expected_state = state,
                               code_verifier = verifier })
    if not acc then return nil, err end
    return print_connected(ctx, acc)
end

-- Step 1: the pending file, then what to do in the browser.
local function start(ctx)
    local conn, store, out = ctx.conn, ctx.store, ctx.out
    local url, state, verifier = conn:authorize_url({ pkce = ctx.checked.pkce })
    local ppath = pending_path(store)
    local ok, err = write_pending(store, ppath, {
        version = 1, state = state, code_verifier = verifier, client_key = conn.opts.client_key,
        redirect_uri = conn.opts.redirect_uri, created_at = floor(core.now_ms() / 1000),
    })
    if not ok then return nil, err end
    if out.json_mode then
        out:json({ authorize_url = url, redirect_uri = conn.opts.redirect_uri, state = state,
                   pending_file = ppath, next = "tiktok connect --callback URL" })
        return true
    end
    local say = function(s) out:say(s) end
    say("1. Register this redirect URI for the app in the TikTok developer portal")
    say("   (Login Kit > Redirect URI), exactly as written:")
    say("")
    say("     " .. conn.opts.redirect_uri)
    say("")
    say("2. Open this URL in a browser, sign in to the TikTok account to connect, and approve:")
    say("")
    say("     " .. url)
    say("")
    say("3. TikTok then sends the browser to the redirect URI with ?code=...&state=... in")
    say("   the address bar. Copy that whole address and run:")
    say("")
    say("     tiktok connect --callback 'ADDRESS'")
    say("")
    say("   (the state is kept in " .. ppath .. " until then)")
    return true
end

function _M.run(ctx)
    local opts = ctx.opts
    if opts["--approve"] then return approve(ctx) end
    if opts["--callback"] then return finish(ctx, tiktok.parse_callback(opts["--callback"])) end
    if opts["--code"] then return finish(ctx, { code = opts["--code"], state = opts["--state"] }) end
    return start(ctx)
end

return _M
