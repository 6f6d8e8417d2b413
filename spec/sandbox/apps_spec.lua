-- More than one TikTok app (issue 17): each with its own client key and
-- secret, redirect URIs, scopes, PKCE and audit settings; accounts (open_ids)
-- per app; tokens bound to the app they were issued to; an app can be
-- disabled (revoked) or deleted.
local sandbox = require "spec.helpers.sandbox"

describe("sandbox with several apps", function()
  local sb, env, API

  sandbox.use(function(s)
    sb, env = s, s.env
    API = env.TIKTOK_API_BASE
  end)

  local B_REDIRECT = "https://workspace-b.example.test/tiktok/callback"

  local function app_b(fields)
    local f = { name = "Workspace B", redirect_uris = { B_REDIRECT },
      scopes = { "user.info.basic", "video.publish", "video.upload" } }
    for k, v in pairs(fields or {}) do f[k] = v end
    return sb:add_app(f)
  end

  local function login(app, params)
    local p = { client_key = app.client_key, client_secret = app.client_secret,
      redirect_uri = app.redirect_uris[1], scope = "user.info.basic,video.publish,video.upload" }
    for k, v in pairs(params or {}) do p[k] = v end
    return sb:login_pkce(p)
  end

  local function token_as(app, form)
    form.client_key, form.client_secret = app.client_key, app.client_secret
    return sb:token(form)
  end

  local function default_app()
    return (sb:admin("GET", "/apps/default"))
  end

  it("registers apps with their own random credentials and settings, listed by GET /apps", function()
    local a = default_app()
    local b = app_b({ audited = false, pkce_required = false })
    local c = app_b({ name = "Workspace C" })
    assert.matches("^[%w_%-]+$", b.client_key)
    assert.are_not.equal(a.client_key, b.client_key)
    assert.are_not.equal(b.client_key, c.client_key)
    assert.are_not.equal(b.client_secret, c.client_secret)
    assert.truthy(#b.client_secret >= 32)
    assert.same({ B_REDIRECT }, b.redirect_uris)
    assert.same({ "user.info.basic", "video.publish", "video.upload" }, b.scopes)
    assert.equal(false, b.audited)
    assert.equal(false, b.pkce_required)
    assert.equal(true, c.pkce_required)
    assert.equal(false, b.disabled)
    local keys = {}
    for _, app in ipairs(sb:admin("GET", "/apps")) do keys[app.client_key] = app.name end
    assert.equal("Sandbox App", keys[a.client_key])
    assert.equal("Workspace B", keys[b.client_key])
    assert.equal("Workspace C", keys[c.client_key])
    -- a client_key given by the caller, once
    local _, st = sb:admin("POST", "/apps", { client_key = "awbyoapp123", name = "Mine" })
    assert.equal(201, st)
    _, st = sb:admin("POST", "/apps", { client_key = "awbyoapp123" })
    assert.equal(409, st)
  end)

  it("applies each app's redirect URIs, scopes, PKCE and audit status", function()
    local b = app_b({ audited = false, pkce_required = false, scopes = { "user.info.basic", "video.upload" } })
    -- the default app's redirect URI is not B's
    local status = sb:authorize({ client_key = b.client_key, redirect_uri = env.TIKTOK_REDIRECT_URI, scope = "user.info.basic" })
    assert.equal(400, status)
    -- B was not approved for video.publish
    status = sb:authorize({ client_key = b.client_key, redirect_uri = B_REDIRECT, scope = "user.info.basic,video.publish" })
    assert.equal(400, status)
    -- B does not require PKCE; the default app still does
    local st, q = sb:authorize({ client_key = b.client_key, redirect_uri = B_REDIRECT, scope = "user.info.basic,video.upload" })
    assert.equal(302, st)
    local st2, tok = token_as(b, { grant_type = "authorization_code", code = q.code, redirect_uri = B_REDIRECT })
    assert.equal(200, st2)
    assert.equal("user.info.basic,video.upload", tok.scope)
    assert.equal(400, (sb:authorize({})))
    -- an unaudited app sees SELF_ONLY only
    local b2 = app_b({ audited = false })
    local t = login(b2)
    local _, ci = sb:api("POST", "/v2/post/publish/creator_info/query/", t.access_token, {})
    assert.same({ "SELF_ONLY" }, ci.data.privacy_level_options)
    local ta = sb:login_pkce({})
    _, ci = sb:api("POST", "/v2/post/publish/creator_info/query/", ta.access_token, {})
    assert.equal(3, #ci.data.privacy_level_options)
  end)

  it("gives the same user a different open_id in each app", function()
    local b = app_b()
    local ta = sb:login_pkce({})
    local tb = login(b)
    assert.are_not.equal(ta.open_id, tb.open_id)
    assert.equal(35, #tb.open_id)
    local _, v = sb:api("GET", "/v2/user/info/?fields=open_id,union_id", tb.access_token)
    assert.equal(tb.open_id, v.data.user.open_id)
    local _, va = sb:api("GET", "/v2/user/info/?fields=open_id,union_id", ta.access_token)
    assert.equal(va.data.user.union_id, v.data.user.union_id)   -- one person
    local user = sb:admin("GET", "/users/" .. env.TIKTOK_SANDBOX_USER)
    assert.equal(ta.open_id, user.open_ids[env.TIKTOK_CLIENT_KEY])
    assert.equal(tb.open_id, user.open_ids[b.client_key])
  end)

  it("issues client_credentials tokens per app, each with its own secret", function()
    local b = app_b()
    local st, ta = sb:token({ grant_type = "client_credentials" })
    assert.equal(200, st)
    local st2, tb = token_as(b, { grant_type = "client_credentials" })
    assert.equal(200, st2)
    assert.matches("^clt%.", tb.access_token)
    assert.are_not.equal(ta.access_token, tb.access_token)
    local st3, err = sb:token({ grant_type = "client_credentials", client_key = b.client_key,
      client_secret = env.TIKTOK_CLIENT_SECRET })
    assert.equal(401, st3)
    assert.equal("invalid_client", err.error)
  end)

  it("refuses app A's code, refresh token and access token when app B's credentials present them", function()
    local b = app_b()
    -- a code of A exchanged by B
    local status, q, _, _, verifier = sb:authorize_pkce({})
    assert.equal(302, status)
    local st, err = token_as(b, { grant_type = "authorization_code", code = q.code,
      redirect_uri = env.TIKTOK_REDIRECT_URI, code_verifier = verifier })
    assert.equal(400, st)
    assert.equal("invalid_grant", err.error)
    -- A's refresh token with B's key
    local ta = sb:login_pkce({})
    st, err = token_as(b, { grant_type = "refresh_token", refresh_token = ta.refresh_token })
    assert.equal(400, st)
    assert.equal("invalid_grant", err.error)
    -- and it still works for A
    local st2, ta2 = sb:token({ grant_type = "refresh_token", refresh_token = ta.refresh_token })
    assert.equal(200, st2)
    -- A's access token revoked with B's credentials
    local st3, _, body = sb:http("POST", API .. "/v2/oauth/revoke/", { form = {
      client_key = b.client_key, client_secret = b.client_secret, token = ta2.access_token } })
    assert.equal(400, st3)
    assert.equal("invalid_request", sandbox.json_decode(body).error)
    assert.equal(200, (sb:api("GET", "/v2/user/info/?fields=open_id", ta2.access_token)))
    -- a post made through A is not B's to read
    local tb = login(b)
    local _, init = sb:api("POST", "/v2/post/publish/inbox/video/init/", ta2.access_token, {
      source_info = { source = "FILE_UPLOAD", video_size = 1000, chunk_size = 1000, total_chunk_count = 1 } })
    local st4, v = sb:api("POST", "/v2/post/publish/status/fetch/", tb.access_token, { publish_id = init.data.publish_id })
    assert.equal(400, st4)
    assert.equal("token_not_authorized_for_specified_publish_id", v.error.code)
  end)

  it("a disabled (revoked) app gets invalid_client everywhere and its tokens stop working", function()
    local b = app_b()
    local tb = login(b)
    local ta = sb:login_pkce({})
    local v, st = sb:admin("PATCH", "/apps/" .. b.client_key, { disabled = true })
    assert.equal(200, st)
    assert.equal(true, v.disabled)
    local s1, e1 = token_as(b, { grant_type = "client_credentials" })
    assert.equal(401, s1)
    assert.equal("invalid_client", e1.error)
    local s2, e2 = token_as(b, { grant_type = "refresh_token", refresh_token = tb.refresh_token })
    assert.equal(401, s2)
    assert.equal("invalid_client", e2.error)
    local s3, h3 = sb:http("GET", env.TIKTOK_AUTH_BASE .. "/v2/auth/authorize/?" .. sandbox.form_encode({
      client_key = b.client_key, response_type = "code", scope = "user.info.basic", redirect_uri = B_REDIRECT,
      code_challenge = select(2, sandbox.pkce_pair()), code_challenge_method = "S256" }))
    assert.equal(400, s3)
    assert.equal("invalid_client", h3["x-sandbox-error"])
    local s4, v4 = sb:api("GET", "/v2/user/info/?fields=open_id", tb.access_token)
    assert.equal(401, s4)
    assert.equal("access_token_invalid", v4.error.code)
    -- the other app is not affected
    assert.equal(200, (sb:api("GET", "/v2/user/info/?fields=open_id", ta.access_token)))
    -- enabled again: its keys work again
    sb:admin("PATCH", "/apps/" .. b.client_key, { disabled = false })
    assert.equal(200, (token_as(b, { grant_type = "client_credentials" })))
    assert.equal(200, (sb:api("GET", "/v2/user/info/?fields=open_id", tb.access_token)))
  end)

  it("a deleted app is unknown: invalid_client, and its tokens stop working", function()
    local b = app_b()
    local tb = login(b)
    assert.equal(200, select(2, sb:admin("DELETE", "/apps/" .. b.client_key)))
    local st, err = token_as(b, { grant_type = "client_credentials" })
    assert.equal(401, st)
    assert.equal("invalid_client", err.error)
    assert.equal(401, (sb:api("GET", "/v2/user/info/?fields=open_id", tb.access_token)))
    assert.equal(404, select(2, sb:admin("GET", "/apps/" .. b.client_key)))
    assert.equal(409, select(2, sb:admin("DELETE", "/apps/default")))
  end)
end)
