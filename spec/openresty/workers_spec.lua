-- Several nginx workers (and several worker threads in each) share one file
-- store: an expired token is refreshed exactly once.
local sandbox = require "helpers.sandbox"
local nginx = require "helpers.nginx"
local tiktok = require "tiktok"
local tt = require "helpers.tt"

describe("the file store across nginx workers", function()
    local sb, ng, dir

    sandbox.use(function(s, d)
        sb, dir = s, d
        ng = nginx.start({
            workers = 2,
            env = { TIKTOK_ENV_FILE = sb.dir .. "/env", TIKTOK_STORE = dir .. "/store.json" },
            http = [[
              location /t/ {
                content_by_lua_block {
                  local h = require "fixtures.ngx_handlers"
                  ngx.header["X-Worker"] = ngx.worker.pid()
                  h[ngx.var.uri:sub(4)]()
                }
              }
            ]],
        })
    end, { tmpdir = true, reset = false })
    lazy_teardown(function()
        if ng then ng:stop() end
    end)

    it("refreshes an expired token once for 16 concurrent requests on 2 workers", function()
        local status = ng:get("/t/connect")
        assert.equal(200, status)
        local store = tiktok.store.file({ path = dir .. "/store.json" })
        local rec = store:list()[1]
        rec.expires_at = os.time() - 5
        assert(store:put(rec))
        local before = tt.count(sb, "oauth.token")
        local cmd = ""
        for i = 1, 16 do
            cmd = cmd .. ("curl -s -D %s/h%d -o %s/r%d %s/t/creator & "):format(dir, i, dir, i, ng.base)
        end
        os.execute(cmd .. "wait")
        local workers, n = {}, 0
        for i = 1, 16 do
            assert.matches("sandbox_creator", sandbox.read_file(dir .. "/r" .. i) or "")
            local pid = (sandbox.read_file(dir .. "/h" .. i) or ""):match("[Xx]%-[Ww]orker: (%d+)")
            if pid and not workers[pid] then workers[pid] = true; n = n + 1 end
        end
        assert.equal(2, n, "both workers served requests")
        assert.equal(before + 1, tt.count(sb, "oauth.token"))
        assert.equal(1, #store:list())
    end)
end)
