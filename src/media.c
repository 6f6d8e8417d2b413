/* media.c: the glue for the pure upload helpers: the chunk planner and its
 * checker, chunk byte ranges, the Content-Range parser (plan.c) and the
 * container probe over a file (probe.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "tt.h"

typedef struct { int fd; } probe_ud;
static int probe_read(void *ud, int64_t off, void *buf, size_t len) {
  probe_ud *p = ud;
  size_t got = 0;
  while (got < len) {
    ssize_t r = pread(p->fd, (char *)buf + got, len - got, (off_t)(off + (int64_t)got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

/* core.probe(path) -> { container, content_type, duration_ms|nil, size } | nil, message */
static int l_probe(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  probe_ud ud;
  tt_media m;
  const char *err;
  do { ud.fd = open(path, O_RDONLY | O_CLOEXEC); } while (ud.fd < 0 && errno == EINTR);
  if (ud.fd < 0) return tt_errno_fail(L, "cannot open the file", errno);
  if (fstat(ud.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(ud.fd);
    return tt_errno_fail(L, "not a regular file", S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
  }
  err = tt_probe(probe_read, &ud, (int64_t)st.st_size, &m);
  close(ud.fd);
  if (err) { lua_pushnil(L); lua_pushstring(L, err); return 2; }
  lua_createtable(L, 0, 4);
  lua_pushstring(L, m.container); lua_setfield(L, -2, "container");
  lua_pushstring(L, m.content_type); lua_setfield(L, -2, "content_type");
  if (m.duration_ms >= 0) { lua_pushinteger(L, (lua_Integer)m.duration_ms); lua_setfield(L, -2, "duration_ms"); }
  lua_pushinteger(L, (lua_Integer)st.st_size); lua_setfield(L, -2, "size");
  return 1;
}

static int64_t check_i64(lua_State *L, int i) {
  lua_Number n = luaL_checknumber(L, i);
  luaL_argcheck(L, n >= 0 && n <= 9007199254740992.0 && n == (lua_Number)(int64_t)n, i,
                "expected a non-negative integer");
  return (int64_t)n;
}

/* core.plan(size[, preferred]) -> chunk_size, count | nil, message */
static int l_plan(lua_State *L) {
  int64_t size = check_i64(L, 1), pref = lua_isnoneornil(L, 2) ? 0 : check_i64(L, 2), c = 0, n = 0;
  const char *err = tt_plan(size, pref, &c, &n);
  if (err) { lua_pushnil(L); lua_pushstring(L, err); return 2; }
  lua_pushinteger(L, (lua_Integer)c);
  lua_pushinteger(L, (lua_Integer)n);
  return 2;
}

/* core.plan_check(size, chunk_size, count) -> true | nil, message */
static int l_plan_check(lua_State *L) {
  const char *err = tt_plan_check(check_i64(L, 1), check_i64(L, 2), check_i64(L, 3));
  if (err) { lua_pushnil(L); lua_pushstring(L, err); return 2; }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.chunk_range(size, chunk_size, count, index0) -> offset, length */
static int l_chunk_range(lua_State *L) {
  int64_t size = check_i64(L, 1), c = check_i64(L, 2), n = check_i64(L, 3), i = check_i64(L, 4), off, len;
  luaL_argcheck(L, c > 0 && n > 0 && i < n, 4, "index out of range");
  tt_chunk_range(size, c, n, i, &off, &len);
  lua_pushinteger(L, (lua_Integer)off);
  lua_pushinteger(L, (lua_Integer)len);
  return 2;
}

/* core.parse_content_range(s) -> first|nil, last|nil, total|nil  or nil on error */
static int l_parse_range(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int64_t a, b, t;
  if (tt_parse_content_range(s, len, &a, &b, &t)) { lua_pushboolean(L, 0); return 1; }
  if (a >= 0) lua_pushinteger(L, (lua_Integer)a); else lua_pushnil(L);
  if (b >= 0) lua_pushinteger(L, (lua_Integer)b); else lua_pushnil(L);
  if (t >= 0) lua_pushinteger(L, (lua_Integer)t); else lua_pushnil(L);
  return 3;
}
static const luaL_Reg media_funcs[] = {
  {"probe", l_probe}, {"plan", l_plan}, {"plan_check", l_plan_check},
  {"chunk_range", l_chunk_range}, {"parse_content_range", l_parse_range}, {NULL, NULL}};

void tt_open_media(lua_State *L) {
  luaL_setfuncs(L, media_funcs, 0);
  lua_pushinteger(L, (lua_Integer)TT_MAX_CHUNK); lua_setfield(L, -2, "MAX_CHUNK");
  lua_pushinteger(L, (lua_Integer)TT_MIN_CHUNK); lua_setfield(L, -2, "MIN_CHUNK");
}
