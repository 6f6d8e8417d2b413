-- Plants known secrets (client secret, access and refresh tokens, an
-- authorization code) and scans every error string and log line a battery
-- of failing calls produces, including answers that echo the secrets back.
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

describe("no secret in errors or logs", function()
    local sb, dir, clip

    sandbox.use(function(s, d)
        sb, dir = s, d
        sb:configure({ rate_limits = { ["video.init"] = 1000, creator_info = 1000, ["status.fetch"] = 1000 },
                       delays = { processing_ms = 20 } })
        clip = media.mp4(dir, { seconds = 2 })
    end, { tmpdir = true, reset = false })
    it("finds none of them anywhere", function()
        local lines, texts = {}, {}
        local store = tiktok.store.memory()
        local conn = tt.connect(sb, { store = store, log = function(level, msg) lines[#lines + 1] = level .. " " .. msg end })
        local function collect(res, err)
            if err then
                texts[#texts + 1] = tostring(err)
                for _, k in ipairs({ "message", "detail", "log_id", "publish_id" }) do
                    if err[k] then texts[#texts + 1] = tostring(err[k]) end
                end
                for _, p in ipairs(err.problems or {}) do texts[#texts + 1] = p end
            end
            return res, err
        end

        local url, state, verifier = conn:authorize_url({ pkce = true })
        local cb = assert(conn:sandbox_approve(url))
        local code = cb.code
        collect(conn:exchange({ code = code, state = "forged", expected_state = state }))
        collect(conn:exchange({ code = code, state = state, expected_state = state, code_verifier = ("a"):rep(64) }))
        local acc = assert(conn:exchange({ code = code, state = state, expected_state = state,
                                           code_verifier = verifier }))
        collect(conn:exchange({ code = code, state = state, expected_state = state, code_verifier = verifier }))
        local rec = store:get(acc.open_id)
        local secrets = { sb.env.TIKTOK_CLIENT_SECRET, rec.access_token, rec.refresh_token, code }

        -- answers that echo the secrets back in their error text
        local echo = "token " .. rec.access_token .. " secret " .. sb.env.TIKTOK_CLIENT_SECRET
                     .. " refresh " .. rec.refresh_token .. " code " .. code
        for _, ep in ipairs({ "creator_info", "video.init", "status.fetch", "user.info" }) do
            sb:admin("POST", "/faults", { endpoint = ep, status = 400,
                                          json = { error = { code = "invalid_params", message = echo, log_id = echo } } })
        end
        sb:admin("POST", "/faults", { endpoint = "oauth.token", status = 400,
                                      json = { error = "invalid_request", error_description = echo, log_id = echo } })
        collect(conn:user_info(acc.open_id))
        collect(conn:creator_info(acc.open_id))
        collect(tiktok.post({ connection = conn, video_file = clip, privacy = "SELF_ONLY" }))
        collect(conn:refresh(acc.open_id))
        collect(tiktok.status({ connection = conn, publish_id = "v_pub_file~nope" }))
        sb:admin("DELETE", "/faults")

        -- transport failures and a bad certificate
        local bad = tt.connect(sb, { store = store, ca_file = false, log = function(l, m) lines[#lines + 1] = m end })
        collect(bad:creator_info(acc.open_id))
        local wrong = tt.connect(sb, { client_secret = "wrong-" .. sb.env.TIKTOK_CLIENT_SECRET })
        collect(wrong:client_token())
        -- a failing post after init, and an expired access token refreshed on the way
        sb:admin("POST", "/tokens/expire", { access_token = rec.access_token })
        sb:admin("POST", "/faults", { endpoint = "upload.put", status = 403 })
        collect(tiktok.post({ connection = conn, video_file = clip, privacy = "SELF_ONLY" }))
        local rec2 = store:get(acc.open_id)
        secrets[#secrets + 1] = rec2.access_token
        secrets[#secrets + 1] = rec2.refresh_token
        collect(conn:revoke(acc.open_id, { as = { user = "nobody" } }))

        assert.is_true(#texts >= 15)
        assert.is_true(#lines >= 10)
        local hits = 0
        for _, s in ipairs(secrets) do
            assert.is_true(#s >= 8)
            for _, t in ipairs(texts) do if t:find(s, 1, true) then hits = hits + 1; print("LEAK in error: " .. t) end end
            for _, t in ipairs(lines) do if t:find(s, 1, true) then hits = hits + 1; print("LEAK in log: " .. t) end end
        end
        assert.equal(0, hits)
        io.write(("\nsecrets: %d secrets x (%d error strings + %d log lines): 0 hits\n"):format(#secrets, #texts, #lines))
    end)
end)
