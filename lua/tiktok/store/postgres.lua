-- tiktok.store.postgres: the store for several machines, on PostgreSQL
-- through libpq (tiktok.store.pgcore, rock lua-tiktok-postgres).
--
--   local store = require("tiktok.store.postgres"){
--       conninfo = "postgresql://app@db.internal/app?sslmode=verify-full",
--       schema = "tiktok", key = os.getenv("TIKTOK_STORE_KEY"),
--   }
--   -- or tiktok.store.postgres{ ... } (loaded on first use)
--
-- Every method of the store interface (lua/tiktok/store.lua), with the file
-- store's guarantees across every process on every machine using the
-- database:
-- * locked(fn) holds a session advisory lock (pg_advisory_lock) on the
--   store's schema while fn runs: one refresh per expiry everywhere; the
--   wait is bounded by lock_timeout_ms (then nil, err with code "busy"); a
--   process that dies releases the lock with its connection.
-- * Writes are single statements in autocommit: a refreshed token is
--   committed by put() before connection._token hands it out. A write that
--   finds the connection lost reconnects and tries again (an upsert is safe
--   to repeat) for up to reconnect_ms, so a restart of the server in the
--   middle of a refresh loses no refresh token.
-- * Budgets use the server's clock (one clock for every machine).
-- * The schema is created and migrated by the store itself: versioned
--   (schema_version), under pg_advisory_xact_lock, so many processes may
--   start at once.
-- * One connection per store object, opened on first use; a connection
--   inherited through fork() is never reused (each process opens its own).
-- Every failure is nil, err (err.code "store", or "busy" for the lock), with
-- no secret in it.
local have_pgcore, pgcore = pcall(require, "tiktok.store.pgcore")
if not have_pgcore then
    error("tiktok.store.postgres needs its libpq binding, tiktok.store.pgcore: install the rock "
          .. "lua-tiktok-postgres (it needs Debian's libpq-dev), or run `make pg` in a checkout ("
          .. tostring(pgcore):match("^[^\n]*") .. ")", 2)
end
local store_mod = require "tiktok.store"
local core = require "tiktok.core"
local util = require "tiktok.util"
local errors = require "tiktok.errors"

local type, pairs, ipairs, setmetatable, error, pcall = type, pairs, ipairs, setmetatable, error, pcall
local tostring, tonumber, select = tostring, tonumber, select
local unpack = table.unpack or unpack  -- luacheck: ignore

local function pack(...) return { n = select("#", ...), ... } end

local _M = { _VERSION = "0.1.0" }
local PG = {}
PG.__index = PG
_M._mt = PG

local OPTS = {
    conninfo = "string", schema = "string", key = "any", lock_timeout_ms = "integer",
    statement_timeout_ms = "integer", reconnect_ms = "integer", application_name = "string",
}

-- The collections kept besides accounts (upload journals, apps, ...), by the
-- field that keys each record: the same list as the other stores.
local COLLECTIONS = store_mod.COLLECTIONS or { upload = "publish_id" }

local SCHEMA_VERSION = 2

