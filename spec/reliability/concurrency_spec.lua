-- 8 processes x 100 operations (reads that refresh, posts, a revoke) on
-- shared accounts through one file store, with access tokens that expire
-- every 2 seconds: every refresh uses the current refresh token (no
-- invalid_grant), at most one refresh per account per expiry, no lost update.
-- TIKTOK_CONC_PROCS / TIKTOK_CONC_OPS set the size (default 8 x 100).
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

local INTERP = (os.getenv("TIKTOK_CHILD_PREFIX") or "") .. " " .. (jit and "luajit" or "lua5.4")
local PROCS = tonumber(os.getenv("TIKTOK_CONC_PROCS") or "8")
local OPS = tonumber(os.getenv("TIKTOK_CONC_OPS") or "100")
local TTL = 2

describe("concurrency through one file store", function()
    local sb, dir

    sandbox.use(function(s, d)
        sb, dir = s, d
    end, { tmpdir = true, reset = false })
    it(PROCS .. " processes x " .. OPS .. " operations", function()
        sb:configure({ tokens = { access_ttl_sec = TTL },
                       delays = { processing_ms = 10, moderation_ms = 10 },
                       rate_limits = { ["video.init"] = 100000, creator_info = 100000, ["status.fetch"] = 100000,
                                       ["user.info"] = 100000 } })
        for _, u in ipairs({ sb.env.TIKTOK_SANDBOX_USER, sb.env.TIKTOK_SANDBOX_PRIVATE_USER }) do
            sb:admin("PATCH", "/users/" .. u, { daily_post_cap = 100000 })
        end
        local path = dir .. "/store.json"
        local conn = tt.connect(sb, { store = tiktok.store.file({ path = path }), refresh_skew_ms = 0 })
        local a = tt.account(conn, { username = sb.env.TIKTOK_SANDBOX_USER })
        local b = tt.account(conn, { username = sb.env.TIKTOK_SANDBOX_PRIVATE_USER })
        local clip = media.mp4(dir, { seconds = 2 })
        os.execute("cp '" .. clip .. "' '" .. sb.env.TIKTOK_MEDIA_DIR .. "/c.mp4'")
        local before = tt.count(sb, "oauth.token")
        local worker = dir .. "/worker.lua"
        sandbox.write_file(worker, ([[
local tiktok = require "tiktok"
local id, ops = tonumber(arg[1]), tonumber(arg[2])
local conn = assert(tiktok.connect{ client_key = %q, client_secret = %q, redirect_uri = %q, api_base = %q,
  auth_base = %q, ca_file = %q, store = tiktok.store.file{ path = %q }, refresh_skew_ms = 0, poll_ms = 20,
  -- this run is about refreshes; the sandbox's limits are raised too (budget_spec covers the budgets)
  rate_limits = { init = 100000, creator_info = 100000, status = 100000, inbox = 100000 } })
local accounts = { %q, %q }
math.randomseed(id * 7919)
local counts = { ok = 0 }
for i = 1, ops do
    local acc = accounts[math.random(1, 2)]
    local r = math.random(1, 100)
    local res, err
    if r <= 70 then
        res, err = conn:creator_info(acc)
    elseif r <= 95 then
        res, err = tiktok.post{ connection = conn, account = acc, video_url = %q, privacy = "SELF_ONLY",
                                wait = false }
    else
        res, err = conn:user_info(acc)
    end
    if res then counts.ok = counts.ok + 1 else
        local k = err.code
        counts[k] = (counts[k] or 0) + 1
        io.stderr:write(tostring(err), "\n")
    end
    tiktok.core.sleep_ms(math.random(20, 120))   -- spread the run over several token lifetimes
end
for k, v in pairs(counts) do io.write(k, "=", v, "\n") end
]]):format(sb.env.TIKTOK_CLIENT_KEY, sb.env.TIKTOK_CLIENT_SECRET, sb.env.TIKTOK_REDIRECT_URI,
           sb.env.TIKTOK_API_BASE, sb.env.TIKTOK_AUTH_BASE, sb.env.TIKTOK_CA_FILE, path, a.open_id, b.open_id,
           sb.env.TIKTOK_MEDIA_BASE .. "c.mp4"))
        local t0 = os.time()
        local cmd = ""
        for i = 1, PROCS do
            cmd = cmd .. ("%s %s %d %d > %s/out%d 2> %s/err%d & "):format(INTERP, worker, i, OPS, dir, i, dir, i)
        end
        os.execute(cmd .. "wait")
        local elapsed = math.max(1, os.time() - t0)
        local total_ok, failures = 0, {}
        for i = 1, PROCS do
            local out = sandbox.read_file(dir .. "/out" .. i) or ""
            for k, v in out:gmatch("(%S+)=(%d+)") do
                if k == "ok" then total_ok = total_ok + tonumber(v) else failures[k] = (failures[k] or 0) + v end
            end
        end
        local errs = ""
        for i = 1, PROCS do errs = errs .. (sandbox.read_file(dir .. "/err" .. i) or "") end
        local summary = ""
        for k, v in pairs(failures) do summary = summary .. k .. "=" .. v .. " " end
        assert.equal(PROCS * OPS, total_ok, "failed operations (" .. summary .. "): " .. errs:sub(1, 2000))
        local refreshes = tt.count(sb, "oauth.token") - before
        -- at most one refresh per account per expiry window (+1 for the window in progress)
        local windows = math.ceil((elapsed + 1) / TTL) + 1
        assert.is_true(refreshes <= 2 * windows, refreshes .. " refreshes for " .. windows .. " windows x 2 accounts")
        -- no lost update: both accounts are there and their refresh tokens still work
        assert(conn:refresh(a.open_id))
        assert(conn:refresh(b.open_id))
        -- revoke while the others run is covered by the store spec; here the final revoke
        assert.is_true(conn:revoke(b.open_id))
        assert.equal(1, #conn:accounts())
        io.write(("\nconcurrency: %d processes x %d ops = %d ok in %d s; %d refreshes for %d windows x 2 accounts\n")
                 :format(PROCS, OPS, total_ok, elapsed, refreshes, windows))
    end)
end)
