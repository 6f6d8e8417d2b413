-- The fault matrix: every step of a post x every fault x both sources.
-- Each cell must end in a completed post or a precise error, create at most
-- one publish at TikTok, carry the publish_id when it fails after init, and
-- leave the stored tokens usable (unless TikTok rotated them in an answer
-- that never arrived, which no client can recover and which is counted).
-- Prints the outcome table that RELIABILITY.md quotes.
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"
local cjson = require "cjson"

local API_FAULTS = {
    { "5xx", { status = 503, body = "Service Unavailable", content_type = "text/plain" } },
    { "429", { status = 429, json = { error = { code = "rate_limit_exceeded", message = "slow down",
                                                log_id = "L429" } } } },
    { "reset before", { close = true, when = "before" } },
    { "reset after", { close = true, when = "after" } },
    { "stall", { delay_ms = 1500 } },
    { "malformed JSON", { status = 200, body = '{"data": {"x" 1}', content_type = "application/json" } },
    { "non-JSON page", { status = 502, body = "<html><body>Bad Gateway</body></html>", content_type = "text/html" } },
    { "truncated body", { status = 200, body = '{"data":{"status":"PUBL', content_type = "application/json" } },
    { "wrong Content-Type", { status = 200, body = '{"error":{"code":"ok","message":"","log_id":"x"}}',
                              content_type = "text/html" } },
}

local CHUNK_FAULTS = {
    { "5xx", { status = 503 } },
    { "429", { status = 429 } },
    { "reset before", { close = true, when = "before" } },
    { "reset after", { close = true, when = "after" } },
    { "stall", { delay_ms = 1500 } },
    { "malformed JSON", { status = 400, body = '{"x', content_type = "application/json" } },
    { "non-JSON page", { status = 502, body = "<html>Bad Gateway</html>", content_type = "text/html" } },
    { "truncated body", { close_after_bytes = 1000000 } },
    { "wrong Content-Type", { status = 500, body = "oops", content_type = "text/html" } },
}

local STEPS = {
    { "token refresh", "oauth.token" }, { "creator_info", "creator_info" }, { "init", "video.init" },
    { "first chunk", "upload.put", 1 }, { "middle chunk", "upload.put", 2 }, { "last chunk", "upload.put", 3 },
    { "status", "status.fetch" },
}

describe("fault matrix", function()
    local sb, dir, file, url
    local tally, rows = {}, {}

    sandbox.use(function(s, d)
        sb, dir = s, d
        file = media.mp4(dir, { seconds = 2, size = 18000000 })       -- 3 chunks of 6,000,000
        local clip = media.mp4(dir, { seconds = 2 })
        os.execute("cp '" .. clip .. "' '" .. sb.env.TIKTOK_MEDIA_DIR .. "/m.mp4'")
        url = sb.env.TIKTOK_MEDIA_BASE .. "m.mp4"
    end, { tmpdir = true, reset = false })

    lazy_teardown(function()
        local counts = {}
        for _, r in ipairs(rows) do counts[r.outcome] = (counts[r.outcome] or 0) + 1 end
        io.write("\n\nFAULT MATRIX (", #rows, " cells)\n")
        for _, r in ipairs(rows) do
            io.write(("  %-5s %-14s %-20s %s%s\n"):format(r.source, r.step, r.fault, r.outcome,
                                                        r.code and (" [" .. r.code .. "]") or ""))
        end
        io.write("OUTCOMES:")
        for k, v in pairs(counts) do io.write(" ", k, "=", v) end
        io.write("\n")
        local f = io.open(os.getenv("TIKTOK_MATRIX_OUT") or "/dev/null", "wb")
        if f then f:write(cjson.encode({ rows = rows, counts = counts, tally = tally })); f:close() end
    end)

    local function cell(source, step, fault)
        sb:reset()
        sb:configure({ delays = { processing_ms = 20, moderation_ms = 20 },
                       rate_limits = { ["video.init"] = 1000, creator_info = 1000, ["status.fetch"] = 1000 } })
        local store = tiktok.store.memory()
        local conn = tt.connect(sb, { store = store, chunk_size = 6000000, timeout_ms = 800,
                                      low_speed_ms = 1000, chunk_timeout_ms = 1200, poll_ms = 50,
                                      wait_timeout_ms = 8000 })
        local acc = tt.account(conn)
        if step[2] == "oauth.token" then
            local rec = store:get(acc.open_id)
            rec.expires_at = os.time() - 1
            store:put(rec)
        end
        local rule = {}
        for k, v in pairs(fault[2]) do rule[k] = v end
        rule.endpoint = step[2]
        rule.chunk = step[3]
        local _, st = sb:admin("POST", "/faults", rule)
        assert.equal(201, st)

        local opts = { connection = conn, privacy = "SELF_ONLY" }
        if source == "file" then opts.video_file = file else opts.video_url = url end
        local res, err = tiktok.post(opts)

        -- a stalled request may still be processed after the client gave up
        if fault[1] == "stall" then tiktok.core.sleep_ms(1000) end
        local created = {}
        for _, p in ipairs(sb:posts()) do created[#created + 1] = p.publish_id end
        assert.is_true(#created <= 1, "more than one publish was created")

        local outcome
        if res then
            assert.equal("PUBLISH_COMPLETE", res.status)
            assert.equal(created[1], res.publish_id)
            outcome = "completed"
        else
            assert.is_string(err.code)
            assert.is_true(#err.message > 10)
            assert.is_boolean(err.retryable)
            if #created == 1 then
                if err.code == "ambiguous" then
                    outcome = "ambiguous init (publish exists, id unknown)"
                else
                    assert.equal(created[1], err.publish_id, "error after init without the publish_id: "
                                 .. tostring(err))
                    outcome = "error after init, publish_id returned"
                end
            else
                assert.is_nil(err.publish_id)
                outcome = "error before init"
            end
        end

        -- the stored tokens: the refresh token in the store still refreshes
        local ok, rerr = conn:refresh(acc.open_id)
        if not ok then
            assert.equal("reauthorize", rerr.code)
            assert.is_true(step[2] == "oauth.token" and (fault[1] == "reset after" or fault[1] == "stall"),
                           "stored tokens lost in " .. step[1] .. " x " .. fault[1])
            outcome = outcome .. "; refresh token rotated in a lost answer"
        end
        rows[#rows + 1] = { source = source, step = step[1], fault = fault[1], outcome = outcome,
                            code = err and err.code or nil }
        tally[outcome] = (tally[outcome] or 0) + 1
    end

    for _, source in ipairs({ "file", "url" }) do
        for _, step in ipairs(STEPS) do
            if not (source == "url" and step[2] == "upload.put") then
                for _, fault in ipairs(step[2] == "upload.put" and CHUNK_FAULTS or API_FAULTS) do
                    it(source .. " / " .. step[1] .. " / " .. fault[1], function()
                        cell(source, step, fault)
                    end)
                end
            end
        end
    end
end)
