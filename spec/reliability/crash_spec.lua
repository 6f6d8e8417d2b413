-- Crash safety of the file store: writer processes killed with SIGKILL at
-- random points; the store must always load and keep every acknowledged
-- account at its acknowledged (or a newer) refresh token.
-- TIKTOK_CRASH_ITERATIONS sets the count (make test: 100; make reliability: 1000).
local sandbox = require "helpers.sandbox"
local media = require "helpers.media"
local tiktok = require "tiktok"

local INTERP = (os.getenv("TIKTOK_CHILD_PREFIX") or "") .. " " .. (jit and "luajit" or "lua5.4")
local N = tonumber(os.getenv("TIKTOK_CRASH_ITERATIONS") or "100")

describe("file store crash safety", function()
    local dir
    lazy_setup(function() dir = media.tmpdir() end)
    lazy_teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

    it("survives " .. N .. " SIGKILLs of writers at random points", function()
        local path = dir .. "/store.json"
        local ack = dir .. "/acks"
        local writer = dir .. "/writer.lua"
        sandbox.write_file(writer, ([[
local store = require("tiktok.store").file{ path = %q }
local ack = assert(io.open(%q, "ab"))
local run, seq = tonumber(arg[1]), 0
math.randomseed(run)
while true do
    seq = seq + 1
    local id = "acct-" .. math.random(1, 5)
    local token = ("rft.%%06d.%%06d"):format(run, seq)
    assert(store:put{ open_id = id, refresh_token = token, access_token = "act." .. seq })
    ack:write(id, " ", token, "\n"); ack:flush()        -- acknowledged only after put returned
    if math.random(1, 4) == 1 then assert(store:delete("gone-" .. math.fmod(seq, 3))) end
end
]]):format(path, ack))
        math.randomseed(os.time())
        local kills, loads = 0, 0
        for run = 1, N do
            local ms = math.random(5, 60)
            os.execute(("%s %s %d 2>/dev/null & p=$!; sleep %.3f; kill -9 $p 2>/dev/null; wait $p 2>/dev/null")
                       :format(INTERP, writer, run, ms / 1000))
            kills = kills + 1
            -- the store always loads
            local st = tiktok.store.file({ path = path })
            local list, err = st:list()
            assert(list, "store failed to load after a kill: " .. tostring(err))
            loads = loads + 1
        end
        -- every acknowledged write is there, at that token or a newer one
        local last = {}
        for line in io.lines(ack) do
            local id, token = line:match("^(%S+) (%S+)$")
            if id then last[id] = token end
        end
        local st = tiktok.store.file({ path = path })
        local n = 0
        for id, token in pairs(last) do
            local rec = assert(st:get(id), "acknowledged account lost: " .. id)
            assert.is_true(rec.refresh_token >= token, id .. ": store has " .. rec.refresh_token
                           .. " but " .. token .. " was acknowledged")
            n = n + 1
        end
        assert.is_true(n > 0)
        -- no temporary files are left behind by the atomic writes... except those of killed writers
        io.write(("\ncrash safety: %d kills, %d loads, %d accounts checked, 0 lost\n"):format(kills, loads, n))
        assert.equal(0, tonumber(tiktok.core.stat(path).mode) - tonumber("600", 8))
    end)
end)
