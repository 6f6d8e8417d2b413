-- tiktok post: post a video (file or URL) or photos.
--
-- The post's flags come from tiktok.fields (flag, metavar, help, repeat):
-- a boolean field is a switch, a "list" field a repeatable option, an
-- "enum" field a switch that picks the value its flag names (--inbox:
-- mode = "inbox"; without it the first value), other fields take a value
-- ("integer" ones a whole number). The command line adds --var, --no-wait,
-- --wait-timeout and --account. Everything TikTok's rules decide is left to
-- tiktok.post, which words its problems in these flags.
local tiktok = require "tiktok"
local fields = require "tiktok.fields"
local json = require "tiktok.json"
local template = require "tiktok.template"
local settings = require "tiktok.settings"
local args = require "tiktok.cli.args"
local config = require "tiktok.cli.config"
local output = require "tiktok.cli.output"
local jobs_cmd = require "tiktok.cli.jobs"

local ipairs, tostring, next = ipairs, tostring, next
local concat = table.concat

local _M = {
    summary = "post a video (file or URL) or photos",
    needs = "connection",
    text = [[
Checks the request against TikTok's rules and the creator's current settings
before anything is uploaded, then uploads the file in chunks (or lets TikTok
pull the URL, which must be under a prefix verified for the app) and waits
until TikTok reports PUBLISH_COMPLETE (or SEND_TO_USER_INBOX with --inbox).
The caption and URLs may use {{name}} variables filled with --var.
Privacy has no default: choose one of the levels `tiktok creator` lists
(]] .. concat(settings.PRIVACY_LEVELS, ", ") .. [[).
Until the app passes TikTok's audit, use SELF_ONLY on a private account.]],
}

-- The fields with a flag, and the media sources among them (one per post).
local FLAGGED, SOURCES = {}, {}
for _, f in ipairs(fields.list) do
    if f.flag then
        FLAGGED[#FLAGGED + 1] = f
        if f.source then SOURCES[#SOURCES + 1] = f end
    end
end

local EXTRA = {
    { flag = "--var", metavar = "NAME=VALUE", ["repeat"] = true,
      help = "a variable for the caption and URLs (repeatable; a.b=v nests)" },
    { flag = "--no-wait", help = "return once the upload is done, without waiting for TikTok" },
    { flag = "--wait-timeout", metavar = "SECONDS",
      help = string.format("how long to wait for a final status (default %d)",
                           tiktok.DEFAULTS.wait_timeout_ms / 1000) },
    { flag = "--account", metavar = "OPEN_ID", help = "the account (default: the only connected one)" },
    { flag = "--queue", help = "queue the post as a job for `tiktok worker` instead of posting now" },
    { flag = "--key", metavar = "KEY", help = "with --queue: an idempotency key (the same key is always one job)" },
    { flag = "--at", metavar = "TIME",
      help = "with --queue: post at TIME (epoch seconds, +10m / +2h from now, or 2026-12-06T14:00:00Z)" },
}

-- An "enum" field whose flag names one of its values is a switch (--inbox:
-- mode = "inbox"); any other enum takes its value (--relay always).
local function is_switch(f)
    if f.type == "boolean" then return true end
    if f.type ~= "enum" then return false end
    for _, value in ipairs(f.values) do
        if value == f.flag:sub(3) then return true end
    end
    return false
end

local options = {}
for _, f in ipairs(FLAGGED) do
    options[#options + 1] = { flag = f.flag, metavar = not is_switch(f) and f.metavar or nil, help = f.help,
                              ["repeat"] = f["repeat"] }
end
for _, o in ipairs(EXTRA) do options[#options + 1] = o end
_M.options = options

local function source_list(sep, last, with_metavar)
    local names = {}
    for i, f in ipairs(SOURCES) do
        names[i] = with_metavar and (f.flag .. " " .. f.metavar) or f.flag
    end
    return concat(names, sep, 1, #names - 1) .. last .. names[#names]
end
_M.usage = {
    "tiktok post (" .. source_list(" | ", " | ", true) .. " ...) --privacy LEVEL [options]",
    "tiktok post (" .. source_list(" | ", " | ", true) .. " ...) --inbox [--title T]",
    "tiktok post ... --queue [--key KEY] [--at TIME]",
}

local usage = output.usage

--- post.vars(list) -> vars | nil, err: --var NAME=VALUE ... (dotted names nest)
function _M.vars(list)
    local vars, seen = {}, {}
    for _, item in ipairs(list or {}) do
        local name, value = item:match("^([^=]*)=(.*)$")
        if not name then
            return nil, usage("--var takes NAME=VALUE, got '" .. item .. "'")
        end
        if seen[name] then return nil, usage("--var " .. name .. " is given more than once") end
        seen[name] = true
        local ok, why = template.set_var(vars, name, value)
        if not ok then return nil, usage("--var takes NAME=VALUE: " .. why) end
    end
    return vars
end

-- The value of one field from its flag; nil, err when it cannot be one.
local function field_value(f, opts)
    local v = opts[f.flag]
    if f.type == "boolean" then return v or nil end
    if f.type == "enum" and is_switch(f) then
        return v and f.flag:sub(3) or f.values[1]
    end
    if f.type == "enum" then
        if v == nil then return nil end
        for _, value in ipairs(f.values) do
            if value == v then return v end
        end
        return nil, usage(f.flag .. " takes one of " .. concat(f.values, ", ") .. ", got '"
                          .. tostring(v):gsub("%c", "?"):sub(1, 40) .. "'")
    end
    if f.type == "integer" then
        local n, err = args.whole(opts, f.flag, f.help)
        if err then return nil, err end
        return n
    end
    if v == "" and f.source then return nil, usage(f.flag .. " needs a " .. f.metavar:lower()) end
    return v
end

-- A positional argument that looks like what to post: the flag it needs.
local function positional_hint(arg)
    for _, f in ipairs(SOURCES) do
        local is_url = arg:match("^https?://") ~= nil
        if (f.metavar == "URL") == is_url then
            return "to post it, give " .. f.flag .. " " .. arg
        end
    end
end

--- post.check(opts, args) -> request | nil, err
-- Everything about the request that can be checked without TikTok.
function _M.check(opts, argv)
    local given = {}
    for _, f in ipairs(SOURCES) do
        if opts[f.flag] then given[#given + 1] = f.flag end
    end
    local ok, err = args.none(argv, #given == 0 and #argv == 1 and positional_hint(argv[1]) or nil)
    if not ok then return nil, err end
    if #given == 0 then return nil, usage("give what to post: " .. source_list(", ", " or ", true)) end
    if #given > 1 then
        return nil, usage("give only one of " .. source_list(", ", " and ") .. " (got "
                          .. concat(given, " and ") .. ")")
    end
    local req = { wait = not opts["--no-wait"], wording = "flags" }
    for _, f in ipairs(FLAGGED) do
        local v
        v, err = field_value(f, opts)
        if err then return nil, err end
        req[f.name] = v
    end
    if req.mode ~= "inbox" and not req.privacy then
        return nil, usage("--privacy LEVEL is required (TikTok's rules: no default). One of "
                          .. concat(settings.PRIVACY_LEVELS, ", ") .. "; `tiktok creator` shows the "
                          .. "levels this account may use")
    end
    req.vars, err = _M.vars(opts["--var"])
    if not req.vars then return nil, err end
    if opts["--no-wait"] and opts["--wait-timeout"] then
        return nil, usage("--wait-timeout has no use with --no-wait")
    end
    req.wait_timeout_ms, err = args.seconds(opts, "--wait-timeout")
    if err then return nil, err end
    return _M.check_queue(opts, req)
end

-- --queue and what goes with it.
function _M.check_queue(opts, req)
    if not opts["--queue"] then
        for _, flag in ipairs({ "--key", "--at" }) do
            if opts[flag] then return nil, usage(flag .. " works only with --queue") end
        end
        return req
    end
    for _, flag in ipairs({ "--no-wait", "--wait-timeout" }) do
        if opts[flag] then
            return nil, usage(flag .. " has no use with --queue (the worker follows the post to the end)")
        end
    end
    if opts["--key"] and (opts["--key"] == "" or #opts["--key"] > 256) then
        return nil, usage("--key takes 1 to 256 characters")
    end
    local at, err = args.time(opts, "--at", os.time())
    if err then return nil, err end
    req.queue = { key = opts["--key"], at = at }
    return req
end

local HEADLINES = {
    PUBLISH_COMPLETE = "Posted to TikTok.",
    SEND_TO_USER_INBOX = "Sent to the creator's TikTok inbox: the creator finishes the post in the app.",
}

local function print_result(out, res, open_id, nowait, title)
    if out.json_mode then
        out:json({ account = open_id, publish_id = res.publish_id, status = res.status,
                   post_ids = json.array(res.post_ids), privacy = res.privacy, caption = res.caption,
                   mode = res.mode, fail_reason = res.fail_reason, uploaded_bytes = res.uploaded_bytes,
                   downloaded_bytes = res.downloaded_bytes })
        return
    end
    local say = function(s) out:say(s) end
    say(HEADLINES[res.status]
        or ("Sent to TikTok; not waiting for the result (status " .. tostring(res.status) .. ")."))
    say("  publish_id:  " .. res.publish_id)
    say("  status:      " .. tostring(res.status))
    if res.post_ids and #res.post_ids > 0 then
        say("  post id" .. (#res.post_ids > 1 and "s: " or ":    ") .. concat(res.post_ids, ", "))
    elseif res.status == "PUBLISH_COMPLETE" then
        if res.privacy == "PUBLIC_TO_EVERYONE" then
            say("  post id:     not yet: TikTok gives it once moderation makes the post public;")
            say("               see `tiktok status " .. res.publish_id .. "` in a moment")
        else
            say("  post id:     none: TikTok gives post ids only for public posts")
        end
    end
    if res.privacy then say("  privacy:     " .. res.privacy) end
    if title then say("  title:       " .. title) end
    if res.caption and res.caption ~= "" then say("  caption:     " .. res.caption) end
    say("  account:     " .. open_id)
    if nowait then say("Follow it with: tiktok status " .. res.publish_id .. " --wait") end
end

-- The working folder, for a relative --file a worker elsewhere must find.
local function absolute(path)
    if path:sub(1, 1) == "/" then return path end
    local p = io.popen("pwd")
    local cwd = p and p:read("*l")
    if p then p:close() end
    if not cwd or cwd == "" then return path end
    return cwd .. "/" .. path:gsub("^%./", "")
end

-- --queue: the post becomes a job in the store (tiktok.jobs).
local function enqueue(ctx, req, open_id)
    local post = { account = open_id, wording = "flags" }
    for _, f in ipairs(FLAGGED) do post[f.name] = req[f.name] end
    if next(req.vars) ~= nil then post.vars = req.vars end
    if post.video_file then post.video_file = absolute(post.video_file) end
    local jobs = tiktok.jobs({ connection = ctx.conn })
    local existing = req.queue.key and jobs:get(req.queue.key)
    local job, err = jobs:enqueue({ key = req.queue.key, at = req.queue.at, post = post })
    if not job then return nil, err end
    local out = ctx.out
    if out.json_mode then
        out:json({ job = jobs_cmd.job_json(job), existing = existing and true or false })
        return true
    end
    out:say(existing and "This key already names a job; nothing new was queued:"
            or "Queued; `tiktok worker` posts it.")
    for _, line in ipairs(jobs_cmd.job_lines(job, os.time())) do out:say(line) end
    out:say("Follow it with: tiktok jobs " .. job.id)
    return true
end

function _M.run(ctx)
    local conn, opts, req = ctx.conn, ctx.opts, ctx.checked
    local open_id, err = config.pick_account(conn, opts["--account"])
    if not open_id then return nil, err end
    if req.queue then return enqueue(ctx, req, open_id) end
    req.connection = conn
    req.account = open_id
    local progress = ctx.reporter()
    req.on_progress = function(ev)
        if ev.publish_id then ctx.state.publish_id = ev.publish_id end
        progress.event(ev)
    end
    local res
    res, err = tiktok.post(req)
    progress.finish()
    if not res then return nil, err end
    print_result(ctx.out, res, open_id, opts["--no-wait"], opts["--title"])
    return true
end

return _M
