/* files.c: the file primitives of the file store: an exclusive lock shared
 * by processes (flock), whole-file read, atomic replace, stat.
 *
 * Failures: nil, errno name, message (tt_fail_errno), or nil, "busy",
 * message when a lock is held past its timeout. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"

#define LOCK_MT "tiktok.core.lock"

/* ------------------------------------------------------------ file lock */

typedef struct { int fd; } tt_lock;

/* core.lock(path, timeout_ms) -> lock | nil, "busy"|errno name, message
 * timeout_ms is required (the default lives in Lua, tiktok.store). */
static int l_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer timeout = luaL_checkinteger(L, 2);
  double deadline;
  long wait = 1;
  int e;
  tt_lock *lk;
  luaL_argcheck(L, timeout >= 0, 2, "must not be negative");
  lk = lua_newuserdata(L, sizeof *lk);
  lk->fd = -1;
  luaL_getmetatable(L, LOCK_MT);
  lua_setmetatable(L, -2);
  deadline = tt_mono() + (double)timeout / 1000.0;
  do { lk->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600); } while (lk->fd < 0 && errno == EINTR);
  if (lk->fd < 0) return tt_fail_errno(L, errno, "cannot open the lock file");
  for (;;) {
    if (flock(lk->fd, LOCK_EX | LOCK_NB) == 0) return 1;
    if (errno != EWOULDBLOCK && errno != EINTR) break;
    if (tt_mono() >= deadline) {
      close(lk->fd); lk->fd = -1;
      return tt_fail(L, "busy", TT_NO_TRANSFER, "another process held the store lock for more than %d ms",
                     (int)timeout);
    }
    tt_sleep_ms(wait);
    if (wait < 20) wait *= 2;
  }
  e = errno;
  close(lk->fd); lk->fd = -1;
  return tt_fail_errno(L, e, "cannot lock the store");
}

static int l_unlock(lua_State *L) {
  tt_lock *lk = luaL_checkudata(L, 1, LOCK_MT);
  if (lk->fd >= 0) { close(lk->fd); lk->fd = -1; }   /* closing releases the flock */
  return 0;
}

/* -------------------------------------------------------- file primitives */

/* core.read_file(path[, max]) -> data | nil, errno name, message
 * max (default 64 MiB) caps what is read: EFBIG beyond it. */
static int l_read_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, 64 * 1024 * 1024);
  luaL_Buffer b;
  char tmp[16384];
  struct stat st;
  ssize_t got;
  int fd;
  lua_Integer total = 0;
  do { fd = open(path, O_RDONLY | O_CLOEXEC); } while (fd < 0 && errno == EINTR);
  if (fd < 0) return tt_fail_errno(L, errno, "cannot open the file");
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) { close(fd); return tt_fail_errno(L, EISDIR, "cannot read the file"); }
  /* The fd is closed on every path; luaL_Buffer only raises on OOM. */
  luaL_buffinit(L, &b);
  for (;;) {
    got = read(fd, tmp, sizeof tmp);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    total += got;
    if (total > max) { close(fd); return tt_fail_errno(L, EFBIG, "the file is too large"); }
    luaL_addlstring(&b, tmp, (size_t)got);
  }
  if (got < 0) { int e = errno; close(fd); return tt_fail_errno(L, e, "cannot read the file"); }
  close(fd);
  luaL_pushresult(&b);
  return 1;
}

/* core.write_file_atomic(path, data) -> true | nil, errno name, message
 * Writes a temporary file (mode 0600) beside path, fsyncs it, renames it over
 * path and fsyncs the directory: after a crash the file holds either the old
 * or the new content, never a mix. */
static int l_write_atomic(lua_State *L) {
  size_t plen, dlen, off = 0;
  const char *path = luaL_checklstring(L, 1, &plen);
  const char *data = luaL_checklstring(L, 2, &dlen);
  char tmp[4096], dir[4096];
  unsigned char rnd[6];
  const char *slash;
  int fd, e;
  if (plen + 32 > sizeof tmp) return tt_fail_errno(L, ENAMETOOLONG, "the store path is too long");
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) memset(rnd, 0, sizeof rnd);
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%02x%02x%02x%02x%02x%02x", path, (long)getpid(),
           rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
  do { fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600); } while (fd < 0 && errno == EINTR);
  if (fd < 0) return tt_fail_errno(L, errno, "cannot create the temporary store file");
  while (off < dlen) {
    ssize_t w = write(fd, data + off, dlen - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { e = w < 0 ? errno : EIO; close(fd); unlink(tmp); return tt_fail_errno(L, e, "cannot write the store"); }
    off += (size_t)w;
  }
  if (fsync(fd) != 0) { e = errno; close(fd); unlink(tmp); return tt_fail_errno(L, e, "cannot sync the store"); }
  close(fd);
  if (rename(tmp, path) != 0) { e = errno; unlink(tmp); return tt_fail_errno(L, e, "cannot replace the store"); }
  slash = strrchr(path, '/');
  if (slash) {
    size_t dl = (size_t)(slash - path);
    if (dl == 0) dl = 1;
    memcpy(dir, path, dl); dir[dl] = 0;
  } else {
    strcpy(dir, ".");
  }
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) { fsync(fd); close(fd); }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.stat(path) -> { size, type = "file"|"directory"|"other", mode }
 *                  | nil, errno name, message */
static int l_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) return tt_fail_errno(L, errno, "cannot stat the file");
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)st.st_size); lua_setfield(L, -2, "size");
  lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" : "other");
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, st.st_mode & 07777); lua_setfield(L, -2, "mode");
  return 1;
}

static const luaL_Reg lock_methods[] = {
  {"unlock", l_unlock}, {"__gc", l_unlock}, {"__close", l_unlock}, {NULL, NULL}};

static const luaL_Reg files_funcs[] = {
  {"lock", l_lock}, {"read_file", l_read_file}, {"write_file_atomic", l_write_atomic},
  {"stat", l_stat}, {NULL, NULL}};

void tt_open_files(lua_State *L) {
  if (luaL_newmetatable(L, LOCK_MT)) {
    lua_pushvalue(L, -1); lua_setfield(L, -2, "__index");
    luaL_setfuncs(L, lock_methods, 0);
    lua_pushliteral(L, LOCK_MT); lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, files_funcs, 0);
}
