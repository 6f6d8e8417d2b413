-- tiktok.jobs' claims on PostgreSQL: FOR UPDATE SKIP LOCKED hands every
-- worker (on every machine) a different due job, and a live lease keeps a
-- job with the worker that holds it until the lease ends.
local pghelper = require "helpers.postgres"
local tiktok = require "tiktok"

describe("job claims on PostgreSQL", function()
    local pg, store

    pghelper.use(function(p)
        pg = p
        store = tiktok.store.postgres({ conninfo = pg.conninfo, schema = "claims" })
    end)

    local function job(id, fields)
        local j = { id = id, state = "queued", run_at = 0, post = {}, created_at = 1, updated_at = 1 }
        for k, v in pairs(fields or {}) do j[k] = v end
        assert(store:put_job(j))
    end

    it("hands different due jobs to different workers, oldest run_at first", function()
        job("a", { run_at = 30 }); job("b", { run_at = 10 }); job("c", { run_at = os.time() + 3600 })
        local other = tiktok.store.postgres({ conninfo = pg.conninfo, schema = "claims" })
        local now = os.time()
        local first = assert(store:claim_job("w1", now, 60))
        local second = assert(other:claim_job("w2", now, 60))
        assert.equal("b", first.id)
        assert.equal("a", second.id)
        assert.equal("running", first.state)
        assert.equal("w1", first.worker)
        assert.is_true(first.lease_until >= now + 60)
        assert.is_nil(store:claim_job("w3", now, 60))          -- c is not due, a and b are leased
        -- a lease that ended hands the job to another worker
        local again = assert(other:claim_job("w4", now + 61, 60))
        assert.truthy(again.id == "a" or again.id == "b")
        assert.equal("w4", again.worker)
        other:close()
    end)

    it("never hands out a job in a final state", function()
        for _, st in ipairs({ "published", "inbox", "failed", "cancelled", "ambiguous" }) do
            job("final-" .. st, { state = st })
        end
        local got = store:claim_job("w", os.time() + 100000, 60)
        if got then assert.is_nil(got.id:match("^final%-")) end
    end)
end)
