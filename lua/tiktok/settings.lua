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

-- Every key validate() accepts in `request`, with the type it must have
-- when it is one the caller (not the user) fills in. Exported so that a
-- caller can copy exactly these keys out of a larger option table.
local FIELDS = {
    video_url = true, video_file = true, photo_urls = true,
    caption = true, title = true, privacy = true,
    comments = true, duets = true, stitches = true,
    brand_own = true, brand_third_party = true, ai_generated = true,
    auto_add_music = true, cover_ms = true, mode = true,
    photo_cover_index = true, duration_sec = true,
}
_M.FIELDS = FIELDS

local OPTS = { audited = true, verified_prefixes = true }

local BOOLEANS = {
    "comments", "duets", "stitches", "brand_own", "brand_third_party",
    "ai_generated", "auto_add_music",
}

local CREATOR_BOOLEANS = { "comment_disabled", "duet_disabled", "stitch_disabled" }
local CREATOR_STRINGS = { "nickname", "username", "avatar_url" }

local LOOPBACK = { ["127.0.0.1"] = true, ["localhost"] = true, ["[::1]"] = true }

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


-- Checks one pull URL; adds each problem. Returns nothing.
local function check_url(add, field, u, verified, kind)
    if type(u) ~= "string" then
        add("%s must be a URL string, got %s.", field, describe(u))
        return
    end
    if u == "" then
        add("%s is empty; give the https URL of the media.", field)
        return
    end
    if find(u, "[%s%c]") then
        add("%s contains spaces, line breaks or control characters; "
            .. "percent-encode them (a space is %%20).", field)
        return
    end
    local scheme, rest = match(u, "^(%a[%w+.-]*)://(.*)$")
    if not scheme then
        add("%s %s is not an absolute URL; give a full https:// URL.",
            field, show_url(u))
        return
    end
    scheme = lower(scheme)
    local authority = match(rest, "^[^/?#]*")
    local path = sub(rest, #authority + 1)
    if find(authority, "@", 1, true) then
        add("%s must not contain a user name or password (user@host); "
            .. "remove it.", field)
        return
    end
    local host, port
    if sub(authority, 1, 1) == "[" then
        host, port = match(authority, "^(%[[%x:.]+%])(.*)$")
    else
        host, port = match(authority, "^([^:]*)(.*)$")
    end
    if not host or host == "" or not (port == "" or match(port, "^:%d+$")) then
        add("%s %s has no valid host; give a URL like "
            .. "https://cdn.example.com/video.mp4.", field, show_url(u))
        return
    end
    host = lower(host)
    local loopback = LOOPBACK[host] ~= nil

    -- http is allowed only for a local test server
    if scheme ~= "https" and not (scheme == "http" and loopback) then
        if scheme == "http" then
            add("%s %s uses http; TikTok pulls only https URLs (http is "
                .. "accepted only for 127.0.0.1, localhost and [::1]).",
                field, show_url(u))
            return
        else
            add("%s %s uses the %s scheme; TikTok pulls only https URLs.",
                field, show_url(u), scheme)
            return
        end
    end
    if find(path, "#", 1, true) then
        add("%s must not contain a fragment (#...); remove it.", field)
        return
    end
    if not loopback and (match(host, "^%d+%.%d+%.%d+%.%d+$")
                         or sub(host, 1, 1) == "[") then
        add("%s %s uses an IP address; TikTok pulls only from verified "
            .. "domains or URL prefixes, which cannot be IP addresses: use a "
            .. "domain name.", field, show_url(u))
        return
    end

    if verified then
        local norm = scheme .. "://" .. host .. port .. path
        local ok = false
        for _, prefix in ipairs(verified.prefixes) do
            if sub(norm, 1, #prefix) == prefix then
                ok = true
                break
            end
        end
        if not ok then
            local h = host
            if sub(h, -1) == "." then
                h = sub(h, 1, -2)
            end
            for _, d in ipairs(verified.domains) do
                if h == d or (#h > #d and sub(h, -#d - 1) == "." .. d) then
                    ok = true
                    break
                end
            end
        end
        if not ok then
            local alt = kind == "photo"
                and "photos can only be pulled from URLs"
                or "or post the file with video_file"
            add("%s %s is not under a verified domain or URL prefix, so TikTok "
                .. "would refuse it (url_ownership_unverified): verify the "
                .. "domain or URL prefix in the TikTok developer portal (Manage "
                .. "URL properties) and add it to verified_prefixes, %s.",
                field, show_url(u), alt)
        end
    end
end


-- Checks a text field: type, NUL, UTF-8, length. Returns nothing.
local function check_text(add, field, s, limit, what)
    if type(s) ~= "string" then
        add("%s must be a string, got %s.", field, describe(s))
        return
    end
    if find(s, "\0", 1, true) then
        add("%s contains a NUL byte; remove it.", field)
        return
    end
    local n, err = utf16_len(s)
    if not n then
        add("%s is not valid UTF-8 (%s); save the text as UTF-8.",
            field, err.problems[1])
        return
    end
    if limit and n > limit then
        add("%s is %d UTF-16 units long, but %s may be at most %d; shorten it "
            .. "by %d.", field, n, what, limit, n - limit)
    end
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


local function privacy_problem(add, privacy, offered)
    if type(privacy) ~= "string" then
        add("privacy must be a string naming a privacy level (one of: %s), got %s.",
            list_levels(offered), describe(privacy))
        return false
    end
    if not PRIVACY_SET[privacy] then
        local key = gsub(lower(privacy), "[%s%-]+", "_")
        local guess = PRIVACY_GUESS[key]
        if not guess and PRIVACY_SET[upper(privacy)] then
            guess = upper(privacy)
        end
        if guess then
            add("privacy %s is not a TikTok privacy level; did you mean %s? "
                .. "This account offers: %s.", describe(privacy), guess,
                list_levels(offered))
        else
            add("privacy %s is not a TikTok privacy level; use one of: %s.",
                describe(privacy), list_levels(offered))
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
            add("privacy %s cannot be used: TikTok offers no privacy level for "
                .. "this account right now, so it cannot post now; try again "
                .. "later.", privacy)
        else
            add("privacy %s is not offered for this account%s; choose one of: %s.",
                privacy, why, list_levels(offered))
        end
    end
    return true
end


--- settings.validate(request, creator_info, opts) -> normalized | nil, err
-- creator_info may be nil only for inbox mode. opts = { audited = nil|bool,
-- verified_prefixes = nil|{ "https://host/path/" | "domain:example.com" } }.
function _M.validate(request, creator_info, opts)
    if type(request) ~= "table" then
        error("tiktok.settings.validate: request must be a table, got "
              .. type(request), 2)
    end
    for k in pairs(request) do
        if not FIELDS[k] then
            error("tiktok.settings.validate: unknown option '" .. tostring(k)
                  .. "'", 2)
        end
    end
    if creator_info ~= nil then
        check_creator_info(creator_info)
    end
    if opts ~= nil then
        if type(opts) ~= "table" then
            error("tiktok.settings.validate: opts must be a table or nil, got "
                  .. type(opts), 2)
        end
        for k in pairs(opts) do
            if not OPTS[k] then
                error("tiktok.settings.validate: unknown option 'opts."
                      .. tostring(k) .. "'", 2)
            end
        end
        if opts.audited ~= nil and type(opts.audited) ~= "boolean" then
            error("tiktok.settings.validate: opts.audited must be a boolean or nil",
                  2)
        end
    else
        opts = {}
    end
    local verified = compile_verified(opts.verified_prefixes)
    local unaudited = opts.audited == false

    local duration = request.duration_sec
    if duration ~= nil and (type(duration) ~= "number" or duration ~= duration
                            or duration < 0 or duration == huge) then
        error("tiktok.settings.validate: duration_sec must be a non-negative "
              .. "number or nil, got " .. describe(duration), 2)
    end

    local problems = {}
    local function add(fmt, ...)
        problems[#problems + 1] = format(fmt, ...)
    end

    local r = request

    -- mode
    local mode = r.mode
    if mode == nil then
        mode = "direct"
    elseif mode ~= "direct" and mode ~= "inbox" then
        local guess = type(mode) == "string" and MODE_GUESS[lower(mode)]
        if guess then
            add("mode %s is not known; did you mean %q? Use \"direct\" (post now) "
                .. "or \"inbox\" (send to the creator's TikTok inbox as a draft).",
                describe(mode), guess)
        else
            add("mode must be \"direct\" (post now) or \"inbox\" (send to the "
                .. "creator's TikTok inbox as a draft), got %s.", describe(mode))
        end
        mode = nil
    end

    -- media source
    local given = {}
    for _, k in ipairs({ "video_url", "video_file", "photo_urls" }) do
        if r[k] ~= nil then
            given[#given + 1] = k
        end
    end
    if #given == 0 then
        add("Give one media source: video_url, video_file or photo_urls.")
    elseif #given > 1 then
        add("Give only one media source; got %s.", concat(given, " and "))
    end
    local kind = (#given == 1 and given[1] == "photo_urls") and "photo" or "video"
    local source = r.video_file ~= nil and #given == 1 and "FILE_UPLOAD"
        or "PULL_FROM_URL"

    if mode == "direct" and creator_info == nil then
        error("tiktok.settings.validate: creator_info is required for direct posts",
              2)
    end

    -- the media itself
    if r.video_url ~= nil then
        check_url(add, "video_url", r.video_url, verified, "video")
    end
    if r.video_file ~= nil then
        local f = r.video_file
        if type(f) ~= "string" or f == "" then
            add("video_file must be the path of a video file, got %s.", describe(f))
        elseif find(f, "\0", 1, true) then
            add("video_file contains a NUL byte; give a plain file path.")
        end
    end
    local photo_count = 0
    if r.photo_urls ~= nil then
        local list = r.photo_urls
        if type(list) ~= "table" or not is_array(list) then
            add("photo_urls must be a list of 1 to %d https URLs, got %s.",
                LIMITS.photo_count, describe(list))
        else
            photo_count = #list
            if photo_count < 1 or photo_count > LIMITS.photo_count then
                add("photo_urls must hold 1 to %d URLs; it holds %d.",
                    LIMITS.photo_count, photo_count)
            end
            for i, u in ipairs(list) do
                check_url(add, format("photo_urls[%d]", i), u, verified, "photo")
            end
        end
    end

    -- text
    if kind == "video" then
        if r.caption ~= nil then
            check_text(add, "caption", r.caption, LIMITS.video_caption,
                       "a video caption")
        end
        if r.title ~= nil then
            add("title is used only for photo posts; put the video's text in "
                .. "caption.")
        end
    else
        if r.caption ~= nil then
            check_text(add, "caption", r.caption, LIMITS.photo_description,
                       "a photo post's description")
        end
        if r.title ~= nil then
            check_text(add, "title", r.title, LIMITS.photo_title,
                       "a photo post's title")
        end
    end

    -- switches: real booleans only
    for _, k in ipairs(BOOLEANS) do
        local v = r[k]
        if v ~= nil and type(v) ~= "boolean" then
            add("%s must be true or false, got %s.", k, describe(v))
        end
    end

    -- fields that belong to one kind of post
    if kind == "photo" then
        for _, k in ipairs({ "duets", "stitches" }) do
            if r[k] ~= nil then
                add("%s is not used for photo posts (TikTok has no %s for "
                    .. "photos); remove it.", k, k)
            end
        end
        if r.cover_ms ~= nil then
            add("cover_ms is not used for photo posts; choose the cover with "
                .. "photo_cover_index.")
        end
        local idx = r.photo_cover_index
        if idx ~= nil then
            if not is_int(idx) or idx < 0 then
                add("photo_cover_index must be a whole number from 0 (the first "
                    .. "photo), got %s.", describe(idx))
            elseif photo_count > 0 and idx >= photo_count then
                add("photo_cover_index %d is out of range: it counts from 0, so "
                    .. "with %d photo(s) it must be 0 to %d.", idx, photo_count,
                    photo_count - 1)
            end
        end
    else
        if r.photo_cover_index ~= nil then
            add("photo_cover_index is used only for photo posts; for a video "
                .. "choose the cover frame with cover_ms.")
        end
        if r.auto_add_music ~= nil then
            add("auto_add_music is used only for direct photo posts; remove it.")
        end
        local c = r.cover_ms
        if c ~= nil then
            if not is_int(c) or c < 0 or c > LIMITS.cover_ms_max then
                add("cover_ms must be a whole number of milliseconds from 0, "
                    .. "got %s.", describe(c))
            elseif duration and c > duration * 1000 then
                add("cover_ms %d is past the end of the video (%s s long); "
                    .. "choose a frame from 0 to %d.", c,
                    format("%.14g", duration), floor(duration * 1000))
            end
        end
    end

    -- per mode
    if mode == "inbox" then
        local unused
        if kind == "video" then
            unused = { "caption", "privacy", "comments", "duets", "stitches",
                       "brand_own", "brand_third_party", "ai_generated",
                       "cover_ms" }
        else
            unused = { "privacy", "comments", "brand_own", "brand_third_party",
                       "ai_generated", "auto_add_music" }
        end
        local where = kind == "video"
            and "TikTok's inbox upload takes only the video"
            or "TikTok's inbox photo upload takes only title and caption"
        for _, k in ipairs(unused) do
            local v = r[k]
            -- false is the default "off", which is what the inbox does anyway
            if v ~= nil and v ~= false and not (k == "caption" and v == "") then
                add("%s is not used in inbox mode (%s; the creator sets the rest "
                    .. "in the TikTok app); remove it or use mode \"direct\".",
                    k, where)
            end
        end
    elseif mode == "direct" then
        local offered = creator_info.privacy_level_options
        local privacy = r.privacy
        local privacy_ok = false
        if privacy == nil then
            add("privacy is required for direct posts and has no default; let "
                .. "the user choose one of: %s.", list_levels(offered))
        else
            privacy_ok = privacy_problem(add, privacy, offered)
        end
        local self_only = privacy_ok and privacy == "SELF_ONLY"

        if unaudited then
            if privacy_ok and privacy ~= "SELF_ONLY" then
                add("privacy must be SELF_ONLY because this app has not passed "
                    .. "TikTok's audit; the TikTok account itself must also be set "
                    .. "to private until the app passes the audit.")
            end
            for _, p in ipairs(offered) do
                if p == "PUBLIC_TO_EVERYONE" then
                    add("This TikTok account is public, and an app that has not "
                        .. "passed TikTok's audit may post only to private "
                        .. "accounts: set the account to private in the TikTok "
                        .. "app (Settings and privacy > Privacy > Private "
                        .. "account) and post with privacy SELF_ONLY.")
                    break
                end
            end
        end

        local interactions = kind == "video"
            and { { "comments", "comment_disabled", "comments" },
                  { "duets", "duet_disabled", "duets" },
                  { "stitches", "stitch_disabled", "stitches" } }
            or { { "comments", "comment_disabled", "comments" } }
        for _, it in ipairs(interactions) do
            local k, flag, noun = it[1], it[2], it[3]
            if r[k] == true and creator_info[flag] == true then
                add("%s cannot be turned on: the creator has set %s to \"No "
                    .. "one\" in TikTok (or the account is private); set %s = "
                    .. "false.", k, noun, k)
            end
        end
        if self_only and kind == "video" then
            for _, k in ipairs({ "duets", "stitches" }) do
                if r[k] == true then
                    add("%s cannot be allowed on a SELF_ONLY (Only me) post; set "
                        .. "%s = false or choose another privacy level.", k, k)
                end
            end
        end
        if self_only and r.brand_third_party == true then
            add("Branded content visibility cannot be set to private. Choose "
                .. "another privacy level, or set brand_third_party = false.")
        end

        local max = creator_info.max_video_post_duration_sec
        if kind == "video" and duration and max and duration > max then
            add("The video is %s s long, but this creator may post videos of at "
                .. "most %s s; trim it by %s s.", format("%.14g", duration),
                format("%.14g", max), format("%.14g", duration - max))
        end
    end

    if #problems > 0 then
        return nil, errors.new("invalid_settings",
            format("the post cannot be sent as requested (%d problem%s): %s",
                   #problems, #problems == 1 and "" or "s",
                   concat(problems, " ")),
            { problems = problems })
    end

    local out = {
        kind = kind,
        mode = mode,
        source = source,
        video_url = r.video_url,
        video_file = r.video_file,
        caption = r.caption,
        title = r.title,
        privacy = mode == "direct" and r.privacy or nil,
        cover_ms = r.cover_ms,
        duration_sec = duration,
    }
    for _, k in ipairs(BOOLEANS) do
        out[k] = r[k] == true
    end
    if kind == "photo" then
        local copy = {}
        for i, u in ipairs(r.photo_urls) do
            copy[i] = u
        end
        out.photo_urls = copy
        out.photo_cover_index = r.photo_cover_index or 0
    end
    return out
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
