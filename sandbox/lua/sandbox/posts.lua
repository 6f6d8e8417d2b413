-- Post lifecycle: PROCESSING_UPLOAD / PROCESSING_DOWNLOAD -> checks on the
-- received bytes -> PUBLISH_COMPLETE / SEND_TO_USER_INBOX / FAILED, public post
-- ids after moderation, cancel, auth removal, and the real PULL_FROM_URL download.
local state = require "sandbox.state"
local json = require "sandbox.json"
local util = require "sandbox.util"
local analyzer = require "sandbox.analyzer"
local httpc = require "sandbox.httpc"
local faults = require "sandbox.faults"

local M = {}

local webhooks -- required lazily (webhooks -> posts would otherwise be circular)
local function hooks()
  webhooks = webhooks or require "sandbox.webhooks"
  return webhooks
end

local PREFIX = {
  VIDEO_DIRECT_FILE = "v_pub_file~v2-1.",
  VIDEO_DIRECT_URL = "v_pub_url~v2.",
  VIDEO_INBOX_FILE = "v_inbox_file~v2.",
  VIDEO_INBOX_URL = "v_inbox_url~v2.",
  PHOTO_DIRECT_URL = "p_pub_url~v2.",
  PHOTO_INBOX_URL = "p_inbox_url~v2.",
}

local MAX_IMAGE_BYTES = 20 * 1000 * 1000

function M.new_post_id()
  return "7" .. util.random_digits(18)
end

-- Run fn after delay_ms unless the sandbox was reset in between.
local function later(delay_ms, fn)
  local gen = state.generation
  local ok, err = ngx.timer.at((delay_ms or 0) / 1000, function(premature)
    if premature or gen ~= state.generation then return end
    fn()
  end)
  if not ok then ngx.log(ngx.ERR, "sandbox: timer failed: ", err) end
end

local function publish_type(post)
  return post.mode == "DIRECT_POST" and "DIRECT_POST" or "INBOX_SHARE"
end

local function app_of(post) return state.apps[post.client_key] end

local function emit(post, event, extra)
  local app = app_of(post)
  if not app then return end
  local content = { publish_id = post.publish_id, publish_type = publish_type(post) }
  for k, v in pairs(extra or {}) do content[k] = v end
  hooks().emit(app, post.open_id, event, content)
end

