-- Bad calls of the public API: programmer errors raise with a clear message,
-- bad data returns nil, err with a code; nothing crashes or hangs.
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

local GOOD = { client_key = "k", client_secret = "s", redirect_uri = "https://app.example/cb",
               store = tiktok.store.memory() }

local function with(over)
    local o = {}
    for k, v in pairs(GOOD) do o[k] = v end
    for k, v in pairs(over) do if v == "NIL" then o[k] = nil else o[k] = v end end
    return o
end

describe("tiktok.connect with bad input", function()
    local raises = {
        { "not a table", "x", "options table" },
        { "unknown option", with({ client_kye = "k" }), "unknown option 'client_kye'" },
        { "number key", with({ client_key = 12 }), "client_key' must be a string" },
        { "boolean as string", with({ audited = "no" }), "audited' must be a boolean" },
        { "negative timeout", with({ timeout_ms = -1 }), "non%-negative integer" },
        { "fractional timeout", with({ timeout_ms = 1.5 }), "non%-negative integer" },
        { "store without methods", with({ store = {} }), "store lacks the method" },
    }
    for _, c in ipairs(raises) do
        it("raises: " .. c[1], function()
            local ok, msg = pcall(tiktok.connect, c[2])
            assert.is_false(ok)
            assert.matches(c[3], msg)
        end)
    end

    local fails = {
        { "missing client_key", with({ client_key = "NIL" }), "client_key is required" },
        { "empty secret", with({ client_secret = "" }), "client_secret is required" },
        { "redirect with query", with({ redirect_uri = "https://app.example/cb?x=1" }), "query" },
        { "redirect with fragment", with({ redirect_uri = "https://app.example/cb#x" }), "fragment" },
        { "http redirect", with({ redirect_uri = "http://app.example/cb" }), "https" },
        { "relative redirect", with({ redirect_uri = "/cb" }), "absolute" },
        { "redirect too long", with({ redirect_uri = "https://app.example/" .. ("a"):rep(600) }), "512" },
        { "redirect with CRLF", with({ redirect_uri = "https://app.example/cb\r\nX: y" }), "control" },
        { "ftp api_base", with({ api_base = "ftp://open.tiktokapis.com" }), "http" },
        { "http api_base off loopback", with({ api_base = "http://open.tiktokapis.com" }), "https" },
        { "api_base with credentials", with({ api_base = "https://u:p@open.tiktokapis.com" }), "credentials" },
        { "unknown scope", with({ scopes = { "video.publish", "video.delete" } }), "not a TikTok scope" },
        { "no scopes", with({ scopes = {} }), "at least one" },
        { "chunk too small", with({ chunk_size = 1000 }), "chunk_size" },
        { "missing ca_file", with({ ca_file = "/nonexistent/ca.pem" }), "ca_file" },
        { "NUL in key", with({ client_key = "a\0b" }), "control" },
        { "huge key", with({ client_key = ("k"):rep(5000) }), "too long" },
    }
    for _, c in ipairs(fails) do
        it("returns nil, err: " .. c[1], function()
            local conn, err = tiktok.connect(c[2])
            assert.is_nil(conn)
            assert.equal("invalid_argument", err.code)
            assert.matches(c[3], err.message)
            assert.not_matches("s", tostring(err):match("client_secret=(%S+)") or "")
        end)
    end

    it("allows http only for loopback", function()
        assert(tiktok.connect(with({ redirect_uri = "http://127.0.0.1:8080/cb", api_base = "http://localhost:1" })))
    end)
end)

