-- The command line's modules in-process, without a subprocess or a server:
-- config parsing (tiktok.cli.config), output formatting and errors
-- (tiktok.cli.output), argv parsing and its errors (tiktok.cli.args), the
-- post flags derived from tiktok.fields (tiktok.cli.post), and main()
-- with its streams, environment and terminal replaced.
local cli = require "tiktok.cli"
local args = require "tiktok.cli.args"
local config = require "tiktok.cli.config"
local output = require "tiktok.cli.output"
local post = require "tiktok.cli.post"
local fields = require "tiktok.fields"
local errors = require "tiktok.errors"
local cjson = require "cjson.safe"

local sink = require "helpers.sink"

local function lines_in(text)
    return { read = function()
        local l = text:match("^([^\n]*)\n?")
        text = text:sub(#l + 2)
        return l
    end }
end

local TMP = os.tmpname()
os.remove(TMP)
os.execute("mkdir -p " .. TMP)

local function write(path, s)
    local f = assert(io.open(path, "wb"))
    f:write(s)
    f:close()
    return path
end

-- Runs cli.main(argv) in this process; env: TIKTOK_* values (nothing else is
-- read from the environment), tty (stdin/stdout are terminals), input.
local function main(argv, o)
    o = o or {}
    local out, err = sink(), sink()
    local env = o.env or {}
    local code = cli.main(argv, {
        stdout = out, stderr = err, stdin = lines_in(o.input or ""),
        getenv = function(k) return env[k] end,
        is_tty = function() return o.tty == true end,
    })
    return { code = code, out = out:text(), err = err:text() }
end

describe("tiktok.cli.config", function()
    it("reads a value as the shell reads one word", function()
        local sv = config.shell_value
        assert.equal("plain", sv("plain"))
        assert.equal("it's", sv("'it'\\''s'"))
        assert.equal('say "hi" $x', sv('"say \\"hi\\" \\$x"'))
        assert.equal("a#b", sv("'a#b'"))
        assert.equal("v", sv("v   # a comment"))
        assert.equal("a b", sv("a\\ b"))
        assert.equal("", sv(""))
        local v, why = sv("'open")
        assert.is_nil(v)
        assert.equal("has no closing '", why)
        v, why = sv('"open')
        assert.is_nil(v)
        assert.equal('has no closing "', why)
        v, why = sv("two words")
        assert.is_nil(v)
        assert.matches("unquoted spaces", why)
    end)

    it("parses KEY=value lines: comments, blanks, export, spaces around =, CRLF", function()
        local entries = assert(config.parse_file("# c\n\nexport A='1'\nB = 2  # two\r\nC=\n", "f.env"))
        assert.same({ { key = "A", value = "1", line = 3 }, { key = "B", value = "2", line = 4 },
                      { key = "C", value = "", line = 5 } }, entries)
    end)

    it("names the file and line of a malformed line (a config error: exit 2)", function()
        local e, err = config.parse_file("A=1\nnot a setting\n", "/x/app.env")
        assert.is_nil(e)
        assert.equal("config", err.code)
        assert.equal("/x/app.env:2: expected KEY=value", err.message)
        assert.equal(2, errors.exit_code(err))
        e, err = config.parse_file("A='x\n", "f")
        assert.is_nil(e)
        assert.equal("f:1: the value of A has no closing '", err.message)
    end)

    it("files win over the environment, later files over earlier; paths are relative to their file", function()
        local dir = TMP .. "/conf"
        os.execute("mkdir -p " .. dir)
        local a = write(dir .. "/a.env", "TIKTOK_CLIENT_KEY=from-a\nTIKTOK_STORE=s/accounts.json\n")
        local b = write(dir .. "/b.env", "export TIKTOK_CLIENT_KEY=from-b\nTIKTOK_CA_FILE=/abs/ca.pem\n")
        local env = { TIKTOK_CLIENT_KEY = "from-env", TIKTOK_CLIENT_SECRET = "s" }
        local raw, origin = config.read({ a, b }, { getenv = function(k) return env[k] end })
        assert.equal("from-b", raw.TIKTOK_CLIENT_KEY)
        assert.equal(b .. ":1", origin.TIKTOK_CLIENT_KEY)
        assert.equal("s", raw.TIKTOK_CLIENT_SECRET)
        assert.equal("environment", origin.TIKTOK_CLIENT_SECRET)
        assert.equal(dir .. "/s/accounts.json", raw.TIKTOK_STORE)
        assert.equal("/abs/ca.pem", raw.TIKTOK_CA_FILE)
    end)

    it("warns about a misspelt setting only", function()
        local path = write(TMP .. "/w.env", "TIKTOK_VERIFIED_PREFIX=x\nTIKTOK_SANDBOX_PID=1\n")
        local warned = {}
        assert(config.read({ path }, { getenv = function() end,
                                       warn = function(m) warned[#warned + 1] = m end }))
        assert.same({ path .. ":1: unknown setting TIKTOK_VERIFIED_PREFIX ignored; did you mean "
                      .. "TIKTOK_VERIFIED_PREFIXES?" }, warned)
        assert.equal("TIKTOK_CLIENT_KEY", config.suggest("TIKTOK_CLIENT_KYE"))
        assert.is_nil(config.suggest("TIKTOK_SANDBOX_PID"))
    end)

    it("converts settings to tiktok.connect options, and says which are missing or wrong", function()
        local raw = { TIKTOK_CLIENT_KEY = "k", TIKTOK_CLIENT_SECRET = "s", TIKTOK_REDIRECT_URI = "https://a/cb",
                      TIKTOK_SCOPES = "video.publish, video.upload", TIKTOK_AUDITED = "no",
                      TIKTOK_TIMEOUT_MS = "5000", TIKTOK_STORE = "/tmp/x.json", TIKTOK_SANDBOX_USER = "bob" }
        local opts, own = config.options(raw, {})
        assert.same({ "video.publish", "video.upload" }, opts.scopes)
        assert.is_false(opts.audited)
        assert.equal(5000, opts.timeout_ms)
        assert.same({ store = "/tmp/x.json", sandbox_user = "bob" }, own)
        assert.is_nil(opts.store)

        local _, err = config.options({ TIKTOK_CLIENT_KEY = "k" }, {})
        assert.equal("missing configuration: TIKTOK_CLIENT_SECRET, TIKTOK_REDIRECT_URI. Set them in the "
                     .. "environment or in a file given with --config FILE (KEY=value lines); see `tiktok --help`",
                     err.message)
        assert.is_table((config.options({}, {}, { required = false })))
        raw.TIKTOK_AUDITED = "maybe"
        _, err = config.options(raw, { TIKTOK_AUDITED = "f.env:3" })
        assert.equal("TIKTOK_AUDITED (f.env:3) must be yes or no, got 'maybe'", err.message)
        raw.TIKTOK_AUDITED, raw.TIKTOK_CHUNK_SIZE = "yes", "1e6"
        _, err = config.options(raw, { TIKTOK_CHUNK_SIZE = "environment" })
        assert.equal("TIKTOK_CHUNK_SIZE (environment) must be a whole number, got '1e6'", err.message)
    end)

    it("the --help list of settings gives the library's defaults", function()
        local text = config.help()
        local tiktok = require "tiktok"
        assert.matches("per request (default " .. tiktok.DEFAULTS.timeout_ms .. ")", text, 1, true)
        for key in pairs(config.SETTINGS) do assert.matches("  " .. key .. " ", text, 1, true) end
        for l in text:gmatch("[^\n]+") do assert.is_true(#l <= 79, l) end
    end)
end)

describe("tiktok.cli.output", function()
    it("formats sizes, durations, times and numbers", function()
        assert.equal("999 B", output.size(999))
        assert.equal("1.5 kB", output.size(1500))
        assert.equal("0.3 MB", output.size(300000, 5000000))
        assert.equal("45s", output.duration(44.6))
        assert.equal("2m05s", output.duration(125))
        assert.equal("1h01m", output.duration(3660))
        assert.equal("3d", output.duration(3 * 86400))
        assert.equal("unknown", output.when(nil))
        assert.matches("%(in 1h00m%)$", output.when(1000 + 3600, 1000))
        assert.matches("%(expired%)$", output.when(1000, 2000))
        assert.equal("300", output.num(300.0))
        assert.equal("1.5", output.num(1.5))
    end)

    it("prints a JSON error with the exit status of the error's class, and only known fields", function()
        local cases = {
            { output.usage("bad flag"), 2 },
            { output.config("missing"), 2 },
            { errors.new("invalid_settings", nil, { problems = { "p" } }), 3 },
            { errors.new("spam_risk_too_many_posts"), 3 },
            { errors.new("some_new_tiktok_code", "x"), 3 },
            { errors.new("timeout"), 4 },
            { errors.new("tls"), 4 },
            { errors.new("not_found"), 5 },
            { errors.new("store", "disk full"), 5 },
        }
        for _, c in ipairs(cases) do
            local out = sink()
            local code = output.new({ json = true, stdout = out, stderr = sink() }):error(c[1])
            assert.equal(c[2], code, c[1].code)
            local v = cjson.decode(out:text())
            assert.equal(c[1].code, v.error.code)
            assert.equal(c[2], v.error.exit_code)
        end
        local err = errors.new("invalid_grant")
        err.access_token = "act.secret"   -- never printed, whatever a caller adds
        local out = sink()
        output.new({ json = true, stdout = out }):error(err)
        assert.not_matches("act.secret", out:text(), 1, true)
        local problems = output.error_json(errors.new("invalid_settings", nil, { problems = {} })).error.problems
        assert.equal("[]", require("tiktok.json").encode(problems))
    end)

    it("writes errors as text: problems listed, details, ids, the hint and the usage line", function()
        local err = errors.new("invalid_settings", nil, { problems = { "a", "b" } })
        assert.equal("tiktok post: the post breaks 2 rules (invalid_settings):\n  - a\n  - b\n"
                     .. "  hint: `tiktok creator` shows what this account allows",
                     output.error_text(err, "tiktok post"))
        err = errors.new("timeout", nil, { publish_id = "v_pub_file~v2.7", detail = "after 30 s" })
        local text = output.error_text(err, "tiktok post")
        assert.matches("\n  details: after 30 s, publish_id v_pub_file~v2.7\n", text, 1, true)
        assert.matches("hint: the post may still finish at TikTok; follow it with: tiktok status "
                       .. "v_pub_file~v2.7 --wait", text, 1, true)
        err = errors.new("internal_error", nil, { detail = "busy", http_status = 500, log_id = "L1" })
        assert.matches("\n  TikTok said: busy, HTTP 500, log_id L1", output.error_text(err, "tiktok"), 1, true)
        assert.equal("tiktok accounts: takes no arguments\nRun 'tiktok accounts --help' for usage.",
                     output.error_text(output.usage("takes no arguments"), "tiktok accounts"))
    end)

    it("shows an upload rate only once half a second of upload has passed", function()
        local half = output.RATE_AFTER_MS
        local ev = { bytes = 27400, total = 27400 }
        assert.equal("Uploaded  [####################] 100%  27.4/27.4 kB  in <0.1s",
                     output.bar_line(ev, 1003, 1000))
        assert.equal("Uploaded  [####################] 100%  27.4/27.4 kB  in 0.3s",
                     output.bar_line(ev, 1300, 1000))
        assert.equal("Uploaded  [####################] 100%  27.4/27.4 kB  0.0 MB/s  in 1.0s",
                     output.bar_line(ev, 1000 + 1000, 1000))
        ev = { bytes = 10e6, total = 30e6 }
        assert.equal("Uploading [#######-------------]  33%  10.0/30.0 MB  -- MB/s  ETA --",
                     output.bar_line(ev, 1000 + half - 1, 1000))
        assert.equal("Uploading [#######-------------]  33%  10.0/30.0 MB  5.0 MB/s  ETA 4s",
                     output.bar_line(ev, 1000 + 2000, 1000))
    end)

    it("reports progress off a terminal as one line per stage, chunk and status change", function()
        local out = sink()
        local now = 0
        local r = output.new({ stdout = out }):reporter("plain", { clock = function() return now end })
        r.event({ stage = "creator_info" })
        r.event({ stage = "init" })
        r.event({ stage = "init", publish_id = "v_pub_file~v2.1" })
        for _, b in ipairs({ 10, 60, 60 }) do r.event({ stage = "upload", chunk = 1, chunks = 2, bytes = b, total = 120 }) end
        r.event({ stage = "upload", chunk = 2, chunks = 2, bytes = 120, total = 120 })
        r.event({ stage = "status", status = "PROCESSING_UPLOAD" })
        r.event({ stage = "status", status = "PROCESSING_UPLOAD" })
        r.event({ stage = "status", status = "PUBLISH_COMPLETE" })
        r.finish()
        assert.equal("creator_info: checking the creator's current settings\ninit: creating the post\n"
                     .. "init: publish_id v_pub_file~v2.1\nupload: chunk 1/2: 60 of 120 bytes sent\n"
                     .. "upload: chunk 2/2: 120 of 120 bytes sent\nstatus: PROCESSING_UPLOAD\n"
                     .. "status: PUBLISH_COMPLETE\n", out:text())
        out = sink()
        r = output.new({ stdout = out }):reporter("none")
        r.event({ stage = "creator_info" })
        r.finish()
        assert.equal("", out:text())
    end)
end)

describe("tiktok.cli.args", function()
    local parser, info = cli.parser()
    local function parse(argv) return args.parse(parser, info, argv) end

    it("gives a value option the next argument even when it starts with '-'", function()
        assert.same({ "creator", "--account=-000hLNeF", "--json" },
                    args.getopt({ "creator", "--account", "-000hLNeF", "--json" }, info))
        assert.same({ "post", "--caption=--json" }, args.getopt({ "post", "--caption", "--json" }, info))
        assert.same({ "post", "--", "--caption", "x" }, args.getopt({ "post", "--", "--caption", "x" }, info))
        local p = assert(parse({ "creator", "--account", "-000hLNeFCu7aluBmIBS1XngRBeXaEt0mpSu" }))
        assert.equal("creator", p.command)
        assert.equal("-000hLNeFCu7aluBmIBS1XngRBeXaEt0mpSu", p.opts["--account"])
        assert.is_false(args.wants_json(args.getopt({ "post", "--caption", "--json" }, info)))
        assert.is_true(args.wants_json({ "post", "--json" }))
    end)

    it("collects repeated options in order, --config and --env-file together, globals after the command", function()
        local p = assert(parse({ "--config", "a", "post", "--photo", "u1", "--env-file", "b", "--photo", "u2",
                                 "--json", "--allow-duets" }))
        assert.same({ "a", "b" }, p.opts["--config"])
        assert.same({ "u1", "u2" }, p.opts["--photo"])
        assert.is_true(p.opts["--json"])
        assert.is_true(p.opts["--allow-duets"])
        assert.is_nil(p.opts["--var"])
        assert.same({}, p.args)
        p = assert(parse({ "--json", "status", "x", "--wait", "--wait", "--json" }))   -- a switch twice is on
        assert.is_true(p.opts["--wait"])
        assert.same({ "x" }, p.args)
    end)

    it("says what is wrong in the command line's words (code usage, exit 2)", function()
        local cases = {
            { { "pots" }, "unknown command 'pots'; did you mean 'post'? (commands: connect, accounts, creator, "
                          .. "post, status, revoke, jobs, worker, check, store)" },
            { { "post", "--allow-comment" }, "unknown option --allow-comment; did you mean --allow-comments?" },
            { { "accounts", "--client-secret=hunter2" }, "unknown option --client-secret" },
            { { "post", "--caption" }, "--caption needs a value (--caption TEXT)" },
            { { "post", "--json=yes" }, "--json takes no value" },
            { { "post", "--privacy", "A", "--privacy", "B" }, "--privacy is given more than once" },
        }
        for _, c in ipairs(cases) do
            local p, err = parse(c[1])
            assert.is_nil(p)
            assert.equal("usage", err.code)
            assert.equal(c[2], err.message)
            assert.equal(2, errors.exit_code(err))
        end
    end)

    it("checks seconds and whole numbers", function()
        assert.equal(1500, args.seconds({ ["--t"] = "1.5" }, "--t"))
        assert.is_nil(args.seconds({}, "--t"))
        local v, err = args.seconds({ ["--t"] = "soon" }, "--t")
        assert.is_nil(v)
        assert.equal("--t takes a number of seconds greater than 0, got 'soon'", err.message)
        assert.equal(0, args.whole({ ["--n"] = "0" }, "--n", "x"))
        v, err = args.whole({ ["--n"] = "-1" }, "--n", "a count")
        assert.is_nil(v)
        assert.equal("--n takes a whole number from 0 (a count), got '-1'", err.message)
    end)
end)

describe("tiktok.cli.post", function()
    it("has one flag per field of tiktok.fields that has a flag, with its metavar and help", function()
        local by_flag = {}
        for _, o in ipairs(post.options) do by_flag[o.flag] = o end
        local n = 0
        for _, f in ipairs(fields.list) do
            if f.flag then
                n = n + 1
                local o = by_flag[f.flag]
                assert.is_table(o, f.flag)
                assert.equal(f.help, o.help)
                -- a switch: a boolean, or an enum whose flag names one of its
                -- values (--inbox); other enums take their value (--relay)
                local switch = f.type == "boolean"
                for _, v in ipairs(f.type == "enum" and f.values or {}) do
                    if "--" .. v == f.flag then switch = true end
                end
                if switch then
                    assert.is_nil(o.metavar, f.flag)
                else
                    assert.equal(f.metavar, o.metavar)
                end
                assert.equal(f["repeat"], o["repeat"])
            end
        end
        assert.equal(n + 7, #post.options)   -- and --var, --no-wait, --wait-timeout, --account, --queue, --key, --at
    end)

    it("builds tiktok.post's request from the flags", function()
        local req = assert(post.check({ ["--file"] = "a.mp4", ["--privacy"] = "SELF_ONLY", ["--allow-comments"] = true,
                                        ["--cover-ms"] = "500", ["--var"] = { "t=1", "a.b=2" },
                                        ["--wait-timeout"] = "2" }, {}))
        assert.equal("a.mp4", req.video_file)
        assert.equal("SELF_ONLY", req.privacy)
        assert.is_true(req.comments)
        assert.is_nil(req.duets)
        assert.equal(500, req.cover_ms)
        assert.equal("direct", req.mode)
        assert.same({ t = "1", a = { b = "2" } }, req.vars)
        assert.equal(2000, req.wait_timeout_ms)
        assert.is_true(req.wait)
        assert.equal("flags", req.wording)
        req = assert(post.check({ ["--photo"] = { "https://x/1.jpg" }, ["--inbox"] = true, ["--no-wait"] = true }, {}))
        assert.equal("inbox", req.mode)
        assert.same({ "https://x/1.jpg" }, req.photo_urls)
        assert.is_false(req.wait)
    end)

    it("refuses what it can tell without TikTok, naming flags", function()
        local cases = {
            { {}, { "clip.mp4" }, "takes no arguments (got 1); options start with --; to post it, give "
                                  .. "--file clip.mp4" },
            { {}, { "https://cdn.example/v.mp4" }, "to post it, give --url https://cdn.example/v.mp4" },
            { { ["--privacy"] = "SELF_ONLY" }, {}, "give what to post: --url URL, --file PATH or --photo URL" },
            { { ["--file"] = "a", ["--photo"] = { "u" } }, {}, "give only one of --url, --file and --photo "
                                                               .. "(got --file and --photo)" },
            { { ["--file"] = "a" }, {}, "--privacy LEVEL is required" },
            { { ["--file"] = "" , ["--inbox"] = true }, {}, "--file needs a path" },
            { { ["--file"] = "a", ["--inbox"] = true, ["--cover-ms"] = "1.5s" }, {},
              "--cover-ms takes a whole number from 0" },
            { { ["--file"] = "a", ["--inbox"] = true, ["--var"] = { "t" } }, {}, "--var takes NAME=VALUE, got 't'" },
            { { ["--file"] = "a", ["--inbox"] = true, ["--var"] = { "a..b=1" } }, {}, "is not a variable name" },
            { { ["--file"] = "a", ["--inbox"] = true, ["--var"] = { "a=1", "a.b=2" } }, {}, "'a.b' clashes with 'a'" },
            { { ["--file"] = "a", ["--inbox"] = true, ["--var"] = { "t=1", "t=2" } }, {},
              "--var t is given more than once" },
            { { ["--file"] = "a", ["--inbox"] = true, ["--no-wait"] = true, ["--wait-timeout"] = "3" }, {},
              "--wait-timeout has no use with --no-wait" },
        }
        for _, c in ipairs(cases) do
            local req, err = post.check(c[1], c[2])
            assert.is_nil(req)
            assert.equal("usage", err.code)
            assert.matches(c[3], err.message, 1, true)
        end
    end)
end)

describe("tiktok.cli.main", function()
    it("returns the exit status; help and version go to stdout", function()
        local r = main({ "--version" })
        assert.equal(0, r.code)
        assert.matches("^tiktok %(lua%-tiktok%) %d+%.%d+%.%d+\n$", r.out)
        r = main({ "--json", "--version" })
        assert.equal('{"version":"' .. cli._VERSION .. '"}\n', r.out)
        local h = main({ "post", "--help" })
        assert.equal(0, h.code)
        assert.equal(h.out, main({ "help", "post" }).out)
        assert.equal(h.out, main({ "-h", "post" }).out)
        assert.matches("--allow-duets ", h.out, 1, true)
        r = main({})
        assert.equal(2, r.code)
        assert.equal("", r.out)
        assert.matches("^Usage: tiktok", r.err)
    end)

    it("prints a parse error as text, or as JSON with --json anywhere", function()
        local r = main({ "post", "--allow-comment" })
        assert.equal(2, r.code)
        assert.equal("tiktok post: unknown option --allow-comment; did you mean --allow-comments?\n"
                     .. "Run 'tiktok post --help' for usage.\n", r.err)
        r = main({ "post", "--allow-comment", "--json" })
        assert.equal(2, r.code)
        assert.equal("", r.err)
        local e = cjson.decode(r.out).error
        assert.equal("usage", e.code)
        assert.equal(2, e.exit_code)
    end)

    describe("with a store and no TikTok", function()
        local store = TMP .. "/accounts.json"
        local ID = "-000hLNeFCu7aluBmIBS1XngRBeXaEt0mpSu"
        local ENV = { TIKTOK_CLIENT_KEY = "ck", TIKTOK_CLIENT_SECRET = "cs-secret",
                      TIKTOK_REDIRECT_URI = "https://app.example/cb", TIKTOK_STORE = store,
                      TIKTOK_API_BASE = "https://127.0.0.1:9", TIKTOK_AUTH_BASE = "https://127.0.0.1:9" }
        before_each(function()
            write(store, cjson.encode({ version = 1, accounts = { [ID] = {
                open_id = ID, client_key = "ck", access_token = "act.never-shown", refresh_token = "rft.never-shown",
                scopes = { "video.publish" }, expires_at = 4102444800, refresh_expires_at = 4102444800 } } }))
        end)

        it("accounts needs only the store, and lists what conn:accounts() would", function()
            local doc = cjson.decode(io.open(store):read("*a"))
            -- a web app user's account, and another app's
            doc.accounts._owned = { open_id = "_owned", client_key = "ck", owner = "u1", access = "only_me" }
            doc.accounts._other = { open_id = "_other", client_key = "other-app" }
            write(store, cjson.encode(doc))
            local r = main({ "--json", "accounts" }, { env = { TIKTOK_STORE = store, TIKTOK_CLIENT_KEY = "ck" } })
            assert.equal(0, r.code, r.err)
            local v = cjson.decode(r.out)
            assert.equal(1, #v.accounts)
            assert.equal(ID, v.accounts[1].open_id)
            r = main({ "--json", "accounts" }, { env = { TIKTOK_STORE = store } })
            assert.equal(2, #cjson.decode(r.out).accounts)
            v = cjson.decode(r.out)
            assert.equal(store, v.store)
            assert.not_matches("never%-shown", r.out)
        end)

        it("revoke without --account needs --yes off a terminal, and a yes on one", function()
            local r = main({ "revoke" }, { env = ENV })
            assert.equal(2, r.code)
            assert.matches("revoke without --account asks first; give --account " .. ID .. " or --yes", r.err, 1, true)
            r = main({ "--json", "revoke" }, { env = ENV, tty = true })
            assert.equal(2, r.code)
            assert.equal("usage", cjson.decode(r.out).error.code)
            r = main({ "revoke" }, { env = ENV, tty = true, input = "no\n" })
            assert.equal(2, r.code)
            assert.matches("? [y/N] ", r.out, 1, true)
            assert.matches("nothing was revoked", r.err, 1, true)
            -- still there
            assert.equal(ID, cjson.decode(main({ "--json", "accounts" }, { env = ENV }).out).accounts[1].open_id)
            -- a yes goes on to TikTok (here: nothing listens, so a network error, exit 4)
            r = main({ "revoke" }, { env = ENV, tty = true, input = "y\n" })
            assert.equal(4, r.code, r.err)
            r = main({ "revoke", "--yes" }, { env = ENV })
            assert.equal(4, r.code, r.err)
        end)

        it("connect keeps the state and the PKCE verifier in a private pending file, and prints neither secret",
           function()
            local env = {}
            for k, v in pairs(ENV) do env[k] = v end
            env.TIKTOK_STORE = TMP .. "/new/folder/accounts.json"
            local r = main({ "--json", "connect" }, { env = env })
            assert.equal(0, r.code, r.err)
            local v = cjson.decode(r.out)
            local pending = cjson.decode(io.open(env.TIKTOK_STORE .. ".pending"):read("*a"))
            assert.equal(v.state, pending.state)
            assert.matches("^%x+$", pending.code_verifier)
            assert.not_matches(pending.code_verifier, r.out, 1, true)
            assert.matches("code_challenge=%x+", v.authorize_url)
            assert.matches("code_challenge_method=S256", v.authorize_url, 1, true)
            local core = require "tiktok.core"
            assert.equal(448, core.stat(TMP .. "/new/folder").mode)   -- 0700
            r = main({ "connect" }, { env = env })
            assert.not_matches(cjson.decode(io.open(env.TIKTOK_STORE .. ".pending"):read("*a")).code_verifier,
                               r.out, 1, true)
            -- a folder others can write to is refused (exit 5)
            os.execute("mkdir -p " .. TMP .. "/open && chmod 777 " .. TMP .. "/open")
            env.TIKTOK_STORE = TMP .. "/open/accounts.json"
            r = main({ "--json", "connect" }, { env = env })
            assert.equal(5, r.code)
            assert.equal("store", cjson.decode(r.out).error.code)
        end)

        it("several accounts and no --account: exit 2 naming them", function()
            local doc = cjson.decode(io.open(store):read("*a"))
            doc.accounts._b = { open_id = "_b", client_key = "ck", scopes = {} }
            write(store, cjson.encode(doc))
            local r = main({ "--json", "creator" }, { env = ENV })
            assert.equal(2, r.code)
            local e = cjson.decode(r.out).error
            assert.matches("2 TikTok accounts are connected; choose one with --account OPEN_ID", e.message, 1, true)
            table.sort(e.choices)
            assert.same({ ID, "_b" }, e.choices)
        end)
    end)

    lazy_teardown(function()
        os.execute("rm -rf " .. TMP)
    end)
end)
