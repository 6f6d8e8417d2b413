-- The new commands' modules in-process: --at times (tiktok.cli.args), the
-- checks of post --queue, jobs, worker, check and store, the worker's
-- event lines and its supervisor script, the store settings
-- (tiktok.cli.config: a key never echoed, a URL's password never shown, a
-- clear error without the PostgreSQL rock) and check's exit statuses.
local cli = require "tiktok.cli"
local args = require "tiktok.cli.args"
local config = require "tiktok.cli.config"
local post = require "tiktok.cli.post"
local jobs = require "tiktok.cli.jobs"
local worker = require "tiktok.cli.worker"
local check = require "tiktok.cli.check"
local store_cmd = require "tiktok.cli.store"
local errors = require "tiktok.errors"

local sink = require "helpers.sink"

local function main(argv, env)
    local out, err = sink(), sink()
    env = env or {}
    local code = cli.main(argv, { stdout = out, stderr = err, getenv = function(k) return env[k] end,
                                  is_tty = function() return false end })
    return { code = code, out = out:text(), err = err:text() }
end

describe("tiktok.cli.args.parse_time (--at)", function()
    it("takes epoch seconds, +N[smhd] from now, and ISO-8601 UTC times", function()
        local now = 1796500000
        assert.equal(1767225600, args.parse_time("1767225600", now))
        assert.equal(now + 600, args.parse_time("+10m", now))
        assert.equal(now + 7200, args.parse_time("+2h", now))
        assert.equal(now + 30, args.parse_time("+30s", now))
        assert.equal(now + 30, args.parse_time("+30", now))
        assert.equal(now + 86400, args.parse_time("+1d", now))
        assert.equal(1767225600, args.parse_time("2026-01-01T00:00:00Z", now))
        assert.equal(1767225600, args.parse_time("2026-01-01T00:00Z", now))
        assert.equal(1767225600 + 3723, args.parse_time("2026-01-01 01:02:03+00:00", now))
        assert.equal(951782400, args.parse_time("2000-02-29T00:00:00Z", now))
        assert.equal(0, args.parse_time("1970-01-01T00:00:00Z", now))
    end)

    it("refuses anything else with a sentence", function()
        for _, bad in ipairs({ "tomorrow", "+10w", "2026-01-01T00:00:00", "2026-01-01T00:00:00+01:00",
                               "2026-02-30T00:00Z", "2026-13-01T00:00Z", "2026-01-01T24:00Z", "2100-02-29T00:00Z",
                               "2026-01-01T00:00:0Z", "" }) do
            local t, why = args.parse_time(bad, 0)
            assert.is_nil(t, bad)
            assert.is_string(why)
        end
        local t, err = args.time({ ["--at"] = "soon" }, "--at", 0)
        assert.is_nil(t)
        assert.equal("usage", err.code)
        assert.matches("^%-%-at takes epoch seconds, %+10m / %+2h / %+1d from now, or a UTC time", err.message)
    end)
end)