-- Statements of each migration; S is replaced by the quoted schema name.
local MIGRATIONS = {
    [1] = {
        [[CREATE TABLE IF NOT EXISTS S.accounts (
            open_id text PRIMARY KEY, owner text, workspace text, access text, client_key text,
            data jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())]],
        [[CREATE INDEX IF NOT EXISTS accounts_owner ON S.accounts (owner)]],
        [[CREATE INDEX IF NOT EXISTS accounts_workspace ON S.accounts (workspace)]],
        [[CREATE TABLE IF NOT EXISTS S.records (
            kind text NOT NULL, id text NOT NULL, data jsonb NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (kind, id))]],
        [[CREATE TABLE IF NOT EXISTS S.claims (
            key text PRIMARY KEY, expires_at double precision NOT NULL, claimed_by text NOT NULL)]],
        [[CREATE TABLE IF NOT EXISTS S.budgets (
            key text PRIMARY KEY, window_s double precision NOT NULL,
            uses double precision[] NOT NULL DEFAULT '{}')]],
        -- take_budget(key, limit, window_s) -> 0 when a use was taken, else
        -- the seconds until one frees up. The row lock makes it atomic.
        [[CREATE OR REPLACE FUNCTION S.take_budget(p_key text, p_limit integer, p_window double precision)
          RETURNS double precision LANGUAGE plpgsql AS $$
          DECLARE
            now_s double precision := extract(epoch FROM clock_timestamp());
            u double precision[];
            n integer;
          BEGIN
            INSERT INTO S.budgets (key, window_s) VALUES (p_key, p_window) ON CONFLICT (key) DO NOTHING;
            SELECT uses INTO u FROM S.budgets WHERE key = p_key FOR UPDATE;
            u := ARRAY(SELECT x FROM unnest(u) AS x WHERE x > now_s - p_window ORDER BY x);
            n := coalesce(array_length(u, 1), 0);
            IF n < p_limit THEN
              UPDATE S.budgets SET uses = u || now_s, window_s = p_window WHERE key = p_key;
              RETURN 0;
            END IF;
            UPDATE S.budgets SET uses = u, window_s = p_window WHERE key = p_key;
            RETURN greatest(u[n - p_limit + 1] + p_window - now_s, 0.001);
          END $$]],
    },
    -- The lock's lease: who holds locked() (see PG:_lock).
    [2] = {
        [[CREATE TABLE IF NOT EXISTS S.lease (
            name text PRIMARY KEY, holder text NOT NULL, taken_at timestamptz NOT NULL,
            grace_ms integer NOT NULL)]],
    },
}

-- ------------------------------------------------------------------ setup

