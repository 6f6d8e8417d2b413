-- The sandbox is a developer tool on loopback (issue 12): its control API
-- answers only JSON requests with a loopback Host and no browser origin, its
-- throwaway CA can vouch only for loopback names and lives a few days; and its
-- DIR/env exports what it sets (issue 13).
local sandbox = require "spec.helpers.sandbox"

local sh = sandbox.shell_quote

describe("sandbox security", function()
  local sb, env, ADMIN, port

  sandbox.use(function(s)
    sb, env = s, s.env
    ADMIN = env.TIKTOK_SANDBOX_ADMIN
    port = ADMIN:match("^http://127%.0%.0%.1:(%d+)/")
  end)

  local function admin(method, path, opts)
    local status, _, body = sandbox.http(method, ADMIN .. path, opts)
    return status, sandbox.json_decode(body) or body
  end

  describe("control API", function()
    it("answers requests whose Host is localhost, 127.x or [::1] (with its port or none)", function()
      for _, host in ipairs({ "127.0.0.1:" .. port, "localhost:" .. port, "LOCALHOST:" .. port, "127.0.0.2:" .. port,
        "[::1]:" .. port, "localhost", "127.0.0.1" }) do
        local status = admin("GET", "/health", { headers = { Host = host } })
        assert.equal(200, status, host)
      end
    end)

    it("refuses any other Host, as a DNS-rebinding page would send (403)", function()
      for _, host in ipairs({ "evil.example:" .. port, "evil.example", "localhost.evil.example:" .. port,
        "127.0.0.1.nip.io:" .. port, "127.0.0.1:" .. (tonumber(port) + 1), "10.0.0.1:" .. port, "[::2]:" .. port,
        "127.0.0.1:" .. port .. "@evil.example" }) do
        local status, v = admin("GET", "/", { headers = { Host = host } })
        assert.equal(403, status, host)
        assert.matches("loopback", v.error, 1, true)
        assert.is_nil(tostring(v.error):find(env.TIKTOK_CLIENT_SECRET, 1, true))
      end
      -- a name that really resolves to 127.0.0.1
      local status, _, body = sandbox.http("POST", "http://rebind.example:" .. port .. "/_sandbox/reset",
        { extra = { "--resolve", "rebind.example:" .. port .. ":127.0.0.1" } })
      assert.equal(403, status)
      assert.matches("loopback", body, 1, true)
    end)

    it("refuses form posts and non-JSON bodies (415), and changes nothing", function()
      local cases = {
        { "an empty form post", { headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }, body = "" } },
        { "a form post", { form = { processing_ms = "1" } } },
        { "a multipart post", { extra = { "-F", "a=b" } } },
        { "JSON sent as text/plain", { body = '{"delays":{"processing_ms":1}}', headers = { ["Content-Type"] = "text/plain" } } },
        { "a body without Content-Type", { body = '{"delays":{"processing_ms":1}}' } },
      }
      for _, c in ipairs(cases) do
        local status, v = admin("PATCH", "/config", c[2])
        assert.equal(415, status, c[1])
        assert.matches("application/json", v.error, 1, true)
        status = admin("POST", "/reset", c[2])
        assert.equal(415, status, c[1])
      end
      local cfg = sb:admin("GET", "/config")
      assert.equal(300, cfg.delays.processing_ms)
    end)

    it("refuses requests a web page sends (Origin, Sec-Fetch-Site) even as JSON (403)", function()
      local status, v = admin("PATCH", "/config", { json = { delays = { processing_ms = 1 } },
        headers = { Origin = "https://evil.example" } })
      assert.equal(403, status)
      assert.matches("web page", v.error, 1, true)
      status = admin("POST", "/reset", { headers = { Origin = "null" } })
      assert.equal(403, status)
      for _, site in ipairs({ "cross-site", "same-site", "same-origin" }) do
        status = admin("GET", "/", { headers = { ["Sec-Fetch-Site"] = site } })
        assert.equal(403, status, site)
      end
      -- typed into the address bar
      assert.equal(200, (admin("GET", "/health", { headers = { ["Sec-Fetch-Site"] = "none" } })))
      assert.equal(300, sb:admin("GET", "/config").delays.processing_ms)
    end)

    it("takes JSON, and bodiless requests, from local tools", function()
      local status, v = admin("PATCH", "/config", { json = { delays = { processing_ms = 7 } } })
      assert.equal(200, status)
      assert.equal(7, v.delays.processing_ms)
      status = admin("PATCH", "/config", { body = '{"delays":{"processing_ms":8}}', headers = { ["Content-Type"] = "application/json" } })
      assert.equal(200, status)
      assert.equal(200, (admin("POST", "/reset")))
      assert.equal(300, sb:admin("GET", "/config").delays.processing_ms)
    end)
  end)

  describe("throwaway CA", function()
    it("carries name constraints (DNS localhost, IP 127.0.0.0/8 and ::1) and lives a few days", function()
      local text = sandbox.exec("openssl x509 -noout -text -in " .. sh(env.TIKTOK_CA_FILE))
      assert.matches("X509v3 Name Constraints: critical", text, 1, true)
      assert.matches("DNS:localhost", text, 1, true)
      assert.matches("IP:127.0.0.0/255.0.0.0", text, 1, true)
      assert.matches("IP:0:0:0:0:0:0:0:1/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF", text, 1, true)
      for _, file in ipairs({ env.TIKTOK_CA_FILE, sb.dir .. "/tls/server.crt" }) do
        local dates = sandbox.exec("openssl x509 -noout -startdate -enddate -in " .. sh(file))
        local from = sandbox.exec("date -d " .. sh(dates:match("notBefore=([^\n]+)")) .. " +%s")
        local to = sandbox.exec("date -d " .. sh(dates:match("notAfter=([^\n]+)")) .. " +%s")
        local days = (tonumber(to) - tonumber(from)) / 86400
        assert.truthy(days >= 2 and days <= 7, file .. ": " .. days .. " days")
      end
    end)

    it("cannot vouch for any other name: a certificate it signs for a real site does not verify", function()
      local dir = sandbox.exec("mktemp -d"):gsub("%s+$", "")
      local tls = sb.dir .. "/tls"
      local function sign(san)
        local out, rc = sandbox.exec(table.concat({
          "cd " .. sh(dir),
          "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout x.key -out x.csr -subj /CN=x 2>/dev/null",
          "printf '%s\\n' 'basicConstraints=CA:FALSE' " .. sh("subjectAltName=" .. san) .. " > x.ext",
          "openssl x509 -req -in x.csr -CA " .. sh(tls .. "/ca.crt") .. " -CAkey " .. sh(tls .. "/ca.key") ..
            " -CAserial x.srl -CAcreateserial -out x.crt -days 1 -extfile x.ext 2>/dev/null",
          "openssl verify -CAfile " .. sh(tls .. "/ca.crt") .. " x.crt",
        }, " && "))
        return out, rc
      end
      for _, san in ipairs({ "DNS:open.tiktokapis.com", "DNS:www.tiktok.com", "IP:10.0.0.1", "IP:::2",
        "DNS:localhost.evil.example" }) do
        local out, rc = sign(san)
        assert.are_not.equal(0, rc, san)
        assert.matches("permitted subtree violation", out, 1, true)
      end
      local out, rc = sign("DNS:cdn.media.localhost,IP:127.0.0.1")
      assert.equal(0, rc, out)
      sandbox.exec("rm -rf " .. sh(dir))
    end)

    it("replaces, on start, a CA without constraints (an older DIR) or one about to expire", function()
      local dir = sandbox.exec("mktemp -d"):gsub("%s+$", "")
      local s = sandbox.start({ dir = dir })
      s:stop()
      -- an old-style CA: ten years, no name constraints
      local _, rc = sandbox.exec(table.concat({
        "cd " .. sh(dir .. "/tls"),
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt " ..
          "-days 3650 -subj /CN=old -addext basicConstraints=critical,CA:TRUE 2>/dev/null",
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out s.csr -subj /CN=localhost 2>/dev/null",
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > s.ext",
        "openssl x509 -req -in s.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 3650 -extfile s.ext 2>/dev/null",
      }, " && "))
      assert.equal(0, rc)
      local old = sandbox.sha256_file(dir .. "/tls/ca.crt")
      s = sandbox.start({ dir = dir })
      local ca = sandbox.sha256_file(dir .. "/tls/ca.crt")
      assert.are_not.equal(old, ca)
      assert.matches("X509v3 Name Constraints", sandbox.exec("openssl x509 -noout -text -in " .. sh(dir .. "/tls/ca.crt")), 1, true)
      assert.equal(405, (s:http("GET", s.env.TIKTOK_API_BASE .. "/v2/oauth/token/")))   -- TLS with the new CA
      s:stop()
      -- kept while valid
      s = sandbox.start({ dir = dir })
      assert.equal(ca, sandbox.sha256_file(dir .. "/tls/ca.crt"))
      s:stop()
      sandbox.exec("rm -rf " .. sh(dir))
    end)
  end)

  describe("DIR/env", function()
    it("exports every line, so programs started after sourcing it see the values", function()
      local text = sandbox.read_file(sb.dir .. "/env")
      local n = 0
      for line in text:gmatch("[^\n]+") do
        if not line:match("^#") then
          n = n + 1
          assert.matches("^export TIKTOK_[A-Z_]+='[^'\n]*'$", line)
        end
      end
      assert.truthy(n >= 17)
      local out = sandbox.exec("env -i /bin/sh -c " ..
        sh(". " .. sh(sb.dir .. "/env") .. " && /bin/sh -c 'printf \"%s|%s\" \"$TIKTOK_CLIENT_KEY\" \"$TIKTOK_SANDBOX_ADMIN\"'"))
      assert.equal(env.TIKTOK_CLIENT_KEY .. "|" .. env.TIKTOK_SANDBOX_ADMIN, out)
      -- a KEY=value reader that accepts an optional "export " prefix reads it
      local seen = {}
      for line in text:gmatch("[^\n]+") do
        local k, v = line:match("^export%s+([%w_]+)='(.*)'$")
        if k then seen[k] = v end
      end
      assert.equal(env.TIKTOK_CLIENT_SECRET, seen.TIKTOK_CLIENT_SECRET)
      assert.equal(env.TIKTOK_CA_FILE, seen.TIKTOK_CA_FILE)
    end)
  end)
end)
