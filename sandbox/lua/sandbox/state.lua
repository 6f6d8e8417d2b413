-- All sandbox state lives in this module, inside the single nginx worker
-- (worker_processes 1). Handlers mutate it without yielding in between, so a
-- read-modify-write is atomic with respect to other requests.
local util = require "sandbox.util"
local json = require "sandbox.json"

local M = {}

M.SCOPES = {
  { name = "user.info.basic", desc = "Read your profile info (avatar, display name)", toggleable = false },
  { name = "user.info.profile", toggleable = true,
    desc = "Read your additional profile information (bio, profile link, verification)" },
  { name = "user.info.stats", desc = "Read your statistics (likes, followers, following, videos)", toggleable = true },
  { name = "video.list", desc = "Read your public videos", toggleable = true },
  { name = "video.publish", desc = "Directly post content to your TikTok profile", toggleable = true },
  { name = "video.upload", desc = "Share content to your TikTok account as a draft", toggleable = true },
}
M.SCOPE_INDEX = {}
for _, s in ipairs(M.SCOPES) do M.SCOPE_INDEX[s.name] = s end

M.PUBLIC_OPTIONS = { "PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY" }
M.PRIVATE_OPTIONS = { "FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY" }

-- Endpoint names used by the request log, faults and rate limits.
M.ENDPOINTS = {
  "oauth.authorize", "oauth.token", "oauth.revoke", "user.info", "creator_info", "video.init",
  "inbox.init", "content.init", "status.fetch", "cancel", "upload.put", "media.get", "webhook.sink",
  "post.processing", "unknown",
}

-- Defaults of everything the control API can change under /config.
M.DEFAULT_CONFIG = {
  tokens = {
    access_ttl_sec = 7200,
    refresh_ttl_sec = 15552000,
    client_ttl_sec = 7200,
    code_ttl_sec = 300,
    refresh_rotation_resets_expiry = false,
  },
  delays = {
    processing_ms = 300,     -- after the last byte until the final status
    moderation_ms = 300,     -- after PUBLISH_COMPLETE until a public post id appears
    download_start_ms = 0,   -- after a PULL_FROM_URL init until the download starts
  },
  rate_limits = {
    window_sec = 60,
    ["creator_info"] = 20,
    ["video.init"] = 6,
    ["inbox.init"] = 6,
    ["content.init"] = 6,
    ["status.fetch"] = 30,
    ["user.info"] = 600,
  },
  upload = {
    url_ttl_sec = 3600,
    hash = true,
  },
  media = {
    ranges = true,           -- the media host answers Range requests (206); false: 200, whole body
  },
  pull = {
    connect_timeout_ms = 5000,
    read_timeout_ms = 30000,
    timeout_ms = 3600000,
  },
  caps = {
    pending_shares = 5,
    unaudited_users = 5,
  },
  webhooks = {
    retry_base_ms = 500,
    max_attempts = 5,
    timeout_ms = 5000,
  },
}

local boot  -- static facts from sandbox.json (ports, secrets, directories)

function M.boot_config()
  return boot
end

function M.set_boot(b)
  boot = b
end

-- The sandbox clock: real time plus an offset the control API can advance.
function M.now()
  return ngx.now() + (M.clock_offset or 0)
end

local function default_app()
  return {
    client_key = boot.client_key,
    client_secret = boot.client_secret,
    name = "Sandbox App",
    redirect_uris = { boot.redirect_uri },
    scopes = { "user.info.basic", "user.info.profile", "user.info.stats", "video.list", "video.publish",
      "video.upload" },
    audited = true,
    verified_prefixes = { boot.media_base },
    verified_domains = {},
    webhook_url = json.null,
    active_user_cap = 1000,
    pkce_required = true,
    oauth_errors_http_200 = false,
    disabled = false,
    default = true,
  }
end

