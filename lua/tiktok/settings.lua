-- tiktok.settings: checks a post request against TikTok's rules and the
-- creator's current settings before anything is sent.
--
-- validate() collects every problem, each a sentence saying what to change,
-- and returns them all at once in err.problems (err.code "invalid_settings").
-- The rules come from the Content Posting API reference and TikTok's Content
-- Sharing Guidelines: privacy chosen by the user from the creator's
-- privacy_level_options with no default, interactions the creator disabled
-- stay off, branded content is never private, caption limits in UTF-16
-- units, per-mode fields (a field that a mode does not use is refused, not
-- silently dropped), verified pull URLs, and the unaudited-app restriction.
--
-- Wrong argument types and unknown option names are programmer errors and
-- raise; wrong values in the request are user data and become problems.

local type, tostring, pairs, ipairs, error = type, tostring, pairs, ipairs, error
local floor, huge = math.floor, math.huge
local concat = table.concat
local find, sub, lower, upper, format, match, gsub =
    string.find, string.sub, string.lower, string.upper, string.format,
    string.match, string.gsub

local errors = require "tiktok.errors"
local template = require "tiktok.template"
local fields = require "tiktok.fields"
local util = require "tiktok.util"

local utf16_len = template.utf16_len

local _M = { _VERSION = "0.1.0" }

-- The privacy levels TikTok knows, in the order TikTok lists them.
local PRIVACY_LEVELS = {
    "PUBLIC_TO_EVERYONE",
    "MUTUAL_FOLLOW_FRIENDS",
    "FOLLOWER_OF_CREATOR",
    "SELF_ONLY",
}
_M.PRIVACY_LEVELS = PRIVACY_LEVELS

local PRIVACY_SET = {}
for _, p in ipairs(PRIVACY_LEVELS) do
    PRIVACY_SET[p] = true
end

-- Common wrong spellings and what was most likely meant.
local PRIVACY_GUESS = {
    private = "SELF_ONLY", only_me = "SELF_ONLY", onlyme = "SELF_ONLY",
    self = "SELF_ONLY", self_only = "SELF_ONLY", me = "SELF_ONLY",
    public = "PUBLIC_TO_EVERYONE", everyone = "PUBLIC_TO_EVERYONE",
    public_to_everyone = "PUBLIC_TO_EVERYONE", all = "PUBLIC_TO_EVERYONE",
    friends = "MUTUAL_FOLLOW_FRIENDS", mutual = "MUTUAL_FOLLOW_FRIENDS",
    mutual_friends = "MUTUAL_FOLLOW_FRIENDS",
    mutual_follow_friends = "MUTUAL_FOLLOW_FRIENDS",
    followers = "FOLLOWER_OF_CREATOR", follower = "FOLLOWER_OF_CREATOR",
    follower_of_creator = "FOLLOWER_OF_CREATOR",
}

local MODE_GUESS = {
    draft = "inbox", upload = "inbox", media_upload = "inbox",
    direct_post = "direct", post = "direct", publish = "direct",
}

-- Limits, in UTF-16 code units unless the name says otherwise.
local LIMITS = {
    video_caption = 2200,
    photo_title = 90,
    photo_description = 4000,
    photo_count = 35,
    cover_ms_max = 2147483647,          -- video_cover_timestamp_ms is int32
}
_M.LIMITS = LIMITS

-- Every key validate() accepts in `request`: the post's fields (any type:
-- they are user data, judged by the rules), the options tiktok.post takes
-- besides them (checked by type, ignored here), and the duration the caller
-- read from the file. Exported so that a caller can copy exactly these
-- keys out of a larger table.
local ACCEPTED = {
    connection = "table", account = "string", as = "table", vars = "table", wait = "boolean",
    on_progress = "function", on_publish = "function", on_init = "function", wait_timeout_ms = "number",
    detach = "boolean",
    wording = "string", duration_sec = "any",
}
for _, f in ipairs(fields.list) do ACCEPTED[f.name] = "field" end
_M.FIELDS = ACCEPTED

local OPTS = { audited = true, verified_prefixes = true, wording = true }

local CREATOR_BOOLEANS = { "comment_disabled", "duet_disabled", "stitch_disabled" }
local CREATOR_STRINGS = { "nickname", "username", "avatar_url" }

