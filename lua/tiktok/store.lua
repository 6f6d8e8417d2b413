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
-- and, to refuse a replayed webhook delivery (tiktok.webhook.verify{store}):
--   store:claim_once(key, expires_at) -> true the first time key is claimed
--                              before expires_at (epoch seconds), false after
-- Records hold the tokens; they never leave the library (accounts handed to
-- callers are copies without tokens).
local core = require "tiktok.core"
local util = require "tiktok.util"
local errors = require "tiktok.errors"

local type, pairs, setmetatable, error, pcall = type, pairs, setmetatable, error, pcall
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

local function sorted_jobs(map)
    local list = {}
    for _, job in pairs(map) do list[#list + 1] = util.copy(job) end
    sort(list, function(a, b) return a.publish_id < b.publish_id end)
    return list
end

-- ------------------------------------------------------------ memory store

local memory = {}
memory.__index = memory

function _M.memory()
    return setmetatable({ _accounts = {}, _uploads = {} }, memory)
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

function memory:get_upload(id)
    local j = self._uploads[id]
    return j and util.copy(j) or nil
end

function memory:put_upload(job)
    self._uploads[job.publish_id] = util.copy(job)
    return true
end

function memory:delete_upload(id)
    self._uploads[id] = nil
    return true
end

function memory:list_uploads()
    return sorted_jobs(self._uploads)
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

-- -------------------------------------------------------------- file store

local file = {}
file.__index = file

local FILE_OPTS = { path = "string", lock_timeout_ms = "integer" }

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
                          lock_timeout_ms = opts.lock_timeout_ms or 15000 }, file)
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
        if kind == "ENOENT" then return { version = 1, accounts = {}, uploads = {} } end
        return nil, errors.from_core("cannot read the account store " .. self.path, kind, msg, nil, nil, "store")
    end
    if text == "" then return { version = 1, accounts = {}, uploads = {} } end
    local doc = util.json_decode(text)
    if type(doc) ~= "table" or type(doc.accounts) ~= "table" then
        return nil, errors.new("store", "the account store " .. self.path
                               .. " is not a lua-tiktok store file; move it away or point store.path elsewhere")
    end
    if type(doc.uploads) ~= "table" then doc.uploads = {} end
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
    local ok, kind, msg = core.write_file_atomic(self.path, util.json_encode(doc))
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

function file:get_upload(id)
    local doc, err = self:_doc()
    if not doc then return nil, err end
    return doc.uploads[id]
end

function file:put_upload(job)
    return self:_update(function(doc) doc.uploads[job.publish_id] = util.copy(job) end)
end

function file:delete_upload(id)
    return self:_update(function(doc) doc.uploads[id] = nil end)
end

function file:list_uploads()
    local doc, err = self:_doc()
    if not doc then return nil, err end
    return sorted_jobs(doc.uploads)
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

_M._file_mt = file
_M._memory_mt = memory

return _M
