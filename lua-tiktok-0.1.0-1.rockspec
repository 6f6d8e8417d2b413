rockspec_format = "3.0"
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
   issues_url = "https://github.com/lua-tiktok/lua-tiktok/issues",
   license = "MIT",
   labels = { "tiktok", "oauth", "upload", "video", "curl", "openresty" },
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "lua-cjson",
   "argparse >= 0.7",   -- bin/tiktok's options (tiktok.cli.args)
}
-- libcurl and libcrypto are looked up by their libraries, not by headers:
-- LuaRocks searches <prefix>/lib, <prefix>/lib/$(gcc -print-multiarch) and
-- <prefix>/lib64 for libraries, but only <prefix>/include for headers, and
-- Debian and Ubuntu keep curl/curl.h (and openssl/configuration.h) under
-- include/<triplet>/ (x86_64-linux-gnu, aarch64-linux-gnu, ...), where the
-- compiler finds them by itself. So no CURL_INCDIR is needed there, nor with
-- /usr/include or /usr/local/include. OPENSSL_DIR=... picks another OpenSSL.
external_dependencies = {
   CURL = { library = "curl" },
   OPENSSL = { library = "crypto" },
}
build = {
   type = "builtin",
   modules = {
      ["tiktok.core"] = {
         sources = { "src/core.c", "src/session.c", "src/files.c", "src/crypto.c", "src/media.c", "src/util.c",
                     "src/plan.c", "src/encode.c", "src/sha256.c", "src/probe.c", "src/aead.c", "src/relay.c",
                     "src/signals.c" },
         libraries = { "curl", "crypto" },   -- libcrypto: AES-256-GCM for tokens at rest (src/aead.c)
         incdirs = { "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
         libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
      },
      -- Only the C module is listed: the builtin backend copies the whole
      -- lua/ directory (lua/tiktok/**/*.lua) into the tree by itself, so a
      -- new Lua module needs no edit here.
   },
   install = { bin = { tiktok = "bin/tiktok" } },
}
-- `luarocks test`: the unit specs (no sandbox, nginx or browser) against the
-- installed tiktok.core; `make test` runs everything.
test = {
   type = "busted",
   flags = { "spec/unit" },
}
