-- tiktok.webhook.verify against deliveries the sandbox really signed and sent.
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

describe("tiktok.webhook.verify", function()
    local sb, dir

    sandbox.use(function(s, d)
        sb, dir = s, d
    end, { tmpdir = true, reset = false })
    it("verifies and decodes the sandbox's signed post.publish deliveries", function()
        sb:admin("PATCH", "/apps/" .. sb.env.TIKTOK_CLIENT_KEY, { webhook_url = sb.env.TIKTOK_WEBHOOK_SINK })
        sb:configure({ delays = { processing_ms = 20, moderation_ms = 20 } })
        local conn = tt.connect(sb)
        local acc = tt.account(conn)
        local res = assert(tiktok.post({ connection = conn, video_file = media.mp4(dir), privacy = "PUBLIC_TO_EVERYONE" }))
        local got
        for _ = 1, 100 do
            got = sb:admin("GET", "/webhooks/received")
            local n = 0
            for _, d in ipairs(got) do if d.body:find("publicly_available", 1, true) then n = n + 1 end end
            if n > 0 then break end
            sandbox.sleep(0.05)
        end
        local seen = {}
        for _, d in ipairs(got) do
            local ev = assert(tiktok.webhook.verify(d.signature, d.body,
                                                    { client_secret = sb.env.TIKTOK_CLIENT_SECRET }))
            seen[ev.event] = ev
            assert.equal(acc.open_id, ev.user_openid)
            assert.equal(res.publish_id, ev.content.publish_id)
        end
        assert.is_table(seen["post.publish.complete"])
        local pub = seen["post.publish.publicly_available"]
        assert.is_table(pub)
        -- the 19-digit post id (a raw JSON number in the content) stays exact
        assert.matches("^7%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d$", pub.content.post_id)
        assert.truthy(got[#got].body:find(pub.content.post_id, 1, true) or got[1].body:find(pub.content.post_id, 1, true))

        -- tampering, another secret, a replay and a bad header are all refused
        local d = got[1]
        local ev, err = tiktok.webhook.verify(d.signature, d.body .. " ", { client_secret = sb.env.TIKTOK_CLIENT_SECRET })
        assert.is_nil(ev); assert.equal("forbidden", err.code)
        ev, err = tiktok.webhook.verify(d.signature, d.body, { client_secret = "other" })
        assert.is_nil(ev); assert.equal("forbidden", err.code)
        ev, err = tiktok.webhook.verify(d.signature, d.body, { client_secret = sb.env.TIKTOK_CLIENT_SECRET,
                                                               now = os.time() + 3600 })
        assert.is_nil(ev); assert.matches("window", err.message)
        ev, err = tiktok.webhook.verify("garbage", d.body, { client_secret = sb.env.TIKTOK_CLIENT_SECRET })
        assert.is_nil(ev); assert.equal("invalid_argument", err.code)
        ev, err = tiktok.webhook.verify(nil, d.body, { client_secret = sb.env.TIKTOK_CLIENT_SECRET })
        assert.is_nil(ev); assert.matches("no TikTok%-Signature", err.message)
        ev, err = tiktok.webhook.verify(d.signature .. (" "):rep(300), d.body,
                                        { client_secret = sb.env.TIKTOK_CLIENT_SECRET })
        assert.is_nil(ev); assert.matches("bytes long", err.message)
        local t = tonumber(d.signature:match("t=(%d+)"))
        ev, err = tiktok.webhook.verify(d.signature, d.body, { client_secret = sb.env.TIKTOK_CLIENT_SECRET,
                                                               now = t - 120 })
        assert.is_nil(ev); assert.matches("in the future", err.message)
        assert(tiktok.webhook.verify(d.signature, d.body, { client_secret = sb.env.TIKTOK_CLIENT_SECRET,
                                                            now = t - 10 }))
        -- with a store, the same signed delivery is accepted once
        for _, store in ipairs({ tiktok.store.memory(), tiktok.store.file({ path = dir .. "/claims.json" }) }) do
            local o = { client_secret = sb.env.TIKTOK_CLIENT_SECRET, store = store }
            assert(tiktok.webhook.verify(d.signature, d.body, o))
            ev, err = tiktok.webhook.verify(d.signature, d.body, o)
            assert.is_nil(ev); assert.matches("already received", err.message)
            assert(tiktok.webhook.verify(got[2].signature, got[2].body, o))
        end
        assert.has_error(function() tiktok.webhook.verify(d.signature, nil, { client_secret = "x" }) end)
        assert.has_error(function() tiktok.webhook.verify(d.signature, d.body, { secret = "x" }) end)
    end)
end)
