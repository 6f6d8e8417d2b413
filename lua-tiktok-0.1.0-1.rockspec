package = "lua-tiktok"
version = "0.1.0-1"
source = {
   url = "git+https://github.com/lua-tiktok/lua-tiktok.git",
   tag = "v0.1.0",
}
description = {
   summary = "Connect TikTok accounts (Login Kit) and post videos and photos (Content Posting API)",
   detailed = [[
A C core on libcurl (streaming chunked upload, connection reuse, TLS always
verified) with a Lua API: tiktok.connect{...} and tiktok.post{...}, caption
templates, settings validation against the creator's options, and a file
store safe for several processes. Works in Lua 5.1-5.4, LuaJIT and OpenResty.
]],
   homepage = "https://github.com/lua-tiktok/lua-tiktok",
   license = "MIT",
}
dependencies = {
   "lua >= 5.1",
   "lua-cjson",
}
external_dependencies = {
   CURL = { header = "curl/curl.h" },
}
build = {
   type = "builtin",
   modules = {
      ["tiktok.core"] = {
         sources = { "src/core.c", "src/session.c", "src/files.c", "src/crypto.c", "src/media.c", "src/util.c",
                     "src/plan.c", "src/encode.c", "src/sha256.c", "src/probe.c" },
         libraries = { "curl" },
         incdirs = { "$(CURL_INCDIR)" },
         libdirs = { "$(CURL_LIBDIR)" },
      },
      ["tiktok"] = "lua/tiktok/init.lua",
      ["tiktok.api"] = "lua/tiktok/api.lua",
      ["tiktok.connection"] = "lua/tiktok/connection.lua",
      ["tiktok.errors"] = "lua/tiktok/errors.lua",
      ["tiktok.openresty"] = "lua/tiktok/openresty.lua",
      ["tiktok.post"] = "lua/tiktok/post.lua",
      ["tiktok.settings"] = "lua/tiktok/settings.lua",
      ["tiktok.store"] = "lua/tiktok/store.lua",
      ["tiktok.template"] = "lua/tiktok/template.lua",
      ["tiktok.thread"] = "lua/tiktok/thread.lua",
      ["tiktok.thread_impl"] = "lua/tiktok/thread_impl.lua",
      ["tiktok.util"] = "lua/tiktok/util.lua",
      ["tiktok.webhook"] = "lua/tiktok/webhook.lua",
   },
   install = { bin = { tiktok = "bin/tiktok" } },
}
