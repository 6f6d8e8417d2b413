-- Unit specs for tiktok.errors: the code table, the error object, the three
-- mappers (API envelope, OAuth, transport, fail_reason) and redaction.

local before = {}
for k in pairs(_G) do
    before[k] = true
end
local errors = require "tiktok.errors"

-- Every code the reference documents, by where it comes from.
local OAUTH = {
    "access_denied", "invalid_client", "invalid_grant", "invalid_request",
    "invalid_scope", "unauthorized_client", "unsupported_grant_type",
    "unsupported_response_type", "server_error", "temporarily_unavailable",
}
local API = {
    "access_token_invalid", "internal_error", "invalid_file_upload",
    "invalid_params", "invalid_param", "rate_limit_exceeded",
    "scope_not_authorized", "scope_permission_missed",
    "spam_risk_too_many_posts", "spam_risk_user_banned_from_posting",
    "spam_risk_too_many_pending_share", "reached_active_user_cap",
    "unaudited_client_can_only_post_to_private_accounts",
    "url_ownership_unverified", "privacy_level_option_mismatch",
    "app_version_check_failed", "token_not_authorized_for_specified_publish_id",
    "publish_not_cancellable", "invalid_publish_id",
}
local FAIL_REASONS = {
    file_format_check_failed = false, duration_check_failed = false,
    frame_rate_check_failed = false, picture_size_check_failed = false,
    internal = true, video_pull_failed = true, photo_pull_failed = true,
    publish_cancelled = false, auth_removed = false,
    spam_risk_too_many_posts = false, spam_risk_user_banned_from_posting = false,
    spam_risk_text = false, spam_risk = false,
}
local LOCAL = {
    "invalid_settings", "invalid_argument", "missing_variable",
    "invalid_template", "state_mismatch", "forbidden", "not_found",
    "reauthorize", "timeout", "tls", "network", "http", "bad_response",
    "upload_failed", "file", "unsupported_media", "ambiguous", "store", "busy",
    "publish_failed",
}

local SECRET_TOKEN = "act.Zx9Secret!AccessToken1234"
local SECRET_CODE = "code-XYZ_987"
local SECRET_CLIENT = "cs_client_secret_value"
local SECRETS = { SECRET_TOKEN, SECRET_CODE, SECRET_CLIENT }

local function assert_clean(err)
    local s = tostring(err)
    for _, secret in ipairs(SECRETS) do
        assert.is_nil(s:find(secret, 1, true), "secret leaked: " .. s)
        for k, v in pairs(err) do
            if type(v) == "string" then
                assert.is_nil(v:find(secret, 1, true), "secret leaked in " .. k)
            end
        end
    end
end


