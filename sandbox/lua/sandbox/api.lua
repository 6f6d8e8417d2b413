-- Display API user info and the Content Posting API: creator_info, video init
-- (direct), inbox video init, photo content init, status fetch, cancel.
local state = require "sandbox.state"
local tokens = require "sandbox.tokens"
local reply = require "sandbox.reply"
local util = require "sandbox.util"
local json = require "sandbox.json"
local posts = require "sandbox.posts"

local M = {}

local MIN_CHUNK = 5 * 1024 * 1024          -- 5,242,880 (5 MiB: the conservative reading)
local MAX_CHUNK = 64000000                 -- 64,000,000 (64 MB: the conservative reading)
local MAX_FINAL_CHUNK = 128000000
local MAX_CHUNKS = 1000
local MAX_VIDEO = 4 * 1024 * 1024 * 1024
local PRIVACY_LEVELS = {
  PUBLIC_TO_EVERYONE = true, MUTUAL_FOLLOW_FRIENDS = true, FOLLOWER_OF_CREATOR = true, SELF_ONLY = true,
}

-- TikTok's one message for every bad access token (§15.8); the sandbox's
-- reason goes in the X-Sandbox-Reason header.
local TOKEN_MESSAGE = "The access token is invalid or not found in the request."
local TOKEN_REASONS = {
  missing = "no Authorization: Bearer header",
  invalid = "unknown access token",
  expired = "the access token expired",
  revoked = "the authorization was revoked (or the app was disabled or deleted)",
}