local MUSIC = "https://www.tiktok.com/legal/page/global/music-usage-confirmation/en"
local BC_POLICY = "https://www.tiktok.com/legal/page/global/bc-policy/en"


local function is_int(n)
    return type(n) == "number" and n == floor(n) and n > -huge and n < huge
end


local function describe(v)
    local tv = type(v)
    if tv == "string" then
        if #v > 30 then
            v = sub(v, 1, 30) .. "..."
        end
        return '"' .. gsub(v, "[%c\"\\]", "?") .. '"'
    end
    if tv == "number" or tv == "boolean" or tv == "nil" then
        return tostring(v)
    end
    return "a " .. tv
end


local function is_array(t)
    local n = #t
    local count = 0
    for k in pairs(t) do
        if not is_int(k) or k < 1 or k > n then
            return false
        end
        count = count + 1
    end
    return count == n
end


-- A URL as it may be shown in a problem: no userinfo, no query, no
-- fragment (presigned URLs carry credentials there), not too long.
local function show_url(u)
    local s = gsub(u, "[?#].*$", "")
    s = gsub(s, "^(%a[%w+.-]*://)[^/@]*@", "%1")
    s = gsub(s, "%c", "?")
    if #s > 80 then
        s = sub(s, 1, 80) .. "..."
    end
    if s ~= u then
        s = s .. " (shortened)"
    end
    return s
end


