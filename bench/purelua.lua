-- bench/purelua.lua: captions rendered (tiktok.template.render) and
-- requests validated (tiktok.settings.validate) per second in this
-- interpreter. Each figure is the median of 3 runs of about 0.5 s.
local template = require "tiktok.template"
local settings = require "tiktok.settings"
local core = require "tiktok.core"
local cjson = require "cjson"

local CAPTION = "{{title}} is live! Get the {{ product.name }} for {{product.price}} at {{shop}} "
                .. "before {{ends}} #launch #{{tags.1}} #{{tags.2}}"
local VARS = { title = "Spring drop", product = { name = "Trail Runner 2", price = "$89" },
               shop = "Acme Outdoors", ends = "Sunday", tags = { "running", "spring" } }
local CREATOR = {
    nickname = "Acme", username = "acme", avatar_url = "https://p16.example/avatar.jpg",
    privacy_level_options = { "PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY" },
    comment_disabled = false, duet_disabled = false, stitch_disabled = false,
    max_video_post_duration_sec = 300,
}
local OPTS = { audited = true, verified_prefixes = { "https://cdn.example.com/videos/" } }

local rendered = assert(template.render(CAPTION, VARS))
local function request()
    return { video_file = "/srv/videos/spring.mp4", caption = rendered, privacy = "PUBLIC_TO_EVERYONE",
             comments = true, duets = false, stitches = false, brand_own = true, brand_third_party = false,
             ai_generated = false, cover_ms = 1000, mode = "direct", duration_sec = 42.5 }
end
assert(settings.validate(request(), CREATOR, OPTS))

local function rate(fn)
    local runs = {}
    for r = 1, 3 do
        local n, t0 = 0, core.monotonic_ms()
        local t1
        repeat
            for _ = 1, 500 do fn() end
            n = n + 500
            t1 = core.monotonic_ms()
        until t1 - t0 >= 500
        runs[r] = n / ((t1 - t0) / 1000)
    end
    table.sort(runs)
    return runs[2], runs
end

local render_rate, render_runs = rate(function() return template.render(CAPTION, VARS) end)
local validate_rate, validate_runs = rate(function() return settings.validate(request(), CREATOR, OPTS) end)
io.write(cjson.encode({ item = "purelua", interpreter = jit and jit.version or _VERSION,
                        render_per_s = render_rate, validate_per_s = validate_rate,
                        render_runs = render_runs, validate_runs = validate_runs,
                        caption_bytes = #rendered, tags = select(2, CAPTION:gsub("{{", "")) }), "\n")
