-- Rate budgets in the store: TikTok's per-token limits and the inbox cap
-- hold for every process that shares the store, and TikTok is never sent a
-- request it would answer with 429 (the sandbox enforces the real limits).
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local media = require "helpers.media"
local tiktok = require "tiktok"

local INTERP = (os.getenv("TIKTOK_CHILD_PREFIX") or "") .. " " .. (jit and "luajit" or "lua5.4")

local function count_429(sb)
    local n = 0
    for _, e in ipairs(sb:log()) do if e.status == 429 then n = n + 1 end end
    return n
end

describe("rate budgets", function()
    local sb, dir

    sandbox.use(function(s, d) sb, dir = s, d end, { tmpdir = true })

    it("holds creator_info to its budget and answers rate_limit_exceeded with retry_after", function()
        local conn = tt.connect(sb, { rate_limits = { creator_info = 3 }, timeout_ms = 2000 })
        local acc = tt.account(conn)
        for _ = 1, 3 do assert(conn:creator_info(acc.open_id)) end
        local res, err = conn:creator_info(acc.open_id)
        assert.is_nil(res)
        assert.equal("rate_limit_exceeded", err.code)
        assert.is_true(err.retryable)
        assert.is_true(err.retry_after >= 1 and err.retry_after <= 63)   -- the 63 s window (connection.BUDGETS)
        assert.truthy(err.message:find("held back", 1, true))
        assert.equal(3, tt.count(sb, "creator_info"))
        assert.equal(0, count_429(sb))
    end)

    it("budget_wait_ms = 0 never waits: the call fails at once with retry_after (a web handler's 429)", function()
        local conn = tt.connect(sb, { rate_limits = { init = 1 }, budget_wait_ms = 0 })
        tt.account(conn)
        local clip = media.mp4(dir, { seconds = 2 })
        assert(tiktok.post({ connection = conn, video_file = clip, privacy = "SELF_ONLY", wait = false }))
        -- (waiting would have ended in a second init once the minute passed)
        local res, err = tiktok.post({ connection = conn, video_file = clip, privacy = "SELF_ONLY", wait = false })
        assert.is_nil(res)
        assert.equal("rate_limit_exceeded", err.code)
        assert.equal(429, tiktok.errors.http_status(err))
        assert.is_true(err.retry_after >= 1)
        assert.equal(1, tt.count(sb, "video.init"))
    end)

    it("keeps the 5 pending inbox shares a day before TikTok refuses", function()
        local conn = tt.connect(sb, { rate_limits = { inbox = 2 } })
        tt.account(conn)
        local clip = media.mp4(dir, { seconds = 2 })
        for _ = 1, 2 do
            assert(tiktok.post({ connection = conn, video_file = clip, mode = "inbox", wait = false }))
        end
        local res, err = tiktok.post({ connection = conn, video_file = clip, mode = "inbox", wait = false })
        assert.is_nil(res)
        assert.equal("spam_risk_too_many_pending_share", err.code)
        assert.is_true(err.retry_after > 3600)
        assert.equal(2, tt.count(sb, "inbox.init"))
    end)

    it("uses TikTok's numbers by default and never makes TikTok answer 429", function()
        local conn = tt.connect(sb, { rate_limits = false, timeout_ms = 1000 })
        local acc = tt.account(conn)
        local ok, refused = 0, 0
        for _ = 1, 25 do
            local res, err = conn:creator_info(acc.open_id)
            if res then ok = ok + 1 else assert.equal("rate_limit_exceeded", err.code); refused = refused + 1 end
        end
        assert.equal(20, ok)
        assert.equal(5, refused)
        assert.equal(0, count_429(sb))
    end)

    it("is shared by processes that share a file store", function()
        local path = dir .. "/budget-store.json"
        local conn = tt.connect(sb, { store = tiktok.store.file({ path = path }) })
        local acc = tt.account(conn)
        local script = dir .. "/budget-worker.lua"
        local f = assert(io.open(script, "wb"))
        f:write(([[
local tiktok = require "tiktok"
local conn = assert(tiktok.connect{ client_key = %q, client_secret = %q, redirect_uri = %q,
  api_base = %q, auth_base = %q, ca_file = %q, store = tiktok.store.file{ path = %q },
  rate_limits = { creator_info = 6 }, timeout_ms = 1000 })
for _ = 1, 4 do
  local info, err = conn:creator_info(%q)
  io.write(info and "ok\n" or (err.code .. "\n"))
end
]]):format(sb.env.TIKTOK_CLIENT_KEY, sb.env.TIKTOK_CLIENT_SECRET, sb.env.TIKTOK_REDIRECT_URI,
           sb.env.TIKTOK_API_BASE, sb.env.TIKTOK_AUTH_BASE, sb.env.TIKTOK_CA_FILE, path, acc.open_id))
        f:close()
        local cmd = ""
        for i = 1, 3 do cmd = cmd .. INTERP .. " " .. script .. " > " .. dir .. "/b" .. i .. " 2>&1 & " end
        os.execute(cmd .. "wait")
        local ok, limited = 0, 0
        for i = 1, 3 do
            for line in (sandbox.read_file(dir .. "/b" .. i) or ""):gmatch("[^\n]+") do
                if line == "ok" then ok = ok + 1
                elseif line == "rate_limit_exceeded" then limited = limited + 1
                else error("unexpected: " .. line) end
            end
        end
        assert.equal(6, ok)
        assert.equal(6, limited)
        assert.equal(6, tt.count(sb, "creator_info"))
        assert.equal(0, count_429(sb))
    end)
end)
