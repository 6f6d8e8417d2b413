-- tiktok.store: where connected accounts (and their tokens) live.
--
-- A store is any table with these methods (all may return nil, err):
--   store:get(open_id)      -> record | nil
--   store:put(record)       -> true           (record.open_id is the key)
--   store:delete(open_id)   -> true
--   store:list()            -> array of records
--   store:locked(fn)        -> fn()'s results, with an exclusive lock held
--                              across every process sharing the store
-- and, to journal uploads in flight (tiktok.post{detach}, tiktok.resume):
--   store:get_upload(publish_id) / store:put_upload(job) / store:delete_upload(publish_id)
--   store:list_uploads() -> array of jobs (uploads to resume after a restart)
-- and, for TikTok app configurations (tiktok.apps) and durable posts (tiktok.jobs):
--   store:get_app(id) / store:put_app(rec) / store:delete_app(id) / store:list_apps()
--   store:get_job(id) / store:put_job(job) / store:delete_job(id) / store:list_jobs()
-- and, to refuse a replayed webhook delivery (tiktok.webhook.verify{store}):
--   store:claim_once(key, expires_at) -> true the first time key is claimed
--                              before expires_at (epoch seconds), false after
-- and, for rate budgets shared by every process using the store:
--   store:budget(key, limit, window_s) -> true | false, retry_after_s
--                              takes one use of key when fewer than limit were
--                              taken in the last window_s seconds
-- and, for stores that encrypt tokens at rest (file, postgres: option key):
--   store:rekey(new_key)    -> true   (every record re-encrypted under new_key)
-- Records hold the tokens; they never leave the library (accounts handed to
-- callers are copies without tokens).
local core = require "tiktok.core"
local util = require "tiktok.util"
local errors = require "tiktok.errors"

local type, pairs, setmetatable, error, pcall = type, pairs, setmetatable, error, pcall
local ipairs, tostring, tonumber = ipairs, tostring, tonumber
local sort, select = table.sort, select
local unpack = table.unpack or unpack  -- luacheck: ignore

local function pack(...) return { n = select("#", ...), ... } end

local _M = {}

