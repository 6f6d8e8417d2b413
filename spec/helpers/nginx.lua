-- Starts a real nginx (Debian's nginx + lua-nginx-module) with a given
-- http{} body, in its own prefix, on a free loopback port.
local sandbox = require "helpers.sandbox"

local _M = {}
local NG = {}
NG.__index = NG

local function free_port()
    local out = sandbox.exec("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); "
                             .. "print(s.getsockname()[1])'")
    return tonumber(out:match("%d+"))
end
_M.free_port = free_port

-- opts: http = "...directives inside http{}, may use ${PORT}...", main = "...",
-- workers = 1, env = { NAME = value } (exported to Lua via os.getenv)
function _M.start(opts)
    local root = sandbox.root
    local dir = (sandbox.exec("mktemp -d /tmp/tiktok-nginx.XXXXXX"):gsub("%s+$", ""))
    sandbox.exec("mkdir -p " .. dir .. "/logs " .. dir .. "/tmp " .. dir .. "/conf")
    local port = free_port()
    local envs = {}
    for k, v in pairs(opts.env or {}) do envs[#envs + 1] = "env " .. k .. "=" .. v .. ";" end
    local conf = ([[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
user root;
worker_processes %d;
daemon on;
pid %s/nginx.pid;
error_log %s/logs/error.log info;
thread_pool tiktok threads=4 max_queue=64;

%s
%s
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %s/tmp/body; proxy_temp_path %s/tmp/proxy; fastcgi_temp_path %s/tmp/fcgi;
  uwsgi_temp_path %s/tmp/uwsgi; scgi_temp_path %s/tmp/scgi;
  lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;%s/spec/?.lua;;";
  lua_package_cpath "%s/build/5.1/?.so;;";
  lua_worker_thread_vm_pool_size 16;
  lua_shared_dict results 1m;
  server {
    listen 127.0.0.1:%d%s;
    location = /ping { return 200 "pong\n"; }
    %s
  }
}
]]):format(opts.workers or 1, dir, dir, table.concat(envs, "\n"), opts.main or "", dir, dir, dir, dir, dir,
           root, root, root, root, port,
           -- with several workers, one socket each (the kernel spreads new connections
           -- over them), so every worker serves even on a loaded machine
           (opts.workers or 1) > 1 and " reuseport" or "", (opts.http or ""):gsub("%%", "%%%%"))
    sandbox.write_file(dir .. "/conf/nginx.conf", conf)
    local out, rc = sandbox.exec("nginx -p " .. dir .. " -c conf/nginx.conf -e " .. dir .. "/logs/error.log")
    if rc ~= 0 then error("nginx failed to start: " .. out .. "\n" .. (sandbox.read_file(dir .. "/logs/error.log") or ""), 2) end
    for _ = 1, 100 do
        local status = sandbox.http("GET", "http://127.0.0.1:" .. port .. "/ping")
        if status == 200 then break end
        sandbox.sleep(0.05)
    end
    return setmetatable({ dir = dir, port = port, base = "http://127.0.0.1:" .. port }, NG)
end

function NG:stop()
    local pid = sandbox.read_file(self.dir .. "/nginx.pid")
    if pid then
        sandbox.exec("kill -QUIT " .. pid:match("%d+"))
        for _ = 1, 100 do
            local _, rc = sandbox.exec("kill -0 " .. pid:match("%d+"))
            if rc ~= 0 then break end
            sandbox.sleep(0.05)
        end
    end
    if not os.getenv("TIKTOK_NGINX_KEEP") then sandbox.exec("rm -rf " .. self.dir) end
end

function NG:error_log()
    return sandbox.read_file(self.dir .. "/logs/error.log") or ""
end

function NG:get(path, opts)
    return sandbox.http(opts and opts.method or "GET", self.base .. path, opts)
end

return _M