function _M.new(opts)
    util.check_opts("tiktok.store.postgres", opts, OPTS, 2)
    if type(opts.conninfo) ~= "string" or opts.conninfo == "" then
        error("tiktok.store.postgres: conninfo is required (a postgresql:// URL or key=value pairs)", 2)
    end
    local schema = opts.schema or "tiktok"
    if not schema:match("^[a-z_][a-z0-9_]*$") or #schema > 63 then
        error("tiktok.store.postgres: schema must be a lower-case SQL name ([a-z_][a-z0-9_]*, at most 63)", 2)
    end
    local self = {
        conninfo = opts.conninfo, schema = schema,
        lock_timeout_ms = opts.lock_timeout_ms or 15000,
        statement_timeout_ms = opts.statement_timeout_ms or 30000,
        reconnect_ms = opts.reconnect_ms or 30000,
        application_name = opts.application_name or "lua-tiktok",
        _keys = store_mod._keyring(opts.key, "tiktok.store.postgres", 2),
        _lock_prefix = "lua-tiktok:" .. schema .. ":",
        _holder = core.random_hex(12),
        _sql = {},
        -- how to make this store again (in an nginx worker thread's VM)
        _ctor = { module = "tiktok.store.postgres", fn = "new", opts = util.copy(opts),
                  id = opts.conninfo .. "|" .. schema },
    }
    return setmetatable(self, PG)
end

setmetatable(_M, { __call = function(_, opts) return _M.new(opts) end })

-- The SQL text with S replaced by the schema (a checked name, quoted).
function PG:_s(sql)
    local cached = self._sql[sql]
    if cached then return cached end
    local out = sql:gsub("%f[%w_]S%.", '"' .. self.schema .. '".')
    self._sql[sql] = out
    return out
end

local function store_err(what, kind, msg, state)
    local text = "PostgreSQL store: " .. what .. ": " .. tostring(msg)
    if kind == "lock_timeout" then
        return errors.new("busy", text .. "; another process holds the lock (for example while it refreshes "
                          .. "a token); retry shortly, or raise lock_timeout_ms")
    elseif kind == "timeout" then
        return errors.new("store", text .. " (statement_timeout_ms); retry, or raise statement_timeout_ms",
                          { class = "transient", retryable = true })
    elseif kind == "connection" then
        return errors.new("store", text .. "; check that the server is up and conninfo is right",
                          { class = "transient", retryable = true })
    end
    if state and state ~= "" then text = text .. " (SQLSTATE " .. state .. ")" end
    return errors.new("store", text)
end

-- Runs the statements a fresh connection needs: timeouts, then the schema.
function PG:_setup(c)
    local rows, kind, msg, state = c:exec(
        "SELECT set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false), "
        .. "set_config('idle_in_transaction_session_timeout', $3, false)",
        tostring(self.statement_timeout_ms), tostring(self.lock_timeout_ms),
        tostring(math.max(self.statement_timeout_ms, 60000)))
    if not rows then return nil, store_err("session setup", kind, msg, state) end
    if not self._migrated then
        local ok, err = self:_migrate(c)
        if not ok then return nil, err end
        self._migrated = true
    end
    return true
end

function PG:_current_version(c)
    local rows, kind, msg, state = c:exec("SELECT to_regclass($1) IS NOT NULL AS present",
                                          '"' .. self.schema .. '".schema_version')
    if not rows then return nil, store_err("schema check", kind, msg, state) end
    if not rows[1].present then return 0 end
    rows, kind, msg, state = c:exec(self:_s("SELECT coalesce(max(version), 0) AS v FROM S.schema_version"))
    if not rows then return nil, store_err("schema check", kind, msg, state) end
    return rows[1].v
end

-- Creates or upgrades the schema, once per database, under a transaction
-- advisory lock: processes starting together wait for the first one.
function PG:_migrate(c)
    local v, err = self:_current_version(c)
    if not v then return nil, err end
    if v >= SCHEMA_VERSION then return true end
    local function step(sql, ...)
        local rows, kind, msg, state = c:exec(sql, ...)
        if not rows then
            c:exec("ROLLBACK")
            return nil, store_err("creating the schema " .. self.schema, kind, msg, state)
        end
        return rows
    end
    local ok, serr = step("BEGIN")
    if not ok then return nil, serr end
    ok, serr = step("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "lua-tiktok:" .. self.schema .. ":migrate")
    if not ok then return nil, serr end
    ok, serr = step('CREATE SCHEMA IF NOT EXISTS "' .. self.schema .. '"')
    if not ok then return nil, serr end
    ok, serr = step(self:_s("CREATE TABLE IF NOT EXISTS S.schema_version (version integer PRIMARY KEY, "
                            .. "applied_at timestamptz NOT NULL DEFAULT now())"))
    if not ok then return nil, serr end
    local rows
    rows, serr = step(self:_s("SELECT coalesce(max(version), 0) AS v FROM S.schema_version"))
    if not rows then return nil, serr end
    for n = rows[1].v + 1, SCHEMA_VERSION do
        for _, sql in ipairs(MIGRATIONS[n]) do
            ok, serr = step(self:_s(sql))
            if not ok then return nil, serr end
        end
        ok, serr = step(self:_s("INSERT INTO S.schema_version (version) VALUES ($1)"), n)
        if not ok then return nil, serr end
    end
    ok, serr = step("COMMIT")
    if not ok then return nil, serr end
    return true
end

-- The connection, opened (or opened again after it was lost) on demand.
-- When the lock was held on a connection that died, it is taken again on
-- the new one (when it can be) before anything else runs.
function PG:_conn()
    local c = self._c
    if c and c:status() == "ok" then return c end
    if c then c:close(); self._c = nil end
    local kind, msg
    c, kind, msg = pgcore.connect(self.conninfo, self.application_name)
    if not c then return nil, store_err("cannot connect", kind, msg) end
    local ok, err = self:_setup(c)
    if not ok then c:close(); return nil, err end
    self._c = c
    if self._held then
        -- Best effort: the write that follows (rotated tokens, most likely)
        -- must land even when another process took the lock meanwhile; it
        -- could not have refreshed with the token TikTok rotated for us.
        self:_lock(c, self._held)
    end
    return c
end

-- One statement. A connection found dead before the statement was sent
-- (the server restarted, or our session was terminated, while we were
-- idle) is opened again and the statement sent once more.
function PG:_q(what, sql, ...)
    local c, err = self:_conn()
    if not c then return nil, err, "connection" end
    local rows, a, msg, state, dead = c:exec(sql, ...)
    if not rows and a == "connection" and dead then
        c, err = self:_conn()
        if not c then return nil, err, "connection" end
        rows, a, msg, state = c:exec(sql, ...)
    end
    if not rows then return nil, store_err(what, a, msg, state), a end
    return rows, a
end

-- A write that is safe to repeat: on a lost connection it is tried again,
-- reconnecting, until reconnect_ms have passed.
function PG:_q_retry(what, sql, ...)
    local deadline = core.monotonic_ms() + self.reconnect_ms
    local wait = 50
    while true do
        local rows, a, kind = self:_q(what, sql, ...)
        if rows or kind ~= "connection" or core.monotonic_ms() + wait > deadline then return rows, a end
        core.sleep_ms(wait)
        wait = math.min(wait * 2, 1000)
    end
end

function PG:close()
    if self._c then self._c:close(); self._c = nil end
    return true
end

-- ------------------------------------------------------------------ records

local function decode(text, what)
    local v = util.json_decode(text)
    if type(v) ~= "table" then
        return nil, errors.new("store", "PostgreSQL store: " .. what .. " holds something that is not a record")
    end
    return v
end

function PG:_account(row)
    local rec, err = decode(row.data, "an account row")
    if not rec then return nil, err end
    return store_mod._open_record(rec, self._keys)
end

function PG:get(open_id)
    local rows, err = self:_q("reading an account",
                              self:_s("SELECT data::text AS data FROM S.accounts WHERE open_id = $1"), open_id)
    if not rows then return nil, err end
    if not rows[1] then return nil end
    return self:_account(rows[1])
end

function PG:list()
    local rows, err = self:_q("listing accounts",
                              self:_s("SELECT data::text AS data FROM S.accounts ORDER BY open_id"))
    if not rows then return nil, err end
    local out = {}
    for i, row in ipairs(rows) do
        local rec, rerr = self:_account(row)
        if not rec then return nil, rerr end
        out[i] = rec
    end
    return out
end

local PUT_SQL = [[INSERT INTO S.accounts (open_id, owner, workspace, access, client_key, data, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6::jsonb, now())
    ON CONFLICT (open_id) DO UPDATE SET owner = EXCLUDED.owner, workspace = EXCLUDED.workspace,
      access = EXCLUDED.access, client_key = EXCLUDED.client_key, data = EXCLUDED.data, updated_at = now()]]

function PG:put(rec)
    if type(rec) ~= "table" or type(rec.open_id) ~= "string" then
        error("store:put: the record needs a string open_id", 2)
    end
    local sealed, serr = store_mod._seal_record(rec, self._keys)
    if not sealed then return nil, serr end
    local rows, err = self:_q_retry("writing an account", self:_s(PUT_SQL), rec.open_id, rec.owner, rec.workspace,
                                    rec.access, rec.client_key, util.json_encode(sealed))
    if not rows then return nil, err end
    return true
end

function PG:delete(open_id)
    local rows, err = self:_q_retry("deleting an account", self:_s("DELETE FROM S.accounts WHERE open_id = $1"),
                                    open_id)
    if not rows then return nil, err end
    return true
end

-- Upload journals and the other collections: get_X, put_X, delete_X, list_Xs.
for name, key in pairs(COLLECTIONS) do
    local what = name .. " record"
    PG["get_" .. name] = function(self, id)
        local rows, err = self:_q("reading an " .. what,
            self:_s("SELECT data::text AS data FROM S.records WHERE kind = $1 AND id = $2"), name, id)
        if not rows then return nil, err end
        if not rows[1] then return nil end
        local rec, derr = decode(rows[1].data, "an " .. what)
        if not rec then return nil, derr end
        return store_mod._open(name, rec, self._keys)     -- an app's client secret
    end
    PG["put_" .. name] = function(self, rec)
        if type(rec) ~= "table" or type(rec[key]) ~= "string" then
            error("store:put_" .. name .. ": the record needs a string " .. key, 2)
        end
        local sealed, serr = store_mod._seal(name, rec, self._keys)
        if not sealed then return nil, serr end
        local rows, err = self:_q_retry("writing an " .. what, self:_s(
            "INSERT INTO S.records (kind, id, data, updated_at) VALUES ($1, $2, $3::jsonb, now()) "
            .. "ON CONFLICT (kind, id) DO UPDATE SET data = EXCLUDED.data, updated_at = now()"),
            name, rec[key], util.json_encode(sealed))
        if not rows then return nil, err end
        return true
    end
    PG["delete_" .. name] = function(self, id)
        local rows, err = self:_q_retry("deleting an " .. what,
            self:_s("DELETE FROM S.records WHERE kind = $1 AND id = $2"), name, id)
        if not rows then return nil, err end
        return true
    end
    PG["list_" .. name .. "s"] = function(self)
        local rows, err = self:_q("listing " .. name .. " records",
            self:_s("SELECT data::text AS data FROM S.records WHERE kind = $1 ORDER BY id"), name)
        if not rows then return nil, err end
        local out = {}
        for i, row in ipairs(rows) do
            local rec, derr = decode(row.data, "an " .. what)
            if rec then rec, derr = store_mod._open(name, rec, self._keys) end
            if not rec then return nil, derr end
            out[i] = rec
        end
        return out
    end
end

-- ------------------------------------------------------- claims and budgets

local CLAIM_SQL = [[INSERT INTO S.claims (key, expires_at, claimed_by) VALUES ($1, $2, $3)
    ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at, claimed_by = EXCLUDED.claimed_by
      WHERE S.claims.expires_at <= $4 OR S.claims.claimed_by = EXCLUDED.claimed_by
    RETURNING claimed_by]]

-- The claim carries a token of its own, so repeating it after a lost
-- connection (it may have been committed) still answers true.
function PG:claim_once(key, expires_at)
    if type(key) ~= "string" or type(expires_at) ~= "number" then
        error("store:claim_once: expected a string key and a number expires_at", 2)
    end
    local now = util.now()
    self._claims_made = (self._claims_made or 0) + 1
    if self._claims_made % 200 == 1 then
        self:_q("dropping expired claims", self:_s("DELETE FROM S.claims WHERE expires_at <= $1"), now)
    end
    local rows, err = self:_q_retry("claiming a webhook delivery", self:_s(CLAIM_SQL), key, expires_at,
                                    core.random_hex(16), now)
    if not rows then return nil, err end
    return rows[1] ~= nil
end

function PG:budget(key, limit, window_s)
    store_mod._check_budget("store:budget", key, limit, window_s)
    local rows, err = self:_q("taking from a rate budget",
                              self:_s("SELECT S.take_budget($1, $2, $3) AS retry"), key, limit, window_s)
    if not rows then return nil, err end
    local retry = tonumber(rows[1].retry) or 0
    if retry <= 0 then return true end
    return false, retry
end

-- --------------------------------------------------------------- the lock

-- The advisory lock, plus a lease row naming its holder. The lease covers
-- one case the advisory lock alone does not: a holder whose connection the
-- server lost by restarting (while it refreshed a token at TikTok) is still
-- alive and will write the new tokens as soon as it reconnects. Until it
-- does (or its grace, its reconnect_ms, runs out), nobody else may take the
-- lock: they would refresh with the refresh token TikTok just rotated away.
-- A holder that died, or whose session was terminated without a restart,
-- leaves a lease the next taker simply replaces.
local LEASE_SQL = [[SELECT holder, grace_ms, pg_postmaster_start_time() > taken_at AS restarted,
    extract(epoch FROM clock_timestamp() - taken_at) * 1000 AS age_ms FROM S.lease WHERE name = $1]]
local TAKE_SQL = [[INSERT INTO S.lease (name, holder, taken_at, grace_ms) VALUES ($3, $1, clock_timestamp(), $2)
    ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, taken_at = EXCLUDED.taken_at,
      grace_ms = EXCLUDED.grace_ms]]

function PG:_lock(c, name)
    local key = self._lock_prefix .. name
    local deadline = core.monotonic_ms() + self.lock_timeout_ms
    while true do
        local rows, kind, msg, state = c:exec("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
        -- (a statement_timeout_ms shorter than lock_timeout_ms ends the wait first: busy all the same)
        if not rows and kind == "timeout" then kind = "lock_timeout" end
        if not rows then return nil, store_err("taking the store's lock", kind, msg, state), kind end
        rows, kind, msg, state = c:exec(self:_s(LEASE_SQL), name)
        local lease = rows and rows[1]
        if rows and (not lease or lease.holder == self._holder or not lease.restarted
                     or lease.age_ms > lease.grace_ms) then
            rows, kind, msg, state = c:exec(self:_s(TAKE_SQL), self._holder, self.reconnect_ms, name)
            if rows then return true end
        end
        c:exec("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)
        if not rows then return nil, store_err("taking the store's lock", kind, msg, state), kind end
        if core.monotonic_ms() + 100 > deadline then
            return nil, errors.new("busy", "PostgreSQL store: the process that held the lock lost its connection "
                .. "when the server restarted, in the middle of a token refresh; it has until its reconnect_ms to "
                .. "save the new tokens; retry shortly"), "lock_timeout"
        end
        core.sleep_ms(100)
    end
end

-- Lost connection: the advisory lock went with it, but the lease must not
-- stay behind (others would wait for its grace): one reconnect to drop it.
function PG:_unlock(name)
    local c = self:_conn()
    if not c then return end
    c:exec(self:_s("DELETE FROM S.lease WHERE name = $1 AND holder = $2"), name, self._holder)
    c:exec("SELECT pg_advisory_unlock(hashtextextended($1, 0))", self._lock_prefix .. name)
end

-- fn() with the store's advisory lock held: one holder at a time across
-- every process and machine using this schema. Re-entrant within one call
-- chain. The lock goes with the session: a holder that dies (or whose
-- connection is cut) releases it. `name` (optional; other stores ignore
-- it) narrows the lock, e.g. to one account's open_id, so refreshes of
-- different accounts need not wait for each other; without it the lock
-- covers the whole store, as the file store's does.
function PG:locked(fn, name)
    if self._held then return fn() end
    if name ~= nil and type(name) ~= "string" then error("store:locked: name must be a string", 2) end
    name = name and ("account:" .. name) or "accounts"
    local c, err = self:_conn()
    if not c then return nil, err end
    local ok, kind
    ok, err, kind = self:_lock(c, name)
    if not ok and kind == "connection" then
        -- Found dead when we tried: once more on a fresh connection.
        c, err = self:_conn()
        if not c then return nil, err end
        ok, err = self:_lock(c, name)
    end
    if not ok then return nil, err end
    self._held = name
    local res = pack(pcall(fn))
    self._held = nil
    self:_unlock(name)
    if not res[1] then error(res[2], 0) end
    return unpack(res, 2, res.n)
end

-- ------------------------------------------------------------ key rotation

-- Re-encrypts every account (and every app's client secret) under new_key
-- (nil: in clear) in one transaction, under the store's lock; the store uses new_key afterwards.
-- Other processes need new_key too (give them key = { new_key, old_key }
-- while the rotation rolls out: the first key encrypts, every key decrypts).
function PG:rekey(new_key)
    local ring = store_mod._keyring(new_key, "store:rekey")
    return self:locked(function()
        local c, err = self:_conn()
        if not c then return nil, err end
        local function fail(e)
            c:exec("ROLLBACK")
            return nil, e
        end
        local rows, kind, msg, state = c:exec("BEGIN")
        if not rows then return nil, store_err("re-encrypting", kind, msg, state) end
        rows, kind, msg, state = c:exec(self:_s("SELECT open_id, data::text AS data FROM S.accounts FOR UPDATE"))
        if not rows then return fail(store_err("re-encrypting", kind, msg, state)) end
        for _, row in ipairs(rows) do
            local rec, rerr = self:_account(row)
            if not rec then return fail(rerr) end
            local sealed, serr = store_mod._seal_record(rec, ring)
            if not sealed then return fail(serr) end
            local done
            done, kind, msg, state = c:exec(self:_s("UPDATE S.accounts SET data = $2::jsonb, updated_at = now() "
                                                    .. "WHERE open_id = $1"), row.open_id, util.json_encode(sealed))
            if not done then return fail(store_err("re-encrypting", kind, msg, state)) end
        end
        -- the other records with secrets (an app's client secret)
        for rkind in pairs(store_mod._SEALED or {}) do
            if rkind ~= "account" then
                rows, kind, msg, state = c:exec(self:_s("SELECT id, data::text AS data FROM S.records "
                                                        .. "WHERE kind = $1 FOR UPDATE"), rkind)
                if not rows then return fail(store_err("re-encrypting", kind, msg, state)) end
                for _, row in ipairs(rows) do
                    local rec, rerr = decode(row.data, "a " .. rkind .. " record")
                    if rec then rec, rerr = store_mod._open(rkind, rec, self._keys) end
                    if not rec then return fail(rerr) end
                    local sealed, serr = store_mod._seal(rkind, rec, ring)
                    if not sealed then return fail(serr) end
                    local done
                    done, kind, msg, state = c:exec(self:_s("UPDATE S.records SET data = $3::jsonb, updated_at = now() "
                        .. "WHERE kind = $1 AND id = $2"), rkind, row.id, util.json_encode(sealed))
                    if not done then return fail(store_err("re-encrypting", kind, msg, state)) end
                end
            end
        end
        rows, kind, msg, state = c:exec("COMMIT")
        if not rows then return fail(store_err("re-encrypting", kind, msg, state)) end
        self._keys = ring
        return true
    end)
end

-- ----------------------------------------------------------------- jobs

-- Claims the next due job for `worker` (tiktok.jobs): one statement, the
-- row locked FOR UPDATE SKIP LOCKED, so workers on every machine claim
-- different jobs at once without waiting for each other or for locked().
-- A due job: not final, no live lease, run_at reached; the oldest first.
function PG:claim_job(worker, now, lease_s)
    local rows, err = self:_q_retry("claiming a job", self:_s([[
        UPDATE S.records SET updated_at = now(), data = data
          || jsonb_build_object('worker', $1::text, 'lease_until', $2::float8 + $3::float8,
                                'updated_at', $2::float8,
                                'state', CASE WHEN data->>'state' = 'queued' THEN 'running' ELSE data->>'state' END)
        WHERE kind = 'job' AND id = (
          SELECT id FROM S.records
          WHERE kind = 'job'
            AND data->>'state' NOT IN ('published', 'inbox', 'failed', 'cancelled', 'ambiguous')
            AND coalesce((data->>'lease_until')::float8, 0) <= $2::float8
            AND coalesce((data->>'run_at')::float8, 0) <= $2::float8
          ORDER BY coalesce((data->>'run_at')::float8, 0)
          LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING data::text AS data]]), worker, now, lease_s)
    if not rows then return nil, err end
    if not rows[1] then return nil end
    return decode(rows[1].data, "a job record")
end

return _M