describe("tiktok.post and tiktok.status with bad input", function()
    local sb, dir, conn, clip

    sandbox.use(function(s, d)
        sb, dir = s, d
        sb:configure({ rate_limits = { creator_info = 1000 } })
        clip = media.mp4(dir, { seconds = 2 })
        conn = tt.connect(sb)
        tt.account(conn)
    end, { tmpdir = true, reset = false })
    -- Options are built when the test runs (conn and clip exist only then).
    local function p(over)
        return function()
            local o = { connection = conn, privacy = "SELF_ONLY", video_file = clip }
            for k, v in pairs(over) do if v == "NIL" then o[k] = nil else o[k] = v end end
            return o
        end
    end

    local raises = {
        { "no table", function() return nil end, "options table" },
        { "unknown option", p({ privcy = "SELF_ONLY" }), "unknown option 'privcy'" },
        { "no connection", p({ connection = "NIL" }), "connection must be" },
        { "fake connection", p({ connection = {} }), "connection must be" },
        { "as with unknown key", p({ as = { name = "x" } }), "unknown option 'name'" },
        { "vars not a table", p({ vars = "x" }), "vars' must be a table" },
    }
    for _, c in ipairs(raises) do
        it("raises: " .. c[1], function()
            local ok, msg = pcall(tiktok.post, c[2]())
            assert.is_false(ok)
            assert.matches(c[3], msg)
        end)
    end

    -- The post's fields are user data: a wrong type or value is a problem
    -- in err.problems, as tiktok.settings.validate reports it (one convention).
    local fails = {
        { "string boolean", p({ comments = "yes" }), "invalid_settings" },
        { "bad mode", p({ mode = "draft" }), "invalid_settings" },
        { "photo url not a string", p({ video_file = "NIL", photo_urls = { 1 } }), "invalid_settings" },
        { "negative cover", p({ cover_ms = -5 }), "invalid_settings" },
        { "two sources", p({ video_url = "https://a.example/x.mp4" }), "invalid_settings" },
        { "no source", p({ video_file = "NIL" }), "invalid_settings" },
        { "no privacy", p({ privacy = "NIL" }), "invalid_settings" },
        { "unknown privacy", p({ privacy = "PRIVATE" }), "invalid_settings" },
        { "empty privacy", p({ privacy = "" }), "invalid_settings" },
        { "missing variable", p({ caption = "{{a}} {{b}}" }), "invalid_settings" },
        { "broken template", p({ caption = "{{a" }), "invalid_settings" },
        { "caption over 2200 UTF-16 units", p({ caption = ("😀"):rep(1101) }), "invalid_settings" },
        { "invalid UTF-8 caption", p({ caption = "bad \255 byte" }), "invalid_settings" },
        { "NUL in caption", p({ caption = "a\0b" }), "invalid_settings" },
        { "non-https URL", p({ video_file = "NIL", video_url = "ftp://a.example/x.mp4" }), "invalid_settings" },
        { "http URL", p({ video_file = "NIL", video_url = "http://a.example/x.mp4" }), "invalid_settings" },
        { "URL with CRLF", p({ video_file = "NIL", video_url = "https://a.example/x.mp4\r\nX: 1" }),
          "invalid_settings" },
        { "36 photos", p({ video_file = "NIL", photo_urls = (function()
            local t = {}
            for i = 1, 36 do t[i] = "https://a.example/" .. i .. ".jpg" end
            return t
        end)() }), "invalid_settings" },
        { "missing file", p({ video_file = "/nonexistent/x.mp4" }), "file" },
        { "a directory", p({ video_file = "/tmp" }), "file" },
        { "unknown account", p({ account = "nope" }), "not_found" },
        { "huge caption", p({ caption = ("x"):rep(1000000) }), "invalid_settings" },
    }
    for _, c in ipairs(fails) do
        it("returns nil, err: " .. c[1], function()
            local res, err = tiktok.post(c[2]())
            assert.is_nil(res)
            assert.equal(c[3], err.code)
            assert.is_string(err.message)
            assert.is_boolean(err.retryable)
            assert.is_string(tostring(err))
        end)
    end

    it("status refuses a missing or oversized publish_id", function()
        for _, id in ipairs({ "", ("x"):rep(200) }) do
            local res, err = tiktok.status({ connection = conn, publish_id = id })
            assert.is_nil(res)
            assert.equal("invalid_argument", err.code)
        end
        assert.has_error(function() tiktok.status({ connection = conn, publish_id = 5 }) end)
        assert.has_error(function() tiktok.status({ connection = conn, publish_id = "x", bogus = 1 }) end)
    end)

    it("conn methods raise on bad option tables", function()
        assert.has_error(function() conn:authorize_url({ pkce = "yes" }) end)
        assert.has_error(function() conn:authorize_url({ state = "" }) end)
        assert.has_error(function() conn:exchange("code") end)
        assert.has_error(function() conn:user_info("x", { fields = { "a,b" } }) end)
        assert.has_error(function() tiktok.parse_callback(nil) end)
        local acc, err = conn:account("")
        assert.is_nil(acc)
        assert.equal("invalid_argument", err.code)
    end)
end)