describe("tiktok.errors", function()

    it("adds no globals when required", function()
        for k in pairs(_G) do
            assert.is_true(before[k] ~= nil, "new global: " .. tostring(k))
        end
    end)

    describe("codes", function()
        local groups = { OAUTH = OAUTH, API = API, LOCAL = LOCAL }
        for group, list in pairs(groups) do
            for _, code in ipairs(list) do
                it(group .. " code " .. code .. " is in the table", function()
                    assert.is_table(errors.codes[code])
                end)
            end
        end
        for reason in pairs(FAIL_REASONS) do
            it("fail_reason " .. reason .. " is in the table", function()
                assert.is_table(errors.codes[reason])
            end)
        end

        it("every entry has a sentence and a boolean retryable", function()
            local n = 0
            for code, entry in pairs(errors.codes) do
                n = n + 1
                assert.is_string(entry.message, code)
                assert.is_true(#entry.message >= 20, code .. " message too short")
                assert.is_boolean(entry.retryable, code)
                if entry.reauth ~= nil then
                    assert.is_true(entry.reauth, code)
                end
                if entry.retry_after ~= nil then
                    assert.is_number(entry.retry_after, code)
                    assert.is_true(entry.retry_after > 0, code)
                end
                -- a code's own message never names no-op advice like
                -- "disable verification"
                assert.is_nil(entry.message:lower():find("verify=false", 1, true))
            end
            assert.is_true(n >= #OAUTH + #API + #LOCAL)
        end)

        it("fail reasons have the documented retryable flag", function()
            for reason, retryable in pairs(FAIL_REASONS) do
                assert.are.equal(retryable, errors.codes[reason].retryable, reason)
            end
        end)

        local retryable = {
            rate_limit_exceeded = true, internal_error = true, server_error = true,
            temporarily_unavailable = true, timeout = true, network = true,
            busy = true,
            invalid_grant = false, spam_risk_too_many_posts = false,
            spam_risk_too_many_pending_share = false, reached_active_user_cap = false,
            unaudited_client_can_only_post_to_private_accounts = false,
            url_ownership_unverified = false, tls = false, ambiguous = false,
            invalid_settings = false, access_denied = false,
        }
        for code, want in pairs(retryable) do
            it(code .. " has retryable = " .. tostring(want), function()
                assert.are.equal(want, errors.codes[code].retryable)
            end)
        end

        it("daily caps carry retry_after = 86400", function()
            for _, code in ipairs({ "spam_risk_too_many_posts",
                                    "spam_risk_too_many_pending_share",
                                    "reached_active_user_cap" }) do
                assert.are.equal(86400, errors.codes[code].retry_after, code)
            end
        end)

        it("reconnect codes are marked reauth", function()
            for _, code in ipairs({ "invalid_grant", "reauthorize",
                                    "scope_not_authorized", "auth_removed" }) do
                assert.is_true(errors.codes[code].reauth, code)
            end
            assert.is_nil(errors.codes.internal_error.reauth)
        end)

        it("gives the fixes the docs call for", function()
            local m = errors.codes.unaudited_client_can_only_post_to_private_accounts
                .message
            assert.truthy(m:find("ACCOUNT must be set to private", 1, true))
            assert.truthy(m:find("SELF_ONLY", 1, true))
            m = errors.codes.url_ownership_unverified.message
            assert.truthy(m:find("Manage URL properties", 1, true))
            assert.truthy(m:find("video_file", 1, true))
            m = errors.codes.tls.message
            assert.truthy(m:find("ca_file", 1, true))
            assert.is_nil(m:lower():find("disable", 1, true))
            assert.is_nil(m:lower():find("insecure", 1, true))
            assert.truthy(errors.codes.invalid_grant.message:find("reconnect", 1,
                                                                   true))
        end)
    end)

    describe("new()", function()
        it("makes an error object with the table's message and flags", function()
            local err = errors.new("rate_limit_exceeded")
            assert.is_true(errors.is(err))
            assert.are.equal("rate_limit_exceeded", err.code)
            assert.are.equal(errors.codes.rate_limit_exceeded.message, err.message)
            assert.is_true(err.retryable)
            assert.are.equal(60, err.retry_after)
        end)

        it("keeps the given message and fields", function()
            local problems = { "a", "b" }
            local err = errors.new("invalid_settings", "fix it", {
                problems = problems, http_status = 400, log_id = "L",
                publish_id = "v_pub_url~1", detail = "d",
            })
            assert.are.equal("fix it", err.message)
            assert.are.same({ "a", "b" }, err.problems)
            problems[1] = "changed"
            assert.are.equal("a", err.problems[1], "problems must be copied")
            assert.are.equal(400, err.http_status)
            assert.is_false(err.retryable)
        end)

        it("lets fields override retryable, and it stays boolean", function()
            assert.is_true(errors.new("http", nil, { retryable = true }).retryable)
            assert.is_false(errors.new("unknown_thing").retryable)
            assert.is_false(errors.new("internal_error", nil,
                                       { retryable = false }).retryable)
        end)

        it("formats tostring with status, log_id and publish_id", function()
            local err = errors.new("spam_risk_too_many_posts", "msg", {
                http_status = 403, log_id = "X", publish_id = "Y",
            })
            assert.are.equal(
                "tiktok: spam_risk_too_many_posts: msg (http 403, log_id X, publish_id Y)",
                tostring(err))
            assert.are.equal("tiktok: busy: m", tostring(errors.new("busy", "m")))
        end)

        it("shows detail in tostring unless the message already has it", function()
            local err = errors.new("invalid_param", "m", { detail = "bad title" })
            assert.are.equal('tiktok: invalid_param: m (detail "bad title")',
                             tostring(err))
            err = errors.new("x", "m: bad title", { detail = "bad title" })
            assert.are.equal("tiktok: x: m: bad title", tostring(err))
        end)

        local bad_calls = {
            { "code not a string", function() errors.new(42) end },
            { "empty code", function() errors.new("") end },
            { "message not a string", function() errors.new("x", {}) end },
            { "fields not a table", function() errors.new("x", nil, "f") end },
            { "unknown field", function() errors.new("x", nil, { logid = "1" }) end },
            { "wrong field type", function() errors.new("x", nil,
                                                        { retryable = "yes" }) end },
            { "bad http_status", function() errors.new("x", nil,
                                                      { http_status = 4.5 }) end },
            { "non-string problem", function() errors.new("x", nil,
                                                         { problems = { 1 } }) end },
        }
        for _, case in ipairs(bad_calls) do
            it("raises on " .. case[1], function()
                assert.has_error(case[2])
            end)
        end

        it("is() is false for other values", function()
            assert.is_false(errors.is({ code = "x", message = "y" }))
            assert.is_false(errors.is("tiktok: x"))
            assert.is_false(errors.is(nil))
        end)
    end)

    describe("from_api()", function()
        local function env(code, message, log_id)
            return { data = {}, error = { code = code, message = message,
                                          log_id = log_id } }
        end

        it("returns nil for 2xx with code ok", function()
            assert.is_nil(errors.from_api(200, env("ok", "", "L")))
            assert.is_nil(errors.from_api(200, { error = { code = "ok" } }))
            assert.is_nil(errors.from_api(200, { code = "ok", message = "" }))
            assert.is_nil(errors.from_api(201, env("ok")))
        end)

        local cases = {
            -- status, body, code, retryable, extra checks
            { 403, env("spam_risk_too_many_posts", "cap", "L1"),
              "spam_risk_too_many_posts", false, { retry_after = 86400,
                                                   log_id = "L1", detail = "cap" } },
            { 200, env("spam_risk_too_many_posts", "cap"),
              "spam_risk_too_many_posts", false, { http_status = 200 } },
            { 200, env("spam_risk_user_banned_from_posting"),
              "spam_risk_user_banned_from_posting", false, {} },
            { 200, env("reached_active_user_cap"), "reached_active_user_cap", false,
              { retry_after = 86400 } },
            { 400, env("invalid_param", "chunk size invalid"), "invalid_param",
              false, { detail = "chunk size invalid" } },
            { 400, env("invalid_params"), "invalid_params", false, {} },
            { 401, env("access_token_invalid"), "access_token_invalid", false, {} },
            { 429, env("rate_limit_exceeded"), "rate_limit_exceeded", true,
              { retry_after = 60 } },
            { 500, env("internal_error"), "internal_error", true, {} },
            { 403, env("url_ownership_unverified"), "url_ownership_unverified",
              false, {} },
            { 403, env("unaudited_client_can_only_post_to_private_accounts"),
              "unaudited_client_can_only_post_to_private_accounts", false, {} },
            { 403, env("privacy_level_option_mismatch"),
              "privacy_level_option_mismatch", false, {} },
            { 400, env("app_version_check_failed"), "app_version_check_failed",
              false, {} },
            { 400, env("invalid_publish_id"), "invalid_publish_id", false, {} },
            { 400, env("token_not_authorized_for_specified_publish_id"),
              "token_not_authorized_for_specified_publish_id", false, {} },
            { 400, env("publish_not_cancellable"), "publish_not_cancellable",
              false, {} },
            { 403, env("spam_risk_too_many_pending_share"),
              "spam_risk_too_many_pending_share", false, { retry_after = 86400 } },
            { 400, env("scope_permission_missed"), "scope_permission_missed",
              false, {} },
            -- bare shape, as on the generic error page
            { 401, { code = "access_token_invalid", message = "refresh",
                     log_id = "20220829194722CBE87ED59D524E727021" },
              "access_token_invalid", false,
              { log_id = "20220829194722CBE87ED59D524E727021" } },
            -- 5xx without a code
            { 502, nil, "internal_error", true, { http_status = 502 } },
            { 503, { data = {} }, "internal_error", true, {} },
            { 500, { error = { code = "", message = "" } }, "internal_error", true,
              {} },
            -- 2xx without an error object
            { 200, { data = { publish_id = "x" } }, "bad_response", false, {} },
            { 200, nil, "bad_response", false, {} },
            { 200, "not a table", "bad_response", false, {} },
            { 200, { error = { message = "no code" } }, "bad_response", false, {} },
            -- other statuses without a parseable body
            { 404, nil, "http", false, { http_status = 404 } },
            { 302, nil, "http", false, {} },
            { 429, nil, "rate_limit_exceeded", true, {} },
            -- non-2xx with code ok is not a success
            { 500, env("ok"), "internal_error", true, {} },
            { 400, env("ok"), "http", false, {} },
            -- unknown codes keep their code
            { 400, env("brand_new_code", "something new"), "brand_new_code", false,
              {} },
            { 503, env("brand_new_code", "later"), "brand_new_code", true, {} },
            { 429, env("slow_down_code"), "slow_down_code", true, {} },
            { 200, env("another_new_code"), "another_new_code", false, {} },
            -- OAuth shape arriving at a v2 endpoint
            { 401, { error = "invalid_grant", error_description = "expired" },
              "invalid_grant", false, { reauth = true, detail = "expired" } },
            -- logid spelling from the reference tables
            { 400, { error = { code = "invalid_param", logid = "LID" } },
              "invalid_param", false, { log_id = "LID" } },
            -- numeric log_id
            { 400, { error = { code = "invalid_param", log_id = 123456 } },
              "invalid_param", false, { log_id = "123456" } },
        }
        for i, c in ipairs(cases) do
            local status, body, code, retryable, extra = c[1], c[2], c[3], c[4], c[5]
            it(("case %d: HTTP %d -> %s"):format(i, status, code), function()
                local err = errors.from_api(status, body, "/v2/post/publish/video/init/")
                assert.is_true(errors.is(err))
                assert.are.equal(code, err.code)
                assert.are.equal(retryable, err.retryable)
                assert.are.equal(status, err.http_status)
                assert.is_string(err.message)
                assert.is_true(#err.message > 0)
                for k, v in pairs(extra) do
                    assert.are.equal(v, err[k], k)
                end
            end)
        end

        it("puts TikTok's message into an unknown code's message", function()
            local err = errors.from_api(400, env("brand_new_code", "try X instead"))
            assert.truthy(err.message:find("try X instead", 1, true))
            assert.truthy(err.message:find("brand_new_code", 1, true))
        end)

        it("names the scope the endpoint needs for scope_not_authorized", function()
            local err = errors.from_api(401, env("scope_not_authorized"),
                "https://open.tiktokapis.com/v2/post/publish/inbox/video/init/")
            assert.truthy(err.message:find("video.upload", 1, true))
            err = errors.from_api(401, env("scope_not_authorized"),
                                  "/v2/post/publish/creator_info/query")
            assert.truthy(err.message:find("video.publish", 1, true))
            assert.is_true(err.reauth)
        end)

        it("names the endpoint in an unexpected-status message", function()
            local err = errors.from_api(404, nil, "user info")
            assert.truthy(err.message:find("HTTP status 404 from user info;", 1, true),
                          err.message)
            err = errors.from_api(418, nil, "/v2/user/info/?fields=open_id")
            assert.truthy(err.message:find("from /v2/user/info/;", 1, true), err.message)
        end)

        it("makes an odd code safe to print", function()
            local err = errors.from_api(400, env("bad code\n<x>" .. ("z"):rep(100)))
            assert.is_nil(err.code:find("[^%w_.%-]"))
            assert.is_true(#err.code <= 64)
        end)

        it("cleans TikTok's text: control characters, length, URL queries", function()
            local long = ("é"):rep(400)
            local err = errors.from_api(400, env("invalid_param",
                "line1\r\nline2\0 see https://up.example/v?sig=abc#frag " .. long))
            assert.is_nil(err.detail:find("[\r\n%z]"))
            assert.is_nil(err.detail:find("sig=abc", 1, true))
            assert.truthy(err.detail:find("https://up.example/v", 1, true))
            assert.is_true(#err.detail <= 310)
            -- truncation never splits a UTF-8 sequence
            local body = err.detail:gsub("%.%.%.$", "")
            assert.is_truthy(require("tiktok.template").utf16_len(body))
        end)

        it("redacts secrets in TikTok's message and log_id", function()
            local err = errors.from_api(400, env("invalid_param",
                "token " .. SECRET_TOKEN .. " and code " .. SECRET_CODE,
                "log" .. SECRET_CODE), nil, SECRETS)
            assert_clean(err)
            assert.truthy(err.detail:find("[redacted]", 1, true))
        end)

        it("redacts before truncating, so a secret at the cut is not half kept",
           function()
            local text = ("x"):rep(290) .. SECRET_TOKEN
            local err = errors.from_api(400, env("invalid_param", text), nil, SECRETS)
            assert_clean(err)
            assert.is_nil(err.detail:find("act.Zx9", 1, true))
        end)

        it("raises on programmer errors", function()
            assert.has_error(function() errors.from_api("200", {}) end)
            assert.has_error(function() errors.from_api(nil, {}) end)
            assert.has_error(function() errors.from_api(200, {}, 5) end)
            assert.has_error(function() errors.from_api(200, {}, nil, "s") end)
        end)
    end)

    describe("from_oauth()", function()
        it("returns nil for 2xx without an error field", function()
            assert.is_nil(errors.from_oauth(200, { access_token = "t" }))
            assert.is_nil(errors.from_oauth(200, { error = "" }))
        end)

        for _, code in ipairs(OAUTH) do
            it("maps error = " .. code, function()
                local err = errors.from_oauth(400, { error = code,
                    error_description = "desc", log_id = "LOG" })
                assert.are.equal(code, err.code)
                assert.are.equal("LOG", err.log_id)
                assert.are.equal("desc", err.detail)
                assert.are.equal(errors.codes[code].retryable, err.retryable)
                assert.are.equal(400, err.http_status)
            end)
        end

        it("treats an error body with HTTP 200 as an error", function()
            local err = errors.from_oauth(200, { error = "invalid_request",
                error_description = "Client secret is missed in request." })
            assert.are.equal("invalid_request", err.code)
        end)

        it("marks invalid_grant as reauth", function()
            local err = errors.from_oauth(400, { error = "invalid_grant" })
            assert.is_true(err.reauth)
            assert.truthy(err.message:find("reconnect", 1, true))
            assert.is_false(err.retryable)
        end)

        it("keeps unknown OAuth errors, retryable by status", function()
            local err = errors.from_oauth(400, { error = "new_oauth_thing" })
            assert.are.equal("new_oauth_thing", err.code)
            assert.is_false(err.retryable)
            err = errors.from_oauth(503, { error = "new_oauth_thing" })
            assert.is_true(err.retryable)
        end)

        local no_error = {
            { 500, nil, "server_error", true },
            { 502, { foo = 1 }, "server_error", true },
            { 429, nil, "rate_limit_exceeded", true },
            { 400, nil, "http", false },
            { 401, {}, "http", false },
            { 200, nil, "bad_response", false },
            { 200, "garbage", "bad_response", false },
        }
        for _, c in ipairs(no_error) do
            it(("HTTP %d without an error field -> %s"):format(c[1], c[3]), function()
                local err = errors.from_oauth(c[1], c[2])
                assert.are.equal(c[3], err.code)
                assert.are.equal(c[4], err.retryable)
            end)
        end

        it("accepts a v2 envelope from an OAuth endpoint", function()
            local err = errors.from_oauth(401, { error = { code = "access_token_invalid",
                                                          log_id = "L" } })
            assert.are.equal("access_token_invalid", err.code)
            assert.is_nil(errors.from_oauth(200, { error = { code = "ok" } }))
        end)

        it("an error field that is not a string is a bad response", function()
            local err = errors.from_oauth(400, { error = 17 })
            assert.are.equal("bad_response", err.code)
        end)

        it("never keeps the code, token or client secret", function()
            local err = errors.from_oauth(400, {
                error = "invalid_grant",
                error_description = "code " .. SECRET_CODE .. " for client_secret="
                    .. SECRET_CLIENT .. " refresh " .. SECRET_TOKEN,
                log_id = "L",
            }, SECRETS)
            assert_clean(err)
        end)
    end)

    describe("from_transport()", function()
        local kinds = { timeout = true, tls = false, network = true,
                        ambiguous = false }
        for kind, retryable in pairs(kinds) do
            it(kind .. " gives a clear error", function()
                local err = errors.from_transport(kind, "curl said something")
                assert.are.equal(kind, err.code)
                assert.are.equal(retryable, err.retryable)
                assert.are.equal("curl said something", err.detail)
                assert.is_true(#err.message > 20)
            end)
        end

        it("tls points at ca_file and never suggests turning verification off",
           function()
            local err = errors.from_transport("tls",
                "SSL certificate problem: unable to get local issuer certificate")
            assert.truthy(err.message:find("ca_file", 1, true))
            local s = tostring(err):lower()
            assert.is_nil(s:find("disable", 1, true))
            assert.is_nil(s:find("ssl_verify", 1, true))
            assert.is_nil(s:find("insecure", 1, true))
        end)

        it("ambiguous warns against repeating blindly", function()
            local err = errors.from_transport("ambiguous")
            assert.truthy(err.message:find("may or may not", 1, true))
            assert.is_nil(err.detail)
        end)

        it("drops upload URL queries and secrets from the detail", function()
            local err = errors.from_transport("network",
                "Failed to PUT https://open-upload.tiktokapis.com/video/?upload_id=1&upload_token="
                .. SECRET_TOKEN, SECRETS)
            assert_clean(err)
            assert.is_nil(err.detail:find("upload_id", 1, true))
        end)

        it("raises on an unknown kind", function()
            assert.has_error(function() errors.from_transport("dns") end)
            assert.has_error(function() errors.from_transport(nil) end)
            assert.has_error(function() errors.from_transport("tls", 5) end)
        end)
    end)

    describe("from_fail_reason()", function()
        for reason, retryable in pairs(FAIL_REASONS) do
            it(reason .. " -> retryable " .. tostring(retryable), function()
                local err = errors.from_fail_reason(reason, "v_pub_url~v2.1")
                assert.are.equal(reason, err.code)
                assert.are.equal(reason, err.fail_reason)
                assert.are.equal("v_pub_url~v2.1", err.publish_id)
                assert.are.equal(retryable, err.retryable)
                assert.are.equal(errors.codes[reason].message, err.message)
                assert.truthy(tostring(err):find("publish_id v_pub_url~v2.1", 1, true))
            end)
        end

        it("auth_removed asks to reconnect", function()
            assert.is_true(errors.from_fail_reason("auth_removed").reauth)
        end)

        it("keeps an unknown reason as the code", function()
            local err = errors.from_fail_reason("new_reason", "p")
            assert.are.equal("new_reason", err.code)
            assert.is_false(err.retryable)
            assert.truthy(err.message:find("new_reason", 1, true))
        end)

        it("a missing reason gives publish_failed", function()
            assert.are.equal("publish_failed", errors.from_fail_reason(nil, "p").code)
            assert.are.equal("publish_failed", errors.from_fail_reason("", "p").code)
        end)

        it("raises on wrong types", function()
            assert.has_error(function() errors.from_fail_reason(1) end)
            assert.has_error(function() errors.from_fail_reason("x", 12) end)
        end)
    end)

    describe("redact()", function()
        local cases = {
            { "plain", "token=SECRET1 end", { "SECRET1" }, "token=[redacted] end" },
            { "every occurrence", "a SECRET1 b SECRET1", { "SECRET1" },
              "a [redacted] b [redacted]" },
            { "several secrets", "x S1x S2y", { "S1x", "S2y" },
              "x [redacted] [redacted]" },
            { "pattern characters taken literally", "v=a.b%c(d)", { "a.b%c(d)" },
              "v=[redacted]" },
            { "no pattern matching on '.'", "aXb", { "a.b" }, "aXb" },
            { "empty secrets ignored", "keep", { "", "" }, "keep" },
            { "non-string secrets ignored", "keep 1", { 1, true }, "keep 1" },
            { "nil secrets", "keep", nil, "keep" },
            { "overlapping secrets leave nothing", "aXYZb", { "XY", "YZ" },
              "a[redacted]b" },
            { "substring of another secret", "pre ABCDEF post", { "ABC", "ABCDEF" },
              "pre [redacted] post" },
            { "adjacent occurrences merge", "SSSS", { "SS" }, "[redacted]" },
            { "percent-encoded form", "tok=a%21b%2Fc", { "a!b/c" }, "tok=[redacted]" },
            { "lower-case percent-encoded form", "tok=a%2fc", { "a/c" },
              "tok=[redacted]" },
            { "secret with holes in the list", "A and C", { "A", nil, "C" },
              "[redacted] and [redacted]" },
        }
        for _, c in ipairs(cases) do
            it(c[1], function()
                assert.are.equal(c[4], errors.redact(c[2], c[3]))
            end)
        end

        it("returns nil for nil text", function()
            assert.is_nil(errors.redact(nil, { "x" }))
        end)

        it("raises on wrong types", function()
            assert.has_error(function() errors.redact(5, {}) end)
            assert.has_error(function() errors.redact("x", "secret") end)
        end)

        it("no secret survives, whatever text surrounds it", function()
            local secrets = { "act.1!abc", "rft.2~def", "c0de", "abc" }
            local pieces = { "", " ", "act.1!", "c0", "de", "abcabc", "%", "~" }
            math.randomseed(7)
            for _ = 1, 300 do
                local parts = {}
                for _ = 1, 8 do
                    if math.random() < 0.4 then
                        parts[#parts + 1] = secrets[math.random(#secrets)]
                    else
                        parts[#parts + 1] = pieces[math.random(#pieces)]
                    end
                end
                local text = table.concat(parts)
                local out = errors.redact(text, secrets)
                for _, s in ipairs(secrets) do
                    assert.is_nil(out:find(s, 1, true),
                                  ("%q survived in %q"):format(s, out))
                end
            end
        end)
    end)

    describe("hostile upstream text", function()
        it("keeps a bounded, redacted start of a 40,000-character message", function()
            local secret = "act.SECRETTOKEN1234567890"
            local text = secret .. " " .. ("a"):rep(40000) .. "://x?y " .. secret
            local err = errors.from_api(400, { error = { code = "invalid_params", message = text } }, nil,
                                        { secret })
            assert.is_true(#err.detail <= 310)
            assert.is_nil(err.detail:find("SECRETTOKEN", 1, true))
            assert.truthy(err.detail:find("[redacted]", 1, true))
        end)

        it("a secret that straddles the kept part is still redacted", function()
            local secret = ("S"):rep(200)
            local text = ("b"):rep(250) .. secret .. ("c"):rep(50000)
            local err = errors.from_transport("network", text, { secret })
            assert.is_nil(err.detail:find("SSSS", 1, true))
        end)

        it("drops URL queries in linear time, however long the letters before them", function()
            local err = errors.from_transport("network", ("x"):rep(100000) .. " https://h/p?token=abc", {})
            assert.is_nil(err.detail:find("token=abc", 1, true))
            err = errors.from_transport("network", "see https://h/p?token=abc#f and more", {})
            assert.truthy(err.detail:find("https://h/p?[query removed] and more", 1, true), err.detail)
        end)
    end)

    describe("classes", function()
        it("every code has a class, and the class decides retryable", function()
            for code, entry in pairs(errors.codes) do
                local class = errors.CLASSES[entry.class]
                assert.is_table(class, code)
                assert.equal(class.retryable, entry.retryable, code)
            end
        end)

        it("gives the exit status and HTTP status of an error", function()
            assert.equal(2, errors.exit_code(errors.new("invalid_argument")))
            assert.equal(3, errors.exit_code(errors.new("invalid_settings")))
            assert.equal(4, errors.exit_code(errors.new("timeout")))
            assert.equal(5, errors.exit_code(errors.new("file")))
            assert.equal(422, errors.http_status(errors.new("invalid_settings")))
            assert.equal(409, errors.http_status(errors.new("reauthorize")))
            assert.equal(429, errors.http_status("rate_limit_exceeded"))
            assert.equal(404, errors.http_status("not_found"))
        end)

        it("an unknown TikTok code is upstream (retryable) on 5xx and 429, refused otherwise", function()
            local e = errors.from_api(503, { error = { code = "brand_new_code", message = "x" } })
            assert.equal("upstream", e.class)
            assert.is_true(e.retryable)
            e = errors.from_api(400, { error = { code = "brand_new_code", message = "x" } })
            assert.equal("refused", e.class)
            assert.is_false(e.retryable)
        end)

        it("concatenates like a string", function()
            local e = errors.new("timeout")
            assert.equal("failed: " .. tostring(e), "failed: " .. e)
            assert.equal(tostring(e) .. "!", e .. "!")
        end)
    end)
end)
