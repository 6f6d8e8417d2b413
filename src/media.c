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

/* core.probe(path) -> { container, content_type, duration_ms|nil, size }
 *   | nil, errno name, message        (cannot open; EISDIR/EINVAL: not a file)
 *   | nil, "unsupported_media", message */
static int l_probe(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  probe_ud ud;
  tt_media m;
  const char *err;
  do { ud.fd = open(path, O_RDONLY | O_CLOEXEC); } while (ud.fd < 0 && errno == EINTR);
  if (ud.fd < 0) return tt_fail_errno(L, errno, "cannot open the file");
  if (fstat(ud.fd, &st) != 0) { int e = errno; close(ud.fd); return tt_fail_errno(L, e, "cannot stat the file"); }
  if (!S_ISREG(st.st_mode)) {
    close(ud.fd);
    return tt_fail_errno(L, S_ISDIR(st.st_mode) ? EISDIR : EINVAL, "not a regular file");
  }
  err = tt_probe(probe_read, &ud, (int64_t)st.st_size, &m);
  close(ud.fd);
  if (err) return tt_fail(L, "unsupported_media", TT_NO_TRANSFER, "%s", err);
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

/* core.plan(size[, preferred]) -> chunk_size, count | nil, "invalid", message */
static int l_plan(lua_State *L) {
  int64_t size = check_i64(L, 1), pref = lua_isnoneornil(L, 2) ? 0 : check_i64(L, 2), c = 0, n = 0;
  const char *err = tt_plan(size, pref, &c, &n);
  if (err) return tt_fail(L, "invalid", TT_NO_TRANSFER, "%s", err);
  lua_pushinteger(L, (lua_Integer)c);
  lua_pushinteger(L, (lua_Integer)n);
  return 2;
}

/* core.plan_check(size, chunk_size, count) -> true | nil, "invalid", message */
static int l_plan_check(lua_State *L) {
  const char *err = tt_plan_check(check_i64(L, 1), check_i64(L, 2), check_i64(L, 3));
  if (err) return tt_fail(L, "invalid", TT_NO_TRANSFER, "%s", err);
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

/* core.parse_content_range(s) -> { first, last, total } | nil, "invalid", message
 * A field is absent when the header leaves it out ("bytes * /1000" has only
 * total, "bytes=5-9" no total): a table, so that success never starts with
 * nil as a failure does. */
static int l_parse_range(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int64_t a, b, t;
  if (tt_parse_content_range(s, len, &a, &b, &t))
    return tt_fail(L, "invalid", TT_NO_TRANSFER, "malformed Content-Range header");
  lua_createtable(L, 0, 3);
  if (a >= 0) { lua_pushinteger(L, (lua_Integer)a); lua_setfield(L, -2, "first"); }
  if (b >= 0) { lua_pushinteger(L, (lua_Integer)b); lua_setfield(L, -2, "last"); }
  if (t >= 0) { lua_pushinteger(L, (lua_Integer)t); lua_setfield(L, -2, "total"); }
  return 1;
}
static const luaL_Reg media_funcs[] = {
  {"probe", l_probe}, {"plan", l_plan}, {"plan_check", l_plan_check},
  {"chunk_range", l_chunk_range}, {"parse_content_range", l_parse_range}, {NULL, NULL}};

void tt_open_media(lua_State *L) {
  luaL_setfuncs(L, media_funcs, 0);
  lua_pushinteger(L, (lua_Integer)TT_MAX_CHUNK); lua_setfield(L, -2, "MAX_CHUNK");
  lua_pushinteger(L, (lua_Integer)TT_MIN_CHUNK); lua_setfield(L, -2, "MIN_CHUNK");
}
