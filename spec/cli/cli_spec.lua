-- bin/tiktok run as a process: every command against the sandbox, --json,
-- bad arguments and configuration (clear message, exit 2), the exit codes
-- of TikTok refusals (3), network and TLS failures (4) and local trouble
-- (5), the progress output on a terminal (script(1)) and off one, and that
-- no secret is ever printed. Runs under the interpreter busted runs under.
local sandbox = require "helpers.sandbox"
local media = require "helpers.media"
local cjson = require "cjson.safe"

local LUA = (type(jit) == "table") and "luajit" or "lua5.4"
local ROOT = os.getenv("TIKTOK_ROOT") or (sandbox.exec("pwd"):gsub("%s+$", ""))
local BIN = ROOT .. "/bin/tiktok"
local q = sandbox.shell_quote

local FAST = {
    delays = { processing_ms = 50, moderation_ms = 50 },
    rate_limits = { ["video.init"] = 1000, ["inbox.init"] = 1000, ["content.init"] = 1000,
                    ["creator_info"] = 1000, ["status.fetch"] = 1000, ["user.info"] = 1000 },
}

local function read(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

local function write(path, s)
    local f = assert(io.open(path, "wb"))
    f:write(s)
    f:close()
end

-- Every output of every run, for the check that no secret was printed.
local transcript = {}

-- Runs bin/tiktok with a clean environment (only PATH, HOME, LANG and
-- opts.env), stdin from /dev/null. opts.tty runs it under script(1), so
-- stdout (and stderr) are a terminal; then r.out holds both.
-- Returns { code, out, err }.
local TMP = media.tmpdir()
local function run(args, opts)
    opts = opts or {}
    local env = { "PATH=" .. q(os.getenv("PATH")), "HOME=" .. q(TMP .. "/home"), "LANG=C.UTF-8" }
    for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. q(v) end
    local argv = { opts.direct and q(BIN) or (LUA .. " " .. q(BIN)) }
    for _, a in ipairs(args) do argv[#argv + 1] = q(a) end
    local cmd = "env -i " .. table.concat(env, " ") .. " " .. table.concat(argv, " ")
    if opts.tty then cmd = "script -qefc " .. q(cmd) .. " /dev/null" end
    local out, err = TMP .. "/stdout", TMP .. "/stderr"
    local input = "/dev/null"
    if opts.input then
        input = TMP .. "/stdin"
        write(input, opts.input)
    end
    cmd = cmd .. " >" .. out .. " 2>" .. err .. " <" .. input
    if opts.interrupt_on then
        -- One SIGINT, as a terminal's Ctrl-C delivers, once stdout shows
        -- opts.interrupt_on (a fixed string). `set -m` keeps the background
        -- job from inheriting an ignored SIGINT. (timeout(1) would signal the
        -- child twice, directly and through its process group; the second
        -- one can land after the interpreter's handler reset to the default
        -- and kill it before it says anything.)
        cmd = "set -m 2>/dev/null; " .. cmd .. " & pid=$!; n=0; "
              .. "until grep -qF " .. q(opts.interrupt_on) .. " " .. out .. " 2>/dev/null "
              .. "|| [ $n -ge 600 ]; do sleep 0.1; n=$((n+1)); done; "
              .. "kill -INT $pid; wait $pid"
    end
    local p = io.popen(cmd .. "; echo $?")
    local code = tonumber(p:read("*a"))
    p:close()
    local r = { code = code, out = read(out) or "", err = read(err) or "" }
    transcript[#transcript + 1] = r.out
    transcript[#transcript + 1] = r.err
    return r
end

-- The single JSON object a --json run printed.
local function json_of(r)
    local line = r.out:gsub("\n$", "")
    assert.is_nil(line:find("\n"), "more than one line on stdout: " .. r.out)
    local v = cjson.decode(line)
    assert.is_table(v, "stdout is not JSON: " .. r.out)
    return v
end

local function lines(s)
    local t = {}
    for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
    return t
end

describe("tiktok (command line)", function()
    lazy_teardown(function()
        os.execute("rm -rf " .. q(TMP))
    end)

    describe("help and usage", function()
        it("tiktok --help lists every command, every setting and every exit code", function()
            local r = run({ "--help" })
            assert.equal(0, r.code)
            assert.equal("", r.err)
            for _, c in ipairs({ "connect", "accounts", "creator", "post", "status", "revoke" }) do
                assert.matches("\n  " .. c .. " ", r.out, 1, true)
            end
            for _, k in ipairs({ "TIKTOK_CLIENT_KEY", "TIKTOK_CLIENT_SECRET", "TIKTOK_REDIRECT_URI",
                                 "TIKTOK_API_BASE", "TIKTOK_AUTH_BASE", "TIKTOK_CA_FILE", "TIKTOK_STORE",
                                 "TIKTOK_VERIFIED_PREFIXES", "--config FILE", "--env-file FILE", "--json" }) do
                assert.matches(k, r.out, 1, true)
            end
            for code = 0, 5 do assert.matches("\n  " .. code .. "  ", r.out, 1, true) end
            assert.matches("TikTok refused", r.out, 1, true)
            assert.matches("network, TLS or timeout", r.out, 1, true)
        end)

        it("every command has --help with its usage and options, also as `tiktok help CMD`", function()
            local want = {
                connect = { "--callback URL", "--code CODE", "--state STATE", "--approve", "--username NAME" },
                accounts = { "tiktok accounts" },
                creator = { "--account OPEN_ID" },
                post = { "--file PATH", "--url URL", "--photo URL", "--caption TEXT", "--var NAME=VALUE",
                         "--privacy LEVEL", "--allow-comments", "--allow-duets", "--allow-stitches",
                         "--brand-own", "--brand-third-party", "--ai-generated", "--inbox", "--no-wait",
                         "--account OPEN_ID" },
                status = { "PUBLISH_ID", "--wait" },
                revoke = { "--account OPEN_ID" },
            }
            for cmd, needles in pairs(want) do
                local r = run({ cmd, "--help" })
                assert.equal(0, r.code)
                assert.matches("Usage: tiktok " .. cmd, r.out, 1, true)
                for _, n in ipairs(needles) do assert.matches(n, r.out, 1, true) end
                local r2 = run({ "help", cmd })
                assert.equal(0, r2.code)
                assert.equal(r.out, r2.out)
                local r3 = run({ cmd, "-h" })
                assert.equal(r.out, r3.out)
            end
        end)

        it("--version prints the library's version", function()
            local r = run({ "--version" })
            assert.equal(0, r.code)
            assert.matches("^tiktok %(lua%-tiktok%) %d+%.%d+%.%d+\n$", r.out)
            assert.same({ version = r.out:match("(%d+%.%d+%.%d+)") }, json_of(run({ "--version", "--json" })))
        end)

        it("runs as a script of its own (the shell picks a Lua it is built for)", function()
            local r = run({ "--version" }, { direct = true })
            assert.equal(0, r.code, r.err)
            assert.matches("lua%-tiktok", r.out)
        end)

        it("without a command: the usage on stderr and exit 2", function()
            local r = run({})
            assert.equal(2, r.code)
            assert.equal("", r.out)
            assert.matches("Usage: tiktok", r.err, 1, true)
        end)

        -- Each of these is refused before any configuration is read: the
        -- environment is empty, so reaching the config would say so instead.
        local bad = {
            { { "pots" }, "unknown command 'pots'; did you mean 'post'?" },
            { { "post", "--allow-comment" }, "unknown option --allow-comment; did you mean --allow-comments?" },
            { { "accounts", "--client-secret=hunter2" }, "unknown option --client-secret" },
            { { "post", "--caption" }, "--caption needs a value" },
            { { "post", "--json=yes" }, "--json takes no value" },
            { { "post", "--privacy", "SELF_ONLY" }, "give what to post: --url URL, --file PATH or --photo URL" },
            { { "post", "--file", "a.mp4", "--url", "https://x.example/a.mp4", "--privacy", "SELF_ONLY" },
              "give only one of --url, --file and --photo (got --url and --file)" },
            { { "post", "--file", "a.mp4" }, "--privacy LEVEL is required" },
            { { "post", "--file", "a.mp4", "--privacy", "SELF_ONLY", "--privacy", "SELF_ONLY" },
              "--privacy is given more than once" },
            { { "post", "--file", "a.mp4", "--privacy", "SELF_ONLY", "--var", "title" },
              "--var takes NAME=VALUE" },
            { { "post", "--file", "a.mp4", "--privacy", "SELF_ONLY", "--var", "a..b=1" }, "--var takes NAME=VALUE" },
            { { "post", "--file", "a.mp4", "--privacy", "SELF_ONLY", "--var", "t=1", "--var", "t=2" },
              "--var t is given more than once" },
            { { "post", "--file", "a.mp4", "--privacy", "SELF_ONLY", "--cover-ms", "1.5s" },
              "--cover-ms takes a whole number from 0" },
            { { "post", "--file", "a.mp4", "--privacy", "SELF_ONLY", "--no-wait", "--wait-timeout", "5" },
              "--wait-timeout has no use with --no-wait" },
            { { "post", "--file", "a.mp4", "--privacy", "SELF_ONLY", "--wait-timeout", "soon" },
              "--wait-timeout takes a number of seconds" },
            { { "post", "extra", "--file", "a.mp4", "--privacy", "SELF_ONLY" }, "takes no arguments" },
            { { "post", "clip.mp4", "--privacy", "SELF_ONLY" }, "to post it, give --file clip.mp4" },
            { { "connect", "--pkce", "--no-pkce" }, "give --pkce or --no-pkce, not both" },
            { { "connect", "--no-pkce", "--code", "c", "--state", "s" }, "--no-pkce belongs to the first step" },
            { { "status" }, "give the publish_id" },
            { { "status", "a", "b" }, "takes one publish_id" },
            { { "status", "not an id" }, "is not a publish_id" },
            { { "status", "v_pub_file~1", "--wait-timeout", "5" }, "--wait-timeout works only with --wait" },
            { { "connect", "--code", "c" }, "--code and --state go together" },
            { { "connect", "--approve", "--callback", "https://a.example/cb?code=1&state=2" },
              "--approve does both steps" },
            { { "connect", "--callback", "https://a.example/cb?code=1", "--code", "1", "--state", "2" },
              "give either --callback URL or --code CODE --state STATE" },
            { { "connect", "--username", "bob" }, "--username works only with --approve" },
            { { "connect", "--callback", "nothing-here" }, "--callback takes the whole address" },
            { { "accounts", "x" }, "takes no arguments" },
            { { "creator", "--account" }, "--account needs a value" },
            { { "help", "nope" }, "no help for 'nope'" },
        }
        for _, case in ipairs(bad) do
            it("exit 2 with a clear message: tiktok " .. table.concat(case[1], " "), function()
                local r = run(case[1])
                assert.equal(2, r.code, r.err)
                assert.equal("", r.out)
                assert.matches(case[2], r.err, 1, true)
                assert.matches("Run 'tiktok", r.err, 1, true)
                assert.not_matches("configuration", r.err, 1, true)
                local args = { "--json" }
                for _, a in ipairs(case[1]) do args[#args + 1] = a end
                local j = run(args)
                assert.equal(2, j.code)
                assert.equal("", j.err)
                local e = json_of(j).error
                assert.equal("usage", e.code)
                assert.equal(2, e.exit_code)
                assert.matches(case[2], e.message, 1, true)
            end)
        end

        it("never echoes the value of an unknown --name=value option", function()
            local r = run({ "accounts", "--client-secret=s3cr3t-value" })
            assert.equal(2, r.code)
            assert.not_matches("s3cr3t", r.err, 1, true)
        end)
    end)

    describe("configuration", function()
        local function conf(text)
            local path = TMP .. "/conf-" .. #transcript
            write(path, text)
            return path
        end
        local GOOD = "TIKTOK_CLIENT_KEY=key\nTIKTOK_CLIENT_SECRET=secret-value\n"
                     .. "TIKTOK_REDIRECT_URI=https://app.example/cb\n"

        it("names every missing setting (exit 2), in text and in JSON", function()
            local r = run({ "creator" })
            assert.equal(2, r.code)
            assert.matches("missing configuration: TIKTOK_CLIENT_KEY, TIKTOK_CLIENT_SECRET, "
                           .. "TIKTOK_REDIRECT_URI", r.err, 1, true)
            r = run({ "creator" }, { env = { TIKTOK_CLIENT_KEY = "k", TIKTOK_REDIRECT_URI = "https://a.example/cb" } })
            assert.equal(2, r.code)
            assert.matches("missing configuration: TIKTOK_CLIENT_SECRET. Set it", r.err, 1, true)
            local e = json_of(run({ "--json", "connect" })).error
            assert.equal("config", e.code)
            assert.equal(2, e.exit_code)
        end)

        it("accounts reads the store with no client key or secret set", function()
            local store = TMP .. "/bare-store.json"
            write(store, '{"version":1,"accounts":{"-000hLNeFCu7aluBmIBS1XngRBeXaEt0mpSu":{'
                         .. '"open_id":"-000hLNeFCu7aluBmIBS1XngRBeXaEt0mpSu","client_key":"app-a",'
                         .. '"access_token":"act.never-printed-1","refresh_token":"rft.never-printed-2",'
                         .. '"scopes":["video.publish"],"expires_at":1,"refresh_expires_at":2},'
                         .. '"_other":{"open_id":"_other","client_key":"app-b","scopes":[],'
                         .. '"access_token":"act.never-printed-3"}}}')
            local r = run({ "--json", "accounts" }, { env = { TIKTOK_STORE = store } })
            assert.equal(0, r.code, r.err)
            local list = json_of(r).accounts
            assert.equal(2, #list)
            r = run({ "accounts" }, { env = { TIKTOK_STORE = store, TIKTOK_CLIENT_KEY = "app-a" } })
            assert.equal(0, r.code, r.err)
            assert.matches("^1 connected account ", r.out)
            assert.matches("\n  -000hLNeFCu7aluBmIBS1XngRBeXaEt0mpSu\n", r.out, 1, true)
            assert.not_matches("never-printed", r.out .. r.err, 1, true)
        end)

        it("reads KEY=value files with comments, export and shell quoting; paths relative to the file", function()
            local dir = TMP .. "/cfgdir"
            os.execute("mkdir -p " .. q(dir))
            local path = dir .. "/app.env"
            write(path, "# my app\n\nexport TIKTOK_CLIENT_KEY='k'\\''ey'\nTIKTOK_CLIENT_SECRET=\"sec#ret\"\n"
                        .. "TIKTOK_REDIRECT_URI = https://app.example/cb   # registered\n"
                        .. "TIKTOK_STORE=store/accounts.json\r\nTIKTOK_OTHER_THING=ignored\n")
            local r = run({ "--json", "--config", path, "accounts" })
            assert.equal(0, r.code, r.err)
            assert.equal("", r.err)
            local v = json_of(r)
            assert.same({}, v.accounts)
            assert.equal(dir .. "/store/accounts.json", v.store)
        end)

        it("refuses malformed lines with the file and line number", function()
            local cases = {
                { "TIKTOK_CLIENT_KEY=k\nnot a setting\n", ":2: expected KEY=value" },
                { "TIKTOK_CLIENT_KEY='k\n", ":1: the value of TIKTOK_CLIENT_KEY has no closing '" },
                { "TIKTOK_CLIENT_KEY=two words\n", "has unquoted spaces" },
                { GOOD .. "TIKTOK_AUDITED=maybe\n", "TIKTOK_AUDITED (" },
                { GOOD .. "TIKTOK_TIMEOUT_MS=10s\n", "TIKTOK_TIMEOUT_MS (" },
                { GOOD .. "TIKTOK_VERIFIED_PREFIXES=http://cdn.example/v/\n",
                  "TIKTOK_VERIFIED_PREFIXES: entry [1] must be 'https://host/path/'" },
                { "TIKTOK_CLIENT_KEY=k\nTIKTOK_CLIENT_SECRET=s\nTIKTOK_REDIRECT_URI=http://app.example/cb\n",
                  "redirect_uri (TIKTOK_REDIRECT_URI) must use https" },
                { GOOD .. "TIKTOK_CA_FILE=/nonexistent/ca.pem\n", "ca_file (TIKTOK_CA_FILE)" },
                { GOOD .. "TIKTOK_CHUNK_SIZE=1000\n", "chunk_size (TIKTOK_CHUNK_SIZE) must be between" },
            }
            for _, c in ipairs(cases) do
                local r = run({ "creator", "--config", conf(c[1]) })
                assert.equal(2, r.code, c[1])
                assert.matches(c[2], r.err, 1, true)
                assert.not_matches("secret-value", r.err, 1, true)
            end
            local r = run({ "accounts", "--config", TMP .. "/no-such-file" })
            assert.equal(2, r.code)
            assert.matches("cannot read the config file " .. TMP .. "/no-such-file", r.err, 1, true)
        end)

        it("warns about a setting that looks misspelt, and ignores other keys", function()
            local r = run({ "accounts", "--config", conf(GOOD .. "TIKTOK_VERIFIED_PREFIX=https://a.example/v/\n"
                                                         .. "TIKTOK_SANDBOX_PID=123\n"),
                            "--json" })
            assert.equal(0, r.code)
            assert.matches(":4: unknown setting TIKTOK_VERIFIED_PREFIX ignored; did you mean "
                           .. "TIKTOK_VERIFIED_PREFIXES?", r.err, 1, true)
            assert.not_matches("TIKTOK_SANDBOX_PID", r.err, 1, true)
        end)

        it("a --config file wins over the environment; the environment fills the rest", function()
            local store = TMP .. "/env-store.json"
            local r = run({ "--json", "accounts", "--config", conf(GOOD) },
                          { env = { TIKTOK_CLIENT_KEY = "from-env", TIKTOK_STORE = store } })
            assert.equal(0, r.code, r.err)
            assert.equal(store, json_of(r).store)
        end)
    end)

    describe("against the sandbox", function()
        local sb, dir, clip, store, n_store = nil, nil, nil, nil, 0

        -- bin/tiktok with the sandbox's env file and this test's store.
        local function tk(args, opts)
            opts = opts or {}
            local full = { "--env-file", sb.dir .. "/env" }
            for _, a in ipairs(args) do full[#full + 1] = a end
            local env = { TIKTOK_STORE = store }
            for k, v in pairs(opts.env or {}) do env[k] = v end
            return run(full, { env = env, tty = opts.tty, interrupt_on = opts.interrupt_on, input = opts.input })
        end

        local function stored_tokens()
            local doc = cjson.decode(read(store) or "{}") or {}
            local out = {}
            for _, rec in pairs(doc.accounts or {}) do
                out[#out + 1] = rec.access_token
                out[#out + 1] = rec.refresh_token
            end
            return out
        end

        local secrets = {}
        local function remember_tokens()
            for _, t in ipairs(stored_tokens()) do secrets[#secrets + 1] = t end
        end

        -- A fresh store with one connected account; returns its open_id.
        local function connect(username)
            local args = { "--json", "connect", "--approve" }
            if username then args[#args + 1] = "--username"; args[#args + 1] = username end
            local r = tk(args)
            assert.equal(0, r.code, r.out .. r.err)
            remember_tokens()
            return json_of(r).connected.open_id
        end

        local function count(endpoint)
            return #sb:log({ endpoint = endpoint })
        end

        sandbox.use(function(s, d)
            sb, dir = s, d
            secrets[#secrets + 1] = sb.env.TIKTOK_CLIENT_SECRET
            clip = media.mp4(dir, { seconds = 2 })
        end, { tmpdir = true, config = FAST })
        before_each(function()
            sb:admin("PATCH", "/users/" .. sb.env.TIKTOK_SANDBOX_USER, { daily_post_cap = 1000 })
            n_store = n_store + 1
            store = TMP .. "/store-" .. n_store .. "/accounts.json"
        end)

        describe("connect", function()
            it("step 1 prints the redirect URI to register and the authorize URL, and keeps the state", function()
                local r = tk({ "connect" })
                assert.equal(0, r.code, r.err)
                assert.matches("\n     " .. sb.env.TIKTOK_REDIRECT_URI .. "\n", r.out, 1, true)
                local url = r.out:match("\n     (https://%S+/v2/auth/authorize/%?%S+)\n")
                assert.is_string(url)
                local query = sandbox.parse_query(url)
                assert.equal(sb.env.TIKTOK_CLIENT_KEY, query.client_key)
                assert.equal(sb.env.TIKTOK_REDIRECT_URI, query.redirect_uri)
                assert.matches("tiktok connect --callback", r.out, 1, true)
                local pending = cjson.decode(read(store .. ".pending"))
                assert.equal(query.state, pending.state)
                -- PKCE by default: the verifier stays in the pending file, its
                -- challenge goes in the URL
                assert.matches("^%x+$", pending.code_verifier)
                secrets[#secrets + 1] = pending.code_verifier
                assert.equal("S256", query.code_challenge_method)
                assert.matches("^%x+$", query.code_challenge)
                local st = sandbox.exec("stat -c %a " .. q(store .. ".pending"))
                assert.equal("600", st:gsub("%s+$", ""))
                -- nothing was sent to TikTok yet
                assert.equal(0, count("oauth.token"))
            end)

            it("--no-pkce leaves PKCE out, for an app TikTok still lets in without it", function()
                local j = json_of(tk({ "--json", "connect", "--no-pkce" }))
                local query = sandbox.parse_query(j.authorize_url)
                assert.is_nil(query.code_challenge)
                assert.is_nil(cjson.decode(read(store .. ".pending")).code_verifier)
                assert.equal(query.state, j.state)
            end)

            -- What the browser does: consent on TikTok's page, which
            -- redirects to the app with ?code=&state= (or ?error=).
            local function browser(authorize_url, decision)
                local query = sandbox.parse_query(authorize_url)
                local status, cb, location = sb:authorize({ scope = query.scope, state = query.state,
                                                            redirect_uri = query.redirect_uri,
                                                            code_challenge = query.code_challenge,
                                                            code_challenge_method = query.code_challenge_method,
                                                            decision = decision or "approve" })
                assert.equal(302, status)
                if cb.code then secrets[#secrets + 1] = cb.code end
                return location, cb
            end

            it("step 2 takes the callback URL back and stores the account (text, then JSON)", function()
                local j = json_of(tk({ "--json", "connect" }))
                assert.equal(sb.env.TIKTOK_REDIRECT_URI, j.redirect_uri)
                assert.equal(store .. ".pending", j.pending_file)
                local location = browser(j.authorize_url)
                local r = tk({ "connect", "--callback", location })
                assert.equal(0, r.code, r.err)
                remember_tokens()
                local open_id = r.out:match("^Connected TikTok account (%S+) %(Sandbox Creator%)\n")
                assert.is_string(open_id)
                assert.matches("scopes:%s+user.info.basic, video.publish, video.upload", r.out)
                assert.is_nil(read(store .. ".pending"))
                -- the same again in JSON, with --code and --state
                j = json_of(tk({ "--json", "connect" }))
                local _, cb = browser(j.authorize_url)
                local v = json_of(tk({ "--json", "connect", "--code", cb.code, "--state", cb.state }))
                assert.equal(open_id, v.connected.open_id)
                assert.equal("Sandbox Creator", v.connected.display_name)
                assert.same({ "user.info.basic", "video.publish", "video.upload" }, v.connected.scopes)
                assert.is_number(v.connected.expires_at)
                assert.is_nil(v.connected.access_token)
            end)

            it("a callback whose state does not match is refused (exit 2) before any request", function()
                local j = json_of(tk({ "--json", "connect" }))
                local location = browser(j.authorize_url)
                tk({ "connect" })   -- a newer attempt replaces the pending state
                local before = count("oauth.token")
                local r = tk({ "connect", "--callback", location })
                assert.equal(2, r.code)
                assert.matches("does not match the connection started by `tiktok connect`", r.err, 1, true)
                assert.matches("(state_mismatch)", r.err, 1, true)
                assert.equal(before, count("oauth.token"))
                assert.is_string(read(store .. ".pending"))
            end)

            it("a callback with nothing pending is exit 5 and says to start with `tiktok connect`", function()
                local r = tk({ "connect", "--callback", sb.env.TIKTOK_REDIRECT_URI .. "?code=abc&state=def" })
                assert.equal(5, r.code)
                assert.matches("no connection is waiting to be finished", r.err, 1, true)
            end)

            it("a denied consent comes back as TikTok's error (exit 3)", function()
                local j = json_of(tk({ "--json", "connect" }))
                local location, cb = browser(j.authorize_url, "cancel")
                assert.is_string(cb.error)
                local r = tk({ "--json", "connect", "--callback", location })
                assert.equal(3, r.code)
                assert.equal(cb.error, json_of(r).error.code)
                assert.equal(0, count("oauth.token"))
            end)

            it("a code TikTok refuses is exit 3, and the code is not printed", function()
                local j = json_of(tk({ "--json", "connect" }))
                local _, cb = browser(j.authorize_url)
                assert.equal(0, tk({ "connect", "--code", cb.code, "--state", cb.state }).code)
                tk({ "connect" })
                local pending = cjson.decode(read(store .. ".pending"))
                local r = tk({ "connect", "--code", cb.code, "--state", pending.state })   -- used twice
                assert.equal(3, r.code)
                assert.matches("(invalid_grant)", r.err, 1, true)
                assert.not_matches(cb.code, r.err, 1, true)
            end)

            it("--approve connects on the sandbox in one go, as TIKTOK_SANDBOX_USER or --username", function()
                local r = tk({ "connect", "--approve" })
                assert.equal(0, r.code, r.err)
                assert.matches("^Connected TikTok account %S+ %(Sandbox Creator%)", r.out)
                remember_tokens()
                local private = sb.env.TIKTOK_SANDBOX_PRIVATE_USER
                local v = json_of(tk({ "--json", "connect", "--approve", "--username", private }))
                assert.is_string(v.connected.open_id)
                remember_tokens()
                local list = json_of(tk({ "--json", "accounts" })).accounts
                assert.equal(2, #list)
            end)

            it("--approve against a non-loopback auth base is refused with a clear message", function()
                local cfg = TMP .. "/real-auth.env"
                write(cfg, "TIKTOK_AUTH_BASE=https://www.tiktok.com\n")
                local r2 = run({ "--env-file", sb.dir .. "/env", "--config", cfg, "connect", "--approve" },
                               { env = { TIKTOK_STORE = store } })
                assert.equal(2, r2.code)
                assert.matches("works only against the local sandbox", r2.err, 1, true)
            end)
        end)

        describe("accounts, creator, revoke", function()
            it("accounts: none, then the connected one (text and JSON)", function()
                local r = tk({ "accounts" })
                assert.equal(0, r.code)
                assert.matches("No TikTok account is connected", r.out, 1, true)
                assert.same({ accounts = {}, store = store }, json_of(tk({ "--json", "accounts" })))
                local open_id = connect()
                r = tk({ "accounts" })
                assert.matches("^1 connected account %(store: " .. store:gsub("%p", "%%%0") .. "%):\n", r.out)
                assert.matches("\n  " .. open_id .. "\n", r.out, 1, true)
                assert.matches("access token:   expires %d%d%d%d%-%d%d%-%d%d %d%d:%d%d %(in", r.out)
                local list = json_of(tk({ "--json", "accounts" })).accounts
                assert.equal(1, #list)
                assert.equal(open_id, list[1].open_id)
            end)

            it("creator shows the creator's live settings (text and JSON)", function()
                local open_id = connect()
                sb:admin("PATCH", "/users/" .. sb.env.TIKTOK_SANDBOX_USER,
                         { duet_disabled = true, max_video_post_duration_sec = 120 })
                local r = tk({ "creator" })
                assert.equal(0, r.code, r.err)
                assert.matches("^Creator @" .. sb.env.TIKTOK_SANDBOX_USER, r.out)
                assert.matches("privacy levels:%s+PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, SELF_ONLY", r.out)
                assert.matches("duets:%s+off in the creator's settings", r.out)
                assert.matches("longest video:%s+120 s\n", r.out)
                local v = json_of(tk({ "--json", "creator", "--account", open_id }))
                assert.equal(open_id, v.account)
                assert.same({ "PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY" },
                            v.creator.privacy_level_options)
                assert.is_true(v.creator.duet_disabled)
                assert.is_false(v.creator.comment_disabled)
                assert.equal(120, v.creator.max_video_post_duration_sec)
            end)

            it("with no account: exit 5 and the hint to connect; with several: exit 2 naming them", function()
                local r = tk({ "creator" })
                assert.equal(5, r.code)
                assert.matches("no TikTok account is connected yet", r.err, 1, true)
                assert.matches("hint: run `tiktok connect`", r.err, 1, true)
                local a = connect()
                local b = connect(sb.env.TIKTOK_SANDBOX_PRIVATE_USER)
                r = tk({ "creator" })
                assert.equal(2, r.code)
                assert.matches("2 TikTok accounts are connected; choose one with --account OPEN_ID", r.err, 1, true)
                assert.matches(a, r.err, 1, true)
                assert.matches(b, r.err, 1, true)
                r = tk({ "--json", "creator", "--account", "no-such-account" })
                assert.equal(5, r.code)
                assert.equal("not_found", json_of(r).error.code)
                local v = json_of(tk({ "--json", "creator", "--account", b }))
                assert.equal(b, v.account)
                assert.equal(sb.env.TIKTOK_SANDBOX_PRIVATE_USER, v.creator.username)
                assert.not_matches("PUBLIC_TO_EVERYONE", table.concat(v.creator.privacy_level_options, ","))
            end)

            it("takes an open_id that starts with '-' (as TikTok's may) in every --account", function()
                local a = connect()
                local b = connect(sb.env.TIKTOK_SANDBOX_PRIVATE_USER)
                assert.equal("-", a:sub(1, 1))   -- the sandbox's default creator, as TikTok's ids can be
                assert.equal("_", b:sub(1, 1))
                assert.equal(35, #a)
                for _, args in ipairs({ { "--account", a }, { "--account=" .. a } }) do
                    local v = json_of(tk({ "--json", "creator", args[1], args[2] }))
                    assert.equal(a, v.account)
                end
                local p = json_of(tk({ "--json", "post", "--file", clip, "--privacy", "SELF_ONLY",
                                       "--account", a, "--caption", "-30% today" }))
                assert.equal(a, p.account)
                assert.equal("-30% today", p.caption)
                assert.equal(a, sb:post(p.publish_id).open_id)
                local s = json_of(tk({ "--json", "status", p.publish_id, "--account", a }))
                assert.equal("PUBLISH_COMPLETE", s.status)
                local r = tk({ "revoke", "--account", a })
                assert.equal(0, r.code, r.err)
                assert.matches("Revoked the app's access to " .. a, r.out, 1, true)
                local left = json_of(tk({ "--json", "accounts" })).accounts
                assert.equal(1, #left)
                assert.equal(b, left[1].open_id)
            end)

            it("revoke revokes at TikTok and forgets the account", function()
                local open_id = connect()
                -- the only account, but not named: off a terminal it needs --yes
                local r = tk({ "revoke" })
                assert.equal(2, r.code)
                assert.matches("revoke without --account asks first; give --account " .. open_id .. " or --yes",
                               r.err, 1, true)
                assert.equal(0, count("oauth.revoke"))
                r = tk({ "revoke", "--yes" })
                assert.equal(0, r.code, r.err)
                assert.matches("Revoked the app's access to " .. open_id, r.out, 1, true)
                assert.equal(1, count("oauth.revoke"))
                assert.same({}, json_of(tk({ "--json", "accounts" })).accounts)
                local again = connect()
                assert.same({ revoked = again }, json_of(tk({ "--json", "revoke", "--account", again })))
                r = tk({ "--json", "revoke", "--yes" })
                assert.equal(5, r.code)
            end)

            it("revoke without --account asks on a terminal, and does nothing unless the answer is yes", function()
                local open_id = connect()
                local r = tk({ "revoke" }, { tty = true, input = "n\n" })
                assert.equal(2, r.code, r.out)
                assert.matches("Revoke the app's access to TikTok account " .. open_id .. " and remove it from "
                               .. store .. "? [y/N] ", r.out, 1, true)
                assert.matches("nothing was revoked", r.out, 1, true)
                assert.equal(0, count("oauth.revoke"))
                r = tk({ "revoke" }, { tty = true, input = "yes\n" })
                assert.equal(0, r.code, r.out)
                assert.matches("Revoked the app's access to " .. open_id, r.out, 1, true)
                assert.equal(1, count("oauth.revoke"))
            end)

            it("an account TikTok no longer honours is exit 3 with the hint to reconnect", function()
                connect()
                sb:admin("POST", "/users/" .. sb.env.TIKTOK_SANDBOX_USER .. "/deauthorize", {})
                local r = tk({ "creator" })
                assert.equal(3, r.code, r.err)
                assert.matches("hint: run `tiktok connect` again", r.err, 1, true)
            end)
        end)

        describe("post and status", function()
            it("posts a file; off a terminal, one plain line per stage and chunk", function()
                connect()
                local big = media.mp4(dir, { seconds = 2, size = 12000000 })
                local r = tk({ "post", "--file", big, "--caption", "{{title}} #{{tag.name}}",
                               "--var", "title=Spring drop", "--var", "tag.name=launch",
                               "--privacy", "SELF_ONLY", "--allow-comments" },
                             { env = { TIKTOK_CHUNK_SIZE = "6000000" } })
                assert.equal(0, r.code, r.err)
                assert.equal("", r.err)
                assert.not_matches("\r", r.out, 1, true)
                assert.not_matches("\27", r.out, 1, true)
                local l = lines(r.out)
                assert.equal("creator_info: checking the creator's current settings", l[1])
                assert.equal("init: creating the post", l[2])
                local publish_id = l[3]:match("^init: publish_id (v_pub_file~%S+)$")
                assert.is_string(publish_id)
                assert.equal("upload: chunk 1/2: 6000000 of 12000000 bytes sent", l[4])
                assert.equal("upload: chunk 2/2: 12000000 of 12000000 bytes sent", l[5])
                assert.matches("^status: ", l[6])
                assert.matches("\nstatus: PUBLISH_COMPLETE\nPosted to TikTok.\n", r.out, 1, true)
                assert.matches("\n  publish_id:  " .. publish_id .. "\n", r.out, 1, true)
                assert.matches("\n  caption:     Spring drop #launch\n", r.out, 1, true)
                assert.matches("none: TikTok gives post ids only for public posts", r.out, 1, true)
                local p = sb:post(publish_id)
                assert.equal("Spring drop #launch", p.post_info.title)
                assert.equal("SELF_ONLY", p.post_info.privacy_level)
                assert.equal(12000000, p.bytes_received)
                assert.equal(media.sha256(big), p.sha256)
            end)

            it("on a terminal, a progress bar redrawn with \\r (bytes, rate, ETA) and a status line", function()
                connect()
                local r = tk({ "post", "--file", clip, "--privacy", "SELF_ONLY" }, { tty = true })
                assert.equal(0, r.code, r.out)
                local size = sandbox.file_size(clip)
                assert.matches("\rChecking the creator's current settings on TikTok...\27[K", r.out, 1, true)
                assert.matches("\rPost created: publish_id v_pub_file~", r.out, 1, true)
                assert.is_true(size > 1000 and size < 1000000)
                local kb = string.format("%.1f", size / 1000)
                local done = "\rUploaded  [####################] 100%  " .. kb .. "/" .. kb .. " kB  "
                assert.matches(done, r.out, 1, true)
                -- a rate only once it means something (half a second of upload),
                -- never "593.0 MB/s in 0.0s" for a file this small
                local tail = r.out:match("100%%  [%d.]+/[%d.]+ kB  (.-)\27%[K\r\n")
                assert.is_string(tail)
                local secs = tail:match("^in <0%.1s$") and 0 or tonumber(tail:match("in ([%d.]+)s$"))
                assert.is_number(secs, tail)
                if secs < 0.5 then
                    assert.matches("^in [<%d.]+s$", tail)
                else
                    assert.matches("^[%d.]+ MB/s  in [%d.]+s$", tail)
                end
                assert.matches("\rWaiting for TikTok: PUBLISH_COMPLETE %(%d+s%)\27%[K", r.out)
                -- the waiting line is erased before the result
                assert.matches("\r\27[KPosted to TikTok.", r.out, 1, true)
                assert.not_matches("\ninit: ", r.out, 1, true)
                assert.not_matches("upload: chunk", r.out, 1, true)
            end)

            it("the progress bar shows the rate and ETA while a slow upload runs", function()
                connect()
                local big = media.mp4(dir, { seconds = 2, size = 30000000 })
                sb:admin("POST", "/faults", { endpoint = "upload.put", delay_ms = 400, when = "after", count = 3 })
                local r = tk({ "post", "--file", big, "--privacy", "SELF_ONLY", "--no-wait" },
                             { tty = true, env = { TIKTOK_CHUNK_SIZE = "10000000" } })
                assert.equal(0, r.code, r.out)
                assert.matches("\rUploading %[#+%-+%] +%d+%%  [%d.]+/30%.0 MB  [%d.]+ MB/s  ETA %d+s\27%[K", r.out)
                assert.matches("\rUploaded  [####################] 100%  30.0/30.0 MB", r.out, 1, true)
            end)

            it("each switch reaches TikTok as its post_info field; all off by default", function()
                connect()
                local on = json_of(tk({ "--json", "post", "--file", clip, "--privacy", "PUBLIC_TO_EVERYONE",
                                        "--allow-comments", "--allow-duets", "--allow-stitches", "--brand-own",
                                        "--brand-third-party", "--ai-generated", "--cover-ms", "500" }))
                assert.same({ privacy_level = "PUBLIC_TO_EVERYONE", disable_comment = false, disable_duet = false,
                              disable_stitch = false, brand_organic_toggle = true, brand_content_toggle = true,
                              is_aigc = true, video_cover_timestamp_ms = 500 },
                            sb:post(on.publish_id).post_info)
                local off = json_of(tk({ "--json", "post", "--file", clip, "--privacy", "MUTUAL_FOLLOW_FRIENDS" }))
                assert.same({ privacy_level = "MUTUAL_FOLLOW_FRIENDS", disable_comment = true, disable_duet = true,
                              disable_stitch = true, brand_organic_toggle = false, brand_content_toggle = false,
                              is_aigc = false },
                            sb:post(off.publish_id).post_info)
            end)

            it("posts photos by URL with a title and a cover", function()
                connect()
                for i = 1, 2 do
                    sandbox.make_image(sb.env.TIKTOK_MEDIA_DIR .. "/p" .. i .. ".jpg", "640x480")
                end
                local base = sb.env.TIKTOK_MEDIA_BASE
                local r = tk({ "post", "--photo", base .. "p1.jpg", "--photo", base .. "p2.jpg", "--title", "Two",
                               "--caption", "{{n}} photos", "--var", "n=2", "--cover-index", "1",
                               "--privacy", "SELF_ONLY" })
                assert.equal(0, r.code, r.err)
                assert.matches("\nPosted to TikTok.\n", r.out, 1, true)
                assert.matches("\n  title:       Two\n", r.out, 1, true)
                local p = sb:post(r.out:match("publish_id:  (%S+)"))
                assert.equal("PHOTO", p.media_type)
                assert.equal("Two", p.post_info.title)
                assert.equal("2 photos", p.post_info.description)
                assert.same({ base .. "p1.jpg", base .. "p2.jpg" }, p.source_info.photo_images)
                assert.equal(1, p.source_info.photo_cover_index)
            end)

            it("--json prints one object and no progress", function()
                connect()
                local r = tk({ "--json", "post", "--file", clip, "--privacy", "PUBLIC_TO_EVERYONE",
                               "--caption", "hello" })
                assert.equal(0, r.code, r.err)
                local v = json_of(r)
                assert.equal("PUBLISH_COMPLETE", v.status)
                assert.matches("^v_pub_file~", v.publish_id)
                assert.equal("PUBLIC_TO_EVERYONE", v.privacy)
                assert.equal("hello", v.caption)
                assert.equal("direct", v.mode)
                assert.is_table(v.post_ids)
                -- the post id arrives once moderation makes the post public
                local ids
                for _ = 1, 40 do
                    ids = json_of(tk({ "--json", "status", v.publish_id })).post_ids
                    if #ids > 0 then break end
                    sandbox.sleep(0.05)
                end
                assert.equal(1, #ids)
                assert.matches("^%d+$", ids[1])
                assert.same(sb:post(v.publish_id).post_ids, ids)
            end)

            it("posts by URL with variables in the URL, from the verified media host", function()
                connect()
                sandbox.exec("cp " .. q(clip) .. " " .. q(sb.env.TIKTOK_MEDIA_DIR .. "/teaser.mp4"))
                local r = tk({ "post", "--url", sb.env.TIKTOK_MEDIA_BASE .. "{{name}}.mp4", "--var", "name=teaser",
                               "--privacy", "SELF_ONLY" },
                             { env = { TIKTOK_VERIFIED_PREFIXES = sb.env.TIKTOK_MEDIA_BASE } })
                assert.equal(0, r.code, r.err)
                assert.matches("\nstatus: PROCESSING_DOWNLOAD\n", r.out, 1, true)
                assert.matches("\nPosted to TikTok.\n", r.out, 1, true)
                local publish_id = r.out:match("publish_id:  (%S+)")
                assert.matches("^v_pub_url~", publish_id)
                local p = sb:post(publish_id)
                assert.equal(sb.env.TIKTOK_MEDIA_BASE .. "teaser.mp4", p.source_info.video_url)
            end)

            it("with --relay never, a URL outside TIKTOK_VERIFIED_PREFIXES is refused before TikTok is asked (exit 3)",
               function()
                connect()
                local r = tk({ "--json", "post", "--url", "https://elsewhere.example/v.mp4", "--privacy", "SELF_ONLY",
                               "--relay", "never" },
                             { env = { TIKTOK_VERIFIED_PREFIXES = sb.env.TIKTOK_MEDIA_BASE } })
                assert.equal(3, r.code)
                local e = json_of(r).error
                assert.equal("invalid_settings", e.code)
                assert.is_true(#e.problems >= 1)
                assert.equal(0, count("video.init"))
            end)

            it("--inbox sends a draft to the creator's inbox", function()
                connect()
                local v = json_of(tk({ "--json", "post", "--file", clip, "--inbox" }))
                assert.equal("SEND_TO_USER_INBOX", v.status)
                assert.equal("inbox", v.mode)
                assert.equal(1, count("inbox.init"))
                local r = tk({ "post", "--file", clip, "--inbox" })
                assert.matches("Sent to the creator's TikTok inbox", r.out, 1, true)
            end)

            it("--no-wait returns after the upload; status and status --wait follow it", function()
                connect()
                sb:configure({ delays = { processing_ms = 1500 } })
                local v = json_of(tk({ "--json", "post", "--file", clip, "--privacy", "SELF_ONLY", "--no-wait" }))
                assert.equal("PROCESSING_UPLOAD", v.status)
                local r = tk({ "status", v.publish_id })
                assert.equal(0, r.code, r.err)
                assert.matches("status:      PROCESSING_UPLOAD\n", r.out, 1, true)
                r = tk({ "status", v.publish_id, "--wait" })
                assert.equal(0, r.code, r.err)
                assert.matches("^status: PROCESSING_UPLOAD\n", r.out)
                assert.matches("\nstatus: PUBLISH_COMPLETE\npublish_id:  " .. v.publish_id, r.out, 1, true)
                local s = json_of(tk({ "--json", "status", v.publish_id }))
                assert.equal("PUBLISH_COMPLETE", s.status)
                assert.equal(sandbox.file_size(clip), s.uploaded_bytes)
            end)

            it("breaking TikTok's rules is exit 3 with every problem listed, and nothing is uploaded", function()
                connect()
                local r = tk({ "post", "--file", clip, "--privacy", "SELF_ONLY", "--allow-duets",
                               "--brand-third-party" })
                assert.equal(3, r.code)
                assert.matches("tiktok post: the post breaks 2 rules (invalid_settings):\n  - ", r.err, 1, true)
                -- in the command line's words: its flags, not Lua option names
                assert.matches("--allow-duets cannot be allowed on a SELF_ONLY", r.err, 1, true)
                assert.matches("leave out --allow-duets", r.err, 1, true)
                assert.matches("Branded content visibility cannot be set to private", r.err, 1, true)
                assert.matches("leave out --brand-third-party", r.err, 1, true)
                assert.not_matches("= false", r.err, 1, true)
                assert.matches("hint: `tiktok creator` shows what this account allows", r.err, 1, true)
                assert.equal(0, count("video.init"))
                local e = json_of(tk({ "--json", "post", "--file", clip, "--privacy", "FOLLOWER_OF_CREATOR" })).error
                assert.equal("invalid_settings", e.code)
                assert.equal(3, e.exit_code)
                assert.matches("FOLLOWER_OF_CREATOR", e.problems[1], 1, true)
            end)

            it("a missing caption variable is a problem of the post (exit 3) that names --var", function()
                connect()
                local r = tk({ "post", "--file", clip, "--privacy", "SELF_ONLY", "--caption", "{{title}} {{who}}" })
                assert.equal(3, r.code)
                assert.matches("the post breaks 2 rules (invalid_settings)", r.err, 1, true)
                assert.matches("{{title}}", r.err, 1, true)
                assert.matches("{{who}}", r.err, 1, true)
                assert.matches("--var NAME=VALUE", r.err, 1, true)
                assert.not_matches("vars", r.err, 1, true)
                assert.equal(0, count("video.init"))
            end)

            it("a missing or non-video file is exit 5", function()
                connect()
                local r = tk({ "post", "--file", dir .. "/nope.mp4", "--privacy", "SELF_ONLY" })
                assert.equal(5, r.code)
                assert.matches(dir .. "/nope.mp4", r.err, 1, true)
                assert.matches("(file)", r.err, 1, true)
                local junk = media.junk(dir, 4096)
                local e = json_of(tk({ "--json", "post", "--file", junk, "--privacy", "SELF_ONLY" })).error
                assert.equal("unsupported_media", e.code)
                assert.equal(5, e.exit_code)
                assert.equal(0, count("video.init"))
            end)

            it("a post TikTok fails is exit 3 with TikTok's reason and the publish_id", function()
                connect()
                sb:admin("POST", "/faults", { endpoint = "post.processing", fail_reason = "frame_rate_check_failed" })
                local r = tk({ "post", "--file", clip, "--privacy", "SELF_ONLY" })
                assert.equal(3, r.code)
                assert.matches("(frame_rate_check_failed)", r.err, 1, true)
                local publish_id = r.err:match("publish_id (v_pub_file~%S+)")
                assert.is_string(publish_id)
                assert.matches("\nstatus: FAILED\n", r.out, 1, true)
                local s = tk({ "--json", "status", publish_id })
                assert.equal(3, s.code)
                local e = json_of(s).error
                assert.equal("frame_rate_check_failed", e.code)
                assert.equal("frame_rate_check_failed", e.fail_reason)
                assert.equal(publish_id, e.publish_id)
            end)

            it("a TikTok refusal at init is exit 3 with TikTok's code and log_id", function()
                connect()
                sb:admin("PATCH", "/users/" .. sb.env.TIKTOK_SANDBOX_USER, { posting_cap_reached = true })
                local r = tk({ "--json", "post", "--file", clip, "--privacy", "SELF_ONLY" })
                assert.equal(3, r.code, r.out)
                local e = json_of(r).error
                assert.equal("spam_risk_too_many_posts", e.code)
                assert.is_string(e.log_id)
                assert.is_number(e.http_status)
            end)

            it("still processing when --wait-timeout ends: exit 4, with the publish_id to follow", function()
                connect()
                sb:configure({ delays = { processing_ms = 4000 } })
                local r = tk({ "post", "--file", clip, "--privacy", "SELF_ONLY", "--wait-timeout", "0.5" })
                assert.equal(4, r.code)
                assert.matches("(timeout)", r.err, 1, true)
                local publish_id = r.err:match("publish_id (v_pub_file~%S+)\n")
                assert.is_string(publish_id)
                assert.matches("hint: the post may still finish at TikTok; follow it with: tiktok status "
                               .. publish_id .. " --wait", r.err, 1, true)
                local e = json_of(tk({ "--json", "status", publish_id, "--wait", "--wait-timeout", "0.3" })).error
                assert.equal("timeout", e.code)
                assert.equal(4, e.exit_code)
                assert.equal(publish_id, e.publish_id)
            end)

            it("Ctrl-C while waiting: exit 130, naming the post that may still be published", function()
                connect()
                sb:configure({ delays = { processing_ms = 20000 } })
                -- Ctrl-C once init has printed the publish_id, while it waits
                local r = tk({ "post", "--file", clip, "--privacy", "SELF_ONLY" },
                             { interrupt_on = "init: publish_id " })
                assert.equal(130, r.code, r.err)
                local publish_id = r.out:match("init: publish_id (%S+)")
                assert.is_string(publish_id)
                assert.equal("tiktok: interrupted; TikTok may still publish " .. publish_id .. " (tiktok status "
                             .. publish_id .. ")\n", r.err)
            end)

            it("status of an unknown publish_id is exit 3 (TikTok's invalid_publish_id)", function()
                connect()
                local r = tk({ "status", "v_pub_file~v2-1.123456789" })
                assert.equal(3, r.code)
                assert.matches("(invalid_publish_id)", r.err, 1, true)
            end)

            it("network and TLS failures are exit 4", function()
                connect()
                assert.equal(0, tk({ "--json", "creator" }).code)
                local cfg = TMP .. "/down.env"
                write(cfg, "TIKTOK_API_BASE=https://127.0.0.1:9\n")
                local r = run({ "--json", "--env-file", sb.dir .. "/env", "--config", cfg, "creator" },
                        { env = { TIKTOK_STORE = store } })
                assert.equal(4, r.code)
                assert.equal("network", json_of(r).error.code)
                -- the system CA store does not trust the sandbox's certificate
                local env = read(sb.dir .. "/env"):gsub("\n[export ]*TIKTOK_CA_FILE=[^\n]*", "")
                local no_ca = TMP .. "/no-ca.env"
                write(no_ca, env)
                r = run({ "--config", no_ca, "creator" }, { env = { TIKTOK_STORE = store } })
                assert.equal(4, r.code)
                assert.matches("(tls)", r.err, 1, true)
                assert.matches("hint: set TIKTOK_CA_FILE", r.err, 1, true)
            end)
        end)

        it("never printed a secret: client secret, tokens or authorization codes", function()
            assert.is_true(#secrets >= 5)
            local all = table.concat(transcript, "\n")
            for _, s in ipairs(secrets) do
                assert.is_true(#s >= 8)
                assert.is_nil(all:find(s, 1, true), "a secret was printed")
            end
        end)
    end)
end)