local function set_status(post, status)
  post.status = status
  post.updated_at = state.now()
  post.history[#post.history + 1] = { status = status, time = post.updated_at }
end

function M.is_final(post)
  return post.status == "FAILED" or post.status == "PUBLISH_COMPLETE" or post.status == "SEND_TO_USER_INBOX"
end

function M.create(f)
  local key = f.media_type .. "_" .. (f.mode == "DIRECT_POST" and "DIRECT" or "INBOX") .. "_" ..
    (f.source == "FILE_UPLOAD" and "FILE" or "URL")
  -- 19 digits like TikTok's: v_inbox_file~v2.7664604210297636878 (§15.9).
  local id
  repeat id = PREFIX[key] .. "7" .. util.random_digits(18) until not state.posts[id]
  local post = {
    publish_id = id, client_key = f.client_key, open_id = f.open_id, username = f.username,
    media_type = f.media_type, mode = f.mode, source = f.source,
    post_info = f.post_info, source_info = f.source_info, request = f.request,
    privacy_level = f.privacy_level, restricted = f.restricted or false,
    effective = f.effective, created_at = state.now(), history = {},
    bytes_received = 0, post_ids = {}, public = false,
  }
  if f.source == "FILE_UPLOAD" then post.uploaded_bytes = 0 else post.downloaded_bytes = 0 end
  set_status(post, f.source == "FILE_UPLOAD" and "PROCESSING_UPLOAD" or "PROCESSING_DOWNLOAD")
  state.posts[id] = post
  state.post_order[#state.post_order + 1] = id
  state.post_events[#state.post_events + 1] = {
    time = state.now(), client_key = f.client_key, username = f.username, mode = f.mode, publish_id = id,
  }
  return post
end

function M.fail(post, reason)
  if M.is_final(post) then return end
  post.fail_reason = reason
  if post.upload then post.upload.closed = true end
  set_status(post, "FAILED")
  emit(post, "post.publish.failed", { reason = reason })
end

local function make_public(post, count)
  count = count or 1
  for _ = 1, count do post.post_ids[#post.post_ids + 1] = M.new_post_id() end
  post.public = true
  for _, pid in ipairs(post.post_ids) do
    emit(post, "post.publish.publicly_available", { post_id = json.int64(pid) })
  end
end

local function goes_public(post, privacy)
  return privacy == "PUBLIC_TO_EVERYONE" and not post.restricted
end

local function succeed(post)
  if post.mode == "DIRECT_POST" then
    set_status(post, "PUBLISH_COMPLETE")
    emit(post, "post.publish.complete")
    if goes_public(post, post.privacy_level) then
      later(state.config.delays.moderation_ms, function()
        if post.status == "PUBLISH_COMPLETE" and #post.post_ids == 0 then make_public(post) end
      end)
    end
  else
    set_status(post, "SEND_TO_USER_INBOX")
    emit(post, "post.publish.inbox_delivered")
  end
end

-- The creator finishes an inbox draft in the app (control API).
function M.user_publish(post, privacy, count)
  if post.status ~= "SEND_TO_USER_INBOX" then return nil, "post is " .. post.status .. ", not SEND_TO_USER_INBOX" end
  post.privacy_level = privacy
  set_status(post, "PUBLISH_COMPLETE")
  emit(post, "post.publish.complete")
  if goes_public(post, privacy) then
    later(state.config.delays.moderation_ms, function()
      if post.status == "PUBLISH_COMPLETE" and #post.post_ids == 0 then make_public(post, count) end
    end)
  end
  return true
end

-- Control API: a public post becomes private (or public again).
function M.set_public(post, public)
  if post.status ~= "PUBLISH_COMPLETE" then return nil, "post is not PUBLISH_COMPLETE" end
  if public and not post.public then
    if #post.post_ids == 0 then make_public(post) else
      post.public = true
      for _, pid in ipairs(post.post_ids) do
        emit(post, "post.publish.publicly_available", { post_id = json.int64(pid) })
      end
    end
  elseif not public and post.public then
    post.public = false
    for _, pid in ipairs(post.post_ids) do
      emit(post, "post.publish.no_longer_publicaly_available", { post_id = json.int64(pid) })
    end
  end
  return true
end

local function check_video(post, r)
  if not r.container then return "file_format_check_failed" end
  if r.container == "webm" then return nil end
  if r.malformed or not r.duration_sec then return "file_format_check_failed" end
  local user = state.users[post.username]
  -- The creator's own limit, read now (it can be 3600 s, §15.6): no fixed cap.
  local max = user and user.max_video_post_duration_sec or 600
  if r.duration_sec > max then return "duration_check_failed" end
  if r.width and r.height and (r.width < 360 or r.height < 360 or r.width > 4096 or r.height > 4096) then
    return "picture_size_check_failed"
  end
  if r.fps and (r.fps < 23 - 0.05 or r.fps > 60 + 0.05) then return "frame_rate_check_failed" end
  return nil
end

local function check_image(r)
  if not r.container or not r.width then return "file_format_check_failed" end
  if r.bytes > MAX_IMAGE_BYTES then return "picture_size_check_failed" end
  if math.min(r.width, r.height) > 1080 then return "picture_size_check_failed" end
  return nil
end

-- All bytes are in: checks run after the processing delay.
function M.media_complete(post, results)
  post.analysis = results
  if post.media_type == "VIDEO" then
    post.sha256 = results[1].sha256
  end
  later(state.config.delays.processing_ms, function()
    if M.is_final(post) then return end
    local forced = faults.take("post.processing", "before", { publish_id = post.publish_id })
    if forced then return M.fail(post, forced.fail_reason) end
    for _, r in ipairs(results) do
      local reason
      if post.media_type == "VIDEO" then reason = check_video(post, r) else reason = check_image(r) end
      if reason then return M.fail(post, reason) end
    end
    succeed(post)
  end)
end

-- PULL_FROM_URL: the sandbox really downloads the media.
local function download(post, urls)
  local cfg = state.config.pull
  local is_video = post.media_type == "VIDEO"
  local pull_failed = is_video and "video_pull_failed" or "photo_pull_failed"
  local deadline = ngx.now() + cfg.timeout_ms / 1000
  local results = {}
  local sha_all = util.sha256_new()
  local gen = state.generation
  for i, url in ipairs(urls) do
    local an = analyzer.new(is_video and "video" or "image", state.config.upload.hash)
    local res, err = httpc.request { url = url, method = "GET",
      headers = { ["Accept-Encoding"] = "identity" },
      connect_timeout_ms = cfg.connect_timeout_ms, read_timeout_ms = cfg.read_timeout_ms }
    if post.status ~= "PROCESSING_DOWNLOAD" or gen ~= state.generation then httpc.close(res); return end
    if not res then
      post.pull_error = url .. ": " .. err
      return M.fail(post, pull_failed)
    end
    if res.status ~= 200 then
      httpc.close(res)
      local redirect = res.status >= 300 and res.status < 400
      post.pull_error = url .. ": HTTP " .. res.status .. (redirect and " (redirects are not followed)" or "")
      return M.fail(post, pull_failed)
    end
    local limit = is_video and 4294967296 or MAX_IMAGE_BYTES + 1
    local why
    local ok, rerr = httpc.read_body(res, function(piece)
      if post.status ~= "PROCESSING_DOWNLOAD" or gen ~= state.generation then why = "stopped"; return false end
      if ngx.now() > deadline then why = "download timed out"; return false end
      an:feed(piece)
      if post.media_type == "PHOTO" then sha_all:update(piece) end
      post.downloaded_bytes = post.downloaded_bytes + #piece
      post.bytes_received = post.downloaded_bytes
      if an.bytes > limit then why = "too large"; return false end
    end)
    httpc.close(res)
    -- cancelled, auth removed or sandbox reset meanwhile
    if post.status ~= "PROCESSING_DOWNLOAD" or gen ~= state.generation then return end
    if not ok then
      if why == "too large" and not is_video then
        results[i] = an:result()
        post.pull_error = url .. ": image larger than 20 MB"
        return M.fail(post, "picture_size_check_failed")
      end
      post.pull_error = url .. ": " .. (why or rerr)
      return M.fail(post, pull_failed)
    end
    results[i] = an:result()
  end
  post.download_done = true
  if not is_video and state.config.upload.hash then post.sha256 = sha_all:hex() end
  M.media_complete(post, results)
end

function M.start_pull(post, urls)
  later(state.config.delays.download_start_ms, function()
    if post.status == "PROCESSING_DOWNLOAD" then download(post, urls) end
  end)
end

-- Cancel a PULL_FROM_URL task that is still downloading.
function M.cancel(post)
  if post.source ~= "PULL_FROM_URL" then return nil, "only PULL_FROM_URL downloads can be cancelled" end
  if post.status ~= "PROCESSING_DOWNLOAD" or post.download_done then
    return nil, "the task is no longer downloading (status " .. post.status .. ")"
  end
  M.fail(post, "publish_cancelled")
  return true
end

-- The creator (or the developer) removed the app's access: unfinished posts fail.
function M.auth_removed(client_key, open_id)
  for _, id in ipairs(state.post_order) do
    local p = state.posts[id]
    if p and p.client_key == client_key and p.open_id == open_id and not M.is_final(p) then
      M.fail(p, "auth_removed")
    end
  end
end

return M
