-- Security properties that are not covered elsewhere: no redirect is
-- followed, upload_url must be https off loopback, no header injection,
-- TLS verification cannot be turned off.
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

describe("security", function()
    local sb, dir, clip, conn

    sandbox.use(function(s, d)
        sb, dir = s, d
        clip = media.mp4(dir, { seconds = 2 })
    end, { tmpdir = true, config = { rate_limits = { ["video.init"] = 1000, creator_info = 1000 } } })
    before_each(function()
        conn = tt.connect(sb)
        tt.account(conn)
    end)

    local function post()
        return tiktok.post({ connection = conn, video_file = clip, privacy = "SELF_ONLY" })
    end

    it("never follows a redirect from the API", function()
        sb:admin("POST", "/faults", { endpoint = "creator_info", status = 302, count = 3,
                                      headers = { Location = "https://evil.example/steal" }, body = "" })
        local res, err = post()
        assert.is_nil(res)
        assert.equal("http", err.code)
        assert.equal(302, err.http_status)
        assert.equal(0, tt.count(sb, "video.init"))
    end)

    it("never follows a redirect from the upload host", function()
        sb:admin("POST", "/faults", { endpoint = "upload.put", status = 307,
                                      headers = { Location = "https://evil.example/put" } })
        local res, err = post()
        assert.is_nil(res)
        assert.equal("upload_failed", err.code)
        assert.equal(307, err.http_status)
        assert.is_string(err.publish_id)
    end)

    it("refuses a plain-http upload_url off loopback", function()
        sb:admin("POST", "/faults", { endpoint = "video.init", status = 200, json = {
            data = { publish_id = "v_pub_file~v2-1.1", upload_url = "http://upload.evil.example/video/?x=1" },
            error = { code = "ok", message = "", log_id = "L" } } })
        local res, err = post()
        assert.is_nil(res)
        assert.equal("bad_response", err.code)
        assert.matches("https", err.message)
        assert.equal("v_pub_file~v2-1.1", err.publish_id)
        assert.equal(0, tt.count(sb, "upload.put"))
    end)

    it("refuses header injection at the transport", function()
        local s = tiktok.core.session({ connect_timeout_ms = 5000, timeout_ms = 5000, low_speed_ms = 0 })
        local res, kind = s:request({ url = sb.env.TIKTOK_API_BASE .. "/v2/user/info/",
                                      headers = { "Authorization: Bearer x\r\nX-Injected: 1" } })
        assert.is_nil(res)
        assert.equal("invalid", kind)
        res, kind = s:request({ url = sb.env.TIKTOK_API_BASE .. "/v2/user/info/\r\nX: 1" })
        assert.is_nil(res)
        assert.equal("invalid", kind)
        res, kind = s:upload({ url = sb.env.TIKTOK_API_BASE .. "/", path = clip, offset = 0, length = 10,
                               total = 10, content_type = "video/mp4\r\nX: 1", timeout_ms = 0 })
        assert.is_nil(res)
        assert.equal("invalid", kind)
        assert.equal(0, tt.count(sb, "user.info"))
        s:close()
    end)

    it("has no switch that turns TLS verification off", function()
        for _, k in ipairs({ "ssl_verify", "insecure", "verify", "tls_verify" }) do
            assert.has_error(function() tt.connect(sb, { [k] = true }) end)
        end
        local c = tt.connect(sb, { ca_file = false })
        local tok, err = c:client_token()
        assert.is_nil(tok)
        assert.equal("tls", err.code)
    end)

    it("compares the OAuth state in constant time (no early exit on the first byte)", function()
        -- functional check of the C comparison: equal only when every byte is
        assert.is_true(tiktok.core.consteq(("a"):rep(64), ("a"):rep(64)))
        assert.is_false(tiktok.core.consteq(("a"):rep(63) .. "b", ("a"):rep(64)))
        assert.is_false(tiktok.core.consteq("b" .. ("a"):rep(63), ("a"):rep(64)))
    end)

    it("only speaks http and https", function()
        local s = tiktok.core.session({ connect_timeout_ms = 5000, timeout_ms = 5000, low_speed_ms = 0 })
        local res, kind = s:request({ url = "file:///etc/passwd" })
        assert.is_nil(res)
        assert.equal("network", kind)
        res = s:request({ url = "gopher://127.0.0.1:70/" })
        assert.is_nil(res)
        s:close()
    end)
end)