describe("the new commands' checks (exit 2 before any configuration is read)", function()
    local cases = {
        { { "post", "--file", "a.mp4", "--privacy", "SELF_ONLY", "--key", "k" }, "--key works only with --queue" },
        { { "post", "--file", "a.mp4", "--privacy", "SELF_ONLY", "--at", "+1h" }, "--at works only with --queue" },
        { { "post", "--file", "a.mp4", "--privacy", "SELF_ONLY", "--queue", "--no-wait" },
          "--no-wait has no use with --queue" },
        { { "post", "--file", "a.mp4", "--privacy", "SELF_ONLY", "--queue", "--at", "noon" }, "--at takes epoch" },
        { { "post", "--file", "a.mp4", "--privacy", "SELF_ONLY", "--queue", "--key", "" },
          "--key takes 1 to 256 characters" },
        { { "post", "--url", "https://a.example/v.mp4", "--privacy", "SELF_ONLY", "--relay", "maybe" },
          "--relay takes one of auto, always, never, got 'maybe'" },
        { { "jobs", "a", "b" }, "takes one job id or key" },
        { { "jobs", "cancel" }, "give the job to cancel" },
        { { "jobs", "x", "--state", "queued" }, "--state and --limit are for the list" },
        { { "jobs", "--state", "done" }, "--state takes one of queued, running, processing, published" },
        { { "jobs", "--limit", "0" }, "--limit takes a whole number from 1" },
        { { "worker", "--processes", "0" }, "--processes takes a whole number from 1 to 64" },
        { { "worker", "--processes", "two" }, "--processes takes a whole number from 0" },
        { { "worker", "--max-jobs", "0" }, "--max-jobs takes a whole number from 1" },
        { { "worker", "now" }, "takes no arguments" },
        { { "check", "x" }, "takes no arguments" },
        { { "store" }, "give what to do: tiktok store rekey" },
        { { "store", "drop" }, "unknown store action 'drop'" },
        { { "store", "rekey", "x" }, "rekey takes no arguments" },
    }
    for _, c in ipairs(cases) do
        it("tiktok " .. table.concat(c[1], " "), function()
            local r = main(c[1])
            assert.equal(2, r.code, r.err)
            assert.matches(c[2], r.err, 1, true)
        end)
    end

    it("post --queue keeps the key and the time for the job; --relay takes its value", function()
        local req = assert(post.check({ ["--file"] = "a.mp4", ["--privacy"] = "SELF_ONLY", ["--queue"] = true,
                                        ["--key"] = "k1", ["--at"] = "1767225600" }, {}))
        assert.same({ key = "k1", at = 1767225600 }, req.queue)
        req = assert(post.check({ ["--url"] = "https://a.example/v.mp4", ["--privacy"] = "SELF_ONLY",
                                  ["--relay"] = "always" }, {}))
        assert.equal("always", req.relay)
        assert.is_nil(req.queue)
        req = assert(post.check({ ["--file"] = "a.mp4", ["--inbox"] = true }, {}))
        assert.equal("inbox", req.mode)
        assert.is_nil(req.relay)
    end)

    it("every new command has --help with its usage", function()
        for _, c in ipairs({ { "jobs", "tiktok jobs cancel ID_OR_KEY" }, { "worker", "--processes N" },
                             { "check", "tiktok check --account OPEN_ID" }, { "store", "--new-key-file FILE" },
                             { "post", "--queue [--key KEY] [--at TIME]" } }) do
            local r = main({ c[1], "--help" })
            assert.equal(0, r.code)
            assert.matches(c[2], r.out, 1, true)
            if c[1] ~= "post" then   -- (post's usage line is older and wider)
                for line in r.out:gmatch("[^\n]+") do assert.is_true(#line <= 79, line) end
            end
        end
        local r = main({ "--help" })
        for _, k in ipairs({ "TIKTOK_STORE_KEY", "TIKTOK_STORE_NEW_KEY", "postgresql://", "--store PATH_OR_URL" }) do
            assert.matches(k, r.out, 1, true)
        end
    end)
end)

describe("tiktok.cli.config stores", function()
    it("TIKTOK_STORE_KEY must be 64 hex digits, and is never echoed", function()
        local raw = { TIKTOK_STORE_KEY = "hunter2-secret" }
        local opts, err = config.options(raw, { TIKTOK_STORE_KEY = "environment" }, { required = false })
        assert.is_nil(opts)
        assert.equal(2, errors.exit_code(err))
        assert.matches("TIKTOK_STORE_KEY (environment) must be 64 hex digits", err.message, 1, true)
        assert.not_matches("hunter2", err.message, 1, true)
        local _, own = config.options({ TIKTOK_STORE_KEY = " " .. ("AB"):rep(32) .. " " }, {}, { required = false })
        assert.equal(("ab"):rep(32), own.store_key)
    end)

    it("a URL is not taken relative to a config file; a path is", function()
        local dir = os.tmpname()
        os.remove(dir)
        os.execute("mkdir -p " .. dir)
        local f = io.open(dir .. "/c.env", "w")
        f:write("TIKTOK_STORE=postgresql://db.example/app\n")
        f:close()
        local raw = assert(config.read({ dir .. "/c.env" }, { getenv = function() end }))
        assert.equal("postgresql://db.example/app", raw.TIKTOK_STORE)
        f = io.open(dir .. "/c.env", "w")
        f:write("TIKTOK_STORE=s/a.json\n")
        f:close()
        raw = assert(config.read({ dir .. "/c.env" }, { getenv = function() end }))
        assert.equal(dir .. "/s/a.json", raw.TIKTOK_STORE)
        raw = assert(config.read({ dir .. "/c.env" }, { getenv = function() end, store_arg = "x.json" }))
        assert.equal("x.json", raw.TIKTOK_STORE)
        os.execute("rm -rf " .. dir)
    end)

    it("a store's label never shows a password", function()
        assert.equal("/a/b.json", config.store_label("/a/b.json"))
        assert.equal("postgresql://app@db.example/app?sslmode=require",
                     config.store_label("postgresql://app:s3cret@db.example/app?sslmode=require&password=s3cret"))
        assert.equal("postgres://db.example/app", config.store_label("postgres://db.example/app?password=x"))
        assert.equal(config.default_store_path(), config.store_label(nil))
    end)

    it("a postgresql:// store without the PostgreSQL rock: a clear error (exit 5)", function()
        local saved = package.loaded["tiktok.store.postgres"]
        local saved_pre = package.preload["tiktok.store.postgres"]
        package.loaded["tiktok.store.postgres"] = nil
        package.preload["tiktok.store.postgres"] = function() error("module 'tiktok.store.pgcore' not found") end
        local store, err = config.store({ store = "postgresql://u:pw@db.example/app" })
        package.preload["tiktok.store.postgres"] = saved_pre
        package.loaded["tiktok.store.postgres"] = saved
        assert.is_nil(store)
        assert.equal(5, errors.exit_code(err))
        assert.matches("the PostgreSQL store is not installed: install it with `luarocks install "
                       .. "lua-tiktok-postgres`", err.message, 1, true)
        assert.not_matches("pw", err.message, 1, true)
    end)

    it("a file store gets its key and its label", function()
        local s = assert(config.store({ store = "/tmp/x/accounts.json", store_key = ("00"):rep(32) }))
        assert.equal("/tmp/x/accounts.json", s.label)
        assert.is_table(s._keys)
        assert.equal(store_cmd.key_id(("00"):rep(32)), s._keys.first.id)
    end)
end)

describe("tiktok.cli.worker and tiktok.cli.jobs formatting", function()
    local job = { id = "job_0123", key = "spring launch", state = "processing", publish_id = "v_pub_file~1",
                  attempts = 1, created_at = 0, updated_at = 60, run_at = 120, post_ids = {},
                  error = { code = "interrupted", message = "stopped", class = "transient" } }

    it("one line per event: time, job, event, state, publish_id and what else the event says", function()
        assert.equal('1970-01-01T00:00:00Z job_0123 event=handed_back state=processing publish_id=v_pub_file~1 '
                     .. 'code=interrupted key=spring_launch',
                     worker.event_line(job, { type = "handed_back", code = "interrupted" }, 0))
        assert.equal('1970-01-01T00:00:10Z job_0123 event=waiting state=processing publish_id=v_pub_file~1 '
                     .. 'message="a worker that can read it" key=spring_launch',
                     worker.event_line(job, { type = "waiting", message = "a worker that can read it" }, 10))
    end)

    it("a job as JSON keeps only known fields of its error", function()
        local j = jobs.job_json(job)
        assert.same({ code = "interrupted", message = "stopped" }, j.error)
        assert.equal("job_0123", j.id)
        local lines = table.concat(jobs.job_lines(job, 60), "\n")
        assert.matches("  runs at:     1970-01-01T00:02:00Z (in 1m00s)", lines, 1, true)
        assert.matches("  error:       stopped (interrupted)", lines, 1, true)
    end)

    it("--processes runs the children in sessions of their own, ticks, and reports the worst exit", function()
        local s = worker.supervisor_script("CHILD", 3)
        local _, n = s:gsub("%$s CHILD &", "")
        assert.equal(3, n)
        assert.matches("setsid", s, 1, true)
        assert.matches("@@tick", s, 1, true)
        assert.matches('echo "@@exit $rc"', s, 1, true)
        assert.matches("^'", worker.self_command() or "'")
    end)
end)

describe("tiktok.cli.check exit statuses", function()
    it("0 when ok; else the failed check's class: 3 refused, 4 network; 3 for a setting to change", function()
        assert.equal(0, check.exit_code({ ok = true, checks = {} }))
        assert.equal(3, check.exit_code({ ok = false, checks = { { ok = true }, { ok = false, code = "invalid_client" } } }))
        assert.equal(4, check.exit_code({ ok = false, checks = { { ok = false, code = "network" } } }))
        assert.equal(3, check.exit_code({ ok = false, checks = { { ok = false } } }))
    end)

    it("wraps a sentence at 79 columns under its indent", function()
        local text = check.wrap(("word "):rep(40), "      ", "  ok  ")
        for line in text:gmatch("[^\n]+") do
            assert.is_true(#line <= 79)
            assert.matches("^  ", line)
        end
    end)
end)
