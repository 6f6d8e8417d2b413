-- lua-tiktok: connect TikTok accounts (Login Kit) and post videos and photos
-- (Content Posting API). See README.md for the API.

-- ------------------------------------------------ load the C core (packaging)
-- tiktok.core is loaded here first, before any module that uses it, so that
-- a build made for another Lua (or not built at all) fails with a message
-- that names the file found, the Lua it was built for and the command that
-- installs the right one -- not with the dynamic loader's "undefined symbol:
-- lua_newuserdatauv" from deep inside another require.
do
    local function host_lua()
        if type(jit) == "table" and jit.version then
            return jit.version .. " (Lua 5.1 ABI)", "5.1"
        end
        local v = _VERSION:match("%d+%.%d+") or "5.1"
        return "Lua " .. v, v
    end

    -- Every existing file package.cpath offers for tiktok.core, in order
    -- (package.searchpath would give only the first, and Lua 5.1 lacks it).
    local function candidates()
        local sep = package.config and package.config:sub(1, 1) or "/"
        local name = ("tiktok.core"):gsub("%.", sep)
        local found = {}
        for template in package.cpath:gmatch("[^;]+") do
            local file = template:gsub("%?", name)
            local f = io.open(file, "rb")
            if f then
                f:close()
                found[#found + 1] = file
            end
        end
        return found
    end

    -- Which Lua a build links against, read from the names of the Lua C API
    -- functions it imports (each NUL-delimited in the ELF string tables).
    local function built_for(file)
        local f = io.open(file, "rb")
        if not f then return nil end
        local data = f:read("*a") or ""
        f:close()
        local function has(sym) return data:find("\0" .. sym .. "\0", 1, true) ~= nil end
        if has("lua_newuserdatauv") then return "Lua 5.4", "5.4" end
        if has("lua_rotate") then return "Lua 5.3", "5.3" end
        if has("lua_callk") or has("lua_pcallk") then return "Lua 5.2", "5.2" end
        if has("lua_objlen") then return "Lua 5.1/LuaJIT", "5.1" end
        return nil
    end

    local ok, err = pcall(require, "tiktok.core")
    if not ok then
        err = tostring(err)
        local host, hostver = host_lua()
        local files = candidates()
        local which = hostver == "5.1" and "the Lua 5.1 build (it serves LuaJIT and Lua 5.1)"
            or ("the build for Lua " .. hostver)
        local install = ("Install %s: `luarocks --lua-version %s install lua-tiktok` (from a checkout: "
            .. "`luarocks --lua-version %s make`); if that tree is not on package.cpath, run "
            .. "`eval \"$(luarocks --lua-version %s path)\"` before starting %s.")
            :format(which, hostver, hostver, hostver, hostver == "5.4" and "lua5.4" or "the interpreter")
        local lines
        if #files == 0 then
            lines = { ("lua-tiktok: the C module tiktok.core is not installed for %s "
                .. "(no tiktok/core.so on package.cpath)."):format(host), install }
        else
            local file = files[1]
            local what, ver = built_for(file)
            if ver and ver ~= hostver then
                lines = { ("lua-tiktok: %s is a build of tiktok.core for %s; this is %s, "
                    .. "which cannot load it."):format(file, what, host), install }
            elseif ver == "5.1" and hostver == "5.1" and not jit and err:find("undefined symbol", 1, true) then
                lines = { ("lua-tiktok: %s is a build of tiktok.core made with LuaJIT's headers "
                    .. "(it uses LuaJIT-only functions); this is %s, which cannot load it.")
                    :format(file, host), install }
            else
                lines = { ("lua-tiktok: cannot load tiktok.core from %s (%s) into %s.")
                    :format(file, what and ("a build for " .. what) or "unknown build", host),
                    "If a library it links to is missing (libcurl), install it; otherwise "
                    .. install:sub(1, 1):lower() .. install:sub(2) }
            end
            local right
            for i = 2, #files do
                if select(2, built_for(files[i])) == hostver then
                    right = files[i]
                    lines[#lines + 1] = ("A build for %s exists at %s, later on package.cpath: "
                        .. "put its directory first."):format(host, right)
                    break
                end
            end
            -- The same tree's build for this Lua (lib/lua/5.1 -> lib/lua/5.4),
            -- typically after `eval "$(luarocks --lua-version 5.1 path)"`.
            local sibling = file:gsub("/lua/5%.%d/tiktok/core%.so$", "/lua/" .. hostver .. "/tiktok/core.so")
            if not right and sibling ~= file and select(2, built_for(sibling)) == hostver then
                lines[#lines + 1] = ("A build for %s is installed at %s but not on package.cpath%s: "
                    .. "`eval \"$(luarocks --lua-version %s path)\"` puts it there."):format(host, sibling,
                    os.getenv("LUA_CPATH") and " (LUA_CPATH is set for another Lua)" or "", hostver)
            end
        end
        if #files > 0 then
            lines[#lines + 1] = "(the loader said: " .. err:gsub("%s+", " ") .. ")"
        end
        error(table.concat(lines, "\n"), 0)
    end
end

local connection = require "tiktok.connection"
local post = require "tiktok.post"

local _M = {
    _VERSION = "0.1.0",
    template = require "tiktok.template",
    settings = require "tiktok.settings",
    errors = require "tiktok.errors",
    store = require "tiktok.store",
    webhook = require "tiktok.webhook",
    fields = require "tiktok.fields",
    json = require "tiktok.json",
    core = require "tiktok.core",
    post = post.post,
    status = post.status,
    resume = post.resume,
    parse_callback = connection.parse_callback,
    warm_threads = require("tiktok.openresty").warm_threads,
}

-- tiktok.connect{...} -> connection | nil, err (see connection.DEFAULTS)
function _M.connect(opts)
    return connection.new(opts)
end

_M.DEFAULTS = connection.DEFAULTS

-- tiktok.apps{ store, connect = {...} } -> the store's TikTok app
-- configurations (tiktok.apps): save, get, list, delete, connect, check.
function _M.apps(opts)
    return require("tiktok.apps").new(opts)
end

-- tiktok.jobs{ connection, ... } -> durable posts in the connection's
-- store: enqueue, get, list, cancel, work (tiktok.jobs).
function _M.jobs(opts)
    return require("tiktok.jobs").new(opts)
end

-- tiktok.check{ tiktok.connect options } -> report | nil, err: is this
-- TikTok app set up right, before anybody connects (tiktok.check)?
function _M.check(opts)
    return require("tiktok.check").with(connection.new(opts))
end

return _M
