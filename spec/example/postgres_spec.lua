-- Issue 14 in the OpenResty example app: APP_STORE=postgresql://... puts
-- accounts, app configurations, upload journals, jobs and rate budgets in
-- PostgreSQL (tiktok.store.postgres), encrypted at rest with APP_STORE_KEY.
-- A real server (Debian's postgresql, spec/helpers/postgres.lua), a real
-- nginx, the sandbox: connect and post (URL and file), a stored TikTok app
-- in its own schema, and no token or secret in clear in the tables.
local sandbox = require "helpers.sandbox"
local example = require "helpers.example"
local postgres = require "helpers.postgres"
local media = require "helpers.media"
local cjson = require "cjson.safe"

local STORE_KEY = ("3c"):rep(32)

describe("examples/openresty on a PostgreSQL store (issue 14)", function()
    local ex, sb, pg, clip, url
    local ALICE = { user = "alice", workspace = "acme" }

    local function app(method, path, who, body)
        return ex:app(method, path, { user = who.user, workspace = who.workspace, json = body })
    end

    lazy_setup(function()
        pg = postgres.start()
        url = "postgresql:///postgres?host=" .. pg.dir .. "&port=" .. pg.port .. "&user=postgres"
        ex = example.start({ env = "APP_STORE=" .. sandbox.shell_quote(url) .. " APP_STORE_KEY=" .. STORE_KEY .. " " })
        sb = ex.sb
        clip = media.mp4(sb.env.TIKTOK_MEDIA_DIR, { seconds = 2 })
    end)

    lazy_teardown(function()
        if ex then ex:stop() end
        if pg then pg:stop() end
    end)

    it("connects and posts by URL and by file, the jobs in PostgreSQL", function()
        local open_id = ex:connect("alice", nil, { workspace = "acme" })
        local status, body, _, raw = app("GET", "/tiktok/accounts", ALICE)
        assert.equal(200, status, raw)
        assert.equal(open_id, body.accounts[1].open_id)
        status, body, _, raw = app("POST", "/tiktok/posts", ALICE, {
            video_url = sb.env.TIKTOK_MEDIA_BASE .. "clip-2s.mp4", privacy = "SELF_ONLY", caption = "from pg" })
        assert.equal(202, status, raw)
        local job = ex:wait_job(body.job.id, ALICE)
        assert.equal("published", job.state, cjson.encode(job))
        sandbox.exec("mkdir -p " .. sandbox.shell_quote(ex.env.APP_FILES_DIR .. "/alice") .. " && cp "
                     .. sandbox.shell_quote(clip) .. " " .. sandbox.shell_quote(ex.env.APP_FILES_DIR .. "/alice/c.mp4"))
        status, body, _, raw = app("POST", "/tiktok/posts", ALICE, { video_file = "c.mp4", privacy = "SELF_ONLY" })
        assert.equal(202, status, raw)
        job = ex:wait_job(body.job.id, ALICE)
        assert.equal("published", job.state, cjson.encode(job))
        assert.equal(media.sha256(clip), sb:post(job.publish_id).sha256)
        -- the records are in the database, not in a file
        assert.equal("", (sandbox.exec("ls " .. sandbox.shell_quote(ex.dir .. "/app/data") .. " | grep json || true")
                           :gsub("%s+", "")))
        local n = pg:psql("SELECT count(*) FROM tiktok.records WHERE kind = 'job'")
        assert.equal("2", n:match("%d+"))
    end)

    it("keeps a workspace's TikTok app in the store, its accounts and jobs in a schema of their own", function()
        local a = sb:add_app({ name = "Acme", redirect_uris = { ex.env.APP_URL .. "/tiktok/callback" } })
        local status, cfg, _, raw = app("POST", "/tiktok/apps", ALICE, {
            client_key = a.client_key, client_secret = a.client_secret, audited = true, name = "Acme" })
        assert.equal(201, status, raw)
        local id = ex:connect("alice", nil, { app = cfg.id, workspace = "acme" })
        local body
        status, body, _, raw = app("POST", "/tiktok/posts", ALICE, { account = id, privacy = "SELF_ONLY",
            video_url = sb.env.TIKTOK_MEDIA_BASE .. "clip-2s.mp4" })
        assert.equal(202, status, raw)
        local job = ex:wait_job(body.job.id, ALICE)
        assert.equal("published", job.state, cjson.encode(job))
        assert.equal(a.client_key, sb:post(job.publish_id).client_key)
        local schema = "tiktok_" .. cfg.id:gsub("%-", "_")
        local out = pg:psql("SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'tiktok_app_%'")
        assert.equal("1", out:match("%d+"), schema)
        -- nothing secret in clear: tokens and the client secret are sealed
        local dump = pg:psql("SELECT data::text FROM tiktok.records UNION ALL SELECT data::text FROM tiktok.accounts")
        assert.matches("tiktok%-aead:v1:", dump)
        assert.is_nil(dump:find(a.client_secret, 1, true))
        assert.is_nil(dump:find(sb.env.TIKTOK_CLIENT_SECRET, 1, true))
        for _, t in ipairs({ "act%.", "rft%." }) do assert.is_nil(dump:find(t)) end
    end)
end)