-- Token, scope (any of), rate limit.
local function authed(endpoint, any_scopes)
  local tok = reply.bearer()
  reply.note("token", util.hint(tok))
  local ctx, why = tokens.resolve(tok)
  if not ctx then
    if why == "client_token" then
      return nil, reply.api_error(401, "scope_not_authorized",
        "A client access token cannot be used here; this endpoint needs a user access token.")
    end
    local res = reply.api_error(401, "access_token_invalid", TOKEN_MESSAGE)
    res.headers["X-Sandbox-Reason"] = TOKEN_REASONS[why]
    return nil, res
  end
  reply.note("client_key", ctx.app.client_key)
  reply.note("open_id", ctx.open_id)
  local ok = false
  for _, s in ipairs(any_scopes) do if ctx.scopes[s] then ok = true end end
  if not ok then
    return nil, reply.api_error(401, "scope_not_authorized",
      "The user did not authorize the scope required for this endpoint: " .. table.concat(any_scopes, " or "))
  end
  local limit = state.config.rate_limits[endpoint]
  if limit then
    local key = tok .. "|" .. endpoint
    local now = state.now()
    local since = now - state.config.rate_limits.window_sec
    local list, kept = state.rate[key] or {}, {}
    for _, t in ipairs(list) do if t > since then kept[#kept + 1] = t end end
    if #kept >= limit then
      state.rate[key] = kept
      return nil, reply.api_error(429, "rate_limit_exceeded",
        "Rate limit exceeded: " .. limit .. " requests per " .. state.config.rate_limits.window_sec ..
        " s for this access token")
    end
    kept[#kept + 1] = now
    state.rate[key] = kept
  end
  return ctx
end

-- Content Posting validation errors: invalid_params (plural, §15.3), with
-- TikTok's own texts where it has one.
local function invalid(msg)
  return reply.api_error(400, "invalid_params", msg)
end

local POST_INFO_BAD = "The request post info is empty or incorrect"

local function post_info_bad(detail)
  return invalid(POST_INFO_BAD .. (detail and (": " .. detail) or ""))
end

local function is_object(v)
  return type(v) == "table" and (next(v) == nil or v[1] == nil)
end

-- JSON object body. Empty bodies are allowed only where the docs send none.
local function json_body(allow_empty)
  local body = reply.read_body()
  if body == "" and allow_empty then return {} end
  local mt = util.media_type(ngx.var.http_content_type)
  if mt ~= "application/json" then
    return nil, "Content-Type must be application/json; charset=UTF-8"
  end
  if body == "" then return nil, "The request body is empty." end
  local v = json.decode(body)
  if not is_object(v) then return nil, "The request body must be a JSON object." end
  return v
end

local function method_is(m)
  if ngx.req.get_method() ~= m then
    return reply.api_error(405, "invalid_params", "Use " .. m .. " for this endpoint.")
  end
end

-- The prelude of every Content Posting endpoint: POST, an access token
-- with one of `any_scopes` within its rate limit, and a JSON object body
-- (with `allow_empty`, an empty body too). Returns ctx and the body, or nil
-- and the answer to send.
local function post_request(endpoint, any_scopes, allow_empty)
  local bad = method_is("POST")
  if bad then return nil, bad end
  local ctx, res = authed(endpoint, any_scopes)
  if not ctx then return nil, res end
  local body, err = json_body(allow_empty)
  if not body then return nil, invalid(err) end
  return ctx, body
end

local function opt_bool(t, k, where)
  local v = t[k]
  if v ~= nil and v ~= json.null and type(v) ~= "boolean" then
    return where .. "." .. k .. " must be a boolean"
  end
end

local function opt_text(t, k, where, max)
  local v = t[k]
  if v == nil or v == json.null then return nil end
  if type(v) ~= "string" then return where .. "." .. k .. " must be a string" end
  local n = util.utf16_len(v)
  if not n then return where .. "." .. k .. " is not valid UTF-8" end
  if n > max then return where .. "." .. k .. " is " .. n .. " UTF-16 units long; at most " .. max .. " are allowed" end
end

local function truthy(v) return v == true end

function M.privacy_options(app, user)
  if not app.audited then return { "SELF_ONLY" } end
  return state.privacy_options(user)
end

local function active_cap(app)
  if app.audited then return app.active_user_cap end
  return math.min(app.active_user_cap, state.config.caps.unaudited_users)
end

local function active_cap_reached(app, user)
  local users, n, mine = {}, 0, false
  local since = state.now() - 86400
  for _, ev in ipairs(state.post_events) do
    if ev.time > since and ev.client_key == app.client_key and not users[ev.username] then
      users[ev.username] = true
      n = n + 1
      if ev.username == user.username then mine = true end
    end
  end
  return not mine and n >= active_cap(app)
end

local function posting_cap_reached(user)
  if user.posting_cap_reached then return true end
  local n = state.count_events(function(ev) return ev.username == user.username and ev.mode == "DIRECT_POST" end)
  return n >= user.daily_post_cap
end

local function pending_shares(user)
  local n = 0
  local since = state.now() - 86400
  for _, ev in ipairs(state.post_events) do
    if ev.time > since and ev.username == user.username and ev.mode ~= "DIRECT_POST" then
      local p = state.posts[ev.publish_id]
      if p and p.status ~= "PUBLISH_COMPLETE" and p.status ~= "FAILED" then n = n + 1 end
    end
  end
  return n
end

local BLOCK_MESSAGES = {
  spam_risk_user_banned_from_posting = "This user is banned from posting.",
  spam_risk_too_many_posts = "This user has reached the daily limit of posts made through the API.",
  reached_active_user_cap = "This client has reached its daily quota of active publishing users.",
  unaudited_client_can_only_post_to_private_accounts =
    "Unaudited clients can only post to private accounts. The creator must set the account to private.",
  spam_risk_too_many_pending_share =
    "This user has 5 pending shares in the last 24 hours; they must post or delete them in the TikTok app first.",
}

-- Why this creator cannot direct-post right now (creator_info and direct init).
local function direct_block(ctx, for_init)
  local app, user = ctx.app, ctx.user
  if user.banned then return "spam_risk_user_banned_from_posting" end
  if for_init and not app.audited and not user.is_private then
    return "unaudited_client_can_only_post_to_private_accounts"
  end
  if posting_cap_reached(user) then return "spam_risk_too_many_posts" end
  if active_cap_reached(app, user) then return "reached_active_user_cap" end
end

local function block(code)
  return reply.api_error(403, code, BLOCK_MESSAGES[code])
end

local function url_verified(app, url)
  local u = util.parse_url(url)
  if not u then return false end
  for _, p in ipairs(app.verified_prefixes) do
    if url:sub(1, #p) == p then return true end
  end
  if u.scheme == "https" or state.boot_config().http_only then
    for _, d in ipairs(app.verified_domains) do
      if u.host == d or u.host:sub(-(#d + 1)) == "." .. d then return true end
    end
  end
  return false
end

local function check_pull_url(url, field)
  if type(url) ~= "string" or url == "" then return field .. " is required for PULL_FROM_URL" end
  local u = util.parse_url(url)
  if not u or (u.scheme ~= "https" and u.scheme ~= "http") then return field .. " must be an absolute https URL" end
  if u.scheme ~= "https" and not state.boot_config().http_only then return field .. " must use https" end
  if u.fragment then return field .. " must not contain a fragment" end
end

local function fmt_int(n) return string.format("%d", n) end
local CHUNK_SIZE_BAD, CHUNK_COUNT_BAD = "The chunk size is invalid", "total chunk count is invalid"

-- source_info of a video init. Returns a normalized table or nil, message.
local function video_source(si)
  if not is_object(si) then return nil, "source_info is required and must be an object" end
  local src = si.source
  if src == "FILE_UPLOAD" then
    local vs, cs, n = si.video_size, si.chunk_size, si.total_chunk_count
    if not util.is_int(vs) or vs <= 0 then return nil, "source_info.video_size must be a positive integer (bytes)" end
    if not util.is_int(cs) or cs <= 0 then
      return nil, CHUNK_SIZE_BAD .. ": source_info.chunk_size must be a positive integer (bytes)"
    end
    if not util.is_int(n) or n <= 0 then
      return nil, CHUNK_COUNT_BAD .. ": source_info.total_chunk_count must be a positive integer"
    end
    if vs < MIN_CHUNK then
      if cs ~= vs then
        return nil, "The chunk size is invalid: a video under 5,242,880 bytes must be sent as one chunk " ..
          "with chunk_size equal to video_size"
      end
      if n ~= 1 then return nil, "total chunk count is invalid: a video under 5,242,880 bytes is one chunk" end
    else
      if cs < MIN_CHUNK then return nil, "The chunk size is invalid: chunk_size must be at least 5,242,880 bytes" end
      if cs > MAX_CHUNK then return nil, "The chunk size is invalid: chunk_size must be at most 64,000,000 bytes" end
      if cs > vs then return nil, "The chunk size is invalid: chunk_size is larger than video_size" end
      local want = math.floor(vs / cs)
      if n ~= want then
        return nil, "total chunk count is invalid: total_chunk_count must be floor(video_size / chunk_size) = " ..
          fmt_int(want)
      end
      if n > MAX_CHUNKS then return nil, "total chunk count is invalid: at most 1000 chunks are allowed" end
      local last = vs - (n - 1) * cs
      if last > MAX_FINAL_CHUNK then
        return nil, "The chunk size is invalid: the final chunk would be " .. fmt_int(last) ..
          " bytes; at most 128,000,000 are allowed"
      end
      if n == 1 and vs > MAX_CHUNK then
        return nil, "The chunk size is invalid: videos over 64,000,000 bytes must be sent in several chunks"
      end
    end
    if vs > MAX_VIDEO then return nil, "source_info.video_size exceeds the 4 GB maximum" end
    return { source = src, video_size = vs, chunk_size = cs, total_chunk_count = n }
  elseif src == "PULL_FROM_URL" then
    local err = check_pull_url(si.video_url, "source_info.video_url")
    if err then return nil, err end
    return { source = src, video_url = si.video_url }
  elseif src == nil then
    return nil, "source_info.source is required (FILE_UPLOAD or PULL_FROM_URL)"
  end
  return nil, "source_info.source must be FILE_UPLOAD or PULL_FROM_URL"
end

local function upload_url(post)
  local up = post.upload
  local boot = state.boot_config()
  local base = ngx.var.scheme == "https" and boot.upload_base_https or boot.upload_base_http
  return base .. "?upload_id=" .. up.upload_id .. "&upload_token=" .. up.token
end

local function start_media(post, src, urls)
  if src.source == "FILE_UPLOAD" then
    local up = {
      upload_id = util.random_digits(19), token = util.random_string(32),
      expires_at = state.now() + state.config.upload.url_ttl_sec,
      video_size = src.video_size, chunk_size = src.chunk_size, total_chunk_count = src.total_chunk_count,
      committed = 0, chunks_done = 0, in_flight = false, hash = state.config.upload.hash,
    }
    post.upload = up
    state.uploads[up.upload_id] = post.publish_id
    return { publish_id = post.publish_id, upload_url = upload_url(post) }
  end
  posts.start_pull(post, urls)
  return { publish_id = post.publish_id }
end

function M.user_info()
  local bad = method_is("GET")
  if bad then return bad end
  local ctx, res = authed("user.info", { "user.info.basic", "user.info.profile", "user.info.stats" })
  if not ctx then return res end
  local fields = ngx.var.arg_fields
  if not fields or fields == "" then
    return reply.api_error(400, "invalid_params",
      "The fields query parameter is required, e.g. fields=open_id,display_name")
  end
  fields = ngx.unescape_uri(fields)
  local u = ctx.user
  local media = state.boot_config().media_origin
  local values = {
    open_id = { "user.info.basic", ctx.open_id },
    union_id = { "user.info.basic", u.union_id },
    avatar_url = { "user.info.basic", media .. "/avatars/" .. u.username .. "~c5_168x168.jpeg" },
    avatar_url_100 = { "user.info.basic", media .. "/avatars/" .. u.username .. "~c5_100x100.jpeg" },
    avatar_large_url = { "user.info.basic", media .. "/avatars/" .. u.username .. "~c5_1080x1080.jpeg" },
    display_name = { "user.info.basic", u.display_name },
    bio_description = { "user.info.profile", u.bio_description },
    profile_deep_link = { "user.info.profile", "https://www.tiktok.com/@" .. u.username },
    is_verified = { "user.info.profile", u.is_verified },
    username = { "user.info.profile", u.username },
    follower_count = { "user.info.stats", u.follower_count },
    following_count = { "user.info.stats", u.following_count },
    likes_count = { "user.info.stats", u.likes_count },
    video_count = { "user.info.stats", u.video_count },
  }
  local out, missing = {}, {}
  for _, f in ipairs(util.split_commas(fields)) do
    local v = values[f]
    if not v then return reply.api_error(400, "invalid_params", "Unknown field: '" .. f .. "'") end
    if not ctx.scopes[v[1]] then
      missing[#missing + 1] = f .. " (needs " .. v[1] .. ")"
    else
      out[f] = v[2]
    end
  end
  if #missing > 0 then
    -- TikTok: 401 scope_not_authorized (§15.5), not a 400.
    return reply.api_error(401, "scope_not_authorized",
      "The user did not authorize the scope required for completing this request. (" ..
      table.concat(missing, ", ") .. ")")
  end
  return reply.api_ok({ user = out })
end

function M.creator_info()
  local ctx, res = post_request("creator_info", { "video.publish" }, true)
  if not ctx then return res end
  local u = ctx.user
  local data = {
    creator_avatar_url = state.boot_config().media_origin .. "/avatars/" .. u.username .. "~c5_168x168.jpeg",
    creator_username = u.username,
    creator_nickname = u.display_name,
    privacy_level_options = json.array(util.copy(M.privacy_options(ctx.app, u))),
    comment_disabled = u.comment_disabled,
    duet_disabled = u.duet_disabled or u.is_private,
    stitch_disabled = u.stitch_disabled or u.is_private,
    max_video_post_duration_sec = u.max_video_post_duration_sec,
  }
  local code = direct_block(ctx, false)
  if code then
    -- Intentionally HTTP 200 on this endpoint (403 on the init endpoints).
    return reply.api_error(200, code, BLOCK_MESSAGES[code], data)
  end
  return reply.api_ok(data)
end

local function block_url()
  return reply.api_error(403, "url_ownership_unverified",
    "The URL is not under a domain or URL prefix verified for this app (Manage URL properties).")
end

local function check_privacy(ctx, privacy)
  if privacy == nil or privacy == json.null then
    return reply.api_error(403, "privacy_level_option_mismatch",
      "post_info.privacy_level is required; pick one of creator_info.privacy_level_options")
  end
  local options = M.privacy_options(ctx.app, ctx.user)
  if type(privacy) ~= "string" or not PRIVACY_LEVELS[privacy] or not util.contains(options, privacy) then
    return reply.api_error(403, "privacy_level_option_mismatch",
      "post_info.privacy_level must be one of creator_info.privacy_level_options: " ..
      table.concat(M.privacy_options(ctx.app, ctx.user), ", "))
  end
end

function M.video_init()
  local ctx, body = post_request("video.init", { "video.publish" })
  if not ctx then return body end
  local pi = body.post_info
  if not is_object(pi) then return post_info_bad("post_info is required and must be an object") end
  for _, k in ipairs({ "disable_duet", "disable_comment", "disable_stitch", "brand_content_toggle",
    "brand_organic_toggle", "is_aigc" }) do
    local e = opt_bool(pi, k, "post_info")
    if e then return post_info_bad(e) end
  end
  local e = opt_text(pi, "title", "post_info", 2200)
  if e then return post_info_bad(e) end
  local src, err = video_source(body.source_info)
  if not src then return invalid(err) end
  local code = direct_block(ctx, true)
  if code then return block(code) end
  local r = check_privacy(ctx, pi.privacy_level)
  if r then return r end
  if truthy(pi.brand_content_toggle) and pi.privacy_level == "SELF_ONLY" then
    return invalid("Branded content (brand_content_toggle) cannot be posted with privacy_level SELF_ONLY")
  end
  if src.video_url and not url_verified(ctx.app, src.video_url) then
    return block_url()
  end
  local u = ctx.user
  local cover = pi.video_cover_timestamp_ms
  local post = posts.create {
    client_key = ctx.app.client_key, open_id = ctx.open_id, username = u.username,
    media_type = "VIDEO", mode = "DIRECT_POST", source = src.source,
    post_info = pi, source_info = body.source_info, privacy_level = pi.privacy_level,
    restricted = not ctx.app.audited,
    effective = {
      disable_comment = truthy(pi.disable_comment) or u.comment_disabled,
      disable_duet = truthy(pi.disable_duet) or u.duet_disabled or u.is_private,
      disable_stitch = truthy(pi.disable_stitch) or u.stitch_disabled or u.is_private,
      video_cover_timestamp_ms = (util.is_int(cover) and cover >= 0) and cover or 0,
      is_aigc = truthy(pi.is_aigc),
    },
  }
  reply.note("publish_id", post.publish_id)
  return reply.api_ok(start_media(post, src, { src.video_url }))
end

function M.inbox_init()
  local ctx, body = post_request("inbox.init", { "video.upload" })
  if not ctx then return body end
  local src, err = video_source(body.source_info)
  if not src then return invalid(err) end
  if ctx.user.banned then return block("spam_risk_user_banned_from_posting") end
  if pending_shares(ctx.user) >= state.config.caps.pending_shares then
    return block("spam_risk_too_many_pending_share")
  end
  if src.video_url and not url_verified(ctx.app, src.video_url) then return block_url() end
  local post = posts.create {
    client_key = ctx.app.client_key, open_id = ctx.open_id, username = ctx.user.username,
    media_type = "VIDEO", mode = "INBOX", source = src.source,
    source_info = body.source_info, restricted = not ctx.app.audited,
    post_info = body.post_info, -- not part of this endpoint: recorded, ignored
  }
  reply.note("publish_id", post.publish_id)
  return reply.api_ok(start_media(post, src, { src.video_url }))
end

local function version_at_least(v, want)
  local a = {}
  for n in tostring(v):gmatch("%d+") do a[#a + 1] = tonumber(n) end
  for i, w in ipairs(want) do
    local x = a[i] or 0
    if x ~= w then return x > w end
  end
  return true
end

function M.content_init()
  local ctx, body = post_request("content.init", { "video.publish", "video.upload" })
  if not ctx then return body end
  if body.media_type ~= "PHOTO" then return invalid("media_type must be PHOTO") end
  local mode = body.post_mode
  if mode ~= "DIRECT_POST" and mode ~= "MEDIA_UPLOAD" then
    return invalid("post_mode must be DIRECT_POST or MEDIA_UPLOAD")
  end
  local need = mode == "DIRECT_POST" and "video.publish" or "video.upload"
  if not ctx.scopes[need] then
    return reply.api_error(401, "scope_not_authorized", "post_mode " .. mode .. " needs the " .. need .. " scope")
  end
  local e = opt_bool(body, "is_aigc", "body")
  if e then return invalid(e) end
  local pi = body.post_info
  if not is_object(pi) then return post_info_bad("post_info is required and must be an object") end
  e = opt_text(pi, "title", "post_info", 90) or opt_text(pi, "description", "post_info", 4000)
  if e then return post_info_bad(e) end
  for _, k in ipairs({ "disable_comment", "auto_add_music", "brand_content_toggle", "brand_organic_toggle" }) do
    e = opt_bool(pi, k, "post_info")
    if e then return post_info_bad(e) end
  end
  local si = body.source_info
  if not is_object(si) then return invalid("source_info is required and must be an object") end
  if si.source ~= "PULL_FROM_URL" then
    return invalid("source_info.source must be PULL_FROM_URL (photos cannot be uploaded as files)")
  end
  local imgs = si.photo_images
  if type(imgs) ~= "table" or #imgs == 0 or not (imgs[1] ~= nil and next(imgs, #imgs) == nil) then
    return invalid("source_info.photo_images must be a non-empty array of URLs")
  end
  if #imgs > 35 then return invalid("source_info.photo_images has " .. #imgs .. " images; at most 35 are allowed") end
  for i, url in ipairs(imgs) do
    e = check_pull_url(url, "source_info.photo_images[" .. (i - 1) .. "]")
    if e then return invalid(e) end
  end
  local ci = si.photo_cover_index
  if not util.is_int(ci) or ci < 0 or ci >= #imgs then
    return invalid("source_info.photo_cover_index must be an integer from 0 to " .. (#imgs - 1))
  end
  if ctx.user.banned then return block("spam_risk_user_banned_from_posting") end
  if mode == "DIRECT_POST" then
    local code = direct_block(ctx, true)
    if code then return block(code) end
    local r = check_privacy(ctx, pi.privacy_level)
    if r then return r end
    if truthy(pi.brand_content_toggle) and pi.privacy_level == "SELF_ONLY" then
      return invalid("Branded content (brand_content_toggle) cannot be posted with privacy_level SELF_ONLY")
    end
  else
    if not version_at_least(ctx.user.app_version, { 31, 8 }) then
      return reply.api_error(400, "app_version_check_failed",
        "MEDIA_UPLOAD needs TikTok app version 31.8 or later; the user has " .. tostring(ctx.user.app_version))
    end
    if pending_shares(ctx.user) >= state.config.caps.pending_shares then
      return block("spam_risk_too_many_pending_share")
    end
  end
  for _, url in ipairs(imgs) do
    if not url_verified(ctx.app, url) then return block_url() end
  end
  local post = posts.create {
    client_key = ctx.app.client_key, open_id = ctx.open_id, username = ctx.user.username,
    media_type = "PHOTO", mode = mode == "DIRECT_POST" and "DIRECT_POST" or "MEDIA_UPLOAD", source = "PULL_FROM_URL",
    post_info = pi, source_info = si, privacy_level = mode == "DIRECT_POST" and pi.privacy_level or nil,
    restricted = not ctx.app.audited,
    effective = mode == "DIRECT_POST" and {
      disable_comment = truthy(pi.disable_comment) or ctx.user.comment_disabled,
      auto_add_music = truthy(pi.auto_add_music), is_aigc = truthy(body.is_aigc),
    } or nil,
  }
  reply.note("publish_id", post.publish_id)
  local urls = {}
  for i, u in ipairs(imgs) do urls[i] = u end
  posts.start_pull(post, urls)
  return reply.api_ok({ publish_id = post.publish_id })
end

local function find_post(ctx, body)
  local id = body.publish_id
  if type(id) ~= "string" or id == "" then
    return nil, invalid("publish_id is required and must be a string")
  end
  reply.note("publish_id", id)
  local post = state.posts[id]
  if not post then return nil, reply.api_error(400, "invalid_publish_id", "publish_id does not exist") end
  if post.client_key ~= ctx.app.client_key or post.open_id ~= ctx.open_id then
    return nil, reply.api_error(400, "token_not_authorized_for_specified_publish_id",
      "This access token is not authorized for the specified publish_id")
  end
  return post
end

-- status/fetch and cancel: POST, a token with either scope, {"publish_id"}
-- naming a post of this token. Returns the post, or nil and the answer.
local function publish_id_request(endpoint)
  local ctx, body = post_request(endpoint, { "video.upload", "video.publish" })
  if not ctx then return nil, body end
  return find_post(ctx, body)
end

function M.status_fetch()
  local post, res = publish_id_request("status.fetch")
  if not post then return res end
  -- A FAILED post: only status and fail_reason (§15.7).
  if post.status == "FAILED" then
    return reply.api_ok({ fail_reason = post.fail_reason, status = post.status })
  end
  local ids = json.array()
  if post.public then
    for _, pid in ipairs(post.post_ids) do ids[#ids + 1] = json.int64(pid) end
  end
  local data = { status = post.status, publicaly_available_post_id = ids }
  if post.source == "FILE_UPLOAD" then data.uploaded_bytes = post.uploaded_bytes
  else data.downloaded_bytes = post.downloaded_bytes end
  return reply.api_ok(data)
end

function M.cancel()
  local post, res = publish_id_request("cancel")
  if not post then return res end
  local ok, why = posts.cancel(post)
  if not ok then return reply.api_error(400, "publish_not_cancellable", why) end
  return reply.api_ok(nil)
end

return M
