-- Unit specs for tiktok.settings: every validation rule, accepted and
-- refused, the normalized result, programmer errors, disclosure labels.

local before = {}
for k in pairs(_G) do
    before[k] = true
end
local settings = require "tiktok.settings"
local errors = require "tiktok.errors"

local NIL = {}   -- marks a key to remove from the base request

-- A public account with every interaction open.
local PUBLIC = {
    nickname = "Ann", username = "ann", avatar_url = "https://p.example/a.jpg",
    privacy_level_options = { "PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS",
                              "SELF_ONLY" },
    comment_disabled = false, duet_disabled = false, stitch_disabled = false,
    max_video_post_duration_sec = 600,
}
-- A private account: duets and stitches are off for private accounts.
local PRIVATE = {
    nickname = "Bo", username = "bo",
    privacy_level_options = { "FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS",
                              "SELF_ONLY" },
    comment_disabled = false, duet_disabled = true, stitch_disabled = true,
    max_video_post_duration_sec = 180,
}
-- Everything switched to "No one".
local LOCKED = {
    privacy_level_options = { "PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS",
                              "SELF_ONLY" },
    comment_disabled = true, duet_disabled = true, stitch_disabled = true,
    max_video_post_duration_sec = 600,
}
local ONLY_SELF = { privacy_level_options = { "SELF_ONLY" } }
local NONE = { privacy_level_options = {} }

local VIDEO = { video_url = "https://cdn.example.com/v/a.mp4", privacy = "SELF_ONLY" }
local PHOTO = { photo_urls = { "https://cdn.example.com/p/1.jpg",
                               "https://cdn.example.com/p/2.jpg" },
                privacy = "SELF_ONLY" }
local INBOX = { video_url = "https://cdn.example.com/v/a.mp4", mode = "inbox" }
local PHOTO_INBOX = { photo_urls = { "https://cdn.example.com/p/1.jpg" },
                      mode = "inbox" }

local VERIFIED = { verified_prefixes = { "https://cdn.example.com/v/",
                                         "https://cdn.example.com/p/",
                                         "domain:static.example.org" } }

local function merge(base, over)
    local r = {}
    for k, v in pairs(base) do
        r[k] = v
    end
    for k, v in pairs(over or {}) do
        if v == NIL then
            r[k] = nil
        else
            r[k] = v
        end
    end
    return r
end

local function list(n, fmt)
    local t = {}
    for i = 1, n do
        t[i] = (fmt or "https://cdn.example.com/p/%d.jpg"):format(i)
    end
    return t
end


