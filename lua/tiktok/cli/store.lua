-- tiktok store rekey: re-encrypts every account's tokens in the store with
-- a new key (store:rekey), for a key rotation. The current key is
-- TIKTOK_STORE_KEY (none: the tokens are in clear now); the new one comes
-- from --new-key-file FILE or TIKTOK_STORE_NEW_KEY. Keys are 64 hex digits
-- and never printed: only their ids (the first 8 hex digits of their
-- SHA-256, as the store names them).
local core = require "tiktok.core"
local json = require "tiktok.json"
local config = require "tiktok.cli.config"
local output = require "tiktok.cli.output"

local tostring = tostring

local _M = {
    summary = "re-encrypt the store's tokens with a new key (tiktok store rekey)",
    usage = { "tiktok store rekey --new-key-file FILE", "TIKTOK_STORE_NEW_KEY=... tiktok store rekey" },
    text = [[
The store (TIKTOK_STORE or --store: a file or a postgresql:// URL) is opened
with its current key, TIKTOK_STORE_KEY (unset: the tokens are in clear), and
every account's tokens are written again encrypted with the new key: 64 hex
digits, from FILE (e.g. `openssl rand -hex 32 > FILE`, mode 0600) or
TIKTOK_STORE_NEW_KEY. Afterwards give every program that uses the store the
new key as TIKTOK_STORE_KEY. Needs no TikTok credentials.]],
    options = {
        { flag = "--new-key-file", metavar = "FILE", help = "a file holding the new key (64 hex digits)" },
    },
}

local usage = output.usage

function _M.check(opts, argv)
    if #argv == 0 then return nil, usage("give what to do: tiktok store rekey --new-key-file FILE") end
    if argv[1] ~= "rekey" then
        return nil, usage("unknown store action '" .. argv[1]:gsub("%c", "?"):sub(1, 40) .. "' (tiktok store rekey)")
    end
    if #argv > 1 then return nil, usage("rekey takes no arguments; give the key with --new-key-file FILE") end
    return { action = "rekey", key_file = opts["--new-key-file"] }
end

--- store.key_id(hex) -> the id the store gives a key
function _M.key_id(hex)
    local raw = hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
    return core.sha256_hex(raw):sub(1, 8)
end

-- The new key: --new-key-file FILE, else TIKTOK_STORE_NEW_KEY.
local function new_key(c, own)
    if c.key_file then
        local text, kind, msg = core.read_file(c.key_file)
        if not text then
            return nil, output.config("cannot read the key file " .. c.key_file .. ": " .. tostring(msg or kind))
        end
        local key = text:gsub("^%s+", ""):gsub("%s+$", "")
        if #key ~= 64 or not key:match("^%x+$") then
            return nil, output.config("the key file " .. c.key_file .. " must hold 64 hex digits (a 32-byte key, "
                                      .. "e.g. from `openssl rand -hex 32`); it holds " .. #key .. " characters")
        end
        return key:lower()
    end
    if own.new_store_key then return own.new_store_key end
    return nil, usage("give the new key: --new-key-file FILE (or TIKTOK_STORE_NEW_KEY)")
end

function _M.run(ctx)
    local out = ctx.out
    local raw, origin = config.read(ctx.files, ctx)
    if not raw then return nil, origin end
    local conn_opts, own = config.options(raw, origin, { required = false })
    if not conn_opts then return nil, own end
    local key, err = new_key(ctx.checked, own)
    if not key then return nil, err end
    local store
    store, err = config.store(own)
    if not store then return nil, err end
    local ok
    ok, err = store:rekey(key)
    if not ok then return nil, err end
    local list
    list, err = store:list()
    if not list then return nil, err end
    local new_id, old_id = _M.key_id(key), own.store_key and _M.key_id(own.store_key) or nil
    if store.close then store:close() end
    if out.json_mode then
        out:json({ rekeyed = #list, store = store.label, key_id = new_id, old_key_id = old_id or json.null })
        return true
    end
    out:say(string.format("Re-encrypted the tokens of %d account%s in %s with key %s (before: %s).", #list,
                          #list == 1 and "" or "s", store.label, new_id, old_id and ("key " .. old_id) or "no key"))
    out:say("From now on give the new key as TIKTOK_STORE_KEY to every program that uses this store.")
    return true
end

return _M
