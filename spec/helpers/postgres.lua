-- A throwaway PostgreSQL server for the specs: Debian's postgresql package
-- (initdb + pg_ctl under /usr/lib/postgresql/<version>/bin) in a temporary
-- folder, run as the `postgres` user when the specs run as root, listening
-- on a Unix socket in that folder (and on a loopback TCP port with a
-- self-signed certificate when opts.tls). Nothing is mocked.
--
--   local pg = require("helpers.postgres").start{ tls = false }
--   pg.conninfo         -- "host=/tmp/tiktok-pg.X port=5432 user=postgres dbname=postgres"
--   pg.tcp_conninfo     -- with opts.tls: "host=127.0.0.1 port=N ... sslmode=require"
--   pg:psql(sql)        -- runs sql through psql, returns its output (unaligned, tuples only)
--   pg:stop_server()/pg:start_server()   -- a restart, keeping the data
--   pg:start_command()  -- the shell command that starts it (to run in the background)
--   pg:stop()           -- stops and removes everything
local _M = {}
local PG = {}
PG.__index = PG

local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
_M.shell_quote = sh

local function exec(cmd)
    local p = assert(io.popen(cmd .. " 2>&1; echo \"__rc=$?\""))
    local out = p:read("*a")
    p:close()
    local rc = tonumber(out:match("__rc=(%d+)%s*$"))
    return (out:gsub("__rc=%d+%s*$", "")), rc
end
_M.exec = exec

local function bindir()
    local env = os.getenv("TIKTOK_PG_BINDIR")
    if env then return env end
    local out = exec("ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1")
    out = out:gsub("%s+$", "")
    return out ~= "" and out or nil
end

function _M.available()
    local dir = bindir()
    if not dir then return false, "PostgreSQL is not installed (Debian package postgresql)" end
    local ok = pcall(require, "tiktok.store.pgcore")
    if not ok then return false, "tiktok.store.pgcore is not built (make pg; needs libpq-dev)" end
    return true
end

local function is_root()
    local out = exec("id -u")
    return out:match("^0") ~= nil
end

-- Runs a server binary as the postgres user when we are root.
-- (Never with the sanitizer preload of `spec/run asan`: the server and psql
-- are not what is under test.)
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "
function PG:_as(cmd)
    if self.root then return CLEAN_ENV .. "runuser -u postgres -- " .. cmd end
    return CLEAN_ENV .. cmd
end

-- The shell command that starts the server (pg_ctl start, waiting for it).
function PG:start_command()
    local opts = ("-k %s -p %d -c listen_addresses=%s -c fsync=off -c max_connections=200"
                  .. " -c shared_buffers=16MB%s"):format(
        self.dir, self.port, self.tls and "127.0.0.1" or "''",
        self.tls and (" -c ssl=on -c ssl_cert_file=%s/server.crt -c ssl_key_file=%s/server.key")
                     :format(self.dir, self.dir) or "")
    return self:_as(("%s/pg_ctl -D %s -l %s/server.log -w -t 60 -o %s start"):format(
        self.bin, sh(self.data), self.dir, sh(opts)))
end

function PG:start_server()
    local out, rc = exec(self:start_command())
    if rc ~= 0 then
        local log = exec("tail -20 " .. sh(self.dir .. "/server.log"))
        error("pg_ctl start failed (exit " .. tostring(rc) .. "):\n" .. out .. "\n" .. log, 2)
    end
end

function PG:stop_server(mode)
    return exec(self:_as(("%s/pg_ctl -D %s -w -t 60 -m %s stop"):format(self.bin, sh(self.data), mode or "fast")))
end

function PG:psql(sql)
    local out, rc = exec((CLEAN_ENV .. "%s/psql -X -q -A -t -v ON_ERROR_STOP=1 -h %s -p %d -U postgres -d postgres -c %s")
                         :format(self.bin, sh(self.dir), self.port, sh(sql)))
    if rc ~= 0 then error("psql failed: " .. out, 2) end
    return (out:gsub("%s+$", ""))
end

function PG:stop()
    self:stop_server("immediate")
    if not os.getenv("TIKTOK_PG_KEEP") then exec("rm -rf " .. sh(self.dir)) end
end

local function free_port()
    for _ = 1, 50 do
        local port = math.random(20000, 60000)
        local _, rc = exec(("python3 -c 'import socket;s=socket.socket();s.bind((\"127.0.0.1\",%d))'"):format(port))
        if rc == 0 then return port end
    end
    error("no free loopback port")
end

function _M.start(opts)
    opts = opts or {}
    local bin = assert(bindir(), "PostgreSQL is not installed (Debian package postgresql)")
    local dir = (exec("mktemp -d /tmp/tiktok-pg.XXXXXX"):gsub("%s+$", ""))
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
    local self = setmetatable({ bin = bin, dir = dir, data = dir .. "/data", root = is_root(),
                                tls = opts.tls, port = opts.tls and free_port() or 5432 }, PG)
    if self.root then exec("chown postgres: " .. sh(dir)) end
    exec("chmod 0755 " .. sh(dir))
    local out, rc = exec(self:_as(("%s/initdb -D %s -U postgres --auth=trust -E UTF8 --no-sync --no-instructions")
                                  :format(bin, sh(self.data))))
    if rc ~= 0 then
        exec("rm -rf " .. sh(dir))
        error("initdb failed (exit " .. tostring(rc) .. "):\n" .. out, 2)
    end
    if self.tls then
        local _, orc = exec(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
                             .. " -keyout %s/server.key -out %s/server.crt"):format(sh(dir), sh(dir)))
        assert(orc == 0, "openssl req failed")
        exec("chmod 0600 " .. sh(dir .. "/server.key"))
        if self.root then exec("chown postgres: " .. sh(dir .. "/server.key") .. " " .. sh(dir .. "/server.crt")) end
        -- TCP connections must use TLS: hostssl only.
        local f = assert(io.open(self.data .. "/pg_hba.conf", "w"))
        f:write("local all all trust\nhostnossl all all 127.0.0.1/32 reject\nhostssl all all 127.0.0.1/32 trust\n")
        f:close()
    end
    self:start_server()
    self.conninfo = ("host=%s port=%d user=postgres dbname=postgres"):format(dir, self.port)
    if self.tls then
        self.tcp_conninfo = ("postgresql://postgres@127.0.0.1:%d/postgres?sslmode=require"):format(self.port)
    end
    return self
end

-- For a describe() block: a server started before its first test and
-- stopped after its last; bind(pg) receives it.
function _M.use(bind, opts)
    local busted = require "busted"
    local pg
    busted.lazy_setup(function()
        pg = _M.start(opts)
        bind(pg)
    end)
    busted.lazy_teardown(function()
        if pg then pg:stop() end
    end)
end

return _M
