-- The library inside a real nginx: calls run in worker threads, the event
-- loop keeps serving, and misconfiguration is explained.
local sandbox = require "helpers.sandbox"
local nginx = require "helpers.nginx"
local media = require "helpers.media"
local cjson = require "cjson"

describe("tiktok inside nginx (lua-nginx-module worker threads)", function()
    local sb, ng, dir, clip

    local function get(path)
        local status, _, body = ng:get(path)
        return status, cjson.decode(body) or body, body
    end

    sandbox.use(function(s, d)
        sb, dir = s, d
        sb:configure({ delays = { processing_ms = 50 }, rate_limits = { ["video.init"] = 100 } })
        clip = media.mp4(dir, { seconds = 2 })
        ng = nginx.start({
            env = { TIKTOK_ENV_FILE = sb.dir .. "/env", TIKTOK_STORE = dir .. "/store.json" },
            http = [[
              location /t/ {
                content_by_lua_block {
                  local h = require "fixtures.ngx_handlers"
                  h[ngx.var.uri:sub(4)]()
                }
              }
              location = /logphase {
                content_by_lua_block { ngx.say("ok") }
                log_by_lua_block { require("fixtures.ngx_handlers").log_phase() }
              }
            ]],
        })
        -- shared dict for timer results
    end, { tmpdir = true, reset = false })
    lazy_teardown(function()
        if ng then ng:stop() end
    end)

    it("connects, lists accounts and reads creator_info from a content handler", function()
        local status, acc, raw = get("/t/connect")
        assert.equal(200, status, raw)
        assert.is_string(acc.open_id)
        local _, list = get("/t/accounts")
        assert.equal(1, #list)
        local _, ci = get("/t/creator")
        assert.equal("sandbox_creator", ci.username)
    end)

    it("posts a file, detaches and resumes", function()
        local status, res, raw = get("/t/post?file=" .. clip)
        assert.equal(200, status, raw)
        assert.equal("PUBLISH_COMPLETE", res.status)
        local _, d = get("/t/post?detach=1&file=" .. clip)
        assert.equal("PROCESSING_UPLOAD", d.status)
        local _, r = get("/t/resume?id=" .. d.publish_id)
        assert.equal("PUBLISH_COMPLETE", r.status)
        local _, st = get("/t/status?id=" .. d.publish_id)
        assert.equal("PUBLISH_COMPLETE", st.status)
    end)

    it("a store with a key works inside nginx (the key reaches the worker threads)", function()
        local status, acc, raw = get("/t/connect?keyed=1")
        assert.equal(200, status, raw)
        local _, ci, raw2 = get("/t/creator?keyed=1")
        assert.equal("sandbox_creator", ci.username, raw2)
        local text = sandbox.read_file(dir .. "/store.json.keyed")
        assert.is_nil(text:find("act.", 1, true))
        assert.is_string(acc.open_id)
    end)

    it("says which nginx.conf lines are missing when the thread pool does not exist", function()
        local status, body = get("/t/nopool")
        assert.equal(400, status)
        assert.matches("thread_pool missing threads=4 max_queue=64;", body.error.message, 1, true)
    end)

    it("refuses the memory store and callbacks, which cannot reach worker threads", function()
        local _, body = get("/t/memory")
        assert.matches("tiktok.store.file", body.error.message, 1, true)
        local _, _, raw = ng:get("/t/callback_in_thread")
        assert.matches("on_progress", raw)
    end)

    it("refuses to block in the log phase", function()
        ng:get("/logphase")
        assert.not_matches("lua entry thread aborted", ng:error_log())
    end)

    it("warns in the error log when a request had to create a worker-thread VM", function()
        assert.matches("had to create a worker%-thread Lua VM", ng:error_log())
        assert.matches("tiktok.warm_threads", ng:error_log(), 1, true)
    end)

    -- The nice values of every thread of the nginx workers (field 19 of
    -- /proc/<pid>/task/<tid>/stat).
    local function worker_thread_nices()
        local master = sandbox.read_file(ng.dir .. "/nginx.pid"):match("%d+")
        local out = {}
        local p = io.popen("for w in $(pgrep -P " .. master .. "); do cat /proc/$w/task/*/stat; done 2>/dev/null")
        for line in p:lines() do
            local after = line:match("%) (.*)$")
            if after then
                local f = {}
                for x in after:gmatch("%S+") do f[#f + 1] = x end
                out[#out + 1] = tonumber(f[17])
            end
        end
        p:close()
        return out
    end

    -- The nice value of the nginx workers' own (event loop) threads.
    local function event_loop_nices()
        local master = sandbox.read_file(ng.dir .. "/nginx.pid"):match("%d+")
        local out = {}
        local p = io.popen("for w in $(pgrep -P " .. master .. "); do cat /proc/$w/stat; done")
        for line in p:lines() do
            local f = {}
            for x in line:match("%) (.*)$"):gmatch("%S+") do f[#f + 1] = x end
            out[#out + 1] = tonumber(f[17])
        end
        p:close()
        return out
    end

    it("lowers the priority of the thread that uploads (upload_nice 10 by default in nginx)", function()
        local base = event_loop_nices()[1]
        if base >= 19 then
            pending("nginx already runs at the lowest priority (nice " .. base .. "): nothing to lower")
            return
        end
        local want = math.min(base + 10, 19)
        local big = media.mp4(dir, { seconds = 2, size = 20000000 })
        sb:admin("POST", "/faults", { endpoint = "upload.put", delay_ms = 3000 })
        local out = dir .. "/nice-post.out"
        os.execute("curl -s -o " .. out .. " '" .. ng.base .. "/t/post?file=" .. big .. "' &")
        local niced = false
        for _ = 1, 100 do
            for _, n in ipairs(worker_thread_nices()) do
                if n == want then niced = true end
            end
            if niced then break end
            sandbox.sleep(0.05)
        end
        assert.is_true(niced, "no nginx thread ran at nice " .. want .. " during the upload")
        for _ = 1, 200 do
            local body = sandbox.read_file(out)
            if body and body:find("status") then break end
            sandbox.sleep(0.1)
        end
        assert.matches("PUBLISH_COMPLETE", sandbox.read_file(out))
        -- the event loop's own thread never changes priority
        for _, n in ipairs(event_loop_nices()) do assert.equal(base, n) end
    end)

    it("keeps /ping fast while a post runs in a worker thread", function()
        local big = media.mp4(dir, { seconds = 2, size = 200000000 })
        -- start a slow post in the background and probe /ping meanwhile
        local out = dir .. "/post.out"
        os.execute("curl -s -o " .. out .. " '" .. ng.base .. "/t/post?file=" .. big .. "' &")
        sandbox.sleep(0.2)
        local worst = 0
        for _ = 1, 20 do
            local t0 = os.clock()
            local p = io.popen("curl -s -o /dev/null -w '%{time_total}' " .. ng.base .. "/ping")
            local t = tonumber(p:read("*a"))
            p:close()
            if t > worst then worst = t end
            sandbox.sleep(0.02)
            local _ = t0
        end
        assert.is_true(worst < 0.5, "a /ping took " .. worst .. " s")
        for _ = 1, 200 do
            local body = sandbox.read_file(out)
            if body and body:find("status") then break end
            sandbox.sleep(0.1)
        end
        assert.matches("PUBLISH_COMPLETE", sandbox.read_file(out))
        assert.not_matches("%[alert%]", ng:error_log())
    end)
end)
