-- tiktok.errors: the one place where failures become error objects.
--
-- Every runtime failure of lua-tiktok is returned as `nil, err`, where `err` is
-- a table made by this module: `err.code` (a TikTok code such as
-- `spam_risk_too_many_posts` or a local one such as `invalid_settings`),
-- `err.message` (a sentence that says what to do), `err.retryable` (always a
-- boolean: true when repeating the same call later may succeed) and, where
-- known, `http_status`, `log_id`, `problems`, `publish_id`, `detail` (TikTok's
-- own text), `retry_after` (seconds), `reauth` (the account must be connected
-- again), `fail_reason` and `endpoint`.
--
-- Secrets: nothing here ever puts a token, authorization code or client
-- secret into an error. Text that comes from outside (TikTok's messages,
-- libcurl's messages) goes through `redact` with the caller's secrets, has
-- query strings of URLs removed, control characters replaced and its length
-- capped before it is stored in `err.detail`.

local setmetatable, getmetatable = setmetatable, getmetatable
local type, tostring, pairs, ipairs, error = type, tostring, pairs, ipairs, error
local floor = math.floor
local concat, sort = table.concat, table.sort
local find, sub, gsub, format, byte, lower, match =
    string.find, string.sub, string.gsub, string.format, string.byte,
    string.lower, string.match

local _M = { _VERSION = "0.1.0" }

local DAY = 86400

-- Longest TikTok or transport text kept in err.detail, in bytes.
local MAX_DETAIL = 300
-- Longest error code taken from a TikTok body.
local MAX_CODE = 64

-- Every code this library can return. `message` is the fix, written for the
-- person who reads the log; `retryable` says whether the same call may
-- succeed later without changing anything; `reauth` says the account must be
-- connected again; `retry_after` is the wait in seconds for daily caps.
local codes = {
    -- OAuth `error` values (Login Kit v2, reference section 2.9)
    access_denied = {
        message = "the TikTok user (or TikTok) refused the authorization; "
            .. "ask the user to connect again and approve the requested permissions",
        class = "refused",
    },
    invalid_client = {
        message = "TikTok rejected the app credentials; check client_key and "
            .. "client_secret against the TikTok developer portal (and that they "
            .. "belong to the same app or sandbox)",
        class = "refused",
    },
    invalid_grant = {
        message = "the authorization code or refresh token is invalid, expired or "
            .. "revoked (or redirect_uri differs from the one used to authorize); "
            .. "reconnect the account",
        class = "reconnect",
        reauth = true,
    },
    invalid_request = {
        message = "TikTok rejected the OAuth request as malformed; check that "
            .. "redirect_uri matches the registered one exactly and that the code "
            .. "and code_verifier come from the same authorization",
        class = "invalid",
    },
    invalid_scope = {
        message = "a requested scope is unknown or not enabled for this app; "
            .. "request only scopes the app is approved for in the TikTok "
            .. "developer portal",
        class = "invalid",
    },
    unauthorized_client = {
        message = "this app may not use this authorization method; check the "
            .. "app's Login Kit products and platforms in the TikTok developer portal",
        class = "refused",
    },
    unsupported_grant_type = {
        message = "TikTok does not support this grant type; this is a bug in "
            .. "lua-tiktok, please report it with the log_id",
        class = "invalid",
    },
    unsupported_response_type = {
        message = "TikTok does not support this response type; this is a bug in "
            .. "lua-tiktok, please report it with the log_id",
        class = "invalid",
    },
    server_error = {
        message = "TikTok's authorization server failed; retry in a moment",
        class = "upstream",
    },
    temporarily_unavailable = {
        message = "TikTok's authorization server is temporarily unavailable; "
            .. "retry later",
        class = "upstream",
    },

    -- Global v2 API codes (section 8.2)
    access_token_invalid = {
        message = "the access token is invalid or expired; refresh it (lua-tiktok "
            .. "does this by itself) and reconnect the account if refreshing fails",
        class = "reconnect",
    },
    internal_error = {
        message = "TikTok had an internal error; retry later",
        class = "upstream",
    },
    invalid_file_upload = {
        message = "the uploaded file does not meet TikTok's media rules (MP4, WebM "
            .. "or MOV; H.264, H.265, VP8 or VP9; 23 to 60 fps; 360 to 4096 px per "
            .. "side; at most 4 GB); convert the file and post again",
        class = "invalid",
    },
    invalid_params = {
        message = "TikTok rejected a request field as invalid; TikTok's own text "
            .. "(err.detail) names it",
        class = "invalid",
    },
    invalid_param = {
        message = "TikTok rejected a request field as invalid; TikTok's own text "
            .. "(err.detail) names it",
        class = "invalid",
    },
    rate_limit_exceeded = {
        message = "too many requests to TikTok for this account in the last "
            .. "minute; wait a minute and retry",
        class = "throttled",
        retry_after = 60,
    },
    scope_not_authorized = {
        message = "the account did not grant the permission (scope) this call "
            .. "needs; reconnect the account and grant the scope",
        class = "reconnect",
        reauth = true,
    },
    scope_permission_missed = {
        message = "some requested fields need scopes the account did not grant; "
            .. "reconnect the account with those scopes or ask for fewer fields",
        class = "reconnect",
    },

    -- Content Posting codes (section 8.3)
    spam_risk_too_many_posts = {
        message = "this TikTok account has reached its daily limit of posts made "
            .. "through apps (about 15 in 24 hours, shared by all apps); try again "
            .. "in 24 hours or post from the TikTok app",
        class = "capped",
        retry_after = DAY,
    },
    spam_risk_user_banned_from_posting = {
        message = "TikTok has banned this account from posting; the creator must "
            .. "resolve it with TikTok, do not retry",
        class = "refused",
    },
    spam_risk_too_many_pending_share = {
        message = "this account already has 5 inbox uploads waiting within 24 "
            .. "hours; the creator must post or delete them in the TikTok app, or "
            .. "wait 24 hours, before uploading more",
        class = "capped",
        retry_after = DAY,
    },
    reached_active_user_cap = {
        message = "this app has reached TikTok's daily limit of active posting "
            .. "users (5 for an app that has not passed the audit); try again in "
            .. "24 hours or ask TikTok for a higher quota",
        class = "capped",
        retry_after = DAY,
    },
    unaudited_client_can_only_post_to_private_accounts = {
        message = "this app has not passed TikTok's audit: the TikTok ACCOUNT must "
            .. "be set to private and privacy must be SELF_ONLY until the app "
            .. "passes TikTok's audit",
        class = "invalid",
    },
    url_ownership_unverified = {
        message = "TikTok pulls media only from URLs the app owns: verify the "
            .. "domain or URL prefix in the TikTok developer portal (Manage URL "
            .. "properties), or post the file with video_file",
        class = "invalid",
    },
    privacy_level_option_mismatch = {
        message = "the privacy level is missing or not one TikTok offers this "
            .. "account; query creator info and choose one of its "
            .. "privacy_level_options",
        class = "invalid",
    },
    app_version_check_failed = {
        message = "the creator's TikTok app is too old for inbox photo uploads "
            .. "(version 31.8 or later is needed); ask the creator to update it",
        class = "invalid",
    },
    token_not_authorized_for_specified_publish_id = {
        message = "this publish_id belongs to another account or app; use the "
            .. "account that created the post",
        class = "refused",
    },
    publish_not_cancellable = {
        message = "the post can no longer be cancelled: TikTok has already "
            .. "downloaded it or it is in a final state",
        class = "invalid",
    },
    invalid_publish_id = {
        message = "TikTok does not know this publish_id; check that it is copied "
            .. "exactly (as a string) and belongs to this account",
        class = "invalid",
    },

    -- fail_reason values of a FAILED post (section 8.4); the two spam_risk
    -- codes above are fail reasons too
    file_format_check_failed = {
        message = "TikTok could not accept the media format; use MP4 (H.264) "
            .. "video, or JPEG or WebP photos, and post again",
        class = "invalid",
    },
    duration_check_failed = {
        message = "TikTok rejected the video's duration; keep it within this "
            .. "creator's own limit (creator_info's max_video_post_duration_sec, "
            .. "which differs from creator to creator) and post again",
        class = "invalid",
    },
    frame_rate_check_failed = {
        message = "TikTok rejected the video's frame rate; use 23 to 60 frames "
            .. "per second and post again",
        class = "invalid",
    },
    picture_size_check_failed = {
        message = "TikTok rejected the picture size; videos need 360 to 4096 px "
            .. "per side and photos at most 1080p (one bad photo fails the whole "
            .. "post)",
        class = "invalid",
    },
    internal = {
        message = "TikTok failed while processing the post (a temporary server "
            .. "problem); post again later",
        class = "upstream",
    },
    video_pull_failed = {
        message = "TikTok could not download the video: check that the URL is "
            .. "public, does not redirect and is fast enough to finish within an "
            .. "hour, then post again",
        class = "upstream",
    },
    photo_pull_failed = {
        message = "TikTok could not download a photo: check that every URL is "
            .. "public, does not redirect and is fast enough to finish within an "
            .. "hour, then post again",
        class = "upstream",
    },
    publish_cancelled = {
        message = "the post was cancelled before TikTok finished downloading it",
        class = "refused",
    },
    auth_removed = {
        message = "the creator removed this app's access while the post was "
            .. "processing; reconnect the account before posting again",
        class = "reconnect",
        reauth = true,
    },
    spam_risk_text = {
        message = "TikTok judged the caption text as risky or spam; change the "
            .. "caption (fewer hashtags, mentions or links) before posting again",
        class = "invalid",
    },
    spam_risk = {
        message = "TikTok judged the post as risky; do not retry it as it is",
        class = "invalid",
    },

    -- Local codes
    invalid_settings = {
        message = "the post settings break one or more rules; err.problems lists "
            .. "what to change",
        class = "invalid",
    },
    invalid_argument = {
        message = "an argument has a value that cannot be used; fix it and call "
            .. "again",
        class = "usage",
    },
    missing_variable = {
        message = "the template uses variables that were not given; add them to "
            .. "vars",
        class = "usage",
    },
    invalid_template = {
        message = "the template has a malformed {{...}} tag; a tag holds a name "
            .. "made of letters, digits and _ with dots between parts",
        class = "usage",
    },
    state_mismatch = {
        message = "the OAuth state sent back by TikTok does not match the one this "
            .. "app sent (a stale, replayed or forged callback); start connecting "
            .. "the account again",
        class = "usage",
    },
    forbidden = {
        message = "this account is not visible to the acting user or workspace; "
            .. "use an account you own or one shared with your workspace",
        class = "refused",
    },
    not_found = {
        message = "no such account is stored; connect the account first",
        class = "missing",
    },
    reauthorize = {
        message = "the account's authorization has expired or been revoked; "
            .. "reconnect the account",
        class = "reconnect",
        reauth = true,
    },
    timeout = {
        message = "the request to TikTok timed out; check the network, or raise "
            .. "timeout_ms, and retry",
        class = "transient",
    },
    tls = {
        message = "the server certificate could not be verified; set ca_file to "
            .. "the CA bundle that signed it",
        class = "network",
    },
    network = {
        message = "could not reach TikTok (name lookup, connection refused or "
            .. "reset); check the network and proxy settings and retry",
        class = "transient",
    },
    http = {
        message = "TikTok answered with an unexpected HTTP status; retry later, "
            .. "and report it with the log_id if it persists",
        class = "unexpected",
    },
    bad_response = {
        message = "TikTok's answer could not be read (not JSON, truncated or "
            .. "missing fields) and the request may have been processed; check "
            .. "before repeating it, and report it with the log_id if it persists",
        class = "unexpected",
    },
    upload_failed = {
        message = "uploading the video to TikTok failed (the upload URL expired, "
            .. "or TikTok refused a chunk); start a new post",
        class = "refused",
    },
    file = {
        message = "the video file cannot be used; give the path of an existing, "
            .. "readable, non-empty regular file",
        class = "media",
    },
    unsupported_media = {
        message = "the file is not a video TikTok accepts; convert it to MP4 "
            .. "(H.264), MOV or WebM",
        class = "media",
    },
    ambiguous = {
        message = "the request may or may not have reached TikTok; do not repeat "
            .. "it blindly: check the post's status (publish_id) or the TikTok "
            .. "profile before posting again",
        class = "network",
    },
    store = {
        message = "the token store could not be read or written; check its path, "
            .. "permissions and free disk space",
        class = "local",
    },
    interrupted = {
        message = "the work was stopped on request (a signal, or on_progress returned false); nothing "
            .. "was lost: continue it later (tiktok.resume, or the job's next worker)",
        class = "transient",
    },
    busy = {
        message = "another process holds the lock for this account (for example "
            .. "while it refreshes the token); retry shortly",
        class = "contended",
    },
    publish_failed = {
        message = "TikTok reported the post as failed without giving a reason; "
            .. "check the post in the TikTok app and post again",
        class = "refused",
    },
    relay_refused = {
        message = "the video URL cannot be relayed (not https, a redirect to a "
            .. "non-https URL or a private address, or too large); give a public "
            .. "https URL of the video",
        class = "invalid",
    },
}

-- What an error's class means for whoever handles it: whether the same call
-- may succeed later unchanged (`retryable`), the command line's exit status
-- and the HTTP status a web app answers. Every code above names its class;
-- nothing else decides these.
local CLASSES = {
    usage      = { retryable = false, exit = 2, http = 400 },  -- the caller's arguments are wrong
    invalid    = { retryable = false, exit = 3, http = 422 },  -- breaks TikTok's rules: change the post
    refused    = { retryable = false, exit = 3, http = 403 },  -- TikTok refuses this app or account
    reconnect  = { retryable = false, exit = 3, http = 409 },  -- the account must be connected again
    throttled  = { retryable = true,  exit = 3, http = 429 },  -- a per-minute limit: retry_after
    capped     = { retryable = false, exit = 3, http = 429 },  -- a daily cap: retry_after (a day)
    upstream   = { retryable = true,  exit = 3, http = 503 },  -- TikTok's side failed: retry later
    unexpected = { retryable = false, exit = 3, http = 502 },  -- TikTok answered something unreadable
    transient  = { retryable = true,  exit = 4, http = 503 },  -- the network: retry
    network    = { retryable = false, exit = 4, http = 502 },  -- TLS, or an outcome nobody knows
    media      = { retryable = false, exit = 5, http = 422 },  -- the video file itself
    missing    = { retryable = false, exit = 5, http = 404 },  -- no such account here
    contended  = { retryable = true,  exit = 5, http = 503 },  -- another process holds the lock
    ["local"]  = { retryable = false, exit = 5, http = 500 },  -- this machine's store
}_M.CLASSES = CLASSES

for code, entry in pairs(codes) do
    local class = CLASSES[entry.class]
    if not class then
        error("tiktok.errors: code '" .. code .. "' has no valid class", 0)
    end
    entry.retryable = class.retryable
end

_M.codes = codes

-- The class of a TikTok code this catalogue does not know: by HTTP status.
local function unknown_class(status)
    if status ~= nil and (status >= 500 or status == 429) then
        return "upstream"
    end
    return "refused"
end

--- errors.class(err) -> the class entry { name, retryable, exit, http }
function _M.class(err)
    local name = type(err) == "table" and err.class or nil
    if not CLASSES[name] then
        local entry = codes[type(err) == "table" and err.code or err]
        name = entry and entry.class or "refused"
    end
    local c = CLASSES[name]
    return { name = name, retryable = c.retryable, exit = c.exit, http = c.http }
end

--- errors.read_again(err) -> true when a read (a status fetch, creator
-- info) that failed with err is worth repeating: a transient failure or a
-- per-minute limit, or an answer that was lost or could not be read (a read
-- changes nothing at TikTok, so repeating it is safe; an init never is).
local READ_AGAIN = { bad_response = true, http = true, ambiguous = true }
function _M.read_again(err)
    local name = _M.class(err).name
    return name == "transient" or name == "upstream" or name == "throttled" or READ_AGAIN[err.code] == true
end

--- errors.exit_code(err) -> the command line's exit status for err
function _M.exit_code(err)
    return CLASSES[_M.class(err).name].exit
end

--- errors.http_status(err) -> the HTTP status a web app answers for err
function _M.http_status(err)
    return CLASSES[_M.class(err).name].http
end

-- Scope each endpoint needs, for a scope_not_authorized message that names it.
local ENDPOINT_SCOPES = {
    ["/v2/user/info/"] = "user.info.basic",
    ["/v2/post/publish/creator_info/query/"] = "video.publish",
    ["/v2/post/publish/video/init/"] = "video.publish",
    ["/v2/post/publish/inbox/video/init/"] = "video.upload",
    ["/v2/post/publish/content/init/"] = "video.publish (direct) or video.upload (inbox)",
    ["/v2/post/publish/status/fetch/"] = "video.publish or video.upload",
    ["/v2/post/publish/cancel/"] = "video.publish or video.upload",
}

-- Fields an error object may carry besides code and message.
local FIELDS = {
    http_status = "number",
    log_id = "string",
    retryable = "boolean",
    problems = "table",
    publish_id = "string",
    detail = "string",
    retry_after = "number",
    reauth = "boolean",
    fail_reason = "string",
    endpoint = "string",
    class = "string",
    choices = "table",
    fields = "table",
}

local mt = { __name = "tiktok.error" }

mt.__tostring = function(err)
    local parts = {}
    if err.http_status then
        parts[#parts + 1] = "http " .. format("%d", err.http_status)
    end
    if err.log_id then
        parts[#parts + 1] = "log_id " .. err.log_id
    end
    if err.publish_id then
        parts[#parts + 1] = "publish_id " .. err.publish_id
    end
    local detail = err.detail
    if detail and detail ~= "" and not find(err.message, detail, 1, true) then
        parts[#parts + 1] = 'detail "' .. detail .. '"'
    end
    local s = "tiktok: " .. tostring(err.code) .. ": " .. tostring(err.message)
    if #parts > 0 then
        s = s .. " (" .. concat(parts, ", ") .. ")"
    end
    return s
end


-- `"post failed: " .. err` works as it would with a string.
mt.__concat = function(a, b)
    return tostring(a) .. tostring(b)
end


-- Percent-encoded form of s (RFC 3986 unreserved characters kept), so that a
-- secret echoed back inside a URL is found too.
local function percent_encode(s)
    return (gsub(s, "[^%w%-%._~]", function(c)
        return format("%%%02X", byte(c))
    end))
end


local TOKEN_PREFIXES = { "act", "rft", "clt" }

-- Replaces every byte covered by an occurrence of any secret (also its
-- percent-encoded form) with "[redacted]". Overlapping occurrences are merged,
-- so no byte of any occurrence survives whatever the order of the secrets.
function _M.redact(s, secrets)
    if s == nil then
        return nil
    end
    if type(s) ~= "string" then
        error("tiktok.errors.redact: text must be a string, got " .. type(s), 2)
    end
    if secrets == nil then
        secrets = {}
    end
    if type(secrets) ~= "table" then
        error("tiktok.errors.redact: secrets must be a table, got "
              .. type(secrets), 2)
    end

    local needles = {}
    for _, secret in pairs(secrets) do
        if type(secret) == "string" and secret ~= "" then
            needles[#needles + 1] = secret
            local enc = percent_encode(secret)
            if enc ~= secret then
                needles[#needles + 1] = enc
                local low = gsub(enc, "%%%x%x", lower)
                if low ~= enc then
                    needles[#needles + 1] = low
                end
            end
        end
    end
    local spans = {}
    -- Anything shaped like a TikTok token is removed even when this caller
    -- did not know it (an answer may echo another token back).
    for _, prefix in ipairs(TOKEN_PREFIXES) do
        local init = 1
        while true do
            local a, b = find(s, "%f[%w]" .. prefix .. "%.[^%s\"',;&<>)%]}]+", init)
            if not a then break end
            spans[#spans + 1] = { a, b }
            init = b + 1
        end
    end

    for _, needle in ipairs(needles) do
        local init = 1
        while true do
            local a, b = find(s, needle, init, true)
            if not a then
                break
            end
            spans[#spans + 1] = { a, b }
            init = a + 1
        end
    end
    if #spans == 0 then
        return s
    end

    sort(spans, function(x, y) return x[1] < y[1] end)

    local out = {}
    local pos = 1
    local i = 1
    while i <= #spans do
        local a, b = spans[i][1], spans[i][2]
        i = i + 1
        while i <= #spans and spans[i][1] <= b + 1 do
            if spans[i][2] > b then
                b = spans[i][2]
            end
            i = i + 1
        end
        out[#out + 1] = sub(s, pos, a - 1)
        out[#out + 1] = "[redacted]"
        pos = b + 1
    end
    out[#out + 1] = sub(s, pos)
    return concat(out)
end


-- Cuts s to at most n bytes without splitting a UTF-8 sequence.
local function truncate(s, n)
    if #s <= n then
        return s
    end
    local cut = n
    while cut > 0 do
        local b = byte(s, cut + 1)
        if b < 0x80 or b >= 0xC0 then
            break
        end
        cut = cut - 1
    end
    return sub(s, 1, cut) .. "..."
end


-- Removes the query string and fragment of every URL in s (presigned and
-- upload URLs carry credentials there). Linear: it looks for "://" and
-- scans forward, never backtracking over long runs of letters.
local function strip_queries(s)
    local out, pos, init = {}, 1, 1
    while true do
        local a = find(s, "://", init, true)
        if not a then break end
        local _, b = find(s, "^[^%s?#\"'<>]*", a + 3)
        local c = sub(s, b + 1, b + 1)
        if c == "?" or c == "#" then
            local _, e = find(s, "^[^%s\"'<>]*", b + 2)
            out[#out + 1] = sub(s, pos, b)
            out[#out + 1] = "?[query removed]"
            pos = e + 1
        end
        init = b + 1
    end
    if pos == 1 then return s end
    out[#out + 1] = sub(s, pos)
    return concat(out)
end


-- Makes outside text safe to keep and log, in time linear in what is kept:
-- the text is first cut to a window that still holds any secret starting
-- inside the part that is kept (so a cut can never hide half a secret from
-- redaction), then secrets are redacted, URL query strings and fragments
-- dropped, control characters replaced and the length capped.
local function clean_text(s, secrets)
    if type(s) ~= "string" or s == "" then
        return nil
    end
    local longest = 0
    for _, secret in pairs(secrets or {}) do
        if type(secret) == "string" and #secret > longest then longest = #secret end
    end
    local window = MAX_DETAIL + 3 * longest + 256
    if #s > window then s = sub(s, 1, window) end
    s = _M.redact(s, secrets)
    s = strip_queries(s)
    s = gsub(s, "%c", " ")
    s = truncate(s, MAX_DETAIL)
    if match(s, "^%s*$") then
        return nil
    end
    return s
end


-- A code taken from a TikTok body: kept when it looks like a code, otherwise
-- made into one (so it is safe to print and to compare).
local function clean_code(c)
    c = gsub(c, "[^%w_.%-]", "_")
    if #c > MAX_CODE then
        c = sub(c, 1, MAX_CODE)
    end
    return c
end


local function clean_log_id(v, secrets)
    if type(v) == "number" then
        if v == floor(v) and v >= 0 and v < 2^63 then
            return format("%d", v)
        end
        return nil
    end
    if type(v) == "string" and v ~= "" then
        return clean_text(v, secrets)
    end
    return nil
end


local function is_status(n)
    return type(n) == "number" and n == floor(n) and n >= 0 and n <= 999
end


-- Copies the optional fields of errors.new into err, checking each.
local function apply_fields(err, fields)
    for k, v in pairs(fields) do
        local want = FIELDS[k]
        if not want then
            error("tiktok.errors.new: unknown field '" .. tostring(k) .. "'", 3)
        end
        if v ~= nil and type(v) ~= want then
            error("tiktok.errors.new: field '" .. k .. "' must be a " .. want
                  .. ", got " .. type(v), 3)
        end
        if k == "problems" then
            local copy = {}
            for i, p in ipairs(v) do
                if type(p) ~= "string" then
                    error("tiktok.errors.new: problems must be strings", 3)
                end
                copy[i] = p
            end
            v = copy
        elseif k == "http_status" and not is_status(v) then
            error("tiktok.errors.new: http_status must be an integer 0-999", 3)
        end
        err[k] = v
    end
    if fields.class ~= nil then
        if not CLASSES[fields.class] then
            error("tiktok.errors.new: unknown class '" .. fields.class .. "'", 3)
        end
        if fields.retryable == nil then
            err.retryable = CLASSES[fields.class].retryable
        end
    end
end


--- errors.new(code, message, fields) -> err
-- `message` nil uses the table's message for `code`. `fields` may set any of
-- FIELDS; `retryable`, `reauth` and `retry_after` default to the table's.
function _M.new(code, message, fields)
    if type(code) ~= "string" or code == "" then
        error("tiktok.errors.new: code must be a non-empty string, got "
              .. type(code), 2)
    end
    if message ~= nil and type(message) ~= "string" then
        error("tiktok.errors.new: message must be a string or nil, got "
              .. type(message), 2)
    end
    if fields ~= nil and type(fields) ~= "table" then
        error("tiktok.errors.new: fields must be a table or nil, got "
              .. type(fields), 2)
    end

    local entry = codes[code]
    local err = {
        code = code,
        message = message
            or (entry and entry.message)
            or ("TikTok returned error code '" .. code .. "'"),
        class = entry and entry.class or "refused",
        retryable = entry and entry.retryable or false,
        reauth = entry and entry.reauth or nil,
        retry_after = entry and entry.retry_after or nil,
    }

    if fields then apply_fields(err, fields) end

    return setmetatable(err, mt)
end


function _M.is(x)
    return type(x) == "table" and getmetatable(x) == mt
end


-- The path part of an endpoint ("/v2/..../"), however the caller wrote it.
local function endpoint_path(endpoint)
    if not endpoint then
        return nil
    end
    local path = match(endpoint, "^%a[%w+.-]*://[^/]*(/[^?#]*)") or
                 match(endpoint, "^([^?#]*)")
    if sub(path, -1) ~= "/" then
        path = path .. "/"
    end
    return path
end


local function scope_hint(endpoint)
    local scope = ENDPOINT_SCOPES[endpoint_path(endpoint) or ""]
    if scope then
        return " (this call needs " .. scope .. ")"
    end
    return ""
end


-- Builds the error for a code read from a TikTok body (known or not).
local function from_code(code, status, detail, log_id, endpoint)
    local entry = codes[code]
    local message
    local retryable
    if entry then
        message = entry.message
        if code == "scope_not_authorized" or code == "scope_permission_missed" then
            message = message .. scope_hint(endpoint)
        end
    else
        message = "TikTok returned error code '" .. code .. "'"
        if detail then
            message = message .. ": " .. detail
        end
        retryable = unknown_class(status) == "upstream"
        if retryable then
            message = message .. "; retry later"
        else
            message = message .. "; see TikTok's message, and report it with "
                .. "the log_id if it is unclear"
        end
    end
    local err = _M.new(code, message, {
        http_status = status,
        log_id = log_id,
        detail = detail,
        endpoint = endpoint,
    })
    if retryable ~= nil then
        err.retryable = retryable
        err.class = unknown_class(status)
    end
    return err
end


-- Error for a response that carries no usable code.
local function from_status(status, log_id, endpoint, detail)
    local fields = {
        http_status = status,
        log_id = log_id,
        endpoint = endpoint,
        detail = detail,
    }
    if status >= 200 and status <= 299 then
        return _M.new("bad_response", nil, fields)
    end
    if status >= 500 then
        return _M.new("internal_error", nil, fields)
    end
    if status == 429 then
        return _M.new("rate_limit_exceeded", nil, fields)
    end
    local where = endpoint and (" from " .. match(endpoint, "^[^?#]*")) or ""
    return _M.new("http", format("TikTok answered with unexpected HTTP status "
        .. "%d%s; retry later, and report it with the log_id if it persists",
        status, where), fields)
end


--- errors.from_api(http_status, body, endpoint, secrets) -> nil | err
-- `body` is the decoded JSON (a table) or nil when the body could not be
-- decoded. Accepts the v2 envelope {data, error = {code, message, log_id}},
-- the bare {code, message, log_id} shape and, defensively, an OAuth-shaped
-- {error = "...", error_description = "..."} body. Returns nil only for a 2xx
-- status with error.code == "ok".
function _M.from_api(http_status, body, endpoint, secrets)
    if not is_status(http_status) then
        error("tiktok.errors.from_api: http_status must be an integer 0-999, got "
              .. tostring(http_status), 2)
    end
    if endpoint ~= nil and type(endpoint) ~= "string" then
        error("tiktok.errors.from_api: endpoint must be a string or nil", 2)
    end
    if secrets ~= nil and type(secrets) ~= "table" then
        error("tiktok.errors.from_api: secrets must be a table or nil", 2)
    end

    local ok2xx = http_status >= 200 and http_status <= 299

    if type(body) ~= "table" then
        return from_status(http_status, nil, endpoint)
    end

    local e
    if type(body.error) == "table" then
        e = body.error
    elseif type(body.error) == "string" and body.error ~= "" then
        -- OAuth shape on a v2 endpoint
        e = { code = body.error, message = body.error_description,
              log_id = body.log_id }
    elseif type(body.code) == "string" then
        e = body
    end

    if not e then
        return from_status(http_status, clean_log_id(body.log_id, secrets),
                           endpoint)
    end

    -- The common case first: success needs no cleaning of TikTok's text.
    if e.code == "ok" and ok2xx then
        return nil
    end

    local log_id = clean_log_id(e.log_id, secrets)
        or clean_log_id(e.logid, secrets)
        or clean_log_id(body.log_id, secrets)
    local detail = clean_text(e.message, secrets)
    local code = e.code

    if type(code) ~= "string" or code == "" then
        return from_status(http_status, log_id, endpoint, detail)
    end

    if code == "ok" then
        if ok2xx then
            return nil
        end
        return from_status(http_status, log_id, endpoint, detail)
    end

    return from_code(clean_code(code), http_status, detail, log_id, endpoint)
end


--- errors.from_oauth(http_status, body, secrets) -> nil | err
-- OAuth endpoints answer {error, error_description, log_id}. Success (nil)
-- only for a 2xx status and no `error` field; the caller still checks that
-- access_token is present.
function _M.from_oauth(http_status, body, secrets)
    if not is_status(http_status) then
        error("tiktok.errors.from_oauth: http_status must be an integer 0-999, got "
              .. tostring(http_status), 2)
    end
    if secrets ~= nil and type(secrets) ~= "table" then
        error("tiktok.errors.from_oauth: secrets must be a table or nil", 2)
    end

    local ok2xx = http_status >= 200 and http_status <= 299

    if type(body) ~= "table" then
        if http_status >= 500 then
            return _M.new("server_error", nil, { http_status = http_status })
        end
        return from_status(http_status, nil, nil)
    end

    local err_field = body.error
    if type(err_field) == "table" then
        -- a v2 envelope from an OAuth endpoint
        return _M.from_api(http_status, body, nil, secrets)
    end

    local log_id = clean_log_id(body.log_id, secrets)

    if err_field == nil or err_field == "" then
        if ok2xx then
            return nil
        end
        if http_status >= 500 then
            return _M.new("server_error", nil,
                          { http_status = http_status, log_id = log_id })
        end
        return from_status(http_status, log_id, nil)
    end

    local detail = clean_text(body.error_description, secrets)
    if type(err_field) ~= "string" then
        return _M.new("bad_response", nil, {
            http_status = http_status, log_id = log_id, detail = detail,
        })
    end
    return from_code(clean_code(err_field), http_status, detail, log_id, nil)
end


local TRANSPORT = { timeout = true, tls = true, network = true, ambiguous = true }

--- errors.from_transport(kind, detail, secrets) -> err
-- kind is "timeout", "tls", "network" or "ambiguous"; detail is the
-- transport's own text (libcurl's message), cleaned before it is kept.
function _M.from_transport(kind, detail, secrets)
    if not TRANSPORT[kind] then
        error("tiktok.errors.from_transport: kind must be timeout, tls, network "
              .. "or ambiguous, got " .. tostring(kind), 2)
    end
    if detail ~= nil and type(detail) ~= "string" then
        error("tiktok.errors.from_transport: detail must be a string or nil", 2)
    end
    if secrets ~= nil and type(secrets) ~= "table" then
        error("tiktok.errors.from_transport: secrets must be a table or nil", 2)
    end
    return _M.new(kind, nil, { detail = clean_text(detail, secrets) })
end


--- errors.from_fail_reason(reason, publish_id) -> err
-- For a status fetch that answered FAILED. An unknown reason keeps its name
-- as the code; a missing one gives `publish_failed`.
function _M.from_fail_reason(reason, publish_id)
    if reason ~= nil and type(reason) ~= "string" then
        error("tiktok.errors.from_fail_reason: reason must be a string or nil", 2)
    end
    if publish_id ~= nil and type(publish_id) ~= "string" then
        error("tiktok.errors.from_fail_reason: publish_id must be a string or nil",
              2)
    end
    if reason == nil or reason == "" then
        return _M.new("publish_failed", nil, { publish_id = publish_id })
    end
    local code = clean_code(reason)
    local message
    if not codes[code] then
        message = "TikTok reported the post as failed (" .. code .. "); check the "
            .. "post in the TikTok app, and report it with the publish_id if "
            .. "the reason is unclear"
    end
    return _M.new(code, message, { publish_id = publish_id, fail_reason = code })
end


--- errors.restore(t) -> err
-- Gives a plain table that crossed a boundary where metatables are lost
-- (ngx.run_worker_thread) its error behaviour back. Only known fields are kept.
function _M.restore(t)
    local err = { code = type(t.code) == "string" and t.code or "bad_response",
                  message = type(t.message) == "string" and t.message or "unknown error",
                  retryable = t.retryable == true }
    for k in pairs(FIELDS) do
        if t[k] ~= nil then err[k] = t[k] end
    end
    if t.sent ~= nil then err.sent = t.sent end
    return setmetatable(err, mt)
end


-- The code each kind of tiktok.core failure becomes (the kinds are listed
-- in src/core.h). Every other kind is an errno name from a file primitive
-- ("ENOENT", "EACCES", "ELOOP", ...) or "unsafe" (a store folder others can
-- write to) and becomes the caller's local code.
local CORE_CODES = {
    timeout = "timeout", tls = "tls", network = "network", aborted = "network",
    too_big = "bad_response", invalid = "invalid_argument", busy = "busy",
    unsupported_media = "unsupported_media", refused = "relay_refused", http = "http",
}
local CORE_TRANSPORT = { timeout = true, tls = true, network = true }
-- What to do about a file failure, by errno name.
local CORE_HINTS = {
    ENOENT = "check the path", ENOTDIR = "check the path",
    EISDIR = "give the path of a file, not of a folder",
    EACCES = "check the owner and permissions of the file and its folders",
    EPERM = "check the owner and permissions of the file and its folders",
    EROFS = "the file system is read-only", ENOSPC = "free some disk space",
    EDQUOT = "free some disk space (the disk quota is used up)",
}

--- errors.from_core(what, kind, message, sent, secrets, local_code) -> err
-- The one mapper from a tiktok.core failure (nil, kind, message[, sent]) to
-- an error object. `what` says what was being done ("token exchange", "chunk
-- upload", "video_file clip.mp4", "account store /path"); `local_code` is the
-- code for a local file failure: "file" (the default: the caller's video
-- file) or "store" (the account store). timeout, tls and network keep the
-- catalogue's sentence with the transport's text in err.detail; the other
-- codes take the text (with a hint for common errnos) as their message.
-- Text is cleaned with clean_text (secrets redacted, URL queries dropped,
-- length capped). `sent` (transfers only) is kept as the boolean err.sent:
-- whether any byte of the request may have reached the peer.
function _M.from_core(what, kind, message, sent, secrets, local_code)
    if type(what) ~= "string" or type(kind) ~= "string" then
        error("tiktok.errors.from_core: what and kind must be strings", 2)
    end
    if secrets ~= nil and type(secrets) ~= "table" then
        error("tiktok.errors.from_core: secrets must be a table or nil", 2)
    end
    if local_code ~= nil and local_code ~= "file" and local_code ~= "store" then
        error("tiktok.errors.from_core: local_code must be \"file\" or \"store\", got "
              .. tostring(local_code), 2)
    end
    local code = CORE_CODES[kind] or local_code or "file"
    local text = clean_text(what .. ": " .. tostring(message), secrets) or what
    local err
    if CORE_TRANSPORT[code] then
        err = _M.new(code, nil, { detail = text })
    else
        local hint = CORE_HINTS[kind]
        err = _M.new(code, hint and (text .. "; " .. hint) or text)
    end
    if sent ~= nil then err.sent = sent == true end
    return err
end

return _M
