-- tiktok.cli.config: the command line's settings and the connection.
--
-- Settings come from TIKTOK_* environment variables, overridden by files
-- given with --config FILE / --env-file FILE (the more explicit source
-- wins; a later file wins over an earlier one). A file holds KEY=value
-- lines as a shell reads them: '#' comments, blank lines, an optional
-- `export ` (the sandbox's DIR/env is written so), 'single' and "double"
-- quotes. Relative paths in a file are taken relative to the file. Other
-- keys are ignored (the sandbox writes more), with a warning when one
-- looks like a misspelt setting.
--
-- Every function returns nil, err on bad input (err made by
-- output.config: code "config", exit 2); nothing here exits or prints
-- except through the `warn` function it is given.
local tiktok = require "tiktok"
local output = require "tiktok.cli.output"
local connection = require "tiktok.connection"
local access = require "tiktok.access"
local errors = require "tiktok.errors"

local pairs, ipairs, tostring, tonumber, pcall = pairs, ipairs, tostring, tonumber, pcall
local concat, sort = table.concat, table.sort
local format = string.format
local floor, min = math.floor, math.min

local _M = {}

-- TIKTOK_* name -> { connect option, kind }.
local SETTINGS = {
    TIKTOK_CLIENT_KEY = { "client_key", "string" },
    TIKTOK_CLIENT_SECRET = { "client_secret", "string" },
    TIKTOK_REDIRECT_URI = { "redirect_uri", "string" },
    TIKTOK_API_BASE = { "api_base", "string" },
    TIKTOK_AUTH_BASE = { "auth_base", "string" },
    TIKTOK_CA_FILE = { "ca_file", "path" },
    TIKTOK_STORE = { "store", "store" },              -- a file path or a postgresql:// URL
    TIKTOK_STORE_KEY = { "store_key", "key" },          -- 64 hex digits: tokens encrypted at rest
    TIKTOK_STORE_NEW_KEY = { "new_store_key", "key" },  -- tiktok store rekey's new key
    TIKTOK_VERIFIED_PREFIXES = { "verified_prefixes", "list" },
    TIKTOK_SCOPES = { "scopes", "list" },
    TIKTOK_AUDITED = { "audited", "boolean" },
    TIKTOK_TIMEOUT_MS = { "timeout_ms", "integer" },
    TIKTOK_WAIT_TIMEOUT_MS = { "wait_timeout_ms", "integer" },
    TIKTOK_CHUNK_SIZE = { "chunk_size", "integer" },
    TIKTOK_SANDBOX_USER = { "sandbox_user", "string" },   -- the default --username of connect --approve
}
_M.SETTINGS = SETTINGS

-- What the command line keeps for itself rather than give tiktok.connect.
local OWN = { store = true, store_key = true, new_store_key = true, sandbox_user = true }

-- The settings a connection to TikTok cannot do without.
_M.REQUIRED = { "TIKTOK_CLIENT_KEY", "TIKTOK_CLIENT_SECRET", "TIKTOK_REDIRECT_URI" }

local function trim(s)
    return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Levenshtein distance, for a misspelt setting in a file.
local function distance(a, b)
    local prev = {}
    for j = 0, #b do prev[j] = j end
    for i = 1, #a do
        local cur = { [0] = i }
        for j = 1, #b do
            local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
        end
        prev = cur
    end
    return prev[#b]
end

--- config.suggest(key) -> the known setting within 2 edits of key, or nil
function _M.suggest(key)
    local best, bd = nil, 3
    local known = {}
    for k in pairs(SETTINGS) do known[#known + 1] = k end
    sort(known)
    for _, k in ipairs(known) do
        local d = distance(key, k)
        if d < bd then best, bd = k, d end
    end
    return best
end

--- config.help() -> the settings part of `tiktok --help` (defaults from
-- the library's, so they are written once)
function _M.help()
    local D = tiktok.DEFAULTS
    local core = tiktok.core
    local rows = {
        { "TIKTOK_CLIENT_KEY", "the app's client key (required)" },
        { "TIKTOK_CLIENT_SECRET", "the app's client secret (required; never printed)" },
        { "TIKTOK_REDIRECT_URI", "the redirect URI registered for the app (required)" },
        { "TIKTOK_STORE", "the account store: a file (default " .. _M.default_store_path() .. ") or a "
          .. "postgresql://USER@HOST/DB URL (needs the lua-tiktok-postgres rock); --store wins" },
        { "TIKTOK_STORE_KEY", "64 hex digits: the store keeps tokens encrypted with this key (never printed)" },
        { "TIKTOK_STORE_NEW_KEY", "the new key of `tiktok store rekey` (or --new-key-file FILE)" },
        { "TIKTOK_API_BASE", "default " .. D.api_base },
        { "TIKTOK_AUTH_BASE", "default " .. D.auth_base },
        { "TIKTOK_CA_FILE", "a PEM bundle to trust instead of the system's" },
        { "TIKTOK_VERIFIED_PREFIXES", "comma list of https://host/path/ or domain:NAME verified for the app, "
          .. "to check --url and --photo before posting" },
        { "TIKTOK_SCOPES", "comma list (default " .. concat(D.scopes, ",") .. ")" },
        { "TIKTOK_AUDITED", "no: the app has not passed TikTok's audit (SELF_ONLY only)" },
        { "TIKTOK_TIMEOUT_MS", format("per request (default %d)", D.timeout_ms) },
        { "TIKTOK_WAIT_TIMEOUT_MS", format("how long post and status --wait wait (default %d)", D.wait_timeout_ms) },
        { "TIKTOK_CHUNK_SIZE", format("upload chunk size in bytes (%d to %d)", core.MIN_CHUNK, core.MAX_CHUNK) },
        { "TIKTOK_SANDBOX_USER", "the default user of `connect --approve`" },
        { "TIKTOK_LUA", "(environment only) the Lua that runs bin/tiktok when it is started as a program "
          .. "(default lua5.4, then luajit)" },
    }
    -- two columns, the second wrapped at 79 characters
    local lines = {}
    for _, r in ipairs(rows) do
        local line = format("  %-24s", r[1])
        for word in r[2]:gmatch("%S+") do
            if #line + 1 + #word > 79 and #line > 27 then
                lines[#lines + 1] = line
                line = (" "):rep(26)
            end
            line = line .. " " .. word
        end
        lines[#lines + 1] = line
    end
    return concat(lines, "\n")
end

--- config.shell_value(text) -> value | nil, reason
-- The value part of a KEY=value line, read as the shell reads one word:
-- 'single quotes', "double quotes" (\" \\ \$ \` escapes), \x outside
-- quotes, and the 'it'\''s' form.
function _M.shell_value(v)
    local out, i, n = {}, 1, #v
    while i <= n do
        local ch = v:sub(i, i)
        if ch == "'" then
            local j = v:find("'", i + 1, true)
            if not j then return nil, "has no closing '" end
            out[#out + 1] = v:sub(i + 1, j - 1)
            i = j + 1
        elseif ch == '"' then
            local j = i + 1
            while true do
                local c = v:sub(j, j)
                if c == "" then return nil, 'has no closing "' end
                if c == '"' then break end
                if c == "\\" and v:sub(j + 1, j + 1):match('["\\$`]') then
                    j = j + 1
                    c = v:sub(j, j)
                end
                out[#out + 1] = c
                j = j + 1
            end
            i = j + 1
        elseif ch == "\\" then
            out[#out + 1] = v:sub(i + 1, i + 1)
            i = i + 2
        elseif ch:match("%s") then
            local rest = trim(v:sub(i))
            if rest ~= "" and rest:sub(1, 1) ~= "#" then
                return nil, "has unquoted spaces (quote the value)"
            end
            break
        else
            out[#out + 1] = ch
            i = i + 1
        end
    end
    return concat(out)
end

--- config.parse_file(text, path) -> { { key, value, line }, ... } | nil, err
-- Every KEY=value line of the text, in order (unknown keys included).
function _M.parse_file(text, path)
    local out, n = {}, 0
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        n = n + 1
        line = trim(line:gsub("\r$", ""))
        if line ~= "" and line:sub(1, 1) ~= "#" then
            local key, raw = line:match("^export%s+([%w_]+)=(.*)$")
            if not key then key, raw = line:match("^([%w_]+)%s*=%s*(.-)$") end
            if not key then
                return nil, output.config(format("%s:%d: expected KEY=value", path, n))
            end
            local value, why = _M.shell_value(raw)
            if not value then
                return nil, output.config(format("%s:%d: the value of %s %s", path, n, key, why))
            end
            out[#out + 1] = { key = key, value = value, line = n }
        end
    end
    return out
end

local function read_file(path, into, origin, warn)
    local f, msg = io.open(path, "r")
    if not f then
        return nil, output.config("cannot read the config file " .. path .. ": " .. tostring(msg))
    end
    local text = f:read("*a")
    f:close()
    local entries, err = _M.parse_file(text, path)
    if not entries then return nil, err end
    local dir = path:match("^(.*)/[^/]*$") or "."
    for _, e in ipairs(entries) do
        local spec = SETTINGS[e.key]
        if spec then
            local value = e.value
            if (spec[2] == "path" or (spec[2] == "store" and not _M.is_url(value))) and value ~= ""
               and value:sub(1, 1) ~= "/" then
                value = dir .. "/" .. value
            end
            into[e.key] = value
            origin[e.key] = path .. ":" .. e.line
        else
            local guess = _M.suggest(e.key)
            if guess and warn then
                warn(format("%s:%d: unknown setting %s ignored; did you mean %s?", path, e.line, e.key, guess))
            end
        end
    end
    return true
end

--- config.read(files, { getenv, warn }) -> raw, origin | nil, err
-- raw: TIKTOK_* name -> text; origin: name -> "environment" | "FILE:LINE".
function _M.read(files, opts)
    opts = opts or {}
    local getenv = opts.getenv or os.getenv
    local raw, origin = {}, {}
    for key in pairs(SETTINGS) do
        local v = getenv(key)
        if v and v ~= "" then raw[key] = v; origin[key] = "environment" end
    end
    for _, path in ipairs(files or {}) do
        local ok, err = read_file(path, raw, origin, opts.warn)
        if not ok then return nil, err end
    end
    if opts.store_arg then raw.TIKTOK_STORE, origin.TIKTOK_STORE = opts.store_arg, "--store" end
    return raw, origin
end

local function split_list(s)
    local out = {}
    for item in s:gmatch("[^,]+") do
        item = trim(item)
        if item ~= "" then out[#out + 1] = item end
    end
    return out
end

local CONVERT = {}
function CONVERT.list(value) return split_list(value) end
function CONVERT.boolean(value, key, where)
    local l = value:lower()
    if l == "1" or l == "yes" or l == "true" or l == "on" then return true end
    if l == "0" or l == "no" or l == "false" or l == "off" then return false end
    return nil, output.config(format("%s (%s) must be yes or no, got '%s'", key, where, value))
end
function CONVERT.key(value, key, where)
    local v = trim(value)
    if #v ~= 64 or not v:match("^%x+$") then
        -- never the value itself: it is a secret
        return nil, output.config(format("%s (%s) must be 64 hex digits (a 32-byte key, e.g. from `openssl rand "
                                         .. "-hex 32`); the value given has %d characters", key, where, #v))
    end
    return v:lower()
end
function CONVERT.integer(value, key, where)
    local v = tonumber(value)
    if not v or v ~= floor(v) or v < 1 or not value:match("^%s*%d+%s*$") then
        return nil, output.config(format("%s (%s) must be a whole number, got '%s'", key, where, value))
    end
    return v
end

-- The library's own check of verified_prefixes, run now so that a bad
-- entry is a configuration error.
local function check_prefixes(list)
    local ok, msg = pcall(tiktok.settings.validate, { mode = "inbox", video_file = "x" }, nil,
                          { verified_prefixes = list })
    if ok then return true end
    local what = tostring(msg):match("verified_prefixes(%[%d+%].*)$") or tostring(msg)
    return nil, output.config("TIKTOK_VERIFIED_PREFIXES: entry " .. what)
end

--- config.options(raw, origin, { required = bool }) -> opts, own | nil, err
-- opts: tiktok.connect's options; own: { store, sandbox_user } (the command
-- line's). With required (the default), the three app settings must be set.
function _M.options(raw, origin, opts)
    if not opts or opts.required ~= false then
        local missing = {}
        for _, key in ipairs(_M.REQUIRED) do
            if not raw[key] or raw[key] == "" then missing[#missing + 1] = key end
        end
        if #missing > 0 then
            return nil, output.config("missing configuration: " .. concat(missing, ", ") .. ". Set "
                .. (#missing == 1 and "it" or "them") .. " in the environment or in a file given "
                .. "with --config FILE (KEY=value lines); see `tiktok --help`")
        end
    end
    local conn_opts, own = {}, {}
    for key, value in pairs(raw) do
        local name, kind = SETTINGS[key][1], SETTINGS[key][2]
        local v = value
        if CONVERT[kind] then
            local err
            v, err = CONVERT[kind](value, key, origin[key])
            if v == nil then return nil, err end
        end
        if OWN[name] then own[name] = v else conn_opts[name] = v end
    end
    if conn_opts.verified_prefixes then
        local ok, err = check_prefixes(conn_opts.verified_prefixes)
        if not ok then return nil, err end
    end
    return conn_opts, own
end

-- Option name in a library message -> the setting that fills it.
local OPTION_KEYS = {}
for key, spec in pairs(SETTINGS) do OPTION_KEYS[spec[1]] = key end

--- config.is_url(s) -> whether s names a PostgreSQL store (postgresql:// or postgres://)
function _M.is_url(s)
    return s:match("^postgres://") ~= nil or s:match("^postgresql://") ~= nil
end

--- config.default_store_path() -> the file store's default path
function _M.default_store_path()
    return tiktok.store.file().path
end

--- config.store_label(spec) -> what to print for a store: its path, or its
-- URL without a password (neither in the user part nor in the query)
function _M.store_label(spec)
    spec = spec or _M.default_store_path()
    if not _M.is_url(spec) then return spec end
    local scheme, rest = spec:match("^(%a+://)(.*)$")
    local auth, tail = rest:match("^([^@/?#]*)@(.*)$")
    if auth then rest = (auth:match("^([^:]*)") or "") .. "@" .. tail end
    local base, query = rest:match("^([^?]*)%?(.*)$")
    if query then
        local kept = {}
        for pair in query:gmatch("[^&]+") do
            if not pair:lower():match("^password=") then kept[#kept + 1] = pair end
        end
        rest = base .. (#kept > 0 and ("?" .. concat(kept, "&")) or "")
    end
    return scheme .. rest
end

-- Opens the PostgreSQL store of a postgresql:// URL; a clear error when its
-- rock (lua-tiktok-postgres, on libpq) is not installed.
local function postgres_store(url, key)
    local ok, pg = pcall(require, "tiktok.store.postgres")
    if not ok then
        return nil, errors.new("store", "TIKTOK_STORE is a PostgreSQL URL but the PostgreSQL store is not "
            .. "installed: install it with `luarocks install lua-tiktok-postgres` (it needs libpq: Debian "
            .. "package libpq-dev); from a checkout, run `make pg`", { class = "local" })
    end
    local made, store = pcall(pg.new or pg, { conninfo = url, key = key })
    if not made then
        return nil, errors.new("store", "cannot use the PostgreSQL store " .. _M.store_label(url) .. ": "
                               .. tostring(store):gsub("^[^:]*:%d+: ", ""), { class = "local" })
    end
    return store
end

--- config.store(own) -> the account store (TIKTOK_STORE: a file path, the
-- default path, or a postgresql:// URL; TIKTOK_STORE_KEY its key) | nil, err
-- store.label names it in messages (a path, or the URL without a password).
function _M.store(own)
    own = own or {}
    local spec = own.store
    local store, err
    if spec and _M.is_url(spec) then
        store, err = postgres_store(spec, own.store_key)
        if not store then return nil, err end
    else
        store = tiktok.store.file({ path = spec, key = own.store_key })
    end
    store.label = _M.store_label(store.path or spec)
    return store
end

--- config.connect(files, { getenv, warn }) -> conn, store, own | nil, err
function _M.connect(files, opts)
    local raw, origin = _M.read(files, opts)
    if not raw then return nil, origin end
    local conn_opts, own = _M.options(raw, origin)
    if not conn_opts then return nil, own end
    local store, serr = _M.store(own)
    if not store then return nil, serr end
    conn_opts.store = store
    local ok, conn, err = pcall(tiktok.connect, conn_opts)
    if not ok then return nil, output.config("configuration: " .. tostring(conn)) end
    if not conn then
        local msg = err.message:gsub("^tiktok%.connect: ", "")
        msg = msg:gsub("([%a_]+)", function(w)
            return OPTION_KEYS[w] and (w .. " (" .. OPTION_KEYS[w] .. ")") or w
        end, 1)
        return nil, output.config("configuration: " .. msg)
    end
    return conn, store, own
end

--- config.stored_accounts(files, opts) -> list, store | nil, err
-- The accounts in the store as conn:accounts() shows them, read without
-- the app's credentials (only TIKTOK_STORE, and TIKTOK_CLIENT_KEY when set
-- to keep to that app's accounts): listing needs no request to TikTok.
function _M.stored_accounts(files, opts)
    local raw, origin = _M.read(files, opts)
    if not raw then return nil, origin end
    local conn_opts, own = _M.options(raw, origin, { required = false })
    if not conn_opts then return nil, own end
    local store, serr = _M.store(own)
    if not store then return nil, serr end
    local records, err = store:list()
    if not records then return nil, err end
    local key = raw.TIKTOK_CLIENT_KEY
    local out = {}
    for _, rec in ipairs(records) do
        -- the command line acts as nobody: accounts a web app's users
        -- connected are theirs (tiktok.access, as conn:accounts() says)
        if access.visible(rec, nil) and (key == nil or rec.client_key == nil or rec.client_key == key) then
            out[#out + 1] = connection.public_account(rec)
        end
    end
    return out, store
end

--- config.pick_account(conn, open_id) -> open_id | nil, err
-- The account named with --account, or the only one connected; the
-- library's messages reworded in the command line's terms.
function _M.pick_account(conn, open_id)
    local id, err = conn:pick_account(open_id)
    if id then return id end
    if open_id == nil and err.code == "not_found" then
        err.message = "no TikTok account is connected yet"
    elseif err.choices then
        err.message = #err.choices .. " TikTok accounts are connected; choose one with --account OPEN_ID ("
                      .. concat(err.choices, ", ") .. ")"
    end
    return nil, err
end

return _M
