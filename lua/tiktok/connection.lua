-- tiktok.connection: an app's connection to TikTok (client key/secret,
-- redirect URI, store) and the accounts connected through it.
local core = require "tiktok.core"
local util = require "tiktok.util"
local api = require "tiktok.api"
local errors = require "tiktok.errors"
local store_mod = require "tiktok.store"
local openresty = require "tiktok.openresty"
local access_mod = require "tiktok.access"

local type, pairs, ipairs, setmetatable, error, tostring = type, pairs, ipairs, setmetatable, error, tostring
local concat, floor = table.concat, math.floor

local _M = {}
local mt = { __index = _M }

-- Every method that does I/O (libcurl, the store's lock) is declared with
-- io_method: inside an nginx handler or timer it runs in a worker thread
-- (tiktok.openresty), so the event loop never blocks; elsewhere, and
-- inside the thread, it runs directly. IO keeps the direct versions.
local IO = {}
local function io_method(name, fn)
    IO[name] = fn
    _M[name] = openresty.method("conn", name, fn)
end

-- The one table of connection options with their defaults (nil = none).
local DEFAULTS = {
    client_key = nil,            -- required
    client_secret = nil,         -- required
    redirect_uri = nil,          -- required
    scopes = { "user.info.basic", "video.publish", "video.upload" },
    store = nil,                 -- default: tiktok.store.file{}
    api_base = "https://open.tiktokapis.com",
    auth_base = "https://www.tiktok.com",
    ca_file = nil,
    timeout_ms = 30000,          -- each API request
    connect_timeout_ms = 10000,
    low_speed_ms = 30000,        -- abort a transfer stalled this long
    refresh_skew_ms = 300000,    -- refresh an access token this long before it expires
    audited = true,              -- false: only SELF_ONLY posts to private accounts
    verified_prefixes = nil,     -- URL prefixes / "domain:x" verified for the app
    chunk_size = nil,            -- preferred upload chunk size (planner default: 64,000,000)
    upload_retries = 3,          -- per chunk, on 5xx / reset / timeout
    chunk_timeout_ms = 0,        -- total time for one chunk PUT (0 = only low_speed_ms)
    wait_timeout_ms = 600000,    -- how long tiktok.post waits for a final status
    poll_ms = 500,               -- first status poll delay (then backoff)
    budget_wait_ms = nil,        -- the longest a call waits for a budget (nil: as long as its own deadline
                                 -- allows; 0: never wait, a web handler answers 429 with retry_after)
    rate_limits = nil,           -- budgets kept in the store, shared by every process (BUDGETS:
                                 -- TikTok's init 6, creator_info 20, status 30 a minute, inbox 5 a
                                 -- day); a table overrides some, e.g. { status = 10 }
    log = nil,                   -- function(level, message); never receives secrets
    thread_pool = "tiktok",      -- OpenResty: nginx thread_pool that runs the blocking calls
    thread_pool_size = 68,       -- OpenResty: that pool's threads + max_queue
    upload_nice = nil,           -- lower an upload's thread priority by this much while it sends
                                 -- (nil: 10 inside nginx worker threads, 0 elsewhere; 0: off)
    upload_buffer_size = nil,    -- libcurl's upload buffer (16384-2097152; nil: libcurl's 64 KiB)
    relay_allow_private = false, -- relay: allow video URLs on private, loopback or link-local addresses
    relay_ca_file = nil,         -- relay: PEM bundle for the video URLs' hosts (nil: the system store)
    relay_spool_dir = nil,       -- relay: where a source without range support is spooled (nil: /tmp)
}
_M.DEFAULTS = DEFAULTS

