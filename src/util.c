/* util.c: what every area shares (clocks, sleeping, the errno failure),
 * the clock functions of the module and the JSON big-integer guard
 * (encode.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "tt.h"

double tt_mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

void tt_sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000; ts.tv_nsec = (ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Every errno a file primitive can meet, by name (an X-macro list, as
 * Lua-cURLv3's lcerr_easy.h). EAGAIN is EWOULDBLOCK on Linux. */
#define TT_ERRNOS(X) \
  X(ENOENT) X(EISDIR) X(ENOTDIR) X(EACCES) X(EPERM) X(EEXIST) X(ELOOP) \
  X(EFBIG) X(EIO) X(ENOSPC) X(EDQUOT) X(EROFS) X(ENAMETOOLONG) X(EMFILE) \
  X(ENFILE) X(ENOMEM) X(EINVAL) X(EBUSY) X(EXDEV) X(ETXTBSY) X(EAGAIN) \
  X(EINTR) X(EBADF) X(ENXIO) X(ENODEV) X(EOVERFLOW) X(ESTALE)

const char *tt_errno_name(int e) {
  switch (e) {
#define TT_ERRNO_CASE(n) case n: return #n;
  TT_ERRNOS(TT_ERRNO_CASE)
#undef TT_ERRNO_CASE
  default: return "EOTHER";
  }
}

int tt_fail(lua_State *L, const char *kind, int sent, const char *fmt, ...) {
  va_list ap;
  lua_pushnil(L);
  lua_pushstring(L, kind);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  if (sent == TT_NO_TRANSFER) return 3;
  lua_pushboolean(L, sent);
  return 4;
}

int tt_fail_errno(lua_State *L, int e, const char *what) {
  if (e == ELOOP)   /* every file primitive opens with O_NOFOLLOW */
    return tt_fail(L, "ELOOP", TT_NO_TRANSFER, "%s: the path is a symbolic link, which lua-tiktok "
                   "does not follow here; use the real path", what);
  return tt_fail(L, tt_errno_name(e), TT_NO_TRANSFER, "%s: %s", what, strerror(e));
}

/* core.json_quote_bigints(text) -> text with integers over 15 digits quoted
 *   | nil, "invalid", message (not lexically JSON) */
static int l_json_bigints(lua_State *L) {
  size_t len, n;
  const char *s = luaL_checklstring(L, 1, &len);
  char *out;
  luaL_argcheck(L, len < (size_t)1 << 30, 1, "string too long");
  out = lua_newuserdata(L, len + 2 * (len / 16 + 1) + 1);
  n = tt_json_quote_bigints(s, len, out);
  if (n == (size_t)-1) return tt_fail(L, "invalid", TT_NO_TRANSFER, "malformed JSON text");
  lua_pushlstring(L, out, n);
  return 1;
}

/* ---------------------------------------------------- options and headers */

long tt_opt_int(lua_State *L, int t, const char *k, long def) {
  long v;
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) {
    if (def < 0) luaL_error(L, "option '%s' is required", k);
    lua_pop(L, 1);
    return def;
  }
  if (!lua_isnumber(L, -1)) luaL_error(L, "option '%s' must be a number", k);
  v = (long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (v < 0) luaL_error(L, "option '%s' must not be negative", k);
  return v;
}

const char *tt_opt_str(lua_State *L, int t, const char *k, size_t *len) {
  const char *s;
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); if (len) *len = 0; return NULL; }
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "option '%s' must be a string", k);
  s = lua_tolstring(L, -1, len);
  lua_pop(L, 1);   /* still referenced by the options table */
  return s;
}

void tt_push_headers(lua_State *L, const char *p, size_t len) {
  size_t i = 0;
  lua_newtable(L);
  while (i < len) {
    size_t e = i, colon = 0, k;
    while (e < len && p[e] != '\n') e++;
    for (k = i; k < e; k++) if (p[k] == ':') { colon = k; break; }
    if (colon > i && colon - i < 128) {
      size_t vs = colon + 1, ve = e;
      char name[128];
      for (k = 0; k < colon - i; k++) {
        char ch = p[i + k];
        name[k] = (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
      }
      while (vs < ve && (p[vs] == ' ' || p[vs] == '\t')) vs++;
      while (ve > vs && (p[ve - 1] == '\r' || p[ve - 1] == ' ')) ve--;
      lua_pushlstring(L, name, colon - i);
      lua_pushlstring(L, p + vs, ve - vs);
      lua_rawset(L, -3);
    }
    i = e + 1;
  }
}

static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec * 1000.0 + (lua_Number)(ts.tv_nsec / 1000000));
  return 1;
}

static int l_monotonic(lua_State *L) {
  lua_pushnumber(L, tt_mono() * 1000.0);
  return 1;
}

static int l_sleep(lua_State *L) {
  lua_Number ms = luaL_checknumber(L, 1);
  if (ms > 0) tt_sleep_ms((long)ms);
  return 0;
}

static const luaL_Reg util_funcs[] = {
  {"json_quote_bigints", l_json_bigints},
  {"now_ms", l_now}, {"monotonic_ms", l_monotonic}, {"sleep_ms", l_sleep},
  {NULL, NULL}};

void tt_open_util(lua_State *L) { luaL_setfuncs(L, util_funcs, 0); }