-- Checks the list given as opts.verified_prefixes (configuration, so a bad
-- entry raises) and returns { prefixes = {...}, domains = {...} }.
local function compile_verified(list)
    if list == nil then
        return nil
    end
    if type(list) ~= "table" then
        error("tiktok.settings.validate: opts.verified_prefixes must be a list "
              .. "of strings, got " .. type(list), 3)
    end
    local v = { prefixes = {}, domains = {} }
    for i, entry in ipairs(list) do
        if type(entry) ~= "string" then
            error("tiktok.settings.validate: opts.verified_prefixes[" .. i
                  .. "] must be a string", 3)
        end
        local domain = match(entry, "^domain:(.+)$")
        if domain then
            domain = lower(domain)
            if sub(domain, -1) == "." then
                domain = sub(domain, 1, -2)
            end
            if not match(domain, "^[%w][%w.-]*$") or find(domain, "..", 1, true) then
                error("tiktok.settings.validate: opts.verified_prefixes[" .. i
                      .. "] is not a domain: '" .. entry .. "'", 3)
            end
            v.domains[#v.domains + 1] = domain
        else
            local scheme, host, path = match(entry, "^(%a[%w+.-]*)://([^/?#]+)(/.*)$")
            if not scheme or lower(scheme) ~= "https" or sub(path, -1) ~= "/"
               or find(entry, "[?#@%s]") then
                error("tiktok.settings.validate: opts.verified_prefixes[" .. i
                      .. "] must be 'https://host/path/' (ending in '/') or "
                      .. "'domain:example.com', got '" .. entry .. "'", 3)
            end
            v.prefixes[#v.prefixes + 1] = "https://" .. lower(host) .. path
        end
    end
    return v
end


-- Is the URL (normalized) under a verified prefix or domain?
local function is_verified(verified, norm, host)
    for _, prefix in ipairs(verified.prefixes) do
        if sub(norm, 1, #prefix) == prefix then return true end
    end
    if sub(host, -1) == "." then host = sub(host, 1, -2) end
    for _, d in ipairs(verified.domains) do
        if host == d or (#host > #d and sub(host, -#d - 1) == "." .. d) then return true end
    end
    return false
end


--- settings.url_verified(url, verified_prefixes) -> true | false, or nil
-- when the URL cannot be read: is it under one of the verified prefixes
-- or domains (the list tiktok.connect's verified_prefixes takes)?
function _M.url_verified(url, list)
    local verified = compile_verified(list)
    local u = util.parse_url(url)
    if not u or not verified then return nil end
    local norm = u.scheme .. "://" .. u.host .. (u.port and (":" .. u.port) or "") .. u.path
                 .. (u.query and ("?" .. u.query) or "")
    return is_verified(verified, norm, u.host)
end

-- Checks one pull URL; adds each problem. Returns nothing.
local function check_url(add, field, name, u, verified, kind)
    if type(u) ~= "string" then
        add(field, "%s must be a URL string, got %s.", name, describe(u))
        return
    end
    if u == "" then
        add(field, "%s is empty; give the https URL of the media.", name)
        return
    end
    if find(u, "[%s%c]") then
        add(field, "%s contains spaces, line breaks or control characters; "
            .. "percent-encode them (a space is %%20).", name)
        return
    end
    -- The one URL parser (tiktok.util); only the reason it fails is told
    -- apart here, for the message.
    local parsed = util.parse_url(u)
    if not parsed then
        if not match(u, "^%a[%w+.-]*://") then
            add(field, "%s %s is not an absolute URL; give a full https:// URL.", name, show_url(u))
        else
            add(field, "%s %s has no valid host; give a URL like "
                .. "https://cdn.example.com/video.mp4.", name, show_url(u))
        end
        return
    end
    if parsed.userinfo then
        add(field, "%s must not contain a user name or password (user@host); "
            .. "remove it.", name)
        return
    end
    local scheme, host = parsed.scheme, parsed.host
    local port = parsed.port and (":" .. parsed.port) or ""
    local path = parsed.path .. (parsed.query and ("?" .. parsed.query) or "")
    local loopback = util.is_loopback(host)

    -- http is allowed only for a local test server
    if scheme ~= "https" and not (scheme == "http" and loopback) then
        if scheme == "http" then
            add(field, "%s %s uses http; TikTok pulls only https URLs (http is "
                .. "accepted only for 127.0.0.1, localhost and [::1]).", name, show_url(u))
            return
        else
            add(field, "%s %s uses the %s scheme; TikTok pulls only https URLs.", name, show_url(u), scheme)
            return
        end
    end
    if parsed.fragment then
        add(field, "%s must not contain a fragment (#...); remove it.", name)
        return
    end
    if not loopback and (match(host, "^%d+%.%d+%.%d+%.%d+$")
                         or sub(host, 1, 1) == "[") then
        add(field, "%s %s uses an IP address; TikTok pulls only from verified "
            .. "domains or URL prefixes, which cannot be IP addresses: use a "
            .. "domain name.", name, show_url(u))
        return
    end

    if verified and not is_verified(verified, scheme .. "://" .. host .. port .. path, host) then
        local alt = kind == "photo"
            and "photos can only be pulled from URLs"
            or "or post the file with video_file"
        add(field, "%s %s is not under a verified domain or URL prefix, so TikTok "
            .. "would refuse it (url_ownership_unverified): verify the "
            .. "domain or URL prefix in the TikTok developer portal (Manage "
            .. "URL properties) and add it to verified_prefixes, %s.", name, show_url(u), alt)
    end
end


-- Checks a text field: type, NUL, UTF-8, length. Returns nothing.
local function check_text(add, field, name, s, limit, what)
    if type(s) ~= "string" then
        add(field, "%s must be a string, got %s.", name, describe(s))
        return
    end
    if find(s, "\0", 1, true) then
        add(field, "%s contains a NUL byte; remove it.", name)
        return
    end
    local n, err = utf16_len(s)
    if not n then
        add(field, "%s is not valid UTF-8 (%s); save the text as UTF-8.", name, err.problems[1])
        return
    end
    if limit and n > limit then
        add(field, "%s is %d UTF-16 units long, but %s may be at most %d; shorten it "
            .. "by %d.", name, n, what, limit, n - limit)
    end
end


-- A duration for a message: "181 s", and the minutes when it is a whole
-- number of them ("3600 s (60 minutes)").
local function seconds(n)
    local text = format("%.14g s", n)
    if n >= 60 and n % 60 == 0 then
        local m = n / 60
        text = text .. format(" (%d minute%s)", m, m == 1 and "" or "s")
    end
    return text
end


local function list_levels(levels)
    return concat(levels, ", ")
end


local function check_creator_info(ci)
    if type(ci) ~= "table" then
        error("tiktok.settings.validate: creator_info must be a table, got "
              .. type(ci), 3)
    end
    local opts = ci.privacy_level_options
    if type(opts) ~= "table" then
        error("tiktok.settings.validate: creator_info.privacy_level_options "
              .. "must be a list of strings, got " .. type(opts), 3)
    end
    for i, p in ipairs(opts) do
        if type(p) ~= "string" then
            error("tiktok.settings.validate: creator_info.privacy_level_options["
                  .. i .. "] must be a string, got " .. type(p), 3)
        end
    end
    for _, k in ipairs(CREATOR_BOOLEANS) do
        if ci[k] ~= nil and type(ci[k]) ~= "boolean" then
            error("tiktok.settings.validate: creator_info." .. k
                  .. " must be a boolean or nil, got " .. type(ci[k]), 3)
        end
    end
    for _, k in ipairs(CREATOR_STRINGS) do
        if ci[k] ~= nil and type(ci[k]) ~= "string" then
            error("tiktok.settings.validate: creator_info." .. k
                  .. " must be a string or nil, got " .. type(ci[k]), 3)
        end
    end
    local max = ci.max_video_post_duration_sec
    if max ~= nil and (type(max) ~= "number" or max ~= max or max < 0) then
        error("tiktok.settings.validate: creator_info.max_video_post_duration_sec "
              .. "must be a non-negative number or nil", 3)
    end
end


local function privacy_problem(add, name, privacy, offered)
    if type(privacy) ~= "string" then
        add("privacy", "%s must be a string naming a privacy level (one of: %s), got %s.",
            name, list_levels(offered), describe(privacy))
        return false
    end
    if not PRIVACY_SET[privacy] then
        local key = gsub(lower(privacy), "[%s%-]+", "_")
        local guess = PRIVACY_GUESS[key]
        if not guess and PRIVACY_SET[upper(privacy)] then
            guess = upper(privacy)
        end
        if guess then
            add("privacy", "%s %s is not a TikTok privacy level; did you mean %s? "
                .. "This account offers: %s.", name, describe(privacy), guess,
                list_levels(offered))
        else
            add("privacy", "%s %s is not a TikTok privacy level; use one of: %s.",
                name, describe(privacy), list_levels(offered))
        end
        return false
    end
    local in_options = false
    for _, p in ipairs(offered) do
        if p == privacy then
            in_options = true
            break
        end
    end
    if not in_options then
        local why = ""
        if privacy == "FOLLOWER_OF_CREATOR" then
            why = " (FOLLOWER_OF_CREATOR is offered only for private accounts)"
        elseif privacy == "PUBLIC_TO_EVERYONE" then
            why = " (PUBLIC_TO_EVERYONE is offered only for public accounts)"
        end
        if #offered == 0 then
            add("privacy", "%s %s cannot be used: TikTok offers no privacy level for "
                .. "this account right now, so it cannot post now; try again "
                .. "later.", name, privacy)
        else
            add("privacy", "%s %s is not offered for this account%s; choose one of: %s.",
                name, privacy, why, list_levels(offered))
        end
    end
    return true
end


-- ------------------------------------------------------------------ wording

-- How a problem names a field and the fix: Lua option names (the default),
-- command-line flags, or a form's labels (tiktok.fields has all three).
local WORDINGS = {}

WORDINGS.lua = {
    name = function(f) return f end,
    off = function(f) return "set " .. f .. " = false" end,
    add_var = "add it to vars",
    use_direct = "use mode \"direct\"",
}

WORDINGS.flags = {
    name = function(f)
        local e = fields.by_name[f]
        return e and e.flag or f
    end,
    off = function(f)
        local e = fields.by_name[f]
        return "leave out " .. (e and e.flag or f)
    end,
    add_var = "give it with --var NAME=VALUE",
    use_direct = "leave out --inbox",
}

WORDINGS.labels = {
    name = function(f) return "\"" .. fields.label(f) .. "\"" end,
    off = function(f) return "turn off \"" .. fields.label(f) .. "\"" end,
    add_var = "fill in that variable",
    use_direct = "post directly instead of sending to the inbox",
}


-- ------------------------------------------------------------------- rules
--
-- Each rule is rule(r, creator, add): `r` is the request being checked
-- (the caller's fields with templates rendered, plus what validate found
-- out: r.kind, r.mode, r.source, r.duration_sec, r.verified, r.unaudited,
-- r.words), `creator` is creator_info (nil for inbox posts without it) and
-- add(field, fmt, ...) records one problem about `field` (false: none).
-- Rules run in order; each spec group of settings_spec maps to one rule.

local RULES = {}
local function rule(name, fn)
    RULES[#RULES + 1] = { name = name, check = fn }
end

rule("mode", function(r, _, add)
    local mode = r.mode_given
    if mode == nil or mode == "direct" or mode == "inbox" then return end
    local guess = type(mode) == "string" and MODE_GUESS[lower(mode)]
    if guess then
        add("mode", "mode %s is not known; did you mean %q? Use \"direct\" (post now) "
            .. "or \"inbox\" (send to the creator's TikTok inbox as a draft).",
            describe(mode), guess)
    else
        add("mode", "mode must be \"direct\" (post now) or \"inbox\" (send to the "
            .. "creator's TikTok inbox as a draft), got %s.", describe(mode))
    end
end)

rule("relay", function(r, _, add)
    local v = r.relay
    if v == nil or r.kind ~= "video" then return end
    if v ~= "auto" and v ~= "always" and v ~= "never" then
        add("relay", "%s must be \"auto\", \"always\" or \"never\", got %s.", r.words.name("relay"), describe(v))
    elseif r.video_url == nil and r.video_file ~= nil then
        add("relay", "%s applies only to %s: a file is always uploaded; remove it.", r.words.name("relay"),
            r.words.name("video_url"))
    end
end)

rule("one media source", function(r, _, add)
    local given = r.sources
    if #given == 0 then
        add(false, "Give one media source: %s, %s or %s.", r.words.name("video_url"),
            r.words.name("video_file"), r.words.name("photo_urls"))
    elseif #given > 1 then
        local names = {}
        for i, k in ipairs(given) do names[i] = r.words.name(k) end
        add(given[2], "Give only one media source; got %s.", concat(names, " and "))
    end
end)

rule("templates", function(r, _, add)
    for _, p in ipairs(r.template_problems) do
        add(p[1], "%s", p[2])
    end
end)

rule("video URL", function(r, _, add)
    if r.video_url ~= nil then
        check_url(add, "video_url", r.words.name("video_url"), r.video_url, r.verified, "video")
    end
end)

rule("video file", function(r, _, add)
    local f = r.video_file
    if f == nil then return end
    local name = r.words.name("video_file")
    if type(f) ~= "string" or f == "" then
        add("video_file", "%s must be the path of a video file, got %s.", name, describe(f))
    elseif find(f, "\0", 1, true) then
        add("video_file", "%s contains a NUL byte; give a plain file path.", name)
    end
end)

rule("photo URLs", function(r, _, add)
    local list = r.photo_urls
    if list == nil then return end
    local name = r.words.name("photo_urls")
    if type(list) ~= "table" or not is_array(list) then
        add("photo_urls", "%s must be a list of 1 to %d https URLs, got %s.",
            name, LIMITS.photo_count, describe(list))
        return
    end
    if #list < 1 or #list > LIMITS.photo_count then
        add("photo_urls", "%s must hold 1 to %d URLs; it holds %d.", name, LIMITS.photo_count, #list)
    end
    for i, u in ipairs(list) do
        check_url(add, "photo_urls", format("%s[%d]", name, i), u, r.verified, "photo")
    end
end)

rule("text length", function(r, _, add)
    if r.caption ~= nil then
        if r.kind == "video" then
            check_text(add, "caption", r.words.name("caption"), r.caption, LIMITS.video_caption,
                       "a video caption")
        else
            check_text(add, "caption", r.words.name("caption"), r.caption, LIMITS.photo_description,
                       "a photo post's description")
        end
    end
    if r.title ~= nil and r.kind == "photo" then
        check_text(add, "title", r.words.name("title"), r.title, LIMITS.photo_title, "a photo post's title")
    end
end)

rule("switches are booleans", function(r, _, add)
    for _, f in ipairs(fields.list) do
        local v = r[f.name]
        if f.type == "boolean" and v ~= nil and type(v) ~= "boolean" then
            add(f.name, "%s must be true or false, got %s.", r.words.name(f.name), describe(v))
        end
    end
end)

-- A field this kind of post has no use for is refused, not dropped.
rule("fields of the other kind", function(r, _, add)
    for _, f in ipairs(fields.list) do
        if r[f.name] ~= nil and not f.kinds[r.kind] and f.unused and f.unused[r.kind] then
            add(f.name, "%s", (gsub(f.unused[r.kind], "{([%w_]+)}", r.words.name)))
        end
    end
end)

rule("cover", function(r, _, add)
    if r.kind == "photo" then
        local idx = r.photo_cover_index
        if idx == nil then return end
        local name = r.words.name("photo_cover_index")
        local n = type(r.photo_urls) == "table" and #r.photo_urls or 0
        if not is_int(idx) or idx < 0 then
            add("photo_cover_index", "%s must be a whole number from 0 (the first photo), got %s.",
                name, describe(idx))
        elseif n > 0 and idx >= n then
            add("photo_cover_index", "%s %d is out of range: it counts from 0, so with %d photo(s) it "
                .. "must be 0 to %d.", name, idx, n, n - 1)
        end
        return
    end
    local c = r.cover_ms
    if c == nil then return end
    local name = r.words.name("cover_ms")
    local duration = r.duration_sec
    if not is_int(c) or c < 0 or c > LIMITS.cover_ms_max then
        add("cover_ms", "%s must be a whole number of milliseconds from 0, got %s.", name, describe(c))
    elseif duration and c > duration * 1000 then
        add("cover_ms", "%s %d is past the end of the video (%s s long); choose a frame from 0 to %d.",
            name, c, format("%.14g", duration), floor(duration * 1000))
    end
end)

-- TikTok's inbox upload takes only the media (videos) or title and
-- description (photos): anything else is refused. false is the default
-- "off", which is what the inbox does anyway.
rule("inbox fields", function(r, _, add)
    if r.mode ~= "inbox" then return end
    local where = r.kind == "video"
        and "TikTok's inbox upload takes only the video"
        or "TikTok's inbox photo upload takes only title and caption"
    for _, f in ipairs(fields.list) do
        local v = r[f.name]
        if f.kinds[r.kind] and f.tiktok and not fields.used(f, r.kind, "inbox")
           and v ~= nil and v ~= false and not (f.name == "caption" and v == "") then
            add(f.name, "%s is not used in inbox mode (%s; the creator sets the rest in the TikTok app); "
                .. "remove it or %s.", r.words.name(f.name), where, r.words.use_direct)
        end
    end
end)

rule("privacy", function(r, creator, add)
    if r.mode ~= "direct" then return end
    local offered = creator.privacy_level_options
    if r.privacy == nil then
        add("privacy", "%s is required for direct posts and has no default; let the user choose one "
            .. "of: %s.", r.words.name("privacy"), concat(offered, ", "))
        return
    end
    r.privacy_ok = privacy_problem(add, r.words.name("privacy"), r.privacy, offered)
end)

rule("unaudited app", function(r, creator, add)
    if r.mode ~= "direct" or not r.unaudited then return end
    if r.privacy_ok and r.privacy ~= "SELF_ONLY" then
        add("privacy", "privacy must be SELF_ONLY because this app has not passed TikTok's audit; the "
            .. "TikTok account itself must also be set to private until the app passes the audit.")
    end
    for _, p in ipairs(creator.privacy_level_options) do
        if p == "PUBLIC_TO_EVERYONE" then
            add(false, "This TikTok account is public, and an app that has not passed TikTok's audit "
                .. "may post only to private accounts: set the account to private in the TikTok app "
                .. "(Settings and privacy > Privacy > Private account) and post with privacy SELF_ONLY.")
            break
        end
    end
end)

-- Interactions the creator switched off stay off; duets and stitches are
-- never allowed on a SELF_ONLY post.
rule("interactions", function(r, creator, add)
    if r.mode ~= "direct" then return end
    local self_only = r.privacy_ok and r.privacy == "SELF_ONLY"
    for _, f in ipairs(fields.list) do
        if f.creator_off and fields.used(f, r.kind, "direct") and r[f.name] == true then
            local name = r.words.name(f.name)
            if creator[f.creator_off] == true then
                add(f.name, "%s cannot be turned on: the creator has set %s to \"No one\" in TikTok (or "
                    .. "the account is private); %s.", name, f.name, r.words.off(f.name))
            end
            if self_only and f.not_self_only then
                add(f.name, "%s cannot be allowed on a SELF_ONLY (Only me) post; %s or choose another "
                    .. "privacy level.", name, r.words.off(f.name))
            end
        end
    end
end)

rule("branded content is never private", function(r, _, add)
    if r.mode == "direct" and r.privacy_ok and r.privacy == "SELF_ONLY" and r.brand_third_party == true then
        add("brand_third_party", "Branded content visibility cannot be set to private. Choose another "
            .. "privacy level, or %s.", r.words.off("brand_third_party"))
    end
end)

rule("duration", function(r, creator, add)
    local max = creator and creator.max_video_post_duration_sec
    local duration = r.duration_sec
    if r.mode == "direct" and r.kind == "video" and duration and max and duration > max then
        add(r.video_file ~= nil and "video_file" or "video_url",
            "The video is %s long, but this creator may post videos of at most %s; trim it by %s.",
            seconds(duration), seconds(max), seconds(duration - max))
    end
end)

_M.RULES = RULES


-- ------------------------------------------------------------- validate()

-- Renders the template fields with vars. Returns the rendered copies and
-- the problems { field, sentence } (one per missing variable).
local function render_templates(request, words)
    local out, problems = {}, {}
    local vars = request.vars or {}
    local function one(f, name, tpl)
        if type(tpl) ~= "string" then return tpl end
        local s, err = template.render(tpl, vars)
        if s then return s end
        if err.code == "missing_variable" then
            for _, var in ipairs(err.problems) do
                problems[#problems + 1] = { f.name, format("%s uses the variable {{%s}}, which has no "
                    .. "value; %s.", name, var, words.add_var) }
            end
        else
            for _, p in ipairs(err.problems or { err.message }) do
                problems[#problems + 1] = { f.name, format("%s: %s", name, p) }
            end
        end
        return nil
    end
    for _, f in ipairs(fields.list) do
        local v = request[f.name]
        if f.template and v ~= nil then
            if f.type == "list" and type(v) == "table" and is_array(v) then
                local copy = {}
                for i, item in ipairs(v) do
                    copy[i] = one(f, format("%s[%d]", words.name(f.name), i), item)
                    if copy[i] == nil then copy[i] = item end
                end
                out[f.name] = copy
            else
                local s = one(f, words.name(f.name), v)
                out[f.name] = s == nil and v or s
            end
        end
    end
    return out, problems
end

-- The request's kind, mode and source, as far as they can be told.
local function classify(r)
    local given = {}
    for _, f in ipairs(fields.list) do
        if f.source and r[f.name] ~= nil then given[#given + 1] = f.name end
    end
    r.sources = given
    r.kind = (#given == 1 and given[1] == "photo_urls") and "photo" or "video"
    r.source = (r.video_file ~= nil and #given == 1) and "FILE_UPLOAD" or "PULL_FROM_URL"
    r.mode_given = r.mode
    if r.mode == nil then r.mode = "direct"
    elseif r.mode ~= "direct" and r.mode ~= "inbox" then r.mode = nil end
end

local function check_args(request, creator_info, opts)
    if type(request) ~= "table" then
        error("tiktok.settings.validate: request must be a table, got " .. type(request), 3)
    end
    for k, v in pairs(request) do
        local want = ACCEPTED[k]
        if not want then
            error("tiktok.settings.validate: unknown option '" .. tostring(k) .. "'", 3)
        end
        if want ~= "field" and want ~= "any" and v ~= nil and type(v) ~= want then
            error("tiktok.settings.validate: option '" .. k .. "' must be a " .. want .. ", got "
                  .. type(v), 3)
        end
    end
    local duration = request.duration_sec
    if duration ~= nil and (type(duration) ~= "number" or duration ~= duration
                            or duration < 0 or duration == huge) then
        error("tiktok.settings.validate: duration_sec must be a non-negative "
              .. "number or nil, got " .. describe(duration), 3)
    end
    if creator_info ~= nil then
        check_creator_info(creator_info)
    end
    if opts == nil then return {} end
    if type(opts) ~= "table" then
        error("tiktok.settings.validate: opts must be a table or nil, got " .. type(opts), 3)
    end
    for k in pairs(opts) do
        if not OPTS[k] then
            error("tiktok.settings.validate: unknown option 'opts." .. tostring(k) .. "'", 3)
        end
    end
    if opts.audited ~= nil and type(opts.audited) ~= "boolean" then
        error("tiktok.settings.validate: opts.audited must be a boolean or nil", 3)
    end
    if opts.wording ~= nil and not WORDINGS[opts.wording] then
        error("tiktok.settings.validate: opts.wording must be \"lua\", \"flags\" or \"labels\"", 3)
    end
    return opts
end

-- The normalized request: what tiktok.post and the init body use.
local function normalized(r)
    local out = {
        kind = r.kind, mode = r.mode, source = r.source,
        video_url = r.video_url, video_file = r.video_file,
        caption = r.caption, title = r.title,
        privacy = r.mode == "direct" and r.privacy or nil,
        cover_ms = r.cover_ms, duration_sec = r.duration_sec,
        relay = r.kind == "video" and r.video_url ~= nil and (r.relay or "auto") or nil,
    }
    for _, f in ipairs(fields.list) do
        if f.type == "boolean" then out[f.name] = r[f.name] == true end
    end
    if r.kind == "photo" then
        local copy = {}
        for i, u in ipairs(r.photo_urls) do copy[i] = u end
        out.photo_urls = copy
        out.photo_cover_index = r.photo_cover_index or 0
    end
    return out
end

--- settings.validate(request, creator_info, opts) -> normalized | nil, err
-- `request` is what tiktok.post takes (its vars included; connection,
-- account, as, wait and the callbacks are accepted and ignored), or a form's
-- fields. creator_info may be nil only for inbox mode. opts = { audited,
-- verified_prefixes = { "https://host/path/" | "domain:example.com" },
-- wording = "lua" | "flags" | "labels" }. Every problem is collected:
-- err.problems (sentences) and err.fields (the field each is about, or false).
function _M.validate(request, creator_info, opts)
    opts = check_args(request, creator_info, opts)
    local words = WORDINGS[opts.wording or "lua"]
    local r = {}
    for _, f in ipairs(fields.list) do r[f.name] = request[f.name] end
    local rendered, template_problems = render_templates(request, words)
    for k, v in pairs(rendered) do r[k] = v end
    r.template_problems = template_problems
    r.duration_sec = request.duration_sec
    r.verified = compile_verified(opts.verified_prefixes)
    r.unaudited = opts.audited == false
    r.words = words
    classify(r)
    if r.mode == "direct" and creator_info == nil then
        error("tiktok.settings.validate: creator_info is required for direct posts", 2)
    end

    local problems, about = {}, {}
    local function add(field, fmt, ...)
        problems[#problems + 1] = format(fmt, ...)
        about[#about + 1] = field or false
    end
    for _, rl in ipairs(RULES) do
        rl.check(r, creator_info, add)
    end

    if #problems > 0 then
        local err = errors.new("invalid_settings",
            format("the post cannot be sent as requested (%d problem%s): %s",
                   #problems, #problems == 1 and "" or "s", concat(problems, " ")),
            { problems = problems, fields = about })
        return nil, err
    end
    return normalized(r)
end


--- settings.disclosure_label(brand_own, brand_third_party)
--      -> label | nil, declaration, links
-- For a UI: the label TikTok will show on the post ("Promotional content" or
-- "Paid partnership", nil when nothing is disclosed), the consent sentence to
-- show next to the publish button, and the links that sentence refers to.
function _M.disclosure_label(brand_own, brand_third_party)
    if brand_own ~= nil and type(brand_own) ~= "boolean" then
        error("tiktok.settings.disclosure_label: brand_own must be a boolean", 2)
    end
    if brand_third_party ~= nil and type(brand_third_party) ~= "boolean" then
        error("tiktok.settings.disclosure_label: brand_third_party must be a "
              .. "boolean", 2)
    end
    if brand_third_party then
        return "Paid partnership",
            "By posting, you agree to TikTok's Branded Content Policy and Music "
            .. "Usage Confirmation.",
            { BC_POLICY, MUSIC }
    end
    if brand_own then
        return "Promotional content",
            "By posting, you agree to TikTok's Music Usage Confirmation.",
            { MUSIC }
    end
    return nil,
        "By posting, you agree to TikTok's Music Usage Confirmation.",
        { MUSIC }
end


return _M