-- TikTok's per-token limits (tiktok-api.md §5, §9) and the inbox cap, as
-- budgets in the store: every process and machine that shares the store
-- shares them, so TikTok is never sent a request it would answer with 429.
-- what -> { limit, window in seconds, the error when the wait is too long }
-- The minute windows are 63 s: a use is taken before its request is sent,
-- and TikTok counts the request when it arrives, so a request that was slow
-- to leave (a TLS handshake, a busy machine) must not let the next window's
-- first one land inside TikTok's 60 s (5 % below the limit, so TikTok never
-- answers 429).
local BUDGETS = {
    init = { 6, 63, "rate_limit_exceeded" },
    creator_info = { 20, 63, "rate_limit_exceeded" },
    status = { 30, 63, "rate_limit_exceeded" },
    inbox = { 5, 86400, "spam_risk_too_many_pending_share" },
}
_M.BUDGETS = BUDGETS

local SPEC = {
    client_key = "string", client_secret = "string", redirect_uri = "string", scopes = "table",
    store = "table", api_base = "string", auth_base = "string", ca_file = "string",
    timeout_ms = "integer", connect_timeout_ms = "integer", low_speed_ms = "integer",
    refresh_skew_ms = "integer", audited = "boolean", verified_prefixes = "table",
    chunk_size = "integer", upload_retries = "integer", chunk_timeout_ms = "integer",
    wait_timeout_ms = "integer", poll_ms = "integer", rate_limits = "table", budget_wait_ms = "integer",
    log = "function", thread_pool = "string", thread_pool_size = "integer",
    upload_nice = "integer", upload_buffer_size = "integer",
    relay_allow_private = "boolean", relay_ca_file = "string", relay_spool_dir = "string",
}

local KNOWN_SCOPES = {
    ["user.info.basic"] = true, ["user.info.profile"] = true, ["user.info.stats"] = true,
    ["video.list"] = true, ["video.publish"] = true, ["video.upload"] = true,
}

local function bad(msg)
    return nil, errors.new("invalid_argument", msg)
end

local function strip_slash(s)
    return (s:gsub("/+$", ""))
end

-- The checks of tiktok.connect's values, each returning a sentence (what
-- is wrong and how to fix it) or nil. A wrong Lua type or an unknown
-- option raises (util.check_opts); a missing or unusable value is a
-- runtime failure: nil, err with err.code "invalid_argument".
local function check_credentials(o)
    for _, k in ipairs({ "client_key", "client_secret", "redirect_uri" }) do
        if o[k] == nil or o[k] == "" then
            return k .. " is required (from your app in the TikTok developer portal)"
        end
        if #o[k] > 2048 or o[k]:find("[%z\1-\31\127]") then
            return k .. " contains control characters or is too long"
        end
        if k ~= "redirect_uri" and o[k]:find("[^\33-\126]") then
            return k .. " must be printable ASCII, as TikTok issues it; check for stray spaces or characters "
                   .. "copied from the developer portal"
        end
    end
    local ok, msg = util.check_redirect_uri(o.redirect_uri)
    if not ok then return msg end
    for _, k in ipairs({ "api_base", "auth_base" }) do
        local u, m = util.check_base_url(k, o[k])
        if not u then return m end
        if u.query then return k .. " must not have a query string" end
        o[k] = strip_slash(o[k])
    end
    if o.ca_file then
        local st, _, why = core.stat(o.ca_file)
        if not st or st.type ~= "file" then
            return "ca_file " .. o.ca_file .. " is not a readable file" .. (why and (" (" .. why .. ")") or "")
        end
    end
end

local function check_limits(o)
    if #o.scopes == 0 then return "scopes must list at least one scope" end
    for i, s in ipairs(o.scopes) do
        if type(s) ~= "string" or not KNOWN_SCOPES[s] then
            return "scopes[" .. i .. "] is not a TikTok scope: " .. tostring(s)
        end
    end
    if o.chunk_size and (o.chunk_size < core.MIN_CHUNK or o.chunk_size > core.MAX_CHUNK) then
        return "chunk_size must be between 5,242,880 and 64,000,000 bytes"
    end
    for what, n in pairs(o.rate_limits or {}) do
        if not BUDGETS[what] then
            error("tiktok.connect: rate_limits." .. tostring(what) .. " is not a budget (init, creator_info, "
                  .. "status, inbox)", 4)
        end
        if type(n) ~= "number" or n < 1 or n % 1 ~= 0 then
            return "rate_limits." .. what .. " must be a whole number of requests, 1 or more"
        end
    end
    if o.upload_nice and o.upload_nice > 19 then return "upload_nice must be 0 (off) to 19" end
    if o.upload_buffer_size and (o.upload_buffer_size < 16384 or o.upload_buffer_size > 2097152) then
        return "upload_buffer_size must be between 16384 and 2097152 bytes"
    end
