-- require "tiktok" with a tiktok.core built for another Lua: init.lua loads
-- the C core first and turns the dynamic loader's "undefined symbol" into a
-- message that names the file found, the Lua it was built for, this Lua and
-- the command that installs the right build. Each case runs a fresh
-- interpreter with package.cpath pointing at one of `make`'s builds
-- (build/5.4: Lua 5.4 headers; build/5.1: LuaJIT headers).
local ROOT = os.getenv("TIKTOK_ROOT") or "."

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- run(interp, cpath_dirs, defaults) -> ok, output (stdout and stderr).
-- The interpreter's default package.cpath (where Debian's cjson is, and
-- perhaps an installed lua-tiktok) is appended only when `defaults` is true:
-- the failing cases stop before anything but tiktok.core is required.
local function run(interp, dirs, defaults)
    local cpath = {}
    for i, d in ipairs(dirs) do cpath[i] = d .. "/?.so" end
    cpath = table.concat(cpath, ";") .. (defaults and ";;" or ";")
    local lpath = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"
    -- The interpreter's own LUA_*_5_4 wins over LUA_*; set both. The ASan
    -- run's LD_PRELOAD has nothing to check in a child that only fails to load.
    local cmd = ("env -u LD_PRELOAD LUA_PATH=%s LUA_PATH_5_4=%s LUA_CPATH=%s LUA_CPATH_5_4=%s %s -e %s 2>&1")
        :format(q(lpath), q(lpath), q(cpath), q(cpath), interp,
                q('local t = require "tiktok"; io.write("loaded ", t._VERSION)'))
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    return out:match("^loaded ") ~= nil, out
end

local B54, B51 = ROOT .. "/build/5.4", ROOT .. "/build/5.1"

local function exists(f)
    local h = io.open(f, "rb")
    if h then h:close() end
    return h ~= nil
end

-- `luarocks test` (plain busted on spec/unit, the core from the LuaRocks
-- tree) has no `make` builds to mix up; spec/run always has them.
if not os.getenv("TIKTOK_ROOT")
   and not (exists(B54 .. "/tiktok/core.so") and exists(B51 .. "/tiktok/core.so")) then
    describe("require 'tiktok' with a build for another Lua", function()
        pending("needs make's build/5.4 and build/5.1: run it with spec/run")
    end)
    return
end

describe("require 'tiktok' with a build for another Lua", function()
    setup(function()
        for _, f in ipairs({ B54 .. "/tiktok/core.so", B51 .. "/tiktok/core.so" }) do
            local h = io.open(f, "rb")
            assert(h, f .. " is missing: run `make` first")
            h:close()
        end
    end)

    it("loads each build into the interpreter it was made for", function()
        local ok, out = run("lua5.4", { B54 }, true)
        assert.is_true(ok, out)
        ok, out = run("luajit", { B51 }, true)
        assert.is_true(ok, out)
    end)

    it("lua5.4 with the LuaJIT build: names the file, both Luas and the 5.4 install command", function()
        local ok, out = run("lua5.4", { B51 })
        assert.is_false(ok, out)
        assert.matches("lua-tiktok: " .. B51 .. "/tiktok/core.so is a build of tiktok.core for Lua 5.1/LuaJIT; "
            .. "this is Lua 5.4, which cannot load it.", out, 1, true)
        assert.matches("`luarocks --lua-version 5.4 install lua-tiktok`", out, 1, true)
        assert.matches('`eval "$(luarocks --lua-version 5.4 path)"`', out, 1, true)
        -- the loader's own words stay, at the end, for whoever digs deeper
        assert.matches("(the loader said: ", out, 1, true)
        assert.matches("undefined symbol", out, 1, true)
    end)

    it("luajit with the Lua 5.4 build: names the file, both Luas and the 5.1 install command", function()
        local ok, out = run("luajit", { B54 })
        assert.is_false(ok, out)
        assert.matches("lua-tiktok: " .. B54 .. "/tiktok/core.so is a build of tiktok.core for Lua 5.4; "
            .. "this is LuaJIT", out, 1, true)
        assert.matches("(Lua 5.1 ABI), which cannot load it.", out, 1, true)
        assert.matches("`luarocks --lua-version 5.1 install lua-tiktok`", out, 1, true)
        assert.matches("undefined symbol: lua_newuserdatauv", out, 1, true)
    end)

    it("lua5.1 with the build made with LuaJIT's headers says so", function()
        local ok, out = run("lua5.1", { B51 })
        assert.is_false(ok, out)
        assert.matches(B51 .. "/tiktok/core.so is a build of tiktok.core made with LuaJIT's headers", out, 1, true)
        assert.matches("this is Lua 5.1, which cannot load it.", out, 1, true)
        assert.matches("`luarocks --lua-version 5.1 install lua-tiktok`", out, 1, true)
    end)

    it("points at the right build when a wrong one shadows it on package.cpath", function()
        local ok, out = run("lua5.4", { B51, B54 })
        assert.is_false(ok, out)
        assert.matches("A build for Lua 5.4 exists at " .. B54 .. "/tiktok/core.so, later on package.cpath: "
            .. "put its directory first.", out, 1, true)
    end)

    it("points at the same tree's build for this Lua when package.cpath has only the other one", function()
        -- a LuaRocks tree with both builds, after `eval "$(luarocks --lua-version 5.1 path)"`
        local tree = os.tmpname()
        os.remove(tree)
        local function cp(from, v)
            assert(os.execute(("mkdir -p %s/lib/lua/%s/tiktok && cp %s/tiktok/core.so %s/lib/lua/%s/tiktok/")
                :format(q(tree), v, q(from), q(tree), v)))
        end
        cp(B51, "5.1")
        cp(B54, "5.4")
        local ok, out = run("lua5.4", { tree .. "/lib/lua/5.1" })
        os.execute("rm -rf " .. q(tree))
        assert.is_false(ok, out)
        assert.matches("A build for Lua 5.4 is installed at " .. tree .. "/lib/lua/5.4/tiktok/core.so but not on "
            .. "package.cpath (LUA_CPATH is set for another Lua): `eval \"$(luarocks --lua-version 5.4 path)\"` "
            .. "puts it there.", out, 1, true)
    end)

    it("says the C module is not installed when package.cpath has none", function()
        local ok, out = run("lua5.4", { ROOT .. "/no-such-dir" })
        assert.is_false(ok, out)
        assert.matches("lua-tiktok: the C module tiktok.core is not installed for Lua 5.4", out, 1, true)
        assert.matches("`luarocks --lua-version 5.4 install lua-tiktok`", out, 1, true)
    end)
end)
