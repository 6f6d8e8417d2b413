/* core.c: tiktok.core, the C half of lua-tiktok. This file only opens the
 * areas, one file each (listed in core.h).
 *
 * Conventions, for every file:
 * - Misuse (wrong argument types) raises via luaL_check*; every such check
 *   runs before any allocation that Lua does not own.
 * - Runtime failures return nil, kind, message[, sent].
 * - No Lua error ever crosses libcurl: callbacks run user code under
 *   lua_pcall, park the error and abort the transfer.
 * - The only process-wide state is curl_global_init, done once here. */
#define _GNU_SOURCE
#include <dlfcn.h>

#include <curl/curl.h>

#include "core.h"


TT_API int luaopen_tiktok_core(lua_State *L) {
#if LUA_VERSION_NUM < 502
  /* A 5.1/LuaJIT build must not run inside a 5.2+ host: the symbols mostly
   * resolve, but several mean something else there. Only 5.2+ exports this. */
  if (dlsym(RTLD_DEFAULT, "luaL_checkversion_") != NULL)
    return luaL_error(L, "tiktok.core: this build is for Lua 5.1/LuaJIT but was loaded into Lua 5.2+; "
                         "install the build made for this interpreter (check LUA_CPATH_5_4/LUA_CPATH)");
#endif
  tt_curl_init();
  lua_newtable(L);
  tt_open_session(L);
  tt_open_files(L);
  tt_open_crypto(L);
  tt_open_media(L);
  tt_open_util(L);
  tt_open_relay(L);
  tt_open_aead(L);   /* aead.c: AES-256-GCM for the stores' tokens at rest */
  tt_open_signals(L);
  lua_pushinteger(L, LUA_VERSION_NUM); lua_setfield(L, -2, "lua_version_num");
  /* curl_version_info, not curl_version(): the latter initialises OpenLDAP,
   * whose SASL setup leaks (found with valgrind). */
  lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version); lua_setfield(L, -2, "curl_version");
  return 1;
}