end

function _M.new(opts)
    util.check_opts("tiktok.connect", opts, SPEC, 3)
    local o = {}
    for k, v in pairs(DEFAULTS) do o[k] = v end
    for k, v in pairs(opts) do o[k] = v end
    local problem = check_credentials(o) or check_limits(o)
    if problem then return bad("tiktok.connect: " .. problem) end
    if o.store == nil then o.store = store_mod.file() end
    for _, m in ipairs({ "get", "put", "delete", "list", "locked" }) do
        if type(o.store[m]) ~= "function" then
            error("tiktok.connect: store lacks the method '" .. m .. "'", 3)
        end
    end
    local self = setmetatable({ opts = o, store = o.store }, mt)
    self._ctx = {
        session = core.session({ ca_file = o.ca_file, timeout_ms = o.timeout_ms,
                                 connect_timeout_ms = o.connect_timeout_ms,
                                 low_speed_ms = o.low_speed_ms }),
        api_base = o.api_base, client_key = o.client_key, client_secret = o.client_secret,
        timeout_ms = o.timeout_ms, log = o.log, secrets = { o.client_secret },
    }
    return self
end

-- The requests and TCP connections this connection has made so far.
function _M:stats()
    return self._ctx.session:stats()
end

function _M:close()
    self._ctx.session:close()
end

-- ------------------------------------------------------------------ OAuth

local AUTH_OPTS = { state = "string", disable_auto_auth = "boolean", pkce = "boolean" }