local function new_user(fields)
  local u = {
    username = fields.username,
    display_name = fields.display_name or fields.username,
    is_private = false,
    privacy_level_options = json.null,  -- null: derived from is_private
    comment_disabled = false,
    duet_disabled = false,
    stitch_disabled = false,
    max_video_post_duration_sec = 300,
    banned = false,
    posting_cap_reached = false,
    daily_post_cap = 15,
    app_version = "34.1.0",
    bio_description = "",
    is_verified = false,
    follower_count = 0,
    following_count = 0,
    likes_count = 0,
    video_count = 0,
    union_id = util.uuid(),
  }
  for k, v in pairs(fields) do u[k] = v end
  return u
end

local function default_users()
  return {
    new_user {
      username = boot.default_user,
      display_name = "Sandbox Creator",
      bio_description = "Public test creator of the local TikTok sandbox.",
      is_verified = true,
      follower_count = 1520, following_count = 87, likes_count = 20433, video_count = 42,
    },
    new_user {
      username = "sandbox_private",
      display_name = "Private Sandbox",
      is_private = true,
      duet_disabled = true,
      stitch_disabled = true,
      max_video_post_duration_sec = 180,
      bio_description = "Private test creator.",
      follower_count = 12, following_count = 30, likes_count = 5, video_count = 1,
    },
  }
end

function M.reset()
  M.clock_offset = 0
  M.config = util.copy(M.DEFAULT_CONFIG)
  M.apps = {}
  M.app_order = {}
  M.add_app(default_app())
  M.users = {}
  M.user_order = {}
  for _, u in ipairs(default_users()) do M.add_user(u) end
  M.open_ids = {}        -- client_key -> username -> open_id
  M.open_id_index = {}   -- open_id -> { client_key, username }
  M.codes = {}
  M.grants = {}
  M.access_tokens = {}
  M.refresh_tokens = {}
  M.client_tokens = {}
  M.posts = {}
  M.post_order = {}
  M.uploads = {}
  M.post_events = {}     -- successful inits, for the 24 h caps
  M.rate = {}
  M.faults = {}
  M.fault_seq = 0
  require("sandbox.reqlog").clear()
  M.deliveries = {}
  M.delivery_seq = 0
  M.received_hooks = {}
  M.generation = (M.generation or 0) + 1
end

function M.add_app(app)
  if not M.apps[app.client_key] then M.app_order[#M.app_order + 1] = app.client_key end
  M.apps[app.client_key] = app
  return app
end

function M.default_app()
  return M.apps[boot.client_key]
end

-- "default" is an alias for the pre-registered app in control API paths.
function M.find_app(key)
  if key == "default" then return M.default_app() end
  return M.apps[key]
end

function M.add_user(u)
  if not M.users[u.username] then M.user_order[#M.user_order + 1] = u.username end
  M.users[u.username] = u
  return u
end

M.new_user = new_user

function M.privacy_options(user)
  if type(user.privacy_level_options) == "table" then return user.privacy_level_options end
  return user.is_private and M.PRIVATE_OPTIONS or M.PUBLIC_OPTIONS
end

-- open_ids look like TikTok's: 35 characters of the base64url alphabet, so
-- they may start with '-' or '_' (-000hLNeFCu7aluBmIBS1XngRBeXaEt0mpSu). The
-- default creator's always starts with '-', the private one's with '_', on
-- every app (and differ per app).
local B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local OPEN_ID_LEAD = { sandbox_private = "_" }

function M.new_open_id(username)
  local lead = OPEN_ID_LEAD[username] or (username == boot.default_user and "-" or "")
  local id
  repeat id = lead .. util.random_string(35 - #lead, B64URL) until not M.open_id_index[id]
  return id
end

function M.open_id(client_key, username)
  local per = M.open_ids[client_key]
  if not per then per = {}; M.open_ids[client_key] = per end
  local id = per[username]
  if not id then
    id = M.new_open_id(username)
    per[username] = id
    M.open_id_index[id] = { client_key = client_key, username = username }
  end
  return id
end

function M.user_by_open_id(open_id)
  local ix = M.open_id_index[open_id]
  if not ix then return nil end
  return M.users[ix.username], ix
end

-- Posts of the last 24 h (by the sandbox clock) matching a predicate.
function M.count_events(pred)
  local since = M.now() - 86400
  local n = 0
  for _, ev in ipairs(M.post_events) do
    if ev.time > since and pred(ev) then n = n + 1 end
  end
  return n
end

return M
