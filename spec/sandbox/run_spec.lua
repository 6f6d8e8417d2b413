-- sandbox/run: start, stop, fg, status, --http-only, the env file, the throwaway CA.
local sandbox = require "spec.helpers.sandbox"

local sh = sandbox.shell_quote

local function run(args, envs)
  return sandbox.exec((envs or "") .. " " .. sh(sandbox.run) .. " " .. args)
end

-- Running (a zombie waiting for PID 1 to reap it is not).
local function alive(pid)
  local stat = sandbox.read_file("/proc/" .. tonumber(pid) .. "/stat")
  return stat ~= nil and stat:match("%) (%a)") ~= "Z"
end

-- Processes as { pid, ppid, cmdline }, read from /proc (no procps needed).
local function processes()
  local list = {}
  for pid in sandbox.exec("ls /proc"):gmatch("%d+") do
    local stat = sandbox.read_file("/proc/" .. pid .. "/stat")
    local cmd = sandbox.read_file("/proc/" .. pid .. "/cmdline")
    local ppid = stat and stat:match("%) %a (%d+)")
    if ppid then list[#list + 1] = { pid = pid, ppid = ppid, cmdline = (cmd or ""):gsub("%z", " ") } end
  end
  return list
end

local function children(pid)
  local list = {}
  for _, p in ipairs(processes()) do
    if p.ppid == tostring(pid) then list[#list + 1] = p.pid end
  end
  return list
end

local function port_open(url)
  local status = sandbox.http("GET", url, { timeout = 3, extra = { "-k" } })
  return status ~= 0
end

describe("sandbox/run", function()
  local sb, env

  sandbox.use(function(s)
    sb, env = s, s.env
  end, { reset = false })

  it("writes a shell-sourceable env file with every documented key", function()
    for _, k in ipairs({ "TIKTOK_API_BASE", "TIKTOK_AUTH_BASE", "TIKTOK_API_BASE_PLAIN", "TIKTOK_CA_FILE",
      "TIKTOK_SANDBOX_ADMIN", "TIKTOK_CLIENT_KEY", "TIKTOK_CLIENT_SECRET", "TIKTOK_REDIRECT_URI",
      "TIKTOK_MEDIA_BASE", "TIKTOK_SANDBOX_USER", "TIKTOK_UPLOAD_BASE", "TIKTOK_UPLOAD_BASE_PLAIN",
      "TIKTOK_WEBHOOK_SINK", "TIKTOK_MEDIA_DIR", "TIKTOK_SANDBOX_PID" }) do
      assert.truthy(env[k] and env[k] ~= "", k)
    end
    assert.matches("^https://localhost:%d+$", env.TIKTOK_API_BASE)
    assert.matches("^https://localhost:%d+$", env.TIKTOK_AUTH_BASE)
    assert.matches("^http://127%.0%.0%.1:%d+$", env.TIKTOK_API_BASE_PLAIN)
    assert.equal(env.TIKTOK_API_BASE_PLAIN .. "/_sandbox", env.TIKTOK_SANDBOX_ADMIN)
    assert.equal("https://app.example.test/tiktok/callback", env.TIKTOK_REDIRECT_URI)
    assert.matches("^https://localhost:%d+/media/$", env.TIKTOK_MEDIA_BASE)
    assert.equal(sb.dir .. "/tls/ca.crt", env.TIKTOK_CA_FILE)
    assert.equal("sandbox_creator", env.TIKTOK_SANDBOX_USER)
    local ports = {}
    for _, k in ipairs({ "TIKTOK_API_BASE", "TIKTOK_API_BASE_PLAIN", "TIKTOK_MEDIA_BASE", "TIKTOK_UPLOAD_BASE", "TIKTOK_UPLOAD_BASE_PLAIN" }) do
      local p = env[k]:match(":(%d+)")
      assert.is_nil(ports[p], "port reused: " .. k)
      ports[p] = true
    end
    local out = sandbox.exec(". " .. sh(sb.dir .. "/env") .. " && printf '%s|%s' \"$TIKTOK_CLIENT_KEY\" \"$TIKTOK_CLIENT_SECRET\"")
    assert.equal(env.TIKTOK_CLIENT_KEY .. "|" .. env.TIKTOK_CLIENT_SECRET, out)
  end)

  it("serves HTTPS with a throwaway CA (SAN localhost and 127.0.0.1) and plain HTTP", function()
    local text = sandbox.exec("openssl x509 -noout -text -in " .. sh(sb.dir .. "/tls/server.crt"))
    assert.truthy(text:find("DNS:localhost", 1, true))
    assert.truthy(text:find("IP Address:127.0.0.1", 1, true))
    local ok = sandbox.exec("openssl verify -CAfile " .. sh(env.TIKTOK_CA_FILE) .. " " .. sh(sb.dir .. "/tls/server.crt"))
    assert.matches(": OK", ok, 1, true)
    assert.equal(404, (sandbox.http("GET", env.TIKTOK_API_BASE .. "/", { cacert = env.TIKTOK_CA_FILE })))
    local status, _, _, rc = sandbox.http("GET", env.TIKTOK_API_BASE .. "/", { cacert = "/etc/ssl/certs/ca-certificates.crt" })
    assert.equal(0, status)
    assert.equal(60, rc)                                   -- unknown issuer without the sandbox CA
    assert.equal(404, (sandbox.http("GET", env.TIKTOK_API_BASE_PLAIN .. "/")))
    local https_plain = env.TIKTOK_API_BASE:gsub("^https", "http")
    assert.are_not.equal(200, (sandbox.http("GET", https_plain .. "/v2/user/info/")))
  end)

  it("streams uploads without writing request bodies to disk", function()
    local t = sb:login_pkce({})
    local size = 6 * 1024 * 1024
    local _, v = sb:api("POST", "/v2/post/publish/video/init/", t.access_token, { post_info = { privacy_level = "SELF_ONLY" },
      source_info = { source = "FILE_UPLOAD", video_size = size, chunk_size = size, total_chunk_count = 1 } })
    local f = os.tmpname()
    sandbox.exec("truncate -s " .. size .. " " .. f)
    local status = sb:http("PUT", v.data.upload_url, { body_file = f, headers = { ["Content-Type"] = "video/mp4",
      ["Content-Range"] = "bytes 0-" .. (size - 1) .. "/" .. size } })
    os.remove(f)
    assert.equal(201, status)
    local listing = sandbox.exec("find " .. sh(sb.dir .. "/nginx/tmp") .. " -type f")
    assert.equal("", listing)
  end)

  it("keeps the credentials and the CA of a directory across restarts", function()
    local dir = sandbox.exec("mktemp -d"):gsub("%s+$", "")
    local a = sandbox.start({ dir = dir })
    local ca = sandbox.sha256_file(dir .. "/tls/ca.crt")
    local b = sandbox.start()
    assert.are_not.equal(a.env.TIKTOK_CLIENT_KEY, b.env.TIKTOK_CLIENT_KEY)
    assert.are_not.equal(a.env.TIKTOK_CLIENT_SECRET, b.env.TIKTOK_CLIENT_SECRET)
    assert.are_not.equal(a.env.TIKTOK_API_BASE, b.env.TIKTOK_API_BASE)
    b:stop()
    local out, rc = run("start --dir " .. sh(dir))
    assert.are_not.equal(0, rc)
    assert.matches("already running", out)
    a:stop()
    local again = sandbox.start({ dir = dir })
    assert.equal(a.env.TIKTOK_CLIENT_KEY, again.env.TIKTOK_CLIENT_KEY)
    assert.equal(a.env.TIKTOK_CLIENT_SECRET, again.env.TIKTOK_CLIENT_SECRET)
    assert.equal(ca, sandbox.sha256_file(dir .. "/tls/ca.crt"))
    assert.equal(200, (again:http("GET", again.env.TIKTOK_SANDBOX_ADMIN .. "/health")))
    again:stop()
    sandbox.exec("rm -rf " .. sh(dir))
  end)

  it("stops, waits and leaves no process behind", function()
    local s = sandbox.start({ keep = true })
    local pid = s.env.TIKTOK_SANDBOX_PID
    local kids = children(pid)
    assert.truthy(#kids >= 1)
    assert.truthy(alive(pid))
    local _, rc = run("status --dir " .. sh(s.dir))
    assert.equal(0, rc)
    local ok = s:stop()
    assert.truthy(ok)
    assert.is_false(alive(pid))
    for _, k in ipairs(kids) do assert.is_false(alive(k)) end
    assert.is_false(port_open(s.env.TIKTOK_API_BASE_PLAIN .. "/"))
    assert.is_false(port_open(s.env.TIKTOK_UPLOAD_BASE))
    for _, p in ipairs(processes()) do
      local ours = p.cmdline:match("^nginx:") and p.cmdline:find(s.dir, 1, true)
      assert.is_nil(ours and alive(p.pid) and p.cmdline, "left behind: " .. p.cmdline)
    end
    local _, rc2 = run("status --dir " .. sh(s.dir))
    assert.equal(1, rc2)
    local _, rc3 = run("stop --dir " .. sh(s.dir))
    assert.equal(0, rc3)
    sandbox.exec("rm -rf " .. sh(s.dir))
  end)

  it("runs plain HTTP only with --http-only", function()
    local s = sandbox.start({ http_only = true })
    assert.matches("^http://127%.0%.0%.1:%d+$", s.env.TIKTOK_API_BASE)
    assert.matches("^http://", s.env.TIKTOK_MEDIA_BASE)
    assert.equal("", s.env.TIKTOK_CA_FILE)
    local t = s:login_pkce({})
    local status, v = s:api("POST", "/v2/post/publish/creator_info/query/", t.access_token, {})
    assert.equal(200, status)
    assert.equal("ok", v.error.code)
    s:stop()
  end)

  it("fails clearly when nginx or the Lua module is missing", function()
    local dir = sandbox.exec("mktemp -d"):gsub("%s+$", "")
    local out, rc = run("start --dir " .. sh(dir), "SANDBOX_NGINX=/nonexistent/nginx")
    assert.are_not.equal(0, rc)
    assert.matches("nginx not found", out, 1, true)
    assert.matches("apt-get install nginx-light libnginx-mod-http-lua", out, 1, true)
    out, rc = run("start --dir " .. sh(dir), "SANDBOX_NGINX_MODULES=/nonexistent")
    assert.are_not.equal(0, rc)
    assert.matches("_module.so not found (lua-nginx-module)", out, 1, true)
    out, rc = run("start")
    assert.are_not.equal(0, rc)
    assert.matches("--dir", out, 1, true)
    out, rc = run("explode --dir " .. sh(dir))
    assert.are_not.equal(0, rc)
    assert.matches("unknown command", out, 1, true)
    sandbox.exec("rm -rf " .. sh(dir))
  end)

  it("fg prints the values, runs in the foreground and stops on a signal", function()
    local dir = sandbox.exec("mktemp -d"):gsub("%s+$", "")
    sandbox.exec(string.format("%s fg --dir %s > %s/fg.out 2>&1 & echo $! > %s/fg.pid", sh(sandbox.run), sh(dir), sh(dir), sh(dir)))
    local fgpid = tonumber(sandbox.read_file(dir .. "/fg.pid"))
    local env2
    for _ = 1, 100 do
      env2 = sandbox.read_env(dir .. "/env")
      if env2 and (sandbox.read_file(dir .. "/fg.out") or ""):find("Ctrl-C", 1, true) then break end
      sandbox.sleep(0.05)
    end
    assert.truthy(env2)
    local out = sandbox.read_file(dir .. "/fg.out")
    assert.truthy(out:find("TIKTOK_API_BASE='" .. env2.TIKTOK_API_BASE .. "'", 1, true))
    assert.truthy(alive(fgpid))
    local npid = env2.TIKTOK_SANDBOX_PID
    assert.equal(200, (sandbox.http("GET", env2.TIKTOK_SANDBOX_ADMIN .. "/health")))
    sandbox.exec("kill -TERM " .. fgpid)
    for _ = 1, 100 do
      if not alive(fgpid) then break end
      sandbox.sleep(0.05)
    end
    assert.is_false(alive(fgpid))
    assert.is_false(alive(npid))
    assert.matches("stopped", sandbox.read_file(dir .. "/fg.out"))
    sandbox.exec("rm -rf " .. sh(dir))
  end)
end)