-- Returns url, state, code_verifier. PKCE is on by default: TikTok's web
-- authorize refuses a request without a hex SHA-256 code_challenge (§15.1,
-- §15.2); keep the verifier next to the state and give it to exchange.
-- pkce = false only for an app TikTok still lets in without it.
function _M:authorize_url(opts)
    opts = util.check_opts("conn:authorize_url", opts or {}, AUTH_OPTS)
    local state = opts.state
    if state == nil then
        state = core.random_hex(16)   -- 128 bits from getrandom(2)
    elseif state == "" or #state > 512 then
        error("conn:authorize_url: state must be 1 to 512 characters", 2)
    end
    local o = self.opts
    local fields = {
        { "client_key", o.client_key }, { "response_type", "code" },
        { "scope", concat(o.scopes, ",") }, { "redirect_uri", o.redirect_uri },
        { "state", state },
    }
    if opts.disable_auto_auth then fields[#fields + 1] = { "disable_auto_auth", 1 } end
    local verifier
    if opts.pkce ~= false then
        verifier = core.random_hex(32)   -- 64 unreserved characters
        fields[#fields + 1] = { "code_challenge", core.sha256_hex(verifier) }
        fields[#fields + 1] = { "code_challenge_method", "S256" }
    end
    return o.auth_base .. "/v2/auth/authorize/?" .. util.form(fields), state, verifier
end

-- Reads the callback URL (or its query string) TikTok redirected to.
-- Returns { code, state, scopes, error, error_description }.
function _M.parse_callback(url_or_query)
    if type(url_or_query) ~= "string" then
        error("tiktok.parse_callback: expected a string", 2)
    end
    local q = url_or_query:match("%?([^#]*)") or url_or_query
    local t = util.parse_query(q)
    return { code = t.code, state = t.state, scopes = t.scopes, error = t.error,
             error_description = t.error_description }
end

local check_as = access_mod.check_as

local EXCHANGE_OPTS = { code = "string", state = "string", expected_state = "string",
                        code_verifier = "string", as = "table", access = "string" }

local function public_account(rec)
    return {
        open_id = rec.open_id, scopes = util.copy(rec.scopes or {}),
        expires_at = rec.expires_at, refresh_expires_at = rec.refresh_expires_at,
        owner = rec.owner, workspace = rec.workspace, access = rec.access,
    }
end
_M.public_account = public_account

local function split_scopes(s)
    local out = {}
    if type(s) == "string" then
        for sc in s:gmatch("[^,%s]+") do out[#out + 1] = sc end
    end
    return out
end

local function apply_token(rec, tok)
    local now = util.now()
    rec.access_token = tok.access_token
    rec.refresh_token = tok.refresh_token
    rec.expires_at = floor(now + tok.expires_in)
    rec.refresh_expires_at = floor(now + tok.refresh_expires_in)
    if tok.scope then rec.scopes = split_scopes(tok.scope) end
    rec.updated_at = floor(now)
    return rec
end

io_method("exchange", function(self, opts)
    util.check_opts("conn:exchange", opts, EXCHANGE_OPTS)
    check_as("conn:exchange", opts.as)
    local rec, why = access_mod.stamp({ client_key = self.opts.client_key }, opts.as, opts.access,
                                      "conn:exchange")
    -- The state check comes first: a mismatch sends nothing to TikTok.
    if type(opts.state) ~= "string" or type(opts.expected_state) ~= "string"
       or opts.expected_state == "" or not core.consteq(opts.state, opts.expected_state) then
        return nil, errors.new("state_mismatch", "the state in the callback does not match the one this "
                               .. "browser was given; start the connection again from the beginning")
    end
    if type(opts.code) ~= "string" or opts.code == "" then
        return nil, errors.new("invalid_argument", "the callback carried no authorization code")
    end
    if not rec then return nil, errors.new("invalid_argument", why) end
    local tok, err = api.exchange_code(self._ctx, opts.code, self.opts.redirect_uri, opts.code_verifier)
    if not tok then return nil, err end
    rec.open_id, rec.created_at = tok.open_id, floor(util.now())
    apply_token(rec, tok)
    local existing = self.store:get(tok.open_id)
    if existing and existing.owner and existing.owner ~= rec.owner
       and not self:_visible(existing, opts.as) then
        return nil, errors.new("forbidden", "this TikTok account is already connected by someone else")
    end
    local ok, serr = self.store:put(rec)
    if not ok then return nil, serr end
    return public_account(rec)
end)

-- ---------------------------------------------------------- access control

-- Who may see an account: tiktok.access, the rule accounts, app
-- configurations and jobs share.
function _M:_visible(rec, as)
    return access_mod.visible(rec, as)
end

-- Loads a record the caller may use, or nil, err (not_found / forbidden).
function _M:_record(open_id, as)
    if type(open_id) ~= "string" or open_id == "" then
        return nil, errors.new("invalid_argument", "an account open_id is required")
    end
    local rec, err = self.store:get(open_id)
    if err then return nil, err end
    if not rec then
        return nil, errors.new("not_found", "no connected TikTok account has this open_id; connect it first")
    end
    if rec.client_key ~= nil and rec.client_key ~= self.opts.client_key then
        return nil, errors.new("forbidden", "this TikTok account was connected through another TikTok app "
                               .. "(client key); use a connection made with that app")
    end
    if not self:_visible(rec, as) then
        return nil, errors.new("forbidden", "this TikTok account is not shared with you; ask its owner "
                               .. "to connect it with access = \"workspace\"")
    end
    return rec
end

local ACC_OPTS = { as = "table" }

io_method("accounts", function(self, opts)
    opts = util.check_opts("conn:accounts", opts or {}, ACC_OPTS)
    check_as("conn:accounts", opts.as)
    local list, err = self.store:list()
    if not list then return nil, err end
    local out = {}
    for _, rec in ipairs(list) do
        if (rec.client_key == nil or rec.client_key == self.opts.client_key) and self:_visible(rec, opts.as) then
            out[#out + 1] = public_account(rec)
        end
    end
    return out
end)

io_method("account", function(self, open_id, opts)
    opts = util.check_opts("conn:account", opts or {}, ACC_OPTS)
    check_as("conn:account", opts.as)
    local rec, err = self:_record(open_id, opts.as)
    if not rec then return nil, err end
    return public_account(rec)
end)

local PICK_OPTS = { as = "table" }

--- conn:pick_account(open_id, { as }) -> open_id | nil, err
-- The account to act on: the one named (when the caller may use it), or
-- the only one visible to `as`. With none: not_found; with several:
-- invalid_argument, their open_ids in err.choices.
function _M:pick_account(open_id, opts)
    opts = util.check_opts("conn:pick_account", opts or {}, PICK_OPTS)
    check_as("conn:pick_account", opts.as)
    if open_id ~= nil then
        local acc, err = self:account(open_id, { as = opts.as })
        if not acc then return nil, err end
        return acc.open_id
    end
    local list, err = self:accounts({ as = opts.as })
    if not list then return nil, err end
    if #list == 1 then return list[1].open_id end
    if #list == 0 then
        return nil, errors.new("not_found", "no TikTok account is connected for you yet; connect one first")
    end
    local ids = {}
    for i, a in ipairs(list) do ids[i] = a.open_id end
    return nil, errors.new("invalid_argument", #list .. " TikTok accounts are connected for you; say which "
                           .. "one to use (account = open_id)", { choices = ids })
end

-- Returns a usable access token for the account, refreshing it (once
-- across every process sharing the store) when it is expired or about to
-- be, or when `stale` (a token TikTok just called invalid) is given.
function _M:_token(open_id, as, stale)
    local rec, err = self:_record(open_id, as)
    if not rec then return nil, err end
    local skew = self.opts.refresh_skew_ms / 1000
    if not stale and rec.expires_at and rec.expires_at - skew > util.now() then
        return rec.access_token, rec
    end
    local seen = stale or rec.access_token
    return self.store:locked(function()
        local cur, e2 = self:_record(open_id, as)
        if not cur then return nil, e2 end
        -- Someone else refreshed while we waited for the lock: use theirs.
        if cur.access_token ~= seen and cur.expires_at and cur.expires_at - skew > util.now() then
            return cur.access_token, cur
        end
        if cur.refresh_expires_at and cur.refresh_expires_at <= util.now() then
            return nil, errors.new("reauthorize", "the account's refresh token has expired; connect the "
                                   .. "TikTok account again", { retryable = false })
        end
        local tok, rerr = api.refresh(self._ctx, cur.refresh_token)
        if not tok then
            if rerr.code == "invalid_grant" then
                return nil, errors.new("reauthorize", "TikTok no longer accepts this account's refresh "
                                       .. "token (revoked or expired); connect the TikTok account again",
                                       { http_status = rerr.http_status, log_id = rerr.log_id, retryable = false })
            end
            return nil, rerr
        end
        if tok.open_id ~= cur.open_id then
            return nil, errors.new("bad_response", "TikTok refreshed a token for another open_id")
        end
        apply_token(cur, tok)
        -- Persist the rotated refresh token before anything uses the new
        -- access token: the old refresh token no longer works.
        local ok, serr = self.store:put(cur)
        if not ok then return nil, serr end
        return cur.access_token, cur
    end, open_id)   -- per account where the store can (PostgreSQL); the whole store elsewhere
end

-- Runs fn(token) and, when TikTok says the token is invalid, refreshes once
-- and runs it again. Only for calls that are safe to repeat after a 401.
function _M:_with_token(open_id, as, fn)
    local token, err = self:_token(open_id, as)
    if not token then return nil, err end
    local res, ferr = fn(token)
    if res == nil and ferr and ferr.code == "access_token_invalid" then
        token, err = self:_token(open_id, as, token)
        if not token then return nil, err end
        return fn(token)
    end
    return res, ferr
end

io_method("refresh", function(self, open_id, opts)
    opts = util.check_opts("conn:refresh", opts or {}, ACC_OPTS)
    check_as("conn:refresh", opts.as)
    local rec, err = self:_record(open_id, opts.as)
    if not rec then return nil, err end
    local token, rec2 = self:_token(open_id, opts.as, rec.access_token)
    if not token then return nil, rec2 end
    return public_account(rec2)
end)

io_method("revoke", function(self, open_id, opts)
    opts = util.check_opts("conn:revoke", opts or {}, ACC_OPTS)
    check_as("conn:revoke", opts.as)
    local ok, err = self:_with_token(open_id, opts.as, function(token)
        return api.revoke(self._ctx, token)
    end)
    if not ok then return nil, err end
    local dok, derr = self.store:delete(open_id)
    if not dok then return nil, derr end
    return true
end)

local UI_OPTS = { as = "table", fields = "table" }
local DEFAULT_FIELDS = { "open_id", "union_id", "avatar_url", "display_name" }

io_method("user_info", function(self, open_id, opts)
    opts = util.check_opts("conn:user_info", opts or {}, UI_OPTS)
    check_as("conn:user_info", opts.as)
    local fields = opts.fields or DEFAULT_FIELDS
    for i, f in ipairs(fields) do
        if type(f) ~= "string" or not f:match("^[%w_]+$") then
            error("conn:user_info: fields[" .. i .. "] is not a field name", 2)
        end
    end
    return self:_with_token(open_id, opts.as, function(token)
        return api.user_info(self._ctx, token, fields)
    end)
end)

-- Reads are safe to repeat: a transient failure gets two more tries.
local function read_retry(fn)
    local res, err
    for attempt = 1, 3 do
        res, err = fn()
        if res ~= nil or not errors.read_again(err) then return res, err end
        if attempt < 3 then core.sleep_ms(200 * attempt) end
    end
    return res, err
end

io_method("creator_info", function(self, open_id, opts)
    opts = util.check_opts("conn:creator_info", opts or {}, ACC_OPTS)
    check_as("conn:creator_info", opts.as)
    local deadline = core.monotonic_ms() + self.opts.timeout_ms
    return read_retry(function()
        return self:_with_token(open_id, opts.as, function(token)
            local ok, berr = self:_budget("creator_info", open_id, deadline)
            if not ok then return nil, berr end
            return api.creator_info(self._ctx, token)
        end)
    end)
end)

local APPROVE_OPTS = { username = "string", decision = "string", granted_scopes = "table" }

-- Approves an authorize URL on the local sandbox's consent page without a
-- browser (for scripts, specs and the demo) and returns the callback
-- fields { code, state, scopes, error }. Refused for anything but a
-- loopback auth_base: real TikTok needs a person to consent.
io_method("sandbox_approve", function(self, url, opts)
    opts = util.check_opts("conn:sandbox_approve", opts or {}, APPROVE_OPTS)
    local base = util.parse_url(self.opts.auth_base)
    if not util.is_loopback(base.host) then
        return nil, errors.new("invalid_argument", "sandbox_approve works only against the local sandbox; "
                               .. "open the authorize URL in a browser instead")
    end
    local prefix = self.opts.auth_base .. "/v2/auth/authorize/?"
    if type(url) ~= "string" or url:sub(1, #prefix) ~= prefix then
        error("conn:sandbox_approve: expected a URL from conn:authorize_url", 2)
    end
    local granted = opts.granted_scopes and concat(opts.granted_scopes, ",") or nil
    local body = url:sub(#prefix + 1) .. "&" .. util.form({ { "decision", opts.decision or "approve" },
                                                            { "username", opts.username },
                                                            { "granted_scopes", granted } })
    local res, kind, message, sent = self._ctx.session:request({
        method = "POST", url = self.opts.auth_base .. "/v2/auth/authorize/",
        headers = { "Content-Type: application/x-www-form-urlencoded" }, body = body,
    })
    if not res then
        return nil, errors.from_core("sandbox consent", kind, message, sent, self._ctx.secrets)
    end
    local location = res.headers.location
    if res.status ~= 302 or not location then
        return nil, errors.new("http", "the sandbox consent page answered HTTP " .. res.status
                               .. " instead of redirecting", { http_status = res.status })
    end
    return _M.parse_callback(location)
end)

-- A client access token (client_credentials); not stored.
io_method("client_token", function(self)
    local tok, err = api.client_token(self._ctx)
    if not tok then return nil, err end
    return { access_token = tok.access_token, expires_at = floor(util.now() + (tok.expires_in or 0)) }
end)

-- Sends a signed event to the application's own webhook URL (used by
-- tiktok.webhook.forwarder; an I/O method so nginx runs it in a thread).
io_method("_send_webhook", function(self, d)
    local u, why = util.check_base_url("the webhook URL", d.url)
    if not u then return nil, errors.new("invalid_argument", why) end
    return api.send_webhook(self._ctx, d.url, d.signature, d.body)
end)

-- Is this TikTok app set up right (credentials, redirect URI, scopes,
-- audit)? A report of sentences: tiktok.check.
io_method("check", function(self)
    return require("tiktok.check").app(self)
end)

-- After a connect: did the account grant what posting needs?
io_method("check_account", function(self, open_id, opts)
    opts = util.check_opts("conn:check_account", opts or {}, ACC_OPTS)
    check_as("conn:check_account", opts.as)
    return require("tiktok.check").account(self, open_id, opts)
end)

-- The interface tiktok.post uses (internal, not public API): the option
-- table, the transport context of tiktok.api, a stored record the caller may
-- use (_record), a call with a valid token (_with_token) and the status
-- budgets in the store (_budget).
function _M:_option(name)
    return self.opts[name]
end

function _M:_api()
    return self._ctx
end

-- How much to lower an upload's thread priority: upload_nice, else 10 in
-- an nginx worker thread (the uploads yield the CPU to the event loop) and
-- 0 elsewhere.
function _M:_upload_nice()
    local n = self.opts.upload_nice
    if n == nil then n = openresty.in_thread and 10 or 0 end
    return n
end


-- Takes one use of a budget for the account, waiting while the deadline
-- (monotonic ms) allows; else nil, err with retry_after (seconds). A store
-- without budget() gets one kept in this connection.
function _M:_budget(what, open_id, deadline_ms)
    local b = BUDGETS[what]
    local limit = self.opts.rate_limits and self.opts.rate_limits[what] or b[1]
    local store = self.store
    local key = what .. ":" .. open_id
    while true do
        local ok, retry
        if type(store.budget) == "function" then
            ok, retry = store:budget(key, limit, b[2])
            if ok == nil then return nil, retry end
        else
            self._budgets = self._budgets or store_mod.memory()
            ok, retry = self._budgets:budget(key, limit, b[2])
        end
        if ok then return true end
        local wait_ms = math.ceil(retry * 1000)
        local cap = self.opts.budget_wait_ms
        if cap and (not deadline_ms or core.monotonic_ms() + cap < deadline_ms) then
            deadline_ms = core.monotonic_ms() + cap
        end
        if deadline_ms and core.monotonic_ms() + wait_ms <= deadline_ms then
            core.sleep_ms(wait_ms)
        else
            local e = errors.new(b[3], nil, { retry_after = math.ceil(retry) })
            e.message = e.message .. " (lua-tiktok held back the request: the budget of " .. limit .. " per "
                        .. (b[2] < 3600 and "minute" or "day") .. " is used up for this account; retry in "
                        .. math.ceil(retry) .. " s)"
            return nil, e
        end
    end
end

_M._io = IO

return _M