local function sorted(map)
    local list = {}
    for _, rec in pairs(map) do list[#list + 1] = util.copy(rec) end
    sort(list, function(a, b) return a.open_id < b.open_id end)
    return list
end

-- The collections a store keeps besides accounts, with the field that keys
-- each record: upload journals (tiktok.resume) and TikTok app
-- configurations (tiktok.apps), jobs (tiktok.jobs). Each gets get_X(id), put_X(rec),
-- delete_X(id) and list_Xs() in every store; the memory and file stores
-- make them below from this table.
local COLLECTIONS = { upload = "publish_id", app = "id", job = "id" }
_M.COLLECTIONS = COLLECTIONS

local function sorted_by(map, key)
    local list = {}
    for _, rec in pairs(map) do list[#list + 1] = util.copy(rec) end
    sort(list, function(a, b) return a[key] < b[key] end)
    return list
end

-- ------------------------------------------------------------ memory store

local memory = {}
memory.__index = memory

function _M.memory()
    local self = { _accounts = {} }
    for name in pairs(COLLECTIONS) do self["_" .. name .. "s"] = {} end
    return setmetatable(self, memory)
end

function memory:get(open_id)
    local r = self._accounts[open_id]
    return r and util.copy(r) or nil
end

function memory:put(rec)
    self._accounts[rec.open_id] = util.copy(rec)
    return true
end

function memory:delete(open_id)
    self._accounts[open_id] = nil
    return true
end

function memory:list()
    return sorted(self._accounts)
end

function memory:locked(fn)
    return fn()
end

-- Claims in a map { key = expires_at }: drops the expired ones, then
-- records key unless a live claim holds it. Returns true when recorded.
local MAX_CLAIMS = 100000
local function claim(map, key, expires_at, now)
    local n = 0
    for k, exp in pairs(map) do
        if exp <= now then map[k] = nil else n = n + 1 end
    end
    if map[key] then return false end
    if n >= MAX_CLAIMS then return nil end
    map[key] = expires_at
    return true
end

function memory:claim_once(key, expires_at)
    self._claims = self._claims or {}
    local ok = claim(self._claims, key, expires_at, util.now())
    if ok == nil then return nil, errors.new("store", "too many webhook deliveries remembered at once") end
    return ok
end

for name, key in pairs(COLLECTIONS) do
    local field = "_" .. name .. "s"
    memory["get_" .. name] = function(self, id)
        local r = self[field][id]
        return r and util.copy(r) or nil
    end
    memory["put_" .. name] = function(self, rec)
        self[field][rec[key]] = util.copy(rec)
        return true
    end
    memory["delete_" .. name] = function(self, id)
        self[field][id] = nil
        return true
    end
    memory["list_" .. name .. "s"] = function(self)
        return sorted_by(self[field], key)
    end
end

-- -------------------------------------------------------------- file store

local file = {}
file.__index = file

local FILE_OPTS = { path = "string", lock_timeout_ms = "integer", key = "any" }

-- One JSON file, mode 0600, replaced atomically (write, fsync, rename,
-- fsync dir), with a lock file beside it so several processes (nginx
-- workers, cron jobs) refresh an account exactly once.
function _M.file(opts)
    util.check_opts("tiktok.store.file", opts or {}, FILE_OPTS)
    opts = opts or {}
    local path = opts.path
    if not path or path == "" then
        local home = os.getenv("HOME") or "."
        path = (os.getenv("XDG_STATE_HOME") or (home .. "/.local/state")) .. "/lua-tiktok/accounts.json"
    end
    return setmetatable({ path = path, lock_path = path .. ".lock",
                          lock_timeout_ms = opts.lock_timeout_ms or 15000,
                          _keys = _M._keyring(opts.key, "tiktok.store.file", 2),
                          -- how to make this store again (in an nginx worker thread's VM)
                          _ctor = { module = "tiktok.store", fn = "file", opts = util.copy(opts), id = path } },
                        file)
end

-- The store's folder must be private: this user's, and writable by no one
-- else (who could plant or swap the store file). Checked before every read,
-- write and lock; `create` makes a missing folder (mode 0700) first. A
-- missing folder is fine for a read: there is no store yet.
local function private_dir(path, create)
    local dir = path:match("^(.*)/[^/]*$") or "."
    if dir == "" then dir = "/" end
    local ok, kind, msg = core.check_private_dir(dir)
    if not ok and kind == "ENOENT" then
        if not create then return true end
        ok, kind, msg = core.mkdir_p(dir, 448)   -- 0700
        if ok then ok, kind, msg = core.check_private_dir(dir) end
    end
    if not ok then return nil, errors.from_core("account store", kind, msg, nil, nil, "store") end
    return true
end

-- Returns the whole document { version, accounts = {}, uploads = {} }.
function file:_doc()
    local safe, err = private_dir(self.path, false)
    if not safe then return nil, err end
    local text, kind, msg = core.read_file(self.path)
    if not text then
        if kind == "ENOENT" then return { version = 1, accounts = {}, uploads = {}, apps = {}, jobs = {} } end
        return nil, errors.from_core("cannot read the account store " .. self.path, kind, msg, nil, nil, "store")
    end
    if text == "" then return { version = 1, accounts = {}, uploads = {}, apps = {}, jobs = {} } end
    local doc = util.json_decode(text)
    if type(doc) ~= "table" or type(doc.accounts) ~= "table" then
        return nil, errors.new("store", "the account store " .. self.path
                               .. " is not a lua-tiktok store file; move it away or point store.path elsewhere")
    end
    for name in pairs(COLLECTIONS) do
        if type(doc[name .. "s"]) ~= "table" then doc[name .. "s"] = {} end
    end
    local ok, derr = self:_open_doc(doc)
    if not ok then return nil, derr end
    return doc
end

function file:_read()
    local doc, err = self:_doc()
    if not doc then return nil, err end
    return doc.accounts
end

function file:_write(doc)
    local safe, err = private_dir(self.path, true)
    if not safe then return nil, err end
    local sealed, serr = self:_sealed_doc(doc)
    if not sealed then return nil, serr end
    local ok, kind, msg = core.write_file_atomic(self.path, util.json_encode(sealed))
    if not ok then
        return nil, errors.from_core("cannot write the account store " .. self.path, kind, msg, nil, nil, "store")
    end
    return true
end

function file:get(open_id)
    local accounts, err = self:_read()
    if not accounts then return nil, err end
    return accounts[open_id]
end

function file:list()
    local accounts, err = self:_read()
    if not accounts then return nil, err end
    return sorted(accounts)
end

-- Read-modify-write under the lock; nested inside locked() it reuses it.
function file:_update(fn)
    return self:locked(function()
        local doc, err = self:_doc()
        if not doc then return nil, err end
        fn(doc)
        return self:_write(doc)
    end)
end

function file:put(rec)
    return self:_update(function(doc) doc.accounts[rec.open_id] = util.copy(rec) end)
end

function file:delete(open_id)
    return self:_update(function(doc) doc.accounts[open_id] = nil end)
end

for name, key in pairs(COLLECTIONS) do
    local coll = name .. "s"
    file["get_" .. name] = function(self, id)
        local doc, err = self:_doc()
        if not doc then return nil, err end
        return doc[coll][id]
    end
    file["put_" .. name] = function(self, rec)
        return self:_update(function(doc) doc[coll][rec[key]] = util.copy(rec) end)
    end
    file["delete_" .. name] = function(self, id)
        return self:_update(function(doc) doc[coll][id] = nil end)
    end
    file["list_" .. coll] = function(self)
        local doc, err = self:_doc()
        if not doc then return nil, err end
        return sorted_by(doc[coll], key)
    end
end

function file:claim_once(key, expires_at)
    local result
    local ok, err = self:_update(function(doc)
        if type(doc.claims) ~= "table" then doc.claims = {} end
        result = claim(doc.claims, key, expires_at, util.now())
    end)
    if not ok then return nil, err end
    if result == nil then return nil, errors.new("store", "too many webhook deliveries remembered at once") end
    return result
end

function file:locked(fn)
    if self._held then return fn() end       -- re-entrant within one call chain
    local safe, err = private_dir(self.path, true)
    if not safe then return nil, err end
    local lock, kind, msg = core.lock(self.lock_path, self.lock_timeout_ms)
    if not lock then
        return nil, errors.from_core("cannot lock the account store " .. self.path, kind, msg, nil, nil, "store")
    end
    self._held = true
    local res = pack(pcall(fn))
    self._held = false
    lock:unlock()
    if not res[1] then error(res[2], 0) end
    return unpack(res, 2, res.n)
end

-- ------------------------------------------------ tokens encrypted at rest

-- A store's key: 32 raw bytes or 64 hex digits, or an array of them (the
-- first encrypts, every one decrypts: for a rotation in progress). Each key
-- is named by its id, the first 8 hex digits of its SHA-256, which sealed
-- values carry so that a wrong key is reported as such.
local AEAD_PREFIX = "tiktok-aead:v1:"
local TOKEN_FIELDS = { "access_token", "refresh_token" }

local function one_key(key, fname, level)
    local raw
    if type(key) == "string" and #key == 32 then
        raw = key
    elseif type(key) == "string" and #key == 64 and key:match("^%x+$") then
        raw = key:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
    else
        error(fname .. ": key must be 32 bytes or 64 hex digits (or an array of such keys)", level + 1)
    end
    return { raw = raw, id = core.sha256_hex(raw):sub(1, 8) }
end

-- keyring(key) -> nil | { first = k, [id] = k, ... }
function _M._keyring(key, fname, level)
    level = (level or 2) + 1
    if key == nil then return nil end
    local list = type(key) == "table" and key or { key }
    if #list == 0 then error(fname .. ": key must not be an empty array", level) end
    local ring = {}
    for i, k in ipairs(list) do
        local one = one_key(k, fname, level)
        if i == 1 then ring.first = one end
        ring[one.id] = ring[one.id] or one
    end
    return ring
end

local function is_sealed(v)
    return type(v) == "string" and v:sub(1, #AEAD_PREFIX) == AEAD_PREFIX
end
_M._is_sealed = is_sealed

-- What is sealed in each kind of record, and the associated data that
-- binds a sealed value to its record (so it cannot be moved to another):
-- an account's tokens (its open_id), an app's client secret ("app:" .. id).
local SEALED = {
    account = { fields = TOKEN_FIELDS, aad = function(rec) return tostring(rec.open_id) end,
                what = function(rec) return "the tokens of account " .. tostring(rec.open_id) end },
    app = { fields = { "client_secret" }, aad = function(rec) return "app:" .. tostring(rec.id) end,
            what = function(rec) return "the client secret of app " .. tostring(rec.id) end },
}
_M._SEALED = SEALED

-- A copy of rec with its secret fields sealed under ring.first.
function _M._seal(kind, rec, ring)
    local spec = SEALED[kind]
    if not ring or not spec then return rec end
    local out = util.copy(rec)
    for _, f in ipairs(spec.fields) do
        local v = out[f]
        if type(v) == "string" and not is_sealed(v) then
            local b64, ekind, msg = core.aead_seal(ring.first.raw, v, spec.aad(rec))
            if not b64 then return nil, errors.new("store", "cannot encrypt " .. spec.what(rec) .. ": "
                                                   .. tostring(msg) .. " (" .. tostring(ekind) .. ")") end
            out[f] = AEAD_PREFIX .. ring.first.id .. ":" .. b64
        end
    end
    return out
end

-- rec with its secret fields opened in place; a value in clear (written
-- before the store had a key) is taken as it is and sealed by the next write.
function _M._open(kind, rec, ring)
    local spec = SEALED[kind]
    if not spec then return rec end
    for _, f in ipairs(spec.fields) do
        local v = rec[f]
        if is_sealed(v) then
            local id, b64 = v:match("^tiktok%-aead:v1:(%x+):(.*)$")
            local k = ring and id and ring[id]
            if not k then
                return nil, errors.new("store", spec.what(rec)
                    .. " cannot be decrypted: this store was written with key " .. tostring(id)
                    .. (ring and ("; the key given is " .. ring.first.id) or " and no key was given")
                    .. "; give that key (store option key)")
            end
            local plain = core.aead_open(k.raw, b64, spec.aad(rec))
            if not plain then
                return nil, errors.new("store", spec.what(rec) .. " cannot be decrypted with key " .. k.id
                    .. ": the stored value was altered or belongs to another record")
            end
            rec[f] = plain
        end
    end
    return rec
end

function _M._seal_record(rec, ring) return _M._seal("account", rec, ring) end
function _M._open_record(rec, ring) return _M._open("account", rec, ring) end

-- ----------------------------------------------------------- rate budgets

-- uses: ascending epoch seconds of the uses taken. Drops those older than
-- the window, then takes one when fewer than limit remain. Returns the new
-- list, true | false, retry_after_s.
local function take_use(uses, limit, window, now)
    local kept = {}
    for _, t in ipairs(type(uses) == "table" and uses or {}) do
        if type(t) == "number" and t > now - window and t <= now + window then kept[#kept + 1] = t end
    end
    sort(kept)
    if #kept < limit then
        kept[#kept + 1] = now
        return kept, true
    end
    return kept, false, kept[#kept - limit + 1] + window - now
end

local function check_budget(fname, key, limit, window)
    if type(key) ~= "string" or key == "" then error(fname .. ": key must be a non-empty string", 3) end
    if type(limit) ~= "number" or limit < 1 or limit % 1 ~= 0 then
        error(fname .. ": limit must be a positive integer", 3)
    end
    if type(window) ~= "number" or window ~= window or window <= 0 then
        error(fname .. ": window_s must be a positive number", 3)
    end
end
_M._check_budget = check_budget

function memory:budget(key, limit, window_s)
    check_budget("store:budget", key, limit, window_s)
    self._budgets = self._budgets or {}
    local now = util.now()
    local kept, ok, retry = take_use(self._budgets[key], limit, window_s, now)
    self._budgets[key] = kept
    if ok then return true end
    return false, retry
end

-- The memory store keeps nothing at rest: nothing to re-encrypt.
function memory:rekey(new_key)
    _M._keyring(new_key, "store:rekey")
    return true
end

-- Budgets in the file: { [key] = { w = window_s, u = { uses } } }; a key
-- whose last use left its window is dropped on the next take.
function file:budget(key, limit, window_s)
    check_budget("store:budget", key, limit, window_s)
    local ok, retry
    local done, err = self:_update(function(doc)
        if type(doc.budgets) ~= "table" then doc.budgets = {} end
        local now = util.now()
        for k, b in pairs(doc.budgets) do
            local last = type(b) == "table" and type(b.u) == "table" and b.u[#b.u]
            if k ~= key and (type(last) ~= "number" or type(b.w) ~= "number" or last <= now - b.w) then
                doc.budgets[k] = nil
            end
        end
        local cur = doc.budgets[key]
        local kept
        kept, ok, retry = take_use(type(cur) == "table" and cur.u, limit, window_s, now)
        doc.budgets[key] = { w = window_s, u = kept }
    end)
    if not done then return nil, err end
    if ok then return true end
    return false, retry
end

-- The document's maps whose records hold secrets, by kind of record.
local SEALED_MAPS = { accounts = "account", apps = "app" }

-- Opens every secret in a document just read.
function file:_open_doc(doc)
    for map, kind in pairs(SEALED_MAPS) do
        for id, rec in pairs(type(doc[map]) == "table" and doc[map] or {}) do
            if type(rec) == "table" then
                local ok, err = _M._open(kind, rec, self._keys)
                if not ok then return nil, err end
            else
                doc[map][id] = nil
            end
        end
    end
    return true
end

-- The document as written: secrets sealed when the store has a key.
function file:_sealed_doc(doc)
    if not self._keys then return doc end
    local out = {}
    for k, v in pairs(doc) do out[k] = v end
    for map, kind in pairs(SEALED_MAPS) do
        if type(doc[map]) == "table" then
            out[map] = {}
            for id, rec in pairs(doc[map]) do
                local sealed, err = _M._seal(kind, rec, self._keys)
                if not sealed then return nil, err end
                out[map][id] = sealed
            end
        end
    end
    return out
end

-- Re-encrypts every account under new_key (nil: stores tokens in clear),
-- in one atomic write; the store uses new_key from then on.
function file:rekey(new_key)
    local ring = _M._keyring(new_key, "store:rekey")
    return self:locked(function()
        local doc, err = self:_doc()
        if not doc then return nil, err end
        local old = self._keys
        self._keys = ring
        local ok, werr = self:_write(doc)
        if not ok then self._keys = old; return nil, werr end
        return true
    end)
end

-- tiktok.store.postgres (its own rock, lua-tiktok-postgres) is loaded on
-- first use, so this module works without libpq installed.
setmetatable(_M, { __index = function(t, k)
    if k == "postgres" then
        local m = require "tiktok.store.postgres"
        rawset(t, k, m)
        return m
    end
end })

_M._file_mt = file
_M._memory_mt = memory

return _M
