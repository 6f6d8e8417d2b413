-- tiktok.api: the one place that builds each TikTok request and reads its
-- answer. Every function takes a context `ctx`:
--   { session = core session, api_base, client_key, client_secret,
--     timeout_ms, log = function(level, msg) | nil, secrets = {...} }
-- and returns a result table or nil, err (tiktok.errors). Nothing here
-- retries: the callers decide, because only they know whether a repeat
-- is safe (an init never is).
local util = require "tiktok.util"
local errors = require "tiktok.errors"
local post_fields = require "tiktok.fields"

local type, tostring, tonumber, concat, floor, select = type, tostring, tonumber, table.concat, math.floor, select

local _M = {}

local JSON_CT = "Content-Type: application/json; charset=UTF-8"
local FORM_CT = "Content-Type: application/x-www-form-urlencoded"

local function log(ctx, level, msg)
    if ctx.log then ctx.log(level, msg) end
end

-- Secrets this connection has handled (client secret first, then the most
-- recent codes, verifiers and tokens), for redacting text from outside.
local MAX_SECRETS = 32
local function remember(ctx, ...)
    local list = ctx.secrets
    for i = 1, select("#", ...) do
        local s = select(i, ...)
        if type(s) == "string" and s ~= "" then
            local seen = false
            for j = #list, 1, -1 do
                if list[j] == s then seen = true; break end
            end
            if not seen then
                list[#list + 1] = s
                if #list > MAX_SECRETS then table.remove(list, 2) end
            end
        end
    end
end
_M.remember = remember

-- A failed transfer of the C core as an error object (errors.from_core),
-- logged once.
local function transport_error(ctx, what, kind, message, sent)
    local err = errors.from_core(what, kind, message, sent, ctx.secrets)
    log(ctx, "warn", "tiktok: " .. what .. " failed: " .. err.code)
    return err
end

local function request(ctx, what, req)
    req.timeout_ms = req.timeout_ms or ctx.timeout_ms
    local res, kind, message, sent = ctx.session:request(req)
    if not res then
        return nil, transport_error(ctx, what, kind, message, sent)
    end
    log(ctx, "debug", "tiktok: " .. what .. " -> HTTP " .. res.status)
    return res
end

-- ------------------------------------------------------------------ OAuth

local function oauth(ctx, what, fields)
    for i = 1, #fields do
        local k = fields[i][1]
        if k == "code" or k == "refresh_token" or k == "code_verifier" or k == "token" then
            remember(ctx, fields[i][2])
        end
    end
    local res, err = request(ctx, what, {
        method = "POST", once = true,   -- a resent refresh would burn the rotated token
        url = ctx.api_base .. "/v2/oauth/token/",
        headers = { FORM_CT, "Cache-Control: no-cache", "Accept: application/json" },
        body = util.form(fields),
    })
    if not res then return nil, err end
    local body = util.json_decode(res.body)
    local e = errors.from_oauth(res.status, body, ctx.secrets)
    if e then return nil, e end
    if not body or type(body.access_token) ~= "string" or body.access_token == "" then
        return nil, errors.new("bad_response", "TikTok's token endpoint answered HTTP "
                               .. res.status .. " without an access_token", { http_status = res.status })
    end
    remember(ctx, body.access_token, body.refresh_token)
    return body
end

local function check_user_token(tok)
    if type(tok.open_id) ~= "string" or tok.open_id == ""
       or type(tok.refresh_token) ~= "string" or tok.refresh_token == ""
       or type(tok.expires_in) ~= "number" or type(tok.refresh_expires_in) ~= "number" then
        return nil, errors.new("bad_response", "TikTok's token answer lacks open_id, refresh_token, "
                               .. "expires_in or refresh_expires_in")
    end
    return tok
end

function _M.exchange_code(ctx, code, redirect_uri, code_verifier)
    local tok, err = oauth(ctx, "token exchange", {
        { "client_key", ctx.client_key }, { "client_secret", ctx.client_secret },
        { "code", code }, { "grant_type", "authorization_code" },
        { "redirect_uri", redirect_uri }, { "code_verifier", code_verifier },
    })
    if not tok then return nil, err end
    return check_user_token(tok)
end

function _M.refresh(ctx, refresh_token)
    local tok, err = oauth(ctx, "token refresh", {
        { "client_key", ctx.client_key }, { "client_secret", ctx.client_secret },
        { "grant_type", "refresh_token" }, { "refresh_token", refresh_token },
    })
    if not tok then return nil, err end
    return check_user_token(tok)
end

function _M.client_token(ctx)
    return oauth(ctx, "client token", {
        { "client_key", ctx.client_key }, { "client_secret", ctx.client_secret },
        { "grant_type", "client_credentials" },
    })
end

function _M.revoke(ctx, access_token)
    remember(ctx, access_token)
    local res, err = request(ctx, "revoke", {
        method = "POST", once = true,
        url = ctx.api_base .. "/v2/oauth/revoke/",
        headers = { FORM_CT, "Cache-Control: no-cache" },
        body = util.form({ { "client_key", ctx.client_key }, { "client_secret", ctx.client_secret },
                           { "token", access_token } }),
    })
    if not res then return nil, err end
    local body = util.json_decode(res.body)
    local e = errors.from_oauth(res.status, body, ctx.secrets)
    if e then return nil, e end
    return true
end

-- ------------------------------------------------------------ v2 API calls

local function api(ctx, what, token, path, body, method, once)
    local res, err = request(ctx, what, {
        method = method or "POST", once = once,
        url = ctx.api_base .. path,
        headers = { "Authorization: Bearer " .. token, JSON_CT },
        body = body,
    })
    if not res then return nil, err end
    local decoded = util.json_decode(res.body)
    remember(ctx, token)
    local e = errors.from_api(res.status, decoded, path, ctx.secrets)
    if e then return nil, e end
    return decoded.data or {}, decoded
end

function _M.user_info(ctx, token, fields)
    local data, err = api(ctx, "user info", token, "/v2/user/info/?fields="
                          .. util.pct_encode(concat(fields, ",")), nil, "GET")
    if not data then return nil, err end
    return data.user or {}
end

-- Returns the normalized creator_info table of api.md.
function _M.creator_info(ctx, token)
    local d, err = api(ctx, "creator info", token, "/v2/post/publish/creator_info/query/", "")
    if not d then return nil, err end
    if type(d.privacy_level_options) ~= "table" then
        return nil, errors.new("bad_response", "TikTok's creator_info answer has no privacy_level_options")
    end
    return {
        nickname = d.creator_nickname, username = d.creator_username,
        avatar_url = d.creator_avatar_url,
        privacy_level_options = d.privacy_level_options,
        comment_disabled = d.comment_disabled == true, duet_disabled = d.duet_disabled == true,
        stitch_disabled = d.stitch_disabled == true,
        max_video_post_duration_sec = d.max_video_post_duration_sec,
    }
end

-- Builds the init request for a normalized request (tiktok.settings): the
-- post's own fields come from the one field schema (tiktok.fields), so no
-- mode can drop or add a field by accident; this adds the source and the
-- endpoint. `upload` = { size, chunk_size, count } for FILE_UPLOAD.
local INIT_PATHS = {
    video = { direct = "/v2/post/publish/video/init/", inbox = "/v2/post/publish/inbox/video/init/" },
    photo = { direct = "/v2/post/publish/content/init/", inbox = "/v2/post/publish/content/init/" },
}

function _M.init_request(req, upload)
    local body = post_fields.body(req)
    local source_info = body.source_info or {}
    body.source_info = source_info
    source_info.source = req.source
    if req.source == "FILE_UPLOAD" then
        source_info.video_size = upload.size
        source_info.chunk_size = upload.chunk_size
        source_info.total_chunk_count = upload.count
    elseif req.kind == "video" then
        source_info.video_url = req.video_url
    else
        source_info.photo_images = req.photo_urls
        body.media_type = "PHOTO"
        body.post_mode = req.mode == "inbox" and "MEDIA_UPLOAD" or "DIRECT_POST"
        body.post_info = body.post_info or {}
    end
    return INIT_PATHS[req.kind][req.mode], body
end

function _M.init(ctx, token, req, upload)
    local path, body = _M.init_request(req, upload)
    -- once: libcurl must never resend an init on its own (a second post)
    local d, err = api(ctx, "init", token, path, util.json_encode(body), "POST", true)
    if not d then return nil, err end
    if type(d.publish_id) ~= "string" or d.publish_id == "" then
        return nil, errors.new("bad_response", "TikTok accepted the init but sent no publish_id")
    end
    if req.source == "FILE_UPLOAD" and type(d.upload_url) ~= "string" then
        return nil, errors.new("bad_response", "TikTok accepted the init but sent no upload_url",
                               { publish_id = d.publish_id })
    end
    return d
end

-- A byte count as an integer (cjson gives floats on Lua 5.4).
local function count(v)
    v = tonumber(v)
    return v and floor(v) or nil
end

local function id_list(v)
    local out = {}
    if type(v) == "table" then
        for i = 1, #v do out[#out + 1] = tostring(v[i]) end
    end
    return out
end

function _M.status(ctx, token, publish_id)
    local d, err = api(ctx, "status", token, "/v2/post/publish/status/fetch/",
                       util.json_encode({ publish_id = publish_id }))
    if not d then return nil, err end
    if type(d.status) ~= "string" then
        return nil, errors.new("bad_response", "TikTok's status answer has no status")
    end
    return {
        status = d.status,
        fail_reason = d.fail_reason ~= "" and d.fail_reason or nil,
        post_ids = id_list(d.publicaly_available_post_id),
        uploaded_bytes = count(d.uploaded_bytes),
        downloaded_bytes = count(d.downloaded_bytes),
    }
end

function _M.cancel(ctx, token, publish_id)
    local d, err = api(ctx, "cancel", token, "/v2/post/publish/cancel/",
                       util.json_encode({ publish_id = publish_id }), "POST", true)
    if not d then return nil, err end
    return true
end

-- POSTs a signed event to the application's own webhook URL (a
-- forwarder of tiktok.webhook). Returns true or nil, err.
function _M.send_webhook(ctx, url, signature, body)
    local res, err = request(ctx, "webhook delivery", {
        method = "POST", url = url, body = body,
        headers = { "Content-Type: application/json", "TikTok-Signature: " .. signature },
    })
    if not res then return nil, err end
    if res.status < 200 or res.status > 299 then
        return nil, errors.new("http", "the webhook URL answered HTTP " .. res.status .. " (2xx expected)",
                               { http_status = res.status })
    end
    return true
end

-- One chunk PUT. Returns { status, first, last, total } (the server's
-- progress from its Content-Range) or nil, err. chunk.nice and
-- chunk.buffer_size go to session:upload as they are (nil: unchanged).
function _M.put_chunk(ctx, upload_url, chunk)
    local res, kind, message, sent = ctx.session:upload({
        url = upload_url, path = chunk.path, offset = chunk.offset, length = chunk.length,
        total = chunk.total, content_type = chunk.content_type, progress = chunk.progress,
        timeout_ms = chunk.timeout_ms, nice = chunk.nice, buffer_size = chunk.buffer_size,
    })
    if not res then
        return nil, transport_error(ctx, "chunk upload", kind, message, sent)
    end
    log(ctx, "debug", "tiktok: chunk PUT -> HTTP " .. res.status)
    return require("tiktok.chunks").answer(res)
end

return _M
