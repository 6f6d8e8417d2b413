-- Login Kit against the sandbox over plain HTTP: authorize (GET page, POST
-- approve/cancel), token (code, refresh, client credentials), revoke.
local sandbox = require "spec.helpers.sandbox"

describe("sandbox Login Kit", function()
  local sb, env, AUTH, API

  sandbox.use(function(s)
    sb, env = s, s.env
    AUTH = env.TIKTOK_AUTH_BASE .. "/v2/auth/authorize/"
    API = env.TIKTOK_API_BASE
  end)

  -- A valid authorize request: the default app requires PKCE (§15.1).
  local PAGE_VERIFIER = string.rep("v", 50)
  local function authorize_url(params)
    local p = {
      client_key = env.TIKTOK_CLIENT_KEY, response_type = "code",
      scope = "user.info.basic,video.publish", redirect_uri = env.TIKTOK_REDIRECT_URI, state = "st-123",
      code_challenge = sandbox.sha256_hex(PAGE_VERIFIER), code_challenge_method = "S256",
    }
    for k, v in pairs(params or {}) do
      if v == false then p[k] = nil else p[k] = v end
    end
    return AUTH .. "?" .. sandbox.form_encode(p)
  end

  local function get_page(params)
    return sb:http("GET", authorize_url(params))
  end

  local function challenge_for(verifier)
    return sandbox.sha256_hex(verifier)
  end

  describe("GET /v2/auth/authorize/", function()
    it("renders a consent page with the app, the scopes, a user picker and both buttons", function()
      local status, h, body = get_page({ scope = "user.info.basic,video.publish,video.upload" })
      assert.equal(200, status)
      assert.matches("text/html", h["content-type"], 1, true)
      assert.truthy(body:find("Sandbox App", 1, true))
      assert.truthy(body:find("video.publish", 1, true))
      assert.truthy(body:find("video.upload", 1, true))
      assert.truthy(body:find('<form method="POST" action="/v2/auth/authorize/">', 1, true))
      assert.truthy(body:find('name="decision" value="approve"', 1, true))
      assert.truthy(body:find('name="decision" value="cancel"', 1, true))
      assert.truthy(body:find('value="' .. env.TIKTOK_SANDBOX_USER .. '" selected', 1, true))
      assert.truthy(body:find('value="sandbox_private"', 1, true))
      assert.truthy(body:find('name="state" value="st-123"', 1, true))
      assert.is_nil(h.location)
    end)

    it("escapes request values in the page", function()
      local status, _, body = get_page({ state = '"><script>x</script>' })
      assert.equal(200, status)
      assert.is_nil(body:find("<script>x", 1, true))
      assert.truthy(body:find("&lt;script&gt;", 1, true))
    end)

    local refused = {
      { "missing client_key", { client_key = false }, "invalid_request", "client_key" },
      { "unknown client_key", { client_key = "awnotregistered" }, "invalid_client", "client_key" },
      { "missing redirect_uri", { redirect_uri = false }, "invalid_request", "redirect_uri" },
      { "an unregistered redirect_uri", { redirect_uri = "https://evil.example/cb" }, "invalid_request", "redirect_uri" },
      { "a redirect_uri with an extra trailing slash", { redirect_uri = "https://app.example.test/tiktok/callback/" }, "invalid_request", "redirect_uri" },
      { "a redirect_uri with a query", { redirect_uri = "https://app.example.test/tiktok/callback?x=1" }, "invalid_request", "redirect_uri" },
      { "response_type=token", { response_type = "token" }, "unsupported_response_type", "response_type" },
      { "a missing response_type", { response_type = false }, "unsupported_response_type", "response_type" },
      { "a missing scope", { scope = false }, "invalid_scope", "scope" },
      { "an unknown scope", { scope = "user.info.basic,video.delete" }, "invalid_scope", "scope" },
      { "space-separated scopes", { scope = "user.info.basic video.publish" }, "invalid_scope", "scope" },
      { "an upper-case hex code_challenge", { code_challenge = string.rep("AB", 32), code_challenge_method = "S256" }, "invalid_request", "code_challenge" },
      { "a base64url code_challenge (RFC 7636 style)", { code_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", code_challenge_method = "S256" }, "invalid_request", "code_challenge" },
      { "a 63-character code_challenge", { code_challenge = string.rep("a", 63), code_challenge_method = "S256" }, "invalid_request", "code_challenge" },
      { "code_challenge_method=plain", { code_challenge = string.rep("ab", 32), code_challenge_method = "plain" }, "invalid_request", "code_challenge_method" },
      { "a code_challenge without method", { code_challenge = string.rep("ab", 32), code_challenge_method = false }, "invalid_request", "code_challenge_method" },
      { "a method without code_challenge", { code_challenge = false }, "invalid_request", "code_challenge" },
      { "disable_auto_auth=2", { disable_auto_auth = "2" }, "invalid_request", "disable_auto_auth" },
    }
    for _, case in ipairs(refused) do
      it("shows a 400 error page (no redirect) for " .. case[1], function()
        local status, h, body = get_page(case[2])
        assert.equal(400, status)
        assert.is_nil(h.location)
        assert.equal(case[3], h["x-sandbox-error"])
        assert.truthy(body:find('<code id="error">' .. case[3] .. "</code>", 1, true))
        assert.truthy(body:find('<code id="param">' .. case[4] .. "</code>", 1, true))
      end)
    end

    it("refuses a scope the app is not approved for", function()
      local _, st = sb:admin("PATCH", "/apps/default", { scopes = { "user.info.basic", "video.upload" } })
      assert.equal(200, st)
      local status, h = get_page({ scope = "user.info.basic,video.publish" })
      assert.equal(400, status)
      assert.equal("invalid_scope", h["x-sandbox-error"])
      assert.equal(200, (get_page({ scope = "user.info.basic,video.upload" })))
    end)

    it("accepts a valid hex S256 challenge and disable_auto_auth=1", function()
      local status = get_page({ code_challenge = challenge_for(string.rep("v", 50)), code_challenge_method = "S256", disable_auto_auth = "1" })
      assert.equal(200, status)
    end)

    it("requires PKCE by default; pkce_required = false turns it off", function()
      local status, h, body = get_page({ code_challenge = false, code_challenge_method = false })
      assert.equal(400, status)
      assert.equal("invalid_request", h["x-sandbox-error"])
      assert.truthy(body:find('<code id="param">code_challenge</code>', 1, true))
      sb:admin("PATCH", "/apps/default", { pkce_required = false })
      assert.equal(200, (get_page({ code_challenge = false, code_challenge_method = false })))
    end)

    it("matches a registered loopback redirect URI with the wildcard port", function()
      local _, st = sb:admin("PATCH", "/apps/default", { redirect_uris = { env.TIKTOK_REDIRECT_URI, "http://127.0.0.1:*/callback/" } })
      assert.equal(200, st)
      assert.equal(200, (get_page({ redirect_uri = "http://127.0.0.1:5555/callback/" })))
      assert.equal(400, (get_page({ redirect_uri = "http://127.0.0.1/callback/" })))
      assert.equal(400, (get_page({ redirect_uri = "http://localhost:5555/callback/" })))
      assert.equal(400, (get_page({ redirect_uri = "http://127.0.0.1:5555/callback/x" })))
    end)
  end)

  describe("POST /v2/auth/authorize/ (approve path)", function()
    it("approve redirects to the exact redirect_uri with code, scopes and state", function()
      local status, q, loc = sb:authorize_pkce({ scope = "user.info.basic,video.publish", state = "abc 123&x" })
      assert.equal(302, status)
      assert.equal(env.TIKTOK_REDIRECT_URI, loc:match("^([^?]+)"))
      assert.truthy(q.code and #q.code > 40)
      assert.equal("user.info.basic,video.publish", q.scopes)
      assert.equal("abc 123&x", q.state)
      -- the code needs URL-decoding: it is sent percent-encoded
      assert.truthy(loc:find("%2A", 1, true) or loc:find("%21", 1, true))
    end)

    it("cancel redirects with error=access_denied and the state, without a code", function()
      local status, q = sb:authorize_pkce({ decision = "cancel", state = "s1" })
      assert.equal(302, status)
      assert.equal("access_denied", q.error)
      assert.truthy(q.error_description and #q.error_description > 0)
      assert.equal("s1", q.state)
      assert.is_nil(q.code)
    end)

    it("omits state when none was sent", function()
      local _, q = sb:authorize_pkce({})
      assert.is_nil(q.state)
    end)

    it("re-validates everything: an unregistered redirect_uri gets the error page", function()
      local status, _, loc, body = sb:authorize_pkce({ redirect_uri = "https://evil.example/cb" })
      assert.equal(400, status)
      assert.is_nil(loc)
      assert.truthy(body:find("invalid_request", 1, true))
      status = sb:authorize_pkce({ scope = "video.nope" })
      assert.equal(400, status)
    end)

    it("needs decision=approve|cancel", function()
      assert.equal(400, (sb:authorize_pkce({ decision = "maybe" })))
    end)

    it("refuses a form posted as JSON", function()
      local status = sb:http("POST", AUTH, { json = { client_key = env.TIKTOK_CLIENT_KEY, decision = "approve" } })
      assert.equal(400, status)
    end)

    it("refuses an unknown username and logs in the chosen one", function()
      assert.equal(400, (sb:authorize_pkce({ username = "nobody_here" })))
      local a = sb:login_pkce({ username = env.TIKTOK_SANDBOX_USER })
      local b = sb:login_pkce({ username = "sandbox_private" })
      assert.are_not.equal(a.open_id, b.open_id)
      local users = sb:admin("GET", "/users")
      local ids = {}
      for _, u in ipairs(users) do ids[u.username] = u.open_ids[env.TIKTOK_CLIENT_KEY] end
      assert.equal(ids[env.TIKTOK_SANDBOX_USER], a.open_id)
      assert.equal(ids.sandbox_private, b.open_id)
    end)

    it("lets the user grant a subset of the requested scopes", function()
      local status, q, _, _, verifier = sb:authorize_pkce({ scope = "user.info.basic,video.publish,video.upload", granted_scopes = "video.upload" })
      assert.equal(302, status)
      assert.equal("user.info.basic,video.upload", q.scopes)
      local st, tok = sb:token({ grant_type = "authorization_code", code = q.code, redirect_uri = env.TIKTOK_REDIRECT_URI,
        code_verifier = verifier })
      assert.equal(200, st)
      assert.equal("user.info.basic,video.upload", tok.scope)
      assert.equal(400, (sb:authorize_pkce({ scope = "user.info.basic", granted_scopes = "video.publish" })))
    end)

    it("uses the consent page's checkboxes when the browser form is submitted", function()
      local form = {
        { "client_key", env.TIKTOK_CLIENT_KEY }, { "response_type", "code" },
        { "scope", "user.info.basic,video.publish,video.upload" }, { "redirect_uri", env.TIKTOK_REDIRECT_URI },
        { "code_challenge", sandbox.sha256_hex(PAGE_VERIFIER) }, { "code_challenge_method", "S256" },
        { "scope_choice", "1" }, { "username", "sandbox_private" }, { "granted_scope", "user.info.basic" },
        { "granted_scope", "video.publish" }, { "decision", "approve" },
      }
      local status, h = sb:http("POST", AUTH, { form = form })
      assert.equal(302, status)
      local q = sandbox.parse_query(h.location)
      assert.equal("user.info.basic,video.publish", q.scopes)
    end)
  end)

  describe("POST /v2/oauth/token/ authorization_code", function()
    -- Codes come with PKCE (the default app requires it); token() sends the
    -- code's verifier unless the form names one.
    local verifiers = {}
    local function code(params)
      local status, q, _, _, verifier = sb:authorize_pkce(params)
      assert.equal(302, status)
      verifiers[q.code] = verifier
      return q.code
    end
    local function token(form)
      if form.code and form.code_verifier == nil then form.code_verifier = verifiers[form.code] end
      return sb:token(form)
    end

    it("returns TikTok's flat token response", function()
      local c = code({ scope = "user.info.basic,video.publish" })
      local status, tok, raw = token({ grant_type = "authorization_code", code = c, redirect_uri = env.TIKTOK_REDIRECT_URI })
      assert.equal(200, status)
      assert.matches("^act%.[%w]+", tok.access_token)
      assert.matches("^rft%.[%w]+", tok.refresh_token)
      assert.truthy(#tok.access_token >= 60)
      assert.equal(7200, tok.expires_in)
      assert.equal(15552000, tok.refresh_expires_in)
      assert.equal("Bearer", tok.token_type)
      assert.equal("user.info.basic,video.publish", tok.scope)
      assert.equal("string", type(tok.open_id))
      assert.is_nil(raw:find('"data"', 1, true))
    end)

    it("issues unguessable, distinct tokens", function()
      local seen = {}
      for _ = 1, 3 do
        local t = sb:login_pkce({})
        assert.is_nil(seen[t.access_token]); seen[t.access_token] = true
        assert.is_nil(seen[t.refresh_token]); seen[t.refresh_token] = true
        local random = t.access_token:match("^act%.(%w+)")
        assert.truthy(#random >= 48)
      end
    end)

    it("sends Cache-Control: no-store", function()
      local c = code({})
      local _, h = sb:http("POST", API .. "/v2/oauth/token/", { form = {
        client_key = env.TIKTOK_CLIENT_KEY, client_secret = env.TIKTOK_CLIENT_SECRET,
        grant_type = "authorization_code", code = c, redirect_uri = env.TIKTOK_REDIRECT_URI,
        code_verifier = verifiers[c] } })
      assert.equal("no-store", h["cache-control"])
    end)

    it("codes are single use", function()
      local c = code({})
      assert.equal(200, (token({ grant_type = "authorization_code", code = c, redirect_uri = env.TIKTOK_REDIRECT_URI })))
      local status, err = token({ grant_type = "authorization_code", code = c, redirect_uri = env.TIKTOK_REDIRECT_URI })
      assert.equal(400, status)
      assert.equal("invalid_grant", err.error)
      assert.truthy(err.log_id and #err.log_id > 10)
      assert.truthy(#err.error_description > 0)
    end)

    it("codes expire (configurable lifetime)", function()
      sb:configure({ tokens = { code_ttl_sec = 60 } })
      local c = code({})
      sb:admin("POST", "/clock", { advance_sec = 61 })
      local status, err = token({ grant_type = "authorization_code", code = c, redirect_uri = env.TIKTOK_REDIRECT_URI })
      assert.equal(400, status)
      assert.equal("invalid_grant", err.error)
      assert.matches("expired", err.error_description)
    end)

    it("codes must be URL-decoded before the exchange", function()
      local status, q, loc, _, verifier = sb:authorize_pkce({})
      assert.equal(302, status)
      verifiers[q.code] = verifier
      local raw = loc:match("[?&]code=([^&]+)")
      assert.are_not.equal(q.code, raw)
      local st, err = token({ grant_type = "authorization_code", code = raw, redirect_uri = env.TIKTOK_REDIRECT_URI })
      assert.equal(400, st)
      assert.equal("invalid_grant", err.error)
      assert.equal(200, (token({ grant_type = "authorization_code", code = q.code, redirect_uri = env.TIKTOK_REDIRECT_URI })))
    end)

    it("codes are bound to the client", function()
      local other = sb:admin("POST", "/apps", { name = "Other" })
      local c = code({})
      local status, err = token({ grant_type = "authorization_code", code = c, redirect_uri = env.TIKTOK_REDIRECT_URI,
        client_key = other.client_key, client_secret = other.client_secret })
      assert.equal(400, status)
      assert.equal("invalid_grant", err.error)
    end)

    it("codes are bound to the redirect_uri", function()
      sb:admin("PATCH", "/apps/default", { redirect_uris = { env.TIKTOK_REDIRECT_URI, "https://app.example.test/other" } })
      local c = code({})
      local status, err = token({ grant_type = "authorization_code", code = c, redirect_uri = "https://app.example.test/other" })
      assert.equal(400, status)
      assert.equal("invalid_request", err.error)
      assert.equal("Redirect_uri is not matched with the uri when requesting code.", err.error_description)
      status, err = token({ grant_type = "authorization_code", code = c })
      assert.equal(400, status)
      assert.equal("invalid_request", err.error)
    end)

    it("checks the PKCE verifier as the lower-case hex SHA-256 of the challenge", function()
      local verifier = "sandbox-verifier-" .. string.rep("x7~_.", 8)
      local c = code({ code_challenge = challenge_for(verifier), code_challenge_method = "S256" })
      local status, err = token({ grant_type = "authorization_code", code = c, redirect_uri = env.TIKTOK_REDIRECT_URI })
      assert.equal(400, status)
      assert.equal("invalid_request", err.error)
      status, err = token({ grant_type = "authorization_code", code = c, redirect_uri = env.TIKTOK_REDIRECT_URI, code_verifier = "short" })
      assert.equal(400, status)
      assert.equal("invalid_request", err.error)
      status, err = token({ grant_type = "authorization_code", code = c, redirect_uri = env.TIKTOK_REDIRECT_URI, code_verifier = verifier .. "X" })
      assert.equal(400, status)
      assert.equal("invalid_grant", err.error)
      assert.matches("Code verifier or code challenge is invalid", err.error_description, 1, true)
    end)

    it("accepts the right PKCE verifier", function()
      local verifier = string.rep("AbC-._~9", 7)
      local c = code({ code_challenge = challenge_for(verifier), code_challenge_method = "S256" })
      local status, tok = token({ grant_type = "authorization_code", code = c, redirect_uri = env.TIKTOK_REDIRECT_URI, code_verifier = verifier })
      assert.equal(200, status)
      assert.truthy(tok.access_token)
    end)

    it("is form-encoded only", function()
      local c = code({})
      local status, h, body = sb:http("POST", API .. "/v2/oauth/token/", { json = {
        client_key = env.TIKTOK_CLIENT_KEY, client_secret = env.TIKTOK_CLIENT_SECRET,
        grant_type = "authorization_code", code = c, redirect_uri = env.TIKTOK_REDIRECT_URI } })
      assert.equal(400, status)
      local err = sandbox.json_decode(body)
      assert.equal("invalid_request", err.error)
      assert.truthy(err.log_id)
      assert.matches("application/json", h["content-type"], 1, true)
    end)

    it("answers GET with 405", function()
      assert.equal(405, (sb:http("GET", API .. "/v2/oauth/token/")))
    end)

    local client_errors = {
      { "a missing client_key", { client_key = "" }, 400, "invalid_request", "Client key is missed in request." },
      { "a missing client_secret", { client_secret = "" }, 400, "invalid_request", "Client secret is missed in request." },
      { "an unknown client_key", { client_key = "awunknown" }, 401, "invalid_client" },
      { "a wrong client_secret", { client_secret = "wrong" }, 401, "invalid_client" },
      { "a missing grant_type", { grant_type = "" }, 400, "invalid_request" },
      { "an unsupported grant_type", { grant_type = "password" }, 400, "unsupported_grant_type" },
      { "a missing code", { code = "" }, 400, "invalid_request" },
      { "an unknown code", { code = "nope" }, 400, "invalid_grant" },
    }
    for _, case in ipairs(client_errors) do
      it("refuses " .. case[1], function()
        local form = { grant_type = "authorization_code", code = code({}), redirect_uri = env.TIKTOK_REDIRECT_URI }
        for k, v in pairs(case[2]) do form[k] = v end
        local status, err = token(form)
        assert.equal(case[3], status)
        assert.equal(case[4], err.error)
        if case[5] then assert.equal(case[5], err.error_description) end
        assert.truthy(err.log_id)
      end)
    end

    it("uses the configured lifetimes", function()
      sb:configure({ tokens = { access_ttl_sec = 60, refresh_ttl_sec = 3600 } })
      local tok = sb:login_pkce({})
      assert.equal(60, tok.expires_in)
      assert.equal(3600, tok.refresh_expires_in)
      sb:admin("POST", "/clock", { advance_sec = 61 })
      local status, v = sb:api("GET", "/v2/user/info/?fields=open_id", tok.access_token)
      assert.equal(401, status)
      assert.equal("access_token_invalid", v.error.code)
    end)
  end)

  describe("refresh_token grant", function()
    it("rotates the refresh token: the old one stops working", function()
      local t1 = sb:login_pkce({})
      local status, t2 = sb:token({ grant_type = "refresh_token", refresh_token = t1.refresh_token })
      assert.equal(200, status)
      assert.are_not.equal(t1.access_token, t2.access_token)
      assert.are_not.equal(t1.refresh_token, t2.refresh_token)
      assert.equal(t1.open_id, t2.open_id)
      assert.equal(t1.scope, t2.scope)
      local st, err = sb:token({ grant_type = "refresh_token", refresh_token = t1.refresh_token })
      assert.equal(400, st)
      assert.equal("invalid_grant", err.error)
      local st3, t3 = sb:token({ grant_type = "refresh_token", refresh_token = t2.refresh_token })
      assert.equal(200, st3)
      assert.truthy(t3.access_token)
      assert.equal(200, (sb:api("GET", "/v2/user/info/?fields=open_id", t3.access_token)))
    end)

    it("reports the remaining refresh lifetime (no reset on rotation by default)", function()
      local t1 = sb:login_pkce({})
      sb:admin("POST", "/clock", { advance_sec = 1000 })
      local _, t2 = sb:token({ grant_type = "refresh_token", refresh_token = t1.refresh_token })
      assert.truthy(t2.refresh_expires_in <= 15552000 - 1000 and t2.refresh_expires_in >= 15552000 - 1002)
      assert.equal(7200, t2.expires_in)
      sb:configure({ tokens = { refresh_rotation_resets_expiry = true } })
      local _, t3 = sb:token({ grant_type = "refresh_token", refresh_token = t2.refresh_token })
      assert.equal(15552000, t3.refresh_expires_in)
    end)

    it("refuses expired, foreign, missing and unknown refresh tokens", function()
      local t1 = sb:login_pkce({})
      local other = sb:admin("POST", "/apps", {})
      local st, err = sb:token({ grant_type = "refresh_token", refresh_token = t1.refresh_token,
        client_key = other.client_key, client_secret = other.client_secret })
      assert.equal(400, st); assert.equal("invalid_grant", err.error)
      st, err = sb:token({ grant_type = "refresh_token" })
      assert.equal(400, st); assert.equal("invalid_request", err.error)
      st, err = sb:token({ grant_type = "refresh_token", refresh_token = "rft.nope" })
      assert.equal(400, st); assert.equal("invalid_grant", err.error)
      sb:admin("POST", "/clock", { advance_sec = 15552000 + 1 })
      st, err = sb:token({ grant_type = "refresh_token", refresh_token = t1.refresh_token })
      assert.equal(400, st); assert.equal("invalid_grant", err.error)
    end)

    it("the control API can expire an access token so a client must refresh", function()
      local t = sb:login_pkce({})
      local v = sb:admin("POST", "/tokens/expire", { access_token = t.access_token })
      assert.equal(1, v.expired)
      local status, body = sb:api("GET", "/v2/user/info/?fields=open_id", t.access_token)
      assert.equal(401, status)
      assert.equal("access_token_invalid", body.error.code)
      local st, t2 = sb:token({ grant_type = "refresh_token", refresh_token = t.refresh_token })
      assert.equal(200, st)
      assert.equal(200, (sb:api("GET", "/v2/user/info/?fields=open_id", t2.access_token)))
    end)
  end)

  describe("client_credentials grant", function()
    it("returns a clt. token without user fields", function()
      local status, tok = sb:token({ grant_type = "client_credentials" })
      assert.equal(200, status)
      assert.matches("^clt%.", tok.access_token)
      assert.equal(7200, tok.expires_in)
      assert.equal("Bearer", tok.token_type)
      assert.is_nil(tok.refresh_token)
      assert.is_nil(tok.open_id)
    end)

    it("cannot be used for user endpoints", function()
      local _, tok = sb:token({ grant_type = "client_credentials" })
      local status, v = sb:api("POST", "/v2/post/publish/creator_info/query/", tok.access_token, {})
      assert.equal(401, status)
      assert.equal("scope_not_authorized", v.error.code)
      status = sb:api("GET", "/v2/user/info/?fields=open_id", tok.access_token)
      assert.equal(401, status)
    end)

    it("needs the client secret", function()
      local status, err = sb:token({ grant_type = "client_credentials", client_secret = "x" })
      assert.equal(401, status)
      assert.equal("invalid_client", err.error)
    end)
  end)

  describe("POST /v2/oauth/revoke/", function()
    local function revoke(form)
      local f = { client_key = env.TIKTOK_CLIENT_KEY, client_secret = env.TIKTOK_CLIENT_SECRET }
      for k, v in pairs(form) do f[k] = v end
      local status, _, body = sb:http("POST", API .. "/v2/oauth/revoke/", { form = f })
      return status, sandbox.json_decode(body), body
    end

    it("invalidates the access token and the refresh token", function()
      local t = sb:login_pkce({})
      assert.equal(200, (sb:api("GET", "/v2/user/info/?fields=open_id", t.access_token)))
      local status, v = revoke({ token = t.access_token })
      assert.equal(200, status)
      assert.same({}, v)
      local st, body = sb:api("GET", "/v2/user/info/?fields=open_id", t.access_token)
      assert.equal(401, st)
      assert.equal("access_token_invalid", body.error.code)
      local st2, err = sb:token({ grant_type = "refresh_token", refresh_token = t.refresh_token })
      assert.equal(400, st2)
      assert.equal("invalid_grant", err.error)
    end)

    it("revokes every token of that user and app, not other users", function()
      local a1 = sb:login_pkce({})
      local a2 = sb:login_pkce({})
      local b = sb:login_pkce({ username = "sandbox_private" })
      assert.equal(200, (revoke({ token = a1.access_token })))
      assert.equal(401, (sb:api("GET", "/v2/user/info/?fields=open_id", a2.access_token)))
      assert.equal(200, (sb:api("GET", "/v2/user/info/?fields=open_id", b.access_token)))
      -- authorizing again works
      local a3 = sb:login_pkce({})
      assert.equal(200, (sb:api("GET", "/v2/user/info/?fields=open_id", a3.access_token)))
    end)

    it("checks the client and the form", function()
      local t = sb:login_pkce({})
      local status, err = revoke({ token = t.access_token, client_secret = "nope" })
      assert.equal(401, status); assert.equal("invalid_client", err.error)
      status, err = revoke({})
      assert.equal(400, status); assert.equal("invalid_request", err.error)
      local st = sb:http("POST", API .. "/v2/oauth/revoke/", { json = {
        client_key = env.TIKTOK_CLIENT_KEY, client_secret = env.TIKTOK_CLIENT_SECRET, token = t.access_token } })
      assert.equal(400, st)
      local other = sb:admin("POST", "/apps", {})
      status, err = revoke({ token = t.access_token, client_key = other.client_key, client_secret = other.client_secret })
      assert.equal(400, status); assert.equal("invalid_request", err.error)
      assert.equal(200, (sb:api("GET", "/v2/user/info/?fields=open_id", t.access_token)))
      -- unknown tokens: nothing to revoke
      assert.equal(200, (revoke({ token = "act.unknown" })))
    end)
  end)

  it("never writes secrets into the request log", function()
    local t = sb:login_pkce({})
    sb:token({ grant_type = "refresh_token", refresh_token = t.refresh_token })
    sb:api("GET", "/v2/user/info/?fields=open_id", t.access_token)
    local log = sb:log()
    assert.truthy(#log >= 4)
    local raw = sandbox.json_encode(log)
    assert.is_nil(raw:find(env.TIKTOK_CLIENT_SECRET, 1, true))
    assert.is_nil(raw:find(t.access_token, 1, true))
    assert.is_nil(raw:find(t.refresh_token, 1, true))
    local names = {}
    for _, e in ipairs(log) do names[e.endpoint] = true end
    assert.truthy(names["oauth.authorize"] and names["oauth.token"] and names["user.info"])
  end)
end)