describe("tiktok.settings", function()

    it("adds no globals when required", function()
        for k in pairs(_G) do
            assert.is_true(before[k] ~= nil, "new global: " .. tostring(k))
        end
    end)

    it("exports the four privacy levels", function()
        assert.are.same({ "PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS",
                          "FOLLOWER_OF_CREATOR", "SELF_ONLY" }, settings.PRIVACY_LEVELS)
    end)

    -- Each refused case: name, base, overrides, creator_info, opts, and the
    -- plain substrings that one problem must contain.
    local refused = {
        -- media source
        { "no media source", VIDEO, { video_url = NIL }, PUBLIC, nil,
          { "Give one media source: video_url, video_file or photo_urls." } },
        { "video_url and video_file", VIDEO, { video_file = "/tmp/a.mp4" }, PUBLIC,
          nil, { "Give only one media source; got video_url and video_file." } },
        { "video_url and photo_urls", VIDEO, { photo_urls = { "https://x.example/1.jpg" } },
          PUBLIC, nil, { "only one media source", "photo_urls" } },
        { "all three sources", VIDEO, { video_file = "/a",
          photo_urls = { "https://x.example/1.jpg" } }, PUBLIC, nil,
          { "video_url and video_file and photo_urls" } },

        -- URLs
        { "http URL", VIDEO, { video_url = "http://cdn.example.com/a.mp4" }, PUBLIC,
          nil, { "uses http", "only https" } },
        { "ftp URL", VIDEO, { video_url = "ftp://cdn.example.com/a.mp4" }, PUBLIC, nil,
          { "uses the ftp scheme" } },
        { "userinfo in URL", VIDEO, { video_url = "https://u:pw@cdn.example.com/a.mp4" },
          PUBLIC, nil, { "user name or password" } },
        { "fragment in URL", VIDEO, { video_url = "https://cdn.example.com/a.mp4#t=1" },
          PUBLIC, nil, { "fragment" } },
        { "space in URL", VIDEO, { video_url = "https://cdn.example.com/a b.mp4" },
          PUBLIC, nil, { "spaces, line breaks", "%20" } },
        { "CR LF in URL", VIDEO,
          { video_url = "https://cdn.example.com/a.mp4\r\nX-Evil: 1" }, PUBLIC, nil,
          { "line breaks" } },
        { "tab in URL", VIDEO, { video_url = "https://cdn.example.com/\ta.mp4" },
          PUBLIC, nil, { "control characters" } },
        { "relative URL", VIDEO, { video_url = "cdn.example.com/a.mp4" }, PUBLIC, nil,
          { "not an absolute URL" } },
        { "empty URL", VIDEO, { video_url = "" }, PUBLIC, nil, { "video_url is empty" } },
        { "URL not a string", VIDEO, { video_url = 42 }, PUBLIC, nil,
          { "video_url must be a URL string" } },
        { "empty host", VIDEO, { video_url = "https:///a.mp4" }, PUBLIC, nil,
          { "no valid host" } },
        { "bad port", VIDEO, { video_url = "https://cdn.example.com:x1/a.mp4" },
          PUBLIC, nil, { "no valid host" } },
        { "IPv4 host", VIDEO, { video_url = "https://93.184.216.34/a.mp4" }, PUBLIC,
          nil, { "uses an IP address" } },
        { "IPv6 host", VIDEO, { video_url = "https://[2001:db8::1]/a.mp4" }, PUBLIC,
          nil, { "uses an IP address" } },
        { "http on a non-loopback IP", VIDEO, { video_url = "http://10.0.0.1/a.mp4" },
          PUBLIC, nil, { "uses http" } },
        { "unverified host", VIDEO, { video_url = "https://other.example.net/a.mp4" },
          PUBLIC, VERIFIED, { "url_ownership_unverified",
          "verify the domain or URL prefix in the TikTok developer portal (Manage URL properties)",
          "or post the file with video_file" } },
        { "prefix path not matching", VIDEO,
          { video_url = "https://cdn.example.com/videos/v/a.mp4" }, PUBLIC, VERIFIED,
          { "url_ownership_unverified" } },
        { "prefix needs the trailing slash", VIDEO,
          { video_url = "https://cdn.example.com/vx/a.mp4" }, PUBLIC, VERIFIED,
          { "url_ownership_unverified" } },
        { "parent of a verified domain", VIDEO,
          { video_url = "https://example.org/a.mp4" }, PUBLIC, VERIFIED,
          { "url_ownership_unverified" } },
        { "look-alike of a verified domain", VIDEO,
          { video_url = "https://evilstatic.example.org/a.mp4" }, PUBLIC, VERIFIED,
          { "url_ownership_unverified" } },
        { "verified host inside the path", VIDEO,
          { video_url = "https://evil.example/https://cdn.example.com/v/a.mp4" },
          PUBLIC, VERIFIED, { "url_ownership_unverified" } },
        { "loopback not in the verified list", VIDEO,
          { video_url = "http://127.0.0.1:8080/a.mp4" }, PUBLIC, VERIFIED,
          { "url_ownership_unverified" } },
        { "unverified photo URL", PHOTO,
          { photo_urls = { "https://cdn.example.com/p/1.jpg", "https://x.example/2.jpg" } },
          PUBLIC, VERIFIED, { "photo_urls[2]", "url_ownership_unverified",
          "photos can only be pulled from URLs" } },

        -- video_file
        { "empty video_file", VIDEO, { video_url = NIL, video_file = "" }, PUBLIC, nil,
          { "video_file must be the path of a video file" } },
        { "video_file not a string", VIDEO, { video_url = NIL, video_file = true },
          PUBLIC, nil, { "video_file must be the path of a video file" } },
        { "NUL in video_file", VIDEO, { video_url = NIL, video_file = "/tmp/a\0.mp4" },
          PUBLIC, nil, { "video_file contains a NUL byte" } },

        -- privacy
        { "privacy missing", VIDEO, { privacy = NIL }, PUBLIC, nil,
          { "privacy is required for direct posts and has no default",
            "PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, SELF_ONLY" } },
        { "privacy missing on a photo", PHOTO, { privacy = NIL }, PUBLIC, nil,
          { "privacy is required" } },
        { "PRIVATE", VIDEO, { privacy = "PRIVATE" }, PUBLIC, nil,
          { "did you mean SELF_ONLY?" } },
        { "private", VIDEO, { privacy = "private" }, PUBLIC, nil,
          { "did you mean SELF_ONLY?" } },
        { "only me", VIDEO, { privacy = "Only Me" }, PUBLIC, nil,
          { "did you mean SELF_ONLY?" } },
        { "public", VIDEO, { privacy = "public" }, PUBLIC, nil,
          { "did you mean PUBLIC_TO_EVERYONE?" } },
        { "FRIENDS", VIDEO, { privacy = "FRIENDS" }, PUBLIC, nil,
          { "did you mean MUTUAL_FOLLOW_FRIENDS?" } },
        { "followers", VIDEO, { privacy = "followers" }, PRIVATE, nil,
          { "did you mean FOLLOWER_OF_CREATOR?" } },
        { "lower-case enum", VIDEO, { privacy = "self_only" }, PUBLIC, nil,
          { "did you mean SELF_ONLY?" } },
        { "unknown privacy", VIDEO, { privacy = "EVERYBODY_ELSE" }, PUBLIC, nil,
          { "is not a TikTok privacy level; use one of: PUBLIC_TO_EVERYONE" } },
        { "privacy not a string", VIDEO, { privacy = true }, PUBLIC, nil,
          { "privacy must be a string" } },
        { "FOLLOWER_OF_CREATOR on a public account", VIDEO,
          { privacy = "FOLLOWER_OF_CREATOR" }, PUBLIC, nil,
          { "not offered for this account", "only for private accounts",
            "choose one of: PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, SELF_ONLY" } },
        { "PUBLIC_TO_EVERYONE on a private account", VIDEO,
          { privacy = "PUBLIC_TO_EVERYONE" }, PRIVATE, nil,
          { "not offered for this account", "only for public accounts" } },
        { "MUTUAL_FOLLOW_FRIENDS when only SELF_ONLY is offered", VIDEO,
          { privacy = "MUTUAL_FOLLOW_FRIENDS" }, ONLY_SELF, nil,
          { "choose one of: SELF_ONLY." } },
        { "no privacy offered at all", VIDEO, {}, NONE, nil,
          { "cannot post now" } },

        -- interactions
        { "comments on, creator disabled them", VIDEO, { comments = true }, LOCKED,
          nil, { "comments cannot be turned on", "No one" } },
        { "duets on, creator disabled them", VIDEO,
          { duets = true, privacy = "PUBLIC_TO_EVERYONE" }, LOCKED, nil,
          { "duets cannot be turned on" } },
        { "stitches on, creator disabled them", VIDEO,
          { stitches = true, privacy = "PUBLIC_TO_EVERYONE" }, LOCKED, nil,
          { "stitches cannot be turned on" } },
        { "duets on a private account", VIDEO,
          { duets = true, privacy = "FOLLOWER_OF_CREATOR" }, PRIVATE, nil,
          { "duets cannot be turned on" } },
        { "duets with SELF_ONLY", VIDEO, { duets = true }, PUBLIC, nil,
          { "duets cannot be allowed on a SELF_ONLY (Only me) post" } },
        { "stitches with SELF_ONLY", VIDEO, { stitches = true }, PUBLIC, nil,
          { "stitches cannot be allowed on a SELF_ONLY" } },
        { "photo comments, creator disabled them", PHOTO, { comments = true }, LOCKED,
          nil, { "comments cannot be turned on" } },

        -- branded content
        { "third-party brand with SELF_ONLY", VIDEO, { brand_third_party = true },
          PUBLIC, nil, { "Branded content visibility cannot be set to private." } },
        { "third-party brand with SELF_ONLY on a photo", PHOTO,
          { brand_third_party = true }, PUBLIC, nil,
          { "Branded content visibility cannot be set to private." } },

        -- real booleans
        { "comments = 'yes'", VIDEO, { comments = "yes" }, PUBLIC, nil,
          { 'comments must be true or false, got "yes"' } },
        { "duets = 1", VIDEO, { duets = 1 }, PUBLIC, nil,
          { "duets must be true or false, got 1" } },
        { "stitches = 'false'", VIDEO, { stitches = "false" }, PUBLIC, nil,
          { "stitches must be true or false" } },
        { "brand_own = 0", VIDEO, { brand_own = 0 }, PUBLIC, nil,
          { "brand_own must be true or false" } },
        { "brand_third_party = {}", VIDEO, { brand_third_party = {} }, PUBLIC, nil,
          { "brand_third_party must be true or false, got a table" } },
        { "ai_generated = 'true'", VIDEO, { ai_generated = "true" }, PUBLIC, nil,
          { "ai_generated must be true or false" } },
        { "auto_add_music = 'y' on a photo", PHOTO, { auto_add_music = "y" }, PUBLIC,
          nil, { "auto_add_music must be true or false" } },

        -- text
        { "video caption of 2201 units", VIDEO, { caption = ("a"):rep(2201) }, PUBLIC,
          nil, { "caption is 2201 UTF-16 units long", "at most 2200", "shorten it by 1" } },
        { "video caption of 1101 emoji (2202 units)", VIDEO,
          { caption = ("😀"):rep(1101) }, PUBLIC, nil, { "2202 UTF-16 units" } },
        { "caption with invalid UTF-8", VIDEO, { caption = "caf\233" }, PUBLIC, nil,
          { "caption is not valid UTF-8 (invalid UTF-8 at byte 4)" } },
        { "caption with a surrogate", VIDEO, { caption = "a\237\160\128" }, PUBLIC, nil,
          { "caption is not valid UTF-8" } },
        { "caption with NUL", VIDEO, { caption = "a\0b" }, PUBLIC, nil,
          { "caption contains a NUL byte" } },
        { "caption not a string", VIDEO, { caption = 12 }, PUBLIC, nil,
          { "caption must be a string, got 12" } },
        { "title on a video", VIDEO, { title = "t" }, PUBLIC, nil,
          { "title is used only for photo posts" } },
        { "photo description of 4001 units", PHOTO, { caption = ("a"):rep(4001) },
          PUBLIC, nil, { "4001 UTF-16 units", "at most 4000" } },
        { "photo title of 91 units", PHOTO, { title = ("a"):rep(91) }, PUBLIC, nil,
          { "title is 91 UTF-16 units long", "at most 90" } },
        { "photo title of 46 emoji (92 units)", PHOTO, { title = ("😀"):rep(46) },
          PUBLIC, nil, { "title is 92 UTF-16 units" } },
        { "photo title with NUL", PHOTO, { title = "\0" }, PUBLIC, nil,
          { "title contains a NUL byte" } },
        { "photo title invalid UTF-8", PHOTO, { title = "\255" }, PUBLIC, nil,
          { "title is not valid UTF-8" } },

        -- cover_ms
        { "negative cover_ms", VIDEO, { cover_ms = -1 }, PUBLIC, nil,
          { "cover_ms must be a whole number of milliseconds" } },
        { "fractional cover_ms", VIDEO, { cover_ms = 1.5 }, PUBLIC, nil,
          { "cover_ms must be a whole number" } },
        { "cover_ms as a string", VIDEO, { cover_ms = "100" }, PUBLIC, nil,
          { "cover_ms must be a whole number" } },
        { "cover_ms above int32", VIDEO, { cover_ms = 2^31 }, PUBLIC, nil,
          { "cover_ms must be a whole number" } },
        { "cover_ms past the end", VIDEO, { cover_ms = 10001, duration_sec = 10 },
          PUBLIC, nil, { "cover_ms 10001 is past the end of the video (10 s long)",
                         "from 0 to 10000" } },

        -- duration
        { "video longer than the creator's maximum", VIDEO, { duration_sec = 181 },
          PRIVATE, nil, { "181 s long", "at most 180 s", "trim it by 1 s" } },
        { "fractional duration over the maximum", VIDEO, { duration_sec = 600.5 },
          PUBLIC, nil, { "600.5 s long" } },

        -- photo rules
        { "no photos", PHOTO, { photo_urls = {} }, PUBLIC, nil,
          { "photo_urls must hold 1 to 35 URLs; it holds 0." } },
        { "36 photos", PHOTO, { photo_urls = list(36) }, PUBLIC, nil,
          { "it holds 36" } },
        { "photo_urls not a list", PHOTO, { photo_urls = { a = "https://x.example/1.jpg" } },
          PUBLIC, nil, { "photo_urls must be a list of 1 to 35 https URLs" } },
        { "photo_urls with a hole", PHOTO,
          { photo_urls = { "https://cdn.example.com/p/1.jpg", nil,
                           "https://cdn.example.com/p/3.jpg" } }, PUBLIC, nil,
          { "photo_urls must be a list" } },
        { "photo_urls as a string", PHOTO, { photo_urls = "https://x.example/1.jpg" },
          PUBLIC, nil, { "photo_urls must be a list" } },
        { "photo URL not a string", PHOTO, { photo_urls = { 5 } }, PUBLIC, nil,
          { "photo_urls[1] must be a URL string" } },
        { "http photo URL", PHOTO, { photo_urls = { "http://cdn.example.com/1.jpg" } },
          PUBLIC, nil, { "photo_urls[1]", "uses http" } },
        { "photo_cover_index out of range", PHOTO, { photo_cover_index = 2 }, PUBLIC,
          nil, { "photo_cover_index 2 is out of range", "0 to 1" } },
        { "negative photo_cover_index", PHOTO, { photo_cover_index = -1 }, PUBLIC, nil,
          { "photo_cover_index must be a whole number from 0" } },
        { "fractional photo_cover_index", PHOTO, { photo_cover_index = 0.5 }, PUBLIC,
          nil, { "photo_cover_index must be a whole number" } },
        { "duets on a photo", PHOTO, { duets = false }, PUBLIC, nil,
          { "duets is not used for photo posts" } },
        { "stitches on a photo", PHOTO, { stitches = true }, PUBLIC, nil,
          { "stitches is not used for photo posts" } },
        { "cover_ms on a photo", PHOTO, { cover_ms = 0 }, PUBLIC, nil,
          { "cover_ms is not used for photo posts", "photo_cover_index" } },
        { "photo_cover_index on a video", VIDEO, { photo_cover_index = 0 }, PUBLIC,
          nil, { "photo_cover_index is used only for photo posts" } },
        { "auto_add_music on a video", VIDEO, { auto_add_music = false }, PUBLIC, nil,
          { "auto_add_music is used only for direct photo posts" } },

        -- inbox video: only the video
        { "inbox with privacy", INBOX, { privacy = "SELF_ONLY" }, PUBLIC, nil,
          { "privacy is not used in inbox mode", "remove it" } },
        { "inbox with comments", INBOX, { comments = true }, PUBLIC, nil,
          { "comments is not used in inbox mode" } },
        { "inbox with duets", INBOX, { duets = true }, PUBLIC, nil,
          { "duets is not used in inbox mode" } },
        { "inbox with stitches", INBOX, { stitches = true }, PUBLIC, nil,
          { "stitches is not used in inbox mode" } },
        { "inbox with brand_own", INBOX, { brand_own = true }, PUBLIC, nil,
          { "brand_own is not used in inbox mode" } },
        { "inbox with brand_third_party", INBOX, { brand_third_party = true }, PUBLIC,
          nil, { "brand_third_party is not used in inbox mode" } },
        { "inbox with ai_generated", INBOX, { ai_generated = true }, PUBLIC, nil,
          { "ai_generated is not used in inbox mode" } },
        { "inbox with cover_ms", INBOX, { cover_ms = 100 }, PUBLIC, nil,
          { "cover_ms is not used in inbox mode" } },
        { "inbox with a caption", INBOX, { caption = "hello" }, PUBLIC, nil,
          { "caption is not used in inbox mode" } },

        -- inbox photo: only title and description
        { "photo inbox with privacy", PHOTO_INBOX, { privacy = "SELF_ONLY" }, PUBLIC,
          nil, { "privacy is not used in inbox mode",
                 "takes only title and caption" } },
        { "photo inbox with comments", PHOTO_INBOX, { comments = true }, PUBLIC, nil,
          { "comments is not used in inbox mode" } },
        { "photo inbox with auto_add_music", PHOTO_INBOX, { auto_add_music = true },
          PUBLIC, nil, { "auto_add_music is not used in inbox mode" } },
        { "photo inbox with brand_own", PHOTO_INBOX, { brand_own = true }, PUBLIC, nil,
          { "brand_own is not used in inbox mode" } },
        { "photo inbox with ai_generated", PHOTO_INBOX, { ai_generated = true },
          PUBLIC, nil, { "ai_generated is not used in inbox mode" } },

        -- mode
        { "mode draft", VIDEO, { mode = "draft" }, PUBLIC, nil,
          { 'did you mean "inbox"?' } },
        { "mode DIRECT_POST", VIDEO, { mode = "DIRECT_POST" }, PUBLIC, nil,
          { 'did you mean "direct"?' } },
        { "unknown mode", VIDEO, { mode = "later" }, PUBLIC, nil,
          { 'mode must be "direct" (post now) or "inbox"' } },
        { "mode not a string", VIDEO, { mode = true }, PUBLIC, nil,
          { "mode must be", "got true" } },

        -- unaudited app
        { "unaudited, privacy not SELF_ONLY", VIDEO,
          { privacy = "FOLLOWER_OF_CREATOR" }, PRIVATE, { audited = false },
          { "privacy must be SELF_ONLY because this app has not passed TikTok's audit",
            "the TikTok account itself must also be set to private" } },
        { "unaudited, public account", VIDEO, {}, PUBLIC, { audited = false },
          { "This TikTok account is public", "set the account to private" } },
        { "unaudited photo, privacy not SELF_ONLY", PHOTO,
          { privacy = "MUTUAL_FOLLOW_FRIENDS" }, PRIVATE, { audited = false },
          { "privacy must be SELF_ONLY" } },
    }

    describe("refuses", function()
        for _, c in ipairs(refused) do
            local name, base, over, ci, opts, want = c[1], c[2], c[3], c[4], c[5], c[6]
            it(name, function()
                local out, err = settings.validate(merge(base, over), ci, opts)
                assert.is_nil(out)
                assert.is_true(errors.is(err))
                assert.are.equal("invalid_settings", err.code)
                assert.is_false(err.retryable)
                assert.is_table(err.problems)
                local found = false
                for _, p in ipairs(err.problems) do
                    local all = true
                    for _, s in ipairs(want) do
                        if not p:find(s, 1, true) then
                            all = false
                        end
                    end
                    found = found or all
                end
                assert.is_true(found, "no problem matches {" .. table.concat(want, " | ")
                               .. "} in:\n  " .. table.concat(err.problems, "\n  "))
                for _, p in ipairs(err.problems) do
                    assert.truthy(p:find("[.?]$"), "not a sentence: " .. p)
                    assert.truthy(err.message:find(p, 1, true),
                                  "message lacks problem: " .. p)
                end
            end)
        end
    end)

    -- Each accepted case: name, base, overrides, creator_info, opts, and
    -- fields the normalized result must have.
    local accepted = {
        { "plain video by URL", VIDEO, {}, PUBLIC, nil,
          { kind = "video", mode = "direct", source = "PULL_FROM_URL",
            privacy = "SELF_ONLY", comments = false, duets = false, stitches = false,
            brand_own = false, brand_third_party = false, ai_generated = false,
            auto_add_music = false } },
        { "video by file", VIDEO, { video_url = NIL, video_file = "/tmp/a.mp4" },
          PUBLIC, nil, { source = "FILE_UPLOAD", video_file = "/tmp/a.mp4" } },
        { "mode direct spelled out", VIDEO, { mode = "direct" }, PUBLIC, nil,
          { mode = "direct" } },
        { "every privacy the account offers", VIDEO,
          { privacy = "MUTUAL_FOLLOW_FRIENDS" }, PUBLIC, nil,
          { privacy = "MUTUAL_FOLLOW_FRIENDS" } },
        { "public post", VIDEO, { privacy = "PUBLIC_TO_EVERYONE" }, PUBLIC, nil,
          { privacy = "PUBLIC_TO_EVERYONE" } },
        { "followers on a private account", VIDEO, { privacy = "FOLLOWER_OF_CREATOR" },
          PRIVATE, nil, { privacy = "FOLLOWER_OF_CREATOR" } },
        { "all interactions on for a public post", VIDEO,
          { privacy = "PUBLIC_TO_EVERYONE", comments = true, duets = true,
            stitches = true }, PUBLIC, nil,
          { comments = true, duets = true, stitches = true } },
        { "comments on with SELF_ONLY", VIDEO, { comments = true }, PUBLIC, nil,
          { comments = true } },
        { "interactions off when the creator disabled them", VIDEO,
          { comments = false, duets = false, stitches = false }, LOCKED, nil,
          { comments = false } },
        { "own brand with SELF_ONLY", VIDEO, { brand_own = true }, PUBLIC, nil,
          { brand_own = true } },
        { "third-party brand on a public post", VIDEO,
          { brand_third_party = true, brand_own = true,
            privacy = "PUBLIC_TO_EVERYONE" }, PUBLIC, nil,
          { brand_third_party = true, brand_own = true } },
        { "AI-generated", VIDEO, { ai_generated = true }, PUBLIC, nil,
          { ai_generated = true } },
        { "caption of 2200 ASCII", VIDEO, { caption = ("a"):rep(2200) }, PUBLIC, nil, {} },
        { "caption of 1100 emoji (2200 units)", VIDEO,
          { caption = ("😀"):rep(1100) }, PUBLIC, nil, {} },
        { "caption of 2200 CJK characters (6600 bytes)", VIDEO,
          { caption = ("中"):rep(2200) }, PUBLIC, nil, {} },
        { "empty caption", VIDEO, { caption = "" }, PUBLIC, nil, { caption = "" } },
        { "caption with newlines and hashtags", VIDEO,
          { caption = "Spring drop\n#launch @friend" }, PUBLIC, nil,
          { caption = "Spring drop\n#launch @friend" } },
        { "cover_ms 0", VIDEO, { cover_ms = 0 }, PUBLIC, nil, { cover_ms = 0 } },
        { "cover_ms at the last frame", VIDEO, { cover_ms = 10000, duration_sec = 10 },
          PUBLIC, nil, { cover_ms = 10000, duration_sec = 10 } },
        { "cover_ms with unknown duration", VIDEO, { cover_ms = 999999 }, PUBLIC, nil,
          { cover_ms = 999999 } },
        { "duration at the maximum", VIDEO, { duration_sec = 180 }, PRIVATE, nil,
          { duration_sec = 180 } },
        { "duration unknown", VIDEO, {}, PRIVATE, nil, {} },
        { "no maximum known", VIDEO, { duration_sec = 5000 }, ONLY_SELF, nil, {} },

        -- URLs
        { "https URL with a query", VIDEO,
          { video_url = "https://cdn.example.com/v/a.mp4?X-Amz-Signature=abc" }, PUBLIC,
          nil, {} },
        { "http to 127.0.0.1", VIDEO, { video_url = "http://127.0.0.1:8080/a.mp4" },
          PUBLIC, nil, {} },
        { "http to localhost", VIDEO, { video_url = "http://localhost/a.mp4" }, PUBLIC,
          nil, {} },
        { "http to [::1]", VIDEO, { video_url = "http://[::1]:9000/a.mp4" }, PUBLIC,
          nil, {} },
        { "upper-case scheme and host", VIDEO,
          { video_url = "HTTPS://CDN.Example.COM/v/a.mp4" }, PUBLIC, VERIFIED, {} },
        { "URL under a verified prefix", VIDEO,
          { video_url = "https://cdn.example.com/v/deep/er/a.mp4" }, PUBLIC, VERIFIED,
          {} },
        { "URL on a verified domain", VIDEO,
          { video_url = "https://static.example.org/a.mp4" }, PUBLIC, VERIFIED, {} },
        { "URL on a subdomain of a verified domain", VIDEO,
          { video_url = "https://video.static.example.org:443/a.mp4" }, PUBLIC,
          VERIFIED, {} },
        { "loopback listed as verified", VIDEO,
          { video_url = "http://127.0.0.1:8080/media/a.mp4" }, PUBLIC,
          { verified_prefixes = { "domain:127.0.0.1" } }, {} },
        { "verified domain given with a trailing dot", VIDEO,
          { video_url = "https://cdn.example.com/x.mp4" }, PUBLIC,
          { verified_prefixes = { "domain:Example.com." } }, {} },
        { "audited app, public post", VIDEO, { privacy = "PUBLIC_TO_EVERYONE" },
          PUBLIC, { audited = true }, {} },

        -- unaudited
        { "unaudited, private account, SELF_ONLY", VIDEO, {}, PRIVATE,
          { audited = false }, { privacy = "SELF_ONLY" } },
        { "unaudited, only SELF_ONLY offered", VIDEO, {}, ONLY_SELF,
          { audited = false }, { privacy = "SELF_ONLY" } },
        { "unaudited inbox upload", INBOX, {}, nil, { audited = false },
          { mode = "inbox", privacy = nil } },

        -- photos
        { "photo post", PHOTO, {}, PUBLIC, nil,
          { kind = "photo", source = "PULL_FROM_URL", photo_cover_index = 0,
            auto_add_music = false } },
        { "photo with comments, music, title, description", PHOTO,
          { comments = true, auto_add_music = true, title = ("t"):rep(90),
            caption = ("d"):rep(4000), photo_cover_index = 1 }, PUBLIC, nil,
          { comments = true, auto_add_music = true, photo_cover_index = 1 } },
        { "photo title of 45 emoji (90 units)", PHOTO, { title = ("😀"):rep(45) },
          PUBLIC, nil, {} },
        { "35 photos", PHOTO, { photo_urls = list(35), photo_cover_index = 34 }, PUBLIC,
          nil, { photo_cover_index = 34 } },
        { "one photo", PHOTO, { photo_urls = list(1) }, PUBLIC, nil, {} },
        { "AI-generated photo", PHOTO, { ai_generated = true }, PUBLIC, nil,
          { ai_generated = true } },
        { "photo when the creator disabled duets", PHOTO, {}, LOCKED, nil, {} },

        -- inbox
        { "inbox video", INBOX, {}, PUBLIC, nil,
          { kind = "video", mode = "inbox", source = "PULL_FROM_URL", privacy = nil,
            comments = false } },
        { "inbox video without creator_info", INBOX, {}, nil, nil, { mode = "inbox" } },
        { "inbox video by file", INBOX, { video_url = NIL, video_file = "/v.mp4" },
          nil, nil, { source = "FILE_UPLOAD" } },
        { "inbox video with an empty caption", INBOX, { caption = "" }, nil, nil, {} },
        { "inbox video longer than the creator's maximum", INBOX,
          { duration_sec = 1000 }, PRIVATE, nil, {} },
        { "inbox photo with title and description", PHOTO_INBOX,
          { title = "Title", caption = "Description", photo_cover_index = 0 }, nil,
          nil, { kind = "photo", mode = "inbox", title = "Title",
                 caption = "Description" } },
    }

    describe("accepts", function()
        for _, c in ipairs(accepted) do
            local name, base, over, ci, opts, want = c[1], c[2], c[3], c[4], c[5], c[6]
            it(name, function()
                local out, err = settings.validate(merge(base, over), ci, opts)
                assert.is_nil(err, err and table.concat(err.problems, "\n"))
                assert.is_table(out)
                for k, v in pairs(want) do
                    assert.are.same(v, out[k], k)
                end
                for _, k in ipairs({ "comments", "duets", "stitches", "brand_own",
                                     "brand_third_party", "ai_generated",
                                     "auto_add_music" }) do
                    assert.is_boolean(out[k], k)
                end
            end)
        end
    end)

    describe("normalized result", function()
        it("copies the photo list and leaves the request untouched", function()
            local req = merge(PHOTO, {})
            local urls = req.photo_urls
            local out = assert(settings.validate(req, PUBLIC))
            assert.are_not.equal(urls, out.photo_urls)
            assert.are.same(urls, out.photo_urls)
            assert.is_nil(req.kind)
            assert.is_nil(req.photo_cover_index)
            assert.is_nil(req.comments)
        end)

        it("has no photo fields for a video and no privacy in inbox", function()
            local out = assert(settings.validate(merge(VIDEO, {}), PUBLIC))
            assert.is_nil(out.photo_urls)
            assert.is_nil(out.photo_cover_index)
            assert.is_nil(out.title)
            out = assert(settings.validate(merge(INBOX, {}), nil))
            assert.is_nil(out.privacy)
        end)
    end)

    describe("collects every problem", function()
        it("reports all of them at once", function()
            local out, err = settings.validate({
                video_url = "http://cdn.example.com/a.mp4",    -- 1 http
                privacy = "PRIVATE",                           -- 2 enum
                comments = true,                               -- 3 creator disabled
                caption = ("a"):rep(2300),                     -- 4 too long
                cover_ms = -5,                                 -- 5 negative
                ai_generated = "no",                           -- 6 not boolean
                duration_sec = 700,                            -- 7 too long
            }, LOCKED)
            assert.is_nil(out)
            assert.are.equal(7, #err.problems, table.concat(err.problems, "\n"))
            assert.truthy(err.message:find("(7 problems)", 1, true))
        end)

        it("says problem, not problems, for one", function()
            local _, err = settings.validate(merge(VIDEO, { privacy = NIL }), PUBLIC)
            assert.are.equal(1, #err.problems)
            assert.truthy(err.message:find("(1 problem)", 1, true))
        end)

        it("keeps URL queries and userinfo out of problems", function()
            local _, err = settings.validate(merge(VIDEO, {
                video_url = "https://other.example.net/a.mp4?X-Amz-Signature=SECRETSIG",
            }), PUBLIC, VERIFIED)
            assert.are.equal(1, #err.problems)
            assert.is_nil(err.message:find("SECRETSIG", 1, true))
            assert.truthy(err.problems[1]:find("https://other.example.net/a.mp4", 1,
                                               true))
            _, err = settings.validate(merge(VIDEO, {
                video_url = "https://user:PASSWORD@cdn.example.com/a.mp4",
            }), PUBLIC)
            assert.is_nil(err.message:find("PASSWORD", 1, true))
        end)
    end)

    describe("programmer errors raise", function()
        local function expect_raise(fn, text)
            local ok, msg = pcall(fn)
            assert.is_false(ok)
            if text then
                assert.truthy(tostring(msg):find(text, 1, true), tostring(msg))
            end
        end

        it("unknown request key", function()
            expect_raise(function()
                settings.validate(merge(VIDEO, { xyz = 1 }), PUBLIC)
            end, "tiktok.settings.validate: unknown option 'xyz'")
        end)

        it("a typo of a real key", function()
            expect_raise(function()
                settings.validate(merge(VIDEO, { comment = true }), PUBLIC)
            end, "unknown option 'comment'")
        end)

        it("array entries in the request", function()
            expect_raise(function()
                settings.validate({ "https://x.example/a.mp4" }, PUBLIC)
            end, "unknown option '1'")
        end)

        local cases = {
            { "request not a table", function() settings.validate("x", PUBLIC) end },
            { "request nil", function() settings.validate(nil, PUBLIC) end },
            { "creator_info a string", function()
                settings.validate(merge(VIDEO), "info") end },
            { "direct post without creator_info", function()
                settings.validate(merge(VIDEO), nil) end },
            { "privacy_level_options missing", function()
                settings.validate(merge(VIDEO), { comment_disabled = false }) end },
            { "privacy_level_options with a number", function()
                settings.validate(merge(VIDEO), { privacy_level_options = { 1 } }) end },
            { "comment_disabled not boolean", function()
                settings.validate(merge(VIDEO), merge(PUBLIC,
                    { comment_disabled = "false" })) end },
            { "duet_disabled not boolean", function()
                settings.validate(merge(VIDEO), merge(PUBLIC, { duet_disabled = 0 })) end },
            { "max duration a string", function()
                settings.validate(merge(VIDEO), merge(PUBLIC,
                    { max_video_post_duration_sec = "600" })) end },
            { "nickname a number", function()
                settings.validate(merge(VIDEO), merge(PUBLIC, { nickname = 5 })) end },
            { "opts a string", function()
                settings.validate(merge(VIDEO), PUBLIC, "audited") end },
            { "unknown opts key", function()
                settings.validate(merge(VIDEO), PUBLIC, { audit = false }) end },
            { "opts.audited a string", function()
                settings.validate(merge(VIDEO), PUBLIC, { audited = "no" }) end },
            { "verified_prefixes a string", function()
                settings.validate(merge(VIDEO), PUBLIC,
                    { verified_prefixes = "https://x.example/" }) end },
            { "verified prefix with http", function()
                settings.validate(merge(VIDEO), PUBLIC,
                    { verified_prefixes = { "http://x.example/v/" } }) end },
            { "verified prefix without trailing slash", function()
                settings.validate(merge(VIDEO), PUBLIC,
                    { verified_prefixes = { "https://x.example/v" } }) end },
            { "verified prefix with a query", function()
                settings.validate(merge(VIDEO), PUBLIC,
                    { verified_prefixes = { "https://x.example/v/?a=/" } }) end },
            { "empty domain entry", function()
                settings.validate(merge(VIDEO), PUBLIC,
                    { verified_prefixes = { "domain:" } }) end },
            { "bad domain entry", function()
                settings.validate(merge(VIDEO), PUBLIC,
                    { verified_prefixes = { "domain:a..b" } }) end },
            { "non-string prefix", function()
                settings.validate(merge(VIDEO), PUBLIC, { verified_prefixes = { 5 } }) end },
            { "duration_sec a string", function()
                settings.validate(merge(VIDEO, { duration_sec = "10" }), PUBLIC) end },
            { "negative duration_sec", function()
                settings.validate(merge(VIDEO, { duration_sec = -1 }), PUBLIC) end },
            { "NaN duration_sec", function()
                settings.validate(merge(VIDEO, { duration_sec = 0 / 0 }), PUBLIC) end },
        }
        for _, c in ipairs(cases) do
            it(c[1], function()
                expect_raise(c[2], "tiktok.settings.validate")
            end)
        end

        it("points at the caller", function()
            local ok, msg = pcall(function()
                settings.validate(merge(VIDEO, { nope = 1 }), PUBLIC)
            end)
            assert.is_false(ok)
            assert.truthy(msg:find("settings_spec.lua", 1, true), msg)
        end)
    end)

    it("accepts the switches explicitly off in inbox mode (false is the default)", function()
        local r = assert(settings.validate(merge(INBOX, { comments = false, duets = false, stitches = false,
                                                          brand_own = false, brand_third_party = false,
                                                          ai_generated = false }), PUBLIC))
        assert.equal("inbox", r.mode)
        assert.is_false(r.comments)
    end)

    it("exports FIELDS: every post field, and the options tiktok.post takes besides them", function()
        for _, f in ipairs(require("tiktok.fields").list) do
            assert.equal("field", settings.FIELDS[f.name], f.name)
        end
        for _, k in ipairs({ "connection", "account", "as", "vars", "wait", "on_progress", "on_publish",
                             "wait_timeout_ms", "detach", "duration_sec" }) do
            assert.is_not_nil(settings.FIELDS[k], k)
        end
        assert.has_error(function()
            settings.validate(merge(VIDEO, { wait = "yes" }), PUBLIC)
        end, "tiktok.settings.validate: option 'wait' must be a boolean, got string")
    end)

    describe("takes the whole tiktok.post request", function()
        it("renders the templates with vars and ignores connection, account, as, wait and callbacks", function()
            local out = assert(settings.validate(merge(VIDEO, {
                caption = "{{title}} is live", video_url = "https://cdn.example.com/{{slug}}.mp4",
                vars = { title = "Spring", slug = "spring" }, connection = {}, account = "-000abc",
                as = { user = "alice" }, wait = false, on_progress = function() end,
            }), PUBLIC))
            assert.equal("Spring is live", out.caption)
            assert.equal("https://cdn.example.com/spring.mp4", out.video_url)
            assert.is_nil(out.connection)
            assert.is_nil(out.vars)
        end)

        it("lists each missing variable as a problem, next to every other problem", function()
            local _, err = settings.validate(merge(VIDEO, {
                caption = "{{title}} by {{user.name}} {{title}}", privacy = "PRIVATE",
            }), PUBLIC)
            assert.equal("invalid_settings", err.code)
            assert.equal(3, #err.problems, table.concat(err.problems, "\n"))
            local text = table.concat(err.problems, "\n")
            assert.truthy(text:find("{{title}}", 1, true))
            assert.truthy(text:find("{{user.name}}", 1, true))
            assert.truthy(text:find("add it to vars", 1, true))
            assert.same({ "caption", "caption", "privacy" }, err.fields)
        end)

        it("a missing variable in a photo URL names the URL", function()
            local _, err = settings.validate(merge(PHOTO, {
                photo_urls = { "https://cdn.example.com/{{a}}.jpg" } }), PUBLIC)
            assert.truthy(err.problems[1]:find("photo_urls[1] uses the variable {{a}}", 1, true))
        end)
    end)

    describe("wording", function()
        it("names command-line flags with wording = \"flags\"", function()
            local _, err = settings.validate(merge(VIDEO, { privacy = "SELF_ONLY", duets = true,
                                                           caption = "{{x}}" }), PUBLIC,
                                             { wording = "flags" })
            local text = table.concat(err.problems, "\n")
            assert.truthy(text:find("--allow-duets cannot be allowed on a SELF_ONLY", 1, true), text)
            assert.truthy(text:find("leave out --allow-duets", 1, true), text)
            assert.truthy(text:find("--var NAME=VALUE", 1, true), text)
            assert.is_nil(text:find("duets = false", 1, true))
        end)

        it("names a form's labels with wording = \"labels\"", function()
            local _, err = settings.validate(merge(VIDEO, { video_url = "http://cdn.example.com/a.mp4" }),
                                             PUBLIC, { wording = "labels" })
            assert.truthy(err.problems[1]:find('"Video URL" http://cdn.example.com/a.mp4 uses http', 1, true),
                          err.problems[1])
            assert.same({ "video_url" }, err.fields)
        end)

        it("refuses an unknown wording", function()
            assert.has_error(function() settings.validate(merge(VIDEO), PUBLIC, { wording = "yaml" }) end)
        end)
    end)

    it("names the creator's own limit, in minutes too (3600 s for some creators)", function()
        local _, err = settings.validate(merge(VIDEO, { duration_sec = 3700 }),
                                         merge(PUBLIC, { max_video_post_duration_sec = 3600 }))
        assert.truthy(err.problems[1]:find("at most 3600 s (60 minutes)", 1, true), err.problems[1])
        assert.truthy(settings.validate(merge(VIDEO, { duration_sec = 3000 }),
                                        merge(PUBLIC, { max_video_post_duration_sec = 3600 })))
    end)

    it("is a list of small named rules", function()
        assert.is_true(#settings.RULES >= 10)
        for _, r in ipairs(settings.RULES) do
            assert.is_string(r.name)
            assert.is_function(r.check)
        end
    end)

    describe("disclosure_label()", function()
        local MUC = "By posting, you agree to TikTok's Music Usage Confirmation."
        local BC = "By posting, you agree to TikTok's Branded Content Policy and "
            .. "Music Usage Confirmation."
        local cases = {
            { false, false, nil, MUC, 1 },
            { nil, nil, nil, MUC, 1 },
            { true, false, "Promotional content", MUC, 1 },
            { false, true, "Paid partnership", BC, 2 },
            { true, true, "Paid partnership", BC, 2 },
        }
        for _, c in ipairs(cases) do
            it(("own=%s third=%s"):format(tostring(c[1]), tostring(c[2])), function()
                local label, declaration, links = settings.disclosure_label(c[1], c[2])
                assert.are.equal(c[3], label)
                assert.are.equal(c[4], declaration)
                assert.are.equal(c[5], #links)
                for _, l in ipairs(links) do
                    assert.truthy(l:find("^https://www%.tiktok%.com/legal/"))
                end
            end)
        end

        it("raises on non-booleans", function()
            assert.has_error(function() settings.disclosure_label("yes", false) end)
            assert.has_error(function() settings.disclosure_label(false, 1) end)
        end)
    end)
end)
