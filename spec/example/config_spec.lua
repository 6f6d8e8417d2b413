-- The example app's configuration checks (examples/openresty, config.lua):
-- nginx refuses to start with an identity setup where a client could
-- choose who it is. (nginx -t does not run init_by_lua: each case is a
-- real start, stopped again at once.)
local sandbox = require "helpers.sandbox"

local sh = sandbox.shell_quote
local ROOT = sandbox.root
local EXAMPLE = ROOT .. "/examples/openresty"

describe("examples/openresty configuration", function()
    local dir

    lazy_setup(function()
        dir = (sandbox.exec("mktemp -d /tmp/tiktok-example-config.XXXXXX"):gsub("%s+$", ""))
        sandbox.exec("mkdir -p " .. sh(dir .. "/logs") .. " " .. sh(dir .. "/conf"))
        sandbox.write_file(dir .. "/conf/nginx.conf", ([[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
pid %s/logs/nginx.pid;
events { worker_connections 16; }
http {
  access_log off;
  lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;%s/lua/?.lua;%s/lua/?/init.lua;;";
  lua_package_cpath "%s/build/5.1/?.so;;";
  init_by_lua_block { require("tiktok_app").init() }
}
]]):format(dir, EXAMPLE, EXAMPLE, ROOT, ROOT, ROOT))
    end)

    lazy_teardown(function()
        if dir then sandbox.exec("rm -rf " .. sh(dir)) end
    end)

    -- Starts nginx with the app's init under these variables (and stops it);
    -- returns whether nginx started, and what it said.
    local function check(vars)
        local base = { TIKTOK_CLIENT_KEY = "sbxconfigspec01", TIKTOK_CLIENT_SECRET = "configspecsecret",
                       APP_STORE = dir .. "/data/store.json" }
        for k, v in pairs(vars) do base[k] = v end
        local env = { "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin" }
        for k, v in pairs(base) do if v ~= false then env[#env + 1] = k .. "=" .. sh(v) end end
        local nginx = " nginx -p " .. sh(dir) .. " -c conf/nginx.conf -e " .. sh(dir .. "/logs/error.log")
        local out, rc = sandbox.exec(table.concat(env, " ") .. nginx .. " 2>&1")
        if rc == 0 then
            sandbox.exec(nginx .. " -s stop")
            for _ = 1, 100 do
                if not io.open(dir .. "/logs/nginx.pid", "rb") then break end
                sandbox.sleep(0.05)
            end
        end
        return rc == 0, out
    end

    local SECRET = "0123456789abcdef0123456789abcdef"

    it("refuses the stand-in sign-in (a name, no credential) unless APP_URL is a loopback address", function()
        local ok, out = check({ APP_URL = "https://app.example", APP_SIGNIN = "standin" })
        assert.is_false(ok)
        assert.matches("for local development only", out, 1, true)
        ok, out = check({ APP_URL = "http://127.0.0.1:8080", APP_SIGNIN = "standin" })
        assert.is_true(ok, out)
    end)

    it("takes identity headers only with both the proxy's addresses and its secret", function()
        local ok, out = check({ APP_URL = "https://app.example", APP_TRUSTED_PROXIES = "10.0.0.5" })
        assert.is_false(ok)
        assert.matches("APP_TRUSTED_PROXIES needs APP_PROXY_SECRET", out, 1, true)
        ok, out = check({ APP_URL = "https://app.example", APP_TRUSTED_PROXIES = "10.0.0.5",
                          APP_PROXY_SECRET = "short" })
        assert.is_false(ok)
        assert.matches("at least 32 characters", out, 1, true)
        -- the production configuration
        ok, out = check({ APP_URL = "https://app.example", APP_TRUSTED_PROXIES = "10.0.0.5, 10.0.0.6",
                          APP_PROXY_SECRET = SECRET })
        assert.is_true(ok, out)
    end)

    it("refuses the old APP_TRUST_X_USER switch, and a setup where nobody could sign in", function()
        local ok, out = check({ APP_URL = "https://app.example", APP_TRUST_X_USER = "1",
                                APP_TRUSTED_PROXIES = "10.0.0.5", APP_PROXY_SECRET = SECRET })
        assert.is_false(ok)
        assert.matches("APP_TRUST_X_USER is gone", out, 1, true)
        ok, out = check({ APP_URL = "https://app.example" })
        assert.is_false(ok)
        assert.matches("nobody could sign in", out, 1, true)
    end)

    it("refuses a store, key, TikTok app or job setting it could not use, with the reason", function()
        local prod = { APP_URL = "https://app.example", APP_TRUSTED_PROXIES = "10.0.0.5", APP_PROXY_SECRET = SECRET }
        local function with(t)
            local out = {}
            for k, v in pairs(prod) do out[k] = v end
            for k, v in pairs(t) do out[k] = v end
            return out
        end
        for _, case in ipairs({
            { { APP_STORE_KEY = "not-hex" }, "APP_STORE_KEY must be 64 hex characters" },
            { { APP_STORE = "store.json" }, "APP_STORE must be an absolute file path or a postgresql:// URL" },
            { { APP_STORE = "postgres:/nowhere" }, "APP_STORE must be a file path or a postgresql:// URL" },
            { { TIKTOK_CLIENT_SECRET = false }, "TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET go together" },
            { { APP_WEBHOOK_SECRET = "short" }, "APP_WEBHOOK_SECRET must be at least 32 characters" },
            { { APP_JOB_CONCURRENCY = "0" }, "APP_JOB_CONCURRENCY must be 1 to 16" },
        }) do
            local ok, out = check(with(case[1]))
            assert.is_false(ok, case[2])
            assert.matches(case[2], out, 1, true)
        end
        -- no TikTok app of the server's own: each workspace adds its own on the page
        local ok, out = check(with({ TIKTOK_CLIENT_KEY = false, TIKTOK_CLIENT_SECRET = false }))
        assert.is_true(ok, out)
        -- a key, and a PostgreSQL URL (nothing connects before the first request)
        ok, out = check(with({ APP_STORE_KEY = ("ab"):rep(32),
                               APP_STORE = "postgresql:///tiktok?host=/nonexistent" }))
        assert.is_true(ok, out)
    end)
end)
