/* core.h: what the Lua-facing files of tiktok.core share.
 *
 * core.c only opens the areas, one file each (as luasystem's core.c does):
 *   session.c  libcurl sessions: request, streaming chunk upload
 *   files.c    file primitives of the store: read, atomic write, stat, lock
 *   crypto.c   SHA-256/HMAC glue, getrandom, constant-time compare
 *   media.c    glue for the pure planner and probe: plan, chunk ranges,
 *              Content-Range, the container probe
 *   util.c     the one failure helper, clocks, the JSON big-integer guard
 * The pure helpers behind them (plan.c, encode.c, probe.c, sha256.c) are
 * declared in tt.h and touch neither Lua nor libcurl.
 *
 * Every tt_open_* adds its functions to the module table on the stack top
 * and registers the metatables of its types. Everything here is hidden
 * (-fvisibility=hidden): only luaopen_tiktok_core is exported. */
#ifndef TIKTOK_CORE_H
#define TIKTOK_CORE_H

#include "compat.h"

#define TT_API __attribute__((visibility("default")))

/* util.c */
double tt_mono(void);              /* CLOCK_MONOTONIC in seconds */
void tt_sleep_ms(long ms);         /* sleeps, resuming after signals */
int tt_errno_fail(lua_State *L, const char *what, int e);
/* session.c */
int tt_curl_init(void);            /* curl_global_init once; 0 when it failed */

/* The areas. */
void tt_open_session(lua_State *L);
void tt_open_files(lua_State *L);
void tt_open_crypto(lua_State *L);
void tt_open_media(lua_State *L);
void tt_open_util(lua_State *L);

#endif
