-- More than 200 generated bad calls of the public API. Each one either
-- raises with a message naming the function, or returns nil, err with a
-- code and a sentence; none crashes, hangs or succeeds.
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

local CONNECT_TYPES = {
    client_key = "string", client_secret = "string", redirect_uri = "string", scopes = "table",
    store = "table", api_base = "string", auth_base = "string", ca_file = "string",
    timeout_ms = "integer", connect_timeout_ms = "integer", low_speed_ms = "integer",
    refresh_skew_ms = "integer", audited = "boolean", verified_prefixes = "table", chunk_size = "integer",
    upload_retries = "integer", chunk_timeout_ms = "integer", wait_timeout_ms = "integer", poll_ms = "integer",
    rate_limits = "table", log = "function", thread_pool = "string", thread_pool_size = "integer",
}
local POST_TYPES = {
    account = "string", as = "table", video_url = "string", video_file = "string", photo_urls = "table",
    caption = "string", title = "string", vars = "table", privacy = "string", comments = "boolean",
    duets = "boolean", stitches = "boolean", brand_own = "boolean", brand_third_party = "boolean",
    ai_generated = "boolean", auto_add_music = "boolean", cover_ms = "integer", photo_cover_index = "integer",
    mode = "string", wait = "boolean", on_progress = "function", on_publish = "function",
    wait_timeout_ms = "integer", detach = "boolean",
}
local WRONG = {
    string = { 42, true, {} }, table = { "x", 7, false }, boolean = { "true", 1, {} },
    integer = { "10", -1, 1.5, 2 ^ 60 }, ["function"] = { "f", {}, 3 },
}
local NASTY = {
    { "CR/LF", "a\r\nInjected: 1" }, { "NUL", "a\0b" }, { "huge", ("x"):rep(3 * 1024 * 1024) },
    { "invalid UTF-8", "caf\233 \192\128" }, { "empty", "" },
}

local BASE = { client_key = "k", client_secret = "s", redirect_uri = "https://app.example/cb" }

local function expect_raise_or_err(fn, name)
    local ok, r1, r2 = pcall(fn)
    if not ok then
        assert.is_string(r1)
        assert.truthy(r1:match("tiktok") or r1:match("conn:"), r1)
        return "raised"
    end
    assert.is_nil(r1, name .. " succeeded")
    assert.is_table(r2, name)
    assert.is_string(r2.code, name)
    assert.is_true(#r2.message > 10, name)
    assert.is_true(#tostring(r2) < 4000, name .. ": error text is not bounded")
    return "nil, err"
end

describe("generated bad calls", function()
    local sb, dir, conn, clip
    local count = { raised = 0, ["nil, err"] = 0 }

    sandbox.use(function(s, d)
        sb, dir = s, d
        sb:configure({ rate_limits = { creator_info = 100000, ["video.init"] = 100000 } })
        clip = media.mp4(dir, { seconds = 2 })
        conn = tt.connect(sb)
        tt.account(conn)
    end, { tmpdir = true, reset = false })
    lazy_teardown(function()
        io.write(("\nbad calls: %d raised, %d returned nil, err, 0 crashed\n"):format(count.raised, count["nil, err"]))
    end)

    for key, t in pairs(CONNECT_TYPES) do
        for i, v in ipairs(WRONG[t]) do
            it("connect " .. key .. " wrong #" .. i, function()
                local o = {}
                for k, x in pairs(BASE) do o[k] = x end
                o[key] = v
                local r = expect_raise_or_err(function() return tiktok.connect(o) end, key)
                count[r] = count[r] + 1
            end)
        end
    end
    for _, key in ipairs({ "client_key", "client_secret", "redirect_uri", "api_base", "auth_base" }) do
        for _, n in ipairs(NASTY) do
            it("connect " .. key .. " " .. n[1], function()
                local o = {}
                for k, x in pairs(BASE) do o[k] = x end
                o[key] = n[2]
                local r = expect_raise_or_err(function() return tiktok.connect(o) end, key)
                count[r] = count[r] + 1
            end)
        end
    end
    for key, t in pairs(POST_TYPES) do
        for i, v in ipairs(WRONG[t]) do
            it("post " .. key .. " wrong #" .. i, function()
                local o = { connection = conn, video_file = clip, privacy = "SELF_ONLY" }
                o[key] = v
                local r = expect_raise_or_err(function() return tiktok.post(o) end, key)
                count[r] = count[r] + 1
            end)
        end
    end
    for _, key in ipairs({ "caption", "title", "video_url", "account", "privacy", "video_file" }) do
        for _, n in ipairs(NASTY) do
            -- a caption may span lines or be empty (TikTok allows both)
            if not (key == "caption" and (n[1] == "CR/LF" or n[1] == "empty")) then
            it("post " .. key .. " " .. n[1], function()
                local o = { connection = conn, privacy = "SELF_ONLY" }
                if key ~= "video_url" then o.video_file = clip end
                if key == "title" then o.video_file, o.photo_urls = nil, { sb.env.TIKTOK_MEDIA_BASE .. "x.jpg" } end
                o[key] = n[2]
                local r = expect_raise_or_err(function() return tiktok.post(o) end, key)
                count[r] = count[r] + 1
            end)
            end
        end
    end
    it("keeps a multi-line caption and allows an empty one", function()
        local res = assert(tiktok.post({ connection = conn, video_file = clip, privacy = "SELF_ONLY",
                                         caption = "line one\nline two #tag", wait = false }))
        assert.equal("line one\nline two #tag", sb:post(res.publish_id).post_info.title)
        assert(tiktok.post({ connection = conn, video_file = clip, privacy = "SELF_ONLY", caption = "", wait = false }))
    end)
    local METHODS = { "account", "refresh", "revoke", "user_info", "creator_info" }
    for _, m in ipairs(METHODS) do
        for i, v in ipairs({ 42, {}, "", "no-such-open-id", ("x"):rep(100000), "a\r\nb" }) do
            it("conn:" .. m .. " bad open_id #" .. i, function()
                local r = expect_raise_or_err(function() return conn[m](conn, v) end, m)
                count[r] = count[r] + 1
            end)
        end
        it("conn:" .. m .. " unknown option", function()
            local r = expect_raise_or_err(function() return conn[m](conn, "x", { bogus = true }) end, m)
            count[r] = count[r] + 1
        end)
    end
    for i, v in ipairs({ 1, "x", { publish_id = 5 }, { publish_id = "" }, { publish_id = "a\0b" } }) do
        it("status bad #" .. i, function()
            local o = type(v) == "table" and v or nil
            if o then o.connection = conn end
            local r = expect_raise_or_err(function() return tiktok.status(o or v) end, "status")
            count[r] = count[r] + 1
        end)
    end
end)
