-- tiktok.fields: the one schema of a post's fields.
--
-- Every field a post can carry is described once here; everything else is
-- derived from this list (the habit of Lua-cURLv3's option tables):
--   * tiktok.post's option checking (`type`),
--   * tiktok.settings's per-kind and per-mode rules (a field that a kind or
--     mode does not use is refused, with the field's `unused` hint),
--   * the init request body (`tiktok[kind][mode]`: where TikTok wants the
--     value, and `invert` when TikTok's switch means the opposite),
--   * the command line's flags (`flag`, `metavar`, `help`, `repeat`),
--   * a web form's accepted fields and labels (`label`).
--
-- Entry keys:
--   name      the Lua option name (tiktok.post{...})
--   type      "string" | "boolean" | "integer" | "list" (of strings) | "enum"
--   values    for "enum": the accepted values
--   template  true: may contain {{variables}}, rendered before validation
--   source    true: a media source (exactly one per post)
--   kinds     which kind of post uses it: { video = true, photo = true }
--   tiktok    kind -> mode -> TikTok's JSON path ("post_info.title"); a kind
--             and mode missing here do not use the field. Fields without
--             `tiktok` (the media sources, mode) shape the request otherwise.
--   invert    TikTok's field is the opposite switch (comments = not disable_comment)
--   default   what TikTok gets when the field is not given (nil: nothing sent)
--   unused    kind -> sentence: why and what instead, when the kind has no use for it;
--             {name} stands for a field as the wording names it (option, flag or label)
--   flag, metavar, help, repeat   the command line's option
--   label     the name a form shows to a person
local _M = {}

local DIRECT, INBOX = "direct", "inbox"

local list = {
    { name = "video_url", type = "string", template = true, source = true, kinds = { video = true },
      flag = "--url", metavar = "URL", label = "Video URL",
      help = "an https video URL for TikTok to pull (may contain {{variables}})" },
    { name = "video_file", type = "string", source = true, kinds = { video = true },
      flag = "--file", metavar = "PATH", label = "Video file",
      help = "an MP4, MOV or WebM file to upload" },
    { name = "photo_urls", type = "list", template = true, source = true, kinds = { photo = true },
      flag = "--photo", metavar = "URL", ["repeat"] = true, label = "Photo URLs",
      help = "an https photo URL (repeat for up to 35 photos)" },
    { name = "caption", type = "string", template = true, kinds = { video = true, photo = true },
      tiktok = { video = { [DIRECT] = "post_info.title" },
                 photo = { [DIRECT] = "post_info.description", [INBOX] = "post_info.description" } },
      flag = "--caption", metavar = "TEXT", label = "Caption",
      help = "the caption (photo posts: the description); {{name}} variables" },
    { name = "title", type = "string", template = true, kinds = { photo = true },
      tiktok = { photo = { [DIRECT] = "post_info.title", [INBOX] = "post_info.title" } },
      unused = { video = "{title} is used only for photo posts; put the video's text in {caption}." },
      flag = "--title", metavar = "TEXT", label = "Title",
      help = "the title of a photo post" },
    { name = "privacy", type = "string", kinds = { video = true, photo = true },
      tiktok = { video = { [DIRECT] = "post_info.privacy_level" },
                 photo = { [DIRECT] = "post_info.privacy_level" } },
      flag = "--privacy", metavar = "LEVEL", label = "Who can view this post",
      help = "who can see the post (required unless --inbox)" },
    { name = "comments", type = "boolean", invert = true, default = false, kinds = { video = true, photo = true },
      tiktok = { video = { [DIRECT] = "post_info.disable_comment" },
                 photo = { [DIRECT] = "post_info.disable_comment" } },
      creator_off = "comment_disabled",
      flag = "--allow-comments", label = "Allow comments", help = "allow comments" },
    { name = "duets", type = "boolean", invert = true, default = false, kinds = { video = true },
      tiktok = { video = { [DIRECT] = "post_info.disable_duet" } },
      creator_off = "duet_disabled", not_self_only = true,
      unused = { photo = "{duets} is not used for photo posts (TikTok has no duets for photos); remove it." },
      flag = "--allow-duets", label = "Allow Duet", help = "allow duets (videos; not with SELF_ONLY)" },
    { name = "stitches", type = "boolean", invert = true, default = false, kinds = { video = true },
      tiktok = { video = { [DIRECT] = "post_info.disable_stitch" } },
      creator_off = "stitch_disabled", not_self_only = true,
      unused = { photo = "{stitches} is not used for photo posts (TikTok has no stitches for photos); remove it." },
      flag = "--allow-stitches", label = "Allow Stitch", help = "allow stitches (videos; not with SELF_ONLY)" },
    { name = "brand_own", type = "boolean", default = false, kinds = { video = true, photo = true },
      tiktok = { video = { [DIRECT] = "post_info.brand_organic_toggle" },
                 photo = { [DIRECT] = "post_info.brand_organic_toggle" } },
      flag = "--brand-own", label = "Your brand",
      help = "disclose: promotes your own brand (\"Promotional content\")" },
    { name = "brand_third_party", type = "boolean", default = false, kinds = { video = true, photo = true },
      tiktok = { video = { [DIRECT] = "post_info.brand_content_toggle" },
                 photo = { [DIRECT] = "post_info.brand_content_toggle" } },
      flag = "--brand-third-party", label = "Branded content",
      help = "disclose: paid partnership (not with SELF_ONLY)" },
    { name = "ai_generated", type = "boolean", default = false, kinds = { video = true, photo = true },
      tiktok = { video = { [DIRECT] = "post_info.is_aigc" }, photo = { [DIRECT] = "is_aigc" } },
      flag = "--ai-generated", label = "AI-generated content", help = "label the content as AI-generated" },
    { name = "cover_ms", type = "integer", kinds = { video = true },
      tiktok = { video = { [DIRECT] = "post_info.video_cover_timestamp_ms" } },
      unused = { photo = "{cover_ms} is not used for photo posts; choose the cover with {photo_cover_index}." },
      flag = "--cover-ms", metavar = "MS", label = "Cover frame (ms)",
      help = "video cover frame, in milliseconds from the start" },
    { name = "photo_cover_index", type = "integer", default = 0, kinds = { photo = true },
      tiktok = { photo = { [DIRECT] = "source_info.photo_cover_index", [INBOX] = "source_info.photo_cover_index" } },
      unused = { video = "{photo_cover_index} is used only for photo posts; for a video choose the cover "
                         .. "frame with {cover_ms}." },
      flag = "--cover-index", metavar = "N", label = "Cover photo", help = "photo cover, counted from 0" },
    { name = "auto_add_music", type = "boolean", default = false, kinds = { photo = true },
      tiktok = { photo = { [DIRECT] = "post_info.auto_add_music" } },
      unused = { video = "{auto_add_music} is used only for direct photo posts; remove it." },
      flag = "--auto-add-music", label = "Add music automatically", help = "photo posts: let TikTok add music" },
    { name = "relay", type = "enum", values = { "auto", "always", "never" }, default = "auto",
      kinds = { video = true },
      unused = { photo = "{relay} is used only for video URLs (TikTok pulls photos itself); remove it." },
      flag = "--relay", metavar = "auto|always|never", label = "If TikTok will not pull the URL",
      help = "a video URL TikTok refuses (url_ownership_unverified): auto (default) streams it up as a "
          .. "file upload, always does so at once, never keeps the refusal" },
    { name = "mode", type = "enum", values = { DIRECT, INBOX }, kinds = { video = true, photo = true },
      flag = "--inbox", label = "Send to the creator's inbox as a draft",
      help = "upload as a draft to the creator's TikTok inbox instead of posting" },
}

local by_name = {}
for i, f in ipairs(list) do
    f.index = i
    by_name[f.name] = f
end

_M.list = list
_M.by_name = by_name
_M.MODES = { DIRECT, INBOX }

--- fields.option_types() -> { name = type for util.check_opts }
-- "list" and "enum" fields are checked as tables and strings; their
-- contents are validated by tiktok.settings.
function _M.option_types(extra)
    local spec = {}
    for _, f in ipairs(list) do
        local t = f.type
        if t == "list" then t = "table" elseif t == "enum" then t = "string" end
        spec[f.name] = t
    end
    for k, v in pairs(extra or {}) do spec[k] = v end
    return spec
end

--- fields.used(field, kind, mode) -> true when a post of this kind and mode
-- sends the field to TikTok (or, for sources and mode, uses it at all).
function _M.used(f, kind, mode)
    if not f.kinds[kind] then return false end
    if not f.tiktok then return true end
    return f.tiktok[kind] ~= nil and f.tiktok[kind][mode] ~= nil
end

local function put(body, path, value)
    local t = body
    local head, rest = path:match("^([^.]+)%.(.+)$")
    while head do
        if t[head] == nil then t[head] = {} end
        t = t[head]
        path = rest
        head, rest = path:match("^([^.]+)%.(.+)$")
    end
    t[path] = value
end

--- fields.body(req) -> the fields of TikTok's init body for a normalized
-- request (tiktok.settings.validate's result): every field the request's
-- kind and mode send, at its JSON path, inverted where TikTok's switch is
-- the opposite, its default when the request leaves it out.
function _M.body(req)
    local body = {}
    for _, f in ipairs(list) do
        local where = f.tiktok and f.tiktok[req.kind] and f.tiktok[req.kind][req.mode]
        if where then
            local v = req[f.name]
            if v == nil then v = f.default end
            if v ~= nil then
                if f.invert then v = not v end
                put(body, where, v)
            end
        end
    end
    return body
end

--- fields.label(name) -> the label a form shows for an option name
function _M.label(name)
    local f = by_name[name]
    return f and f.label or name
end

return _M
