-- A person's path through the example page, in headless Chromium (Debian's
-- chromium, driven by playwright-core from examples/openresty/browser):
-- sign in, connect two TikTok accounts on the sandbox's consent page (PKCE)
-- with different access, choose one, disconnect the other, see problems
-- next to their fields, fill the form with the keyboard only, post, see
-- PUBLISH_COMPLETE. The screenshots stay in build/example-screenshots/.
local sandbox = require "helpers.sandbox"
local media = require "helpers.media"
local cjson = require "cjson.safe"

local sh = sandbox.shell_quote
local ROOT = sandbox.root
local RUN = ROOT .. "/examples/openresty/run"
local BROWSER = ROOT .. "/examples/openresty/browser"
local ARTIFACTS = ROOT .. "/build/example-screenshots"
local CHROMIUM = os.getenv("CHROMIUM") or "/usr/bin/chromium"
local PROXY_SECRET = "browser-spec-proxy-secret-0123456789abcdef"

local function have(cmd)
    local _, rc = sandbox.exec("command -v " .. cmd)
    return rc == 0
end

describe("examples/openresty in a browser", function()
    local dir, sb, env

    lazy_setup(function()
        if not io.open(CHROMIUM, "rb") then return end
        dir = (sandbox.exec("mktemp -d /tmp/tiktok-example-browser.XXXXXX"):gsub("%s+$", ""))
        sb = sandbox.start({ dir = dir })
        sb:configure({ delays = { processing_ms = 50, moderation_ms = 50 },
                       rate_limits = { ["video.init"] = 100, ["creator_info"] = 100, ["status.fetch"] = 100 } })
        media.mp4(sb.env.TIKTOK_MEDIA_DIR, { seconds = 2 })
        -- The page signs in with the stand-in sign-in (local development);
        -- this spec reads the app's answers as a trusted proxy would.
        local out, rc = sandbox.exec("TIKTOK_RATE_LIMITS=init=100,creator_info=100,status=100 "
                                     .. "APP_SIGNIN=standin APP_TRUSTED_PROXIES=127.0.0.1 APP_PROXY_SECRET="
                                     .. PROXY_SECRET .. " " .. sh(RUN) .. " start --dir " .. sh(dir))
        assert(rc == 0, "examples/openresty/run start failed:\n" .. out)
        env = sandbox.read_env(dir .. "/env")
    end)

    lazy_teardown(function()
        if env then sandbox.exec(sh(RUN) .. " stop --dir " .. sh(dir)) end
        if sb then sb:stop() end
        if dir then sandbox.exec("rm -rf " .. sh(dir)) end
    end)

    it("connects two accounts, chooses one, disconnects one, posts by keyboard and shows PUBLISH_COMPLETE", function()
        if not io.open(CHROMIUM, "rb") then
            pending("chromium is not installed (apt-get install -y chromium); the browser test did not run")
            return
        end
        assert(have("node"), "node is not installed (the browser test needs node >= 18)")
        assert(io.open(BROWSER .. "/node_modules/playwright-core/package.json", "rb"),
               "playwright-core is not installed: run  npm ci --prefix examples/openresty/browser")
        sandbox.exec("rm -f " .. sh(ARTIFACTS) .. "/example-*.png")
        local cmd = table.concat({
            "cd " .. sh(BROWSER) .. " &&",
            "APP_URL=" .. sh(env.APP_URL),
            "VIDEO_URL_TEMPLATE=" .. sh(env.TIKTOK_MEDIA_BASE .. "{{clip}}.mp4"),
            "VIDEO_CLIP=clip-2s",
            "APP_USER=alice",
            "APP_WORKSPACE=acme",
            "SECOND_USERNAME=" .. sh(sb.env.TIKTOK_SANDBOX_PRIVATE_USER),
            "SANDBOX_ADMIN=" .. sh(sb.env.TIKTOK_SANDBOX_ADMIN),
            "SANDBOX_USER=" .. sh(sb.env.TIKTOK_SANDBOX_USER),
            "CHROMIUM=" .. sh(CHROMIUM),
            "SCREENSHOT_DIR=" .. sh(ARTIFACTS),
            "timeout 150 node test.mjs",
        }, " ")
        local out, rc = sandbox.exec(cmd)
        local result
        for line in out:gmatch("[^\n]+") do
            local v = cjson.decode(line)
            if type(v) == "table" and v.ok ~= nil then result = v end
        end
        assert(result, "the browser test printed no result (exit " .. tostring(rc) .. "):\n" .. out)
        assert(result.ok, "the browser test failed (see build/example-screenshots/example-failure.png): "
               .. tostring(result.error) .. "\nat " .. tostring(result.url) .. "\npassed: "
               .. table.concat(result.checks or {}, "; "))
        assert.equal(0, rc)
        assert.is_true(#result.checks >= 40, cjson.encode(result.checks))

        -- What the browser did is what TikTok (the sandbox) received.
        local p = sb:post(result.publish_id)
        assert.equal("PUBLISH_COMPLETE", p.status)
        assert.equal("PULL_FROM_URL", p.source)
        assert.equal(env.TIKTOK_MEDIA_BASE .. "clip-2s.mp4", p.source_info.video_url)
        assert.equal("Spring drop from the browser #lua", p.post_info.title)
        assert.equal("SELF_ONLY", p.post_info.privacy_level)
        assert.is_false(p.post_info.disable_comment)
        assert.is_true(p.post_info.disable_duet)
        assert.is_true(p.post_info.disable_stitch)
        assert.is_false(p.post_info.brand_content_toggle)
        assert.is_false(p.post_info.brand_organic_toggle)
        local user = sb:admin("GET", "/users/" .. sb.env.TIKTOK_SANDBOX_USER)
        assert.equal(user.display_name, result.nickname)

        -- The account left is the "Only me" one, stored for the user who
        -- signed in on the page; the disconnected one was revoked at TikTok.
        local status, _, body = sandbox.http("GET", env.APP_URL .. "/tiktok/accounts",
                                             { headers = { ["X-User"] = "alice", ["X-Workspace"] = "acme",
                                                           ["X-Proxy-Secret"] = PROXY_SECRET } })
        assert.equal(200, status)
        local accounts = cjson.decode(body).accounts
        assert.equal(1, #accounts)
        assert.equal("alice", accounts[1].owner)
        assert.equal("only_me", accounts[1].access)
        assert.equal(user.display_name, accounts[1].nickname)
        local private = sb:admin("GET", "/users/" .. sb.env.TIKTOK_SANDBOX_PRIVATE_USER)
        assert.equal(private.display_name, result.second_nickname)
        local revoked = sb:log({ endpoint = "oauth.revoke" })
        assert.equal(1, #revoked)
        assert.equal(200, revoked[1].status)

        for _, name in ipairs({ "example-connections.png", "example-disclosure.png", "example-url-error.png",
                                "example-field-error.png", "example-keyboard.png", "example-posted.png" }) do
            local f = assert(io.open(ARTIFACTS .. "/" .. name, "rb"), name .. " was not written")
            local head = f:read(8)
            f:close()
            assert.equal("\137PNG\r\n\26\n", head, name .. " is not a PNG")
        end
    end)

    it("walks the block's order with the workspace's own TikTok app: configure, copy, check, connect, post", function()
        if not io.open(CHROMIUM, "rb") then
            pending("chromium is not installed (apt-get install -y chromium); the browser test did not run")
            return
        end
        -- the app again, without a TikTok app of its own: each workspace adds its own
        sandbox.exec(sh(RUN) .. " stop --dir " .. sh(dir))
        local out, rc = sandbox.exec("TIKTOK_RATE_LIMITS=init=100,creator_info=100,status=100 APP_ENV_APP=0 "
                                     .. "APP_SIGNIN=standin " .. sh(RUN) .. " start --dir " .. sh(dir))
        assert(rc == 0, "examples/openresty/run start failed:\n" .. out)
        env = sandbox.read_env(dir .. "/env")
        local a = sb:add_app({ name = "Globex posting", redirect_uris = { env.APP_URL .. "/tiktok/callback" } })
        sandbox.exec("rm -f " .. sh(ARTIFACTS) .. "/block-*.png")
        local cmd = table.concat({
            "cd " .. sh(BROWSER) .. " &&",
            "APP_URL=" .. sh(env.APP_URL),
            "CLIENT_KEY=" .. sh(a.client_key),
            "CLIENT_SECRET=" .. sh(a.client_secret),
            "VIDEO_URL=" .. sh(env.TIKTOK_MEDIA_BASE .. "clip-2s.mp4"),
            "CHROMIUM=" .. sh(CHROMIUM),
            "SCREENSHOT_DIR=" .. sh(ARTIFACTS),
            "timeout 150 node block.mjs",
        }, " ")
        out, rc = sandbox.exec(cmd)
        local result
        for line in out:gmatch("[^\n]+") do
            local v = cjson.decode(line)
            if type(v) == "table" and v.ok ~= nil then result = v end
        end
        assert(result, "the browser test printed no result (exit " .. tostring(rc) .. "):\n" .. out)
        assert(result.ok, "the browser test failed (see build/example-screenshots/block-failure.png): "
               .. tostring(result.error) .. "\nat " .. tostring(result.url) .. "\npassed: "
               .. table.concat(result.checks or {}, "; "))
        assert.equal(0, rc)
        assert.is_true(#result.checks >= 20, cjson.encode(result.checks))
        -- posted through the workspace's own app
        local p = sb:post(result.publish_id)
        assert.equal("PUBLISH_COMPLETE", p.status)
        assert.equal(a.client_key, p.client_key)
        assert.equal("Posted through our own TikTok app", p.post_info.title)
        -- the secret is nowhere in the app's logs
        local logs = (sandbox.read_file(dir .. "/app/logs/error.log") or "")
                     .. (sandbox.read_file(dir .. "/app/logs/access.log") or "")
        assert.is_nil(logs:find(a.client_secret, 1, true))
        for _, name in ipairs({ "block-1-start.png", "block-2-wrong-secret.png", "block-3-redirect-copied.png",
                                "block-4-checked.png", "block-5-connected.png", "block-6-posted.png" }) do
            local f = assert(io.open(ARTIFACTS .. "/" .. name, "rb"), name .. " was not written")
            local head = f:read(8)
            f:close()
            assert.equal("\137PNG\r\n\26\n", head, name .. " is not a PNG")
        end
    end)
end)
