-- The file store (mode 0600, atomic, shared by processes) and access control.
local sandbox = require "helpers.sandbox"
local tt = require "helpers.tt"
local tiktok = require "tiktok"
local cjson = require "cjson"

-- Under `make asan` the child processes get the sanitizer runtime too.
local INTERP = (os.getenv("TIKTOK_CHILD_PREFIX") or "") .. " " .. (jit and "luajit" or "lua5.4")

describe("tiktok.store.file", function()
    local sb, dir

    sandbox.use(function(s, d)
        sb, dir = s, d
    end, { tmpdir = true })

    it("creates the store (and its folder) with mode 0600 and never holds tokens in accounts", function()
        local path = dir .. "/sub/accounts.json"
        local conn = tt.connect(sb, { store = tiktok.store.file({ path = path }) })
        local acc = tt.account(conn)
        assert.equal(tonumber("600", 8), tiktok.core.stat(path).mode)
        local doc = cjson.decode((assert(tiktok.core.read_file(path))))
        assert.is_string(doc.accounts[acc.open_id].refresh_token)
        local listed = conn:accounts()
        assert.equal(1, #listed)
        assert.is_nil(listed[1].access_token)
        assert.is_nil(listed[1].refresh_token)
    end)

    it("journals uploads beside the accounts and lists them", function()
        local st = tiktok.store.file({ path = dir .. "/jobs.json" })
        assert(st:put({ open_id = "a", refresh_token = "r" }))
        assert(st:put_upload({ publish_id = "v_pub_file~2", next = 1 }))
        assert(st:put_upload({ publish_id = "v_pub_file~1", next = 0 }))
        local jobs = assert(st:list_uploads())
        assert.same({ "v_pub_file~1", "v_pub_file~2" }, { jobs[1].publish_id, jobs[2].publish_id })
        assert(st:delete_upload("v_pub_file~1"))
        assert.equal(1, #st:list_uploads())
        assert.equal(1, #st:list())
    end)

    it("refuses to overwrite a file that is not a store", function()
        local path = dir .. "/notastore.json"
        local f = io.open(path, "wb"); f:write("hello"); f:close()
        local conn = tt.connect(sb, { store = tiktok.store.file({ path = path }) })
        local url, state, verifier = conn:authorize_url()
        local cb = assert(conn:sandbox_approve(url))
        local acc, err = conn:exchange({ code = cb.code, state = cb.state, expected_state = state,
                                         code_verifier = verifier })
        assert.is_nil(acc)
        assert.equal("store", err.code)
        assert.equal("hello", tiktok.core.read_file(path))
    end)

    it("4 processes refreshing one account at once: one refresh reaches TikTok, the newest token persists", function()
        local path = dir .. "/shared.json"
        local conn = tt.connect(sb, { store = tiktok.store.file({ path = path }) })
        local acc = tt.account(conn)
        -- make the stored access token look expired to every process
        local store = tiktok.store.file({ path = path })
        local rec = store:get(acc.open_id)
        rec.expires_at = os.time() - 10
        assert(store:put(rec))
        local before = tt.count(sb, "oauth.token")
        local script = dir .. "/worker.lua"
        local f = io.open(script, "wb")
        f:write(([[
local tiktok = require "tiktok"
local conn = assert(tiktok.connect{ client_key = %q, client_secret = %q, redirect_uri = %q,
  api_base = %q, auth_base = %q, ca_file = %q, store = tiktok.store.file{ path = %q } })
local info, err = conn:creator_info(%q)
io.write(info and "ok\n" or ("err " .. tostring(err) .. "\n"))
]]):format(sb.env.TIKTOK_CLIENT_KEY, sb.env.TIKTOK_CLIENT_SECRET, sb.env.TIKTOK_REDIRECT_URI,
           sb.env.TIKTOK_API_BASE, sb.env.TIKTOK_AUTH_BASE, sb.env.TIKTOK_CA_FILE, path, acc.open_id))
        f:close()
        local cmd = ""
        for i = 1, 4 do cmd = cmd .. INTERP .. " " .. script .. " > " .. dir .. "/out" .. i .. " 2>&1 & " end
        os.execute(cmd .. "wait")
        for i = 1, 4 do
            assert.equal("ok\n", sandbox.read_file(dir .. "/out" .. i))
        end
        assert.equal(before + 1, tt.count(sb, "oauth.token"))
        -- the stored refresh token is the newest: it still refreshes
        assert(conn:refresh(acc.open_id))
        assert.equal(before + 2, tt.count(sb, "oauth.token"))
    end)

    it("survives a concurrent writer: every account written is kept", function()
        local path = dir .. "/many.json"
        local script = dir .. "/writer.lua"
        local f = io.open(script, "wb")
        f:write(([[
local store = require("tiktok.store").file{ path = %q }
local id = ...
for i = 1, 20 do assert(store:put{ open_id = id .. "-" .. i, refresh_token = "r" .. i }) end
]]):format(path))
        f:close()
        local cmd = ""
        for i = 1, 4 do cmd = cmd .. INTERP .. " " .. script .. " w" .. i .. " & " end
        os.execute(cmd .. "wait")
        local list = assert(tiktok.store.file({ path = path }):list())
        assert.equal(80, #list)
    end)
end)

describe("access control", function()
    local sb

    sandbox.use(function(s) sb = s end)

    it("only_me accounts are visible and usable by their owner only", function()
        local conn = tt.connect(sb)
        local alice = { user = "alice", workspace = "acme" }
        local acc = tt.account(conn, { as = alice })
        assert.equal("alice", acc.owner)
        assert.equal("only_me", acc.access)
        assert.equal(1, #conn:accounts({ as = alice }))
        assert.equal(0, #conn:accounts({ as = { user = "bob", workspace = "acme" } }))
        assert.equal(0, #conn:accounts())
        local res, err = conn:creator_info(acc.open_id, { as = { user = "bob", workspace = "acme" } })
        assert.is_nil(res)
        assert.equal("forbidden", err.code)
        res, err = tiktok.post({ connection = conn, account = acc.open_id, video_url = "https://x.example/a.mp4",
                                 privacy = "SELF_ONLY", as = { user = "bob" } })
        assert.is_nil(res)
        assert.equal("forbidden", err.code)
        assert.equal(0, tt.count(sb, "creator_info"))
        assert(conn:creator_info(acc.open_id, { as = alice }))
    end)

    it("workspace accounts are shared within the workspace only", function()
        local conn = tt.connect(sb)
        local acc = tt.account(conn, { as = { user = "alice", workspace = "acme" }, access = "workspace" })
        assert(conn:creator_info(acc.open_id, { as = { user = "bob", workspace = "acme" } }))
        local res, err = conn:creator_info(acc.open_id, { as = { user = "eve", workspace = "other" } })
        assert.is_nil(res)
        assert.equal("forbidden", err.code)
        assert.equal(1, #conn:accounts({ as = { workspace = "acme" } }))
        assert.equal(0, #conn:accounts({ as = { user = "alice", workspace = "other" } }))
    end)

    it("accounts without an owner serve a single-user script, never a web user acting as someone", function()
        local conn = tt.connect(sb)
        local acc = tt.account(conn)
        assert.is_nil(acc.owner)
        assert(conn:account(acc.open_id))
        assert(conn:creator_info(acc.open_id))
        local res, err = conn:creator_info(acc.open_id, { as = { user = "anyone" } })
        assert.is_nil(res)
        assert.equal("forbidden", err.code)
        assert.equal(0, #conn:accounts({ as = { user = "anyone" } }))
        assert.equal(1, #conn:accounts())
    end)

    it("a record is used only with the connection's own client key", function()
        local store = tiktok.store.memory()
        local conn = tt.connect(sb, { store = store })
        local acc = tt.account(conn)
        local other = tt.connect(sb, { store = store, client_key = "another_app_key" })
        local res, err = other:account(acc.open_id)
        assert.is_nil(res)
        assert.equal("forbidden", err.code)
        assert.truthy(err.message:find("another TikTok app", 1, true))
        res, err = tiktok.post({ connection = other, account = acc.open_id, video_url = "https://x.example/a.mp4",
                                 privacy = "SELF_ONLY" })
        assert.is_nil(res)
        assert.equal("forbidden", err.code)
    end)

    it("raises on a malformed as or access", function()
        local conn = tt.connect(sb)
        assert.has_error(function() conn:accounts({ as = { usr = "alice" } }) end)
        assert.has_error(function() conn:accounts({ as = "alice" }) end)
        assert.has_error(function()
            conn:exchange({ code = "c", state = "s", expected_state = "s", access = "everyone" })
        end)
    end)
end)

describe("tiktok.store.file: private folder, no symbolic links", function()
    local media = require "helpers.media"
    local dir

    before_each(function() dir = media.tmpdir() end)
    after_each(function() os.execute("chmod -R u+rwx '" .. dir .. "' 2>/dev/null; rm -rf '" .. dir .. "'") end)

    local function sh(cmd)
        local ok = os.execute(cmd)
        assert(ok == true or ok == 0, cmd)
    end

    it("creates missing folders with mode 0700, without a shell", function()
        local path = dir .. "/a/b/c/accounts.json"
        local st = tiktok.store.file({ path = path })
        assert(st:put({ open_id = "o", refresh_token = "r" }))
        for _, d in ipairs({ "/a", "/a/b", "/a/b/c" }) do
            assert.equal(tonumber("700", 8), tiktok.core.stat(dir .. d).mode, d)
        end
        assert.equal("r", st:get("o").refresh_token)
    end)

    it("refuses a store file or lock file that is a symbolic link, and leaves the target alone", function()
        local target = dir .. "/elsewhere.json"
        sandbox.write_file(target, '{"version":1,"accounts":{},"uploads":{}}')
        sh("ln -s '" .. target .. "' '" .. dir .. "/accounts.json'")
        local st = tiktok.store.file({ path = dir .. "/accounts.json" })
        local res, err = st:list()
        assert.is_nil(res)
        assert.equal("store", err.code)
        assert.matches("symbolic link", err.message)
        res, err = st:put({ open_id = "o", refresh_token = "r" })
        assert.is_nil(res)
        assert.equal("store", err.code)
        assert.matches("symbolic link", err.message)
        assert.equal('{"version":1,"accounts":{},"uploads":{}}', sandbox.read_file(target))

        local lockt = dir .. "/lock-target"
        sh("ln -s '" .. lockt .. "' '" .. dir .. "/other.json.lock'")
        res, err = tiktok.store.file({ path = dir .. "/other.json" }):put({ open_id = "o", refresh_token = "r" })
        assert.is_nil(res)
        assert.equal("store", err.code)
        assert.matches("symbolic link", err.message)
        assert.is_nil(sandbox.read_file(lockt))   -- the link was not followed to create it
    end)

    it("refuses a folder that other users can write to, and says how to fix it", function()
        local shared = dir .. "/shared"
        sh("mkdir -m 0777 '" .. shared .. "' && chmod 0777 '" .. shared .. "'")
        local st = tiktok.store.file({ path = shared .. "/accounts.json" })
        for _, call in ipairs({ function() return st:list() end,
                                function() return st:put({ open_id = "o", refresh_token = "r" }) end,
                                function() return st:locked(function() return true end) end }) do
            local res, err = call()
            assert.is_nil(res)
            assert.equal("store", err.code)
            assert.matches("can be written by other users", err.message)
            assert.matches("chmod 700 " .. shared, err.message, 1, true)
        end
        assert.is_nil(sandbox.read_file(shared .. "/accounts.json"))
        sh("chmod 0770 '" .. shared .. "'")
        assert.is_nil((st:list()))              -- group-writable is refused too
        sh("chmod 0700 '" .. shared .. "'")
        assert(st:put({ open_id = "o", refresh_token = "r" }))
    end)

    it("refuses a folder that belongs to another user", function()
        local foreign, path = dir .. "/foreign"
        if tiktok.core.check_private_dir("/") then      -- running as root: make one
            sh("mkdir -m 0700 '" .. foreign .. "' && chown 65534 '" .. foreign .. "'")
            path = foreign .. "/accounts.json"
        else                                             -- "/" belongs to root
            path = "/accounts.json"
        end
        local res, err = tiktok.store.file({ path = path }):list()
        assert.is_nil(res)
        assert.equal("store", err.code)
        assert.matches("not to this user", err.message)
        assert.matches("chown", err.message)
    end)
end)
