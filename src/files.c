/* files.c: the file primitives of the file store: an exclusive lock shared
 * by processes (flock), whole-file read, atomic replace, stat, mkdir -p and
 * the check that a store folder is private.
 *
 * The store's files (read_file, write_file_atomic, lock) never follow a
 * symbolic link in their last component (O_NOFOLLOW): a link planted where
 * the store or its lock should be fails with ELOOP instead of sending the
 * tokens elsewhere.
 *
 * Failures: nil, errno name, message (tt_fail_errno); nil, "busy", message
 * when a lock is held past its timeout; nil, "unsafe", message for a folder
 * that other users can write to or that is not this user's. */
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
  do { lk->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600); } while (lk->fd < 0 && errno == EINTR);
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
  do { fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW); } while (fd < 0 && errno == EINTR);
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
 * or the new content, never a mix. A symbolic link at path is refused
 * (ELOOP) rather than silently replaced. */
static int l_write_atomic(lua_State *L) {
  size_t plen, dlen, off = 0;
  const char *path = luaL_checklstring(L, 1, &plen);
  const char *data = luaL_checklstring(L, 2, &dlen);
  char tmp[4096], dir[4096];
  unsigned char rnd[6];
  const char *slash;
  int fd, e;
  struct stat st;
  if (plen + 32 > sizeof tmp) return tt_fail_errno(L, ENAMETOOLONG, "the store path is too long");
  if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) return tt_fail_errno(L, ELOOP, "cannot replace the store");
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

/* core.mkdir_p(path, mode) -> true | nil, errno name, message
 * Creates path and every missing parent with mode (less the umask), like
 * mkdir -p -m; an existing folder is left as it is. */
static int l_mkdir_p(lua_State *L) {
  size_t len, i;
  const char *path = luaL_checklstring(L, 1, &len);
  lua_Integer mode = luaL_checkinteger(L, 2);
  char buf[4096];
  struct stat st;
  luaL_argcheck(L, mode >= 0 && mode <= 07777, 2, "not a file mode");
  luaL_argcheck(L, len > 0 && strlen(path) == len, 1, "not a path");
  if (len >= sizeof buf) return tt_fail_errno(L, ENAMETOOLONG, "cannot create the folder");
  memcpy(buf, path, len + 1);
  for (i = 1; i <= len; i++) {
    if (i < len && buf[i] != '/') continue;
    if (buf[i - 1] == '/') continue;            /* "a//b" or a trailing slash */
    buf[i] = 0;
    if (mkdir(buf, (mode_t)mode) != 0) {
      int e = errno;
      if (e != EEXIST) { lua_pushfstring(L, "cannot create the folder %s", buf); return tt_fail_errno(L, e, lua_tostring(L, -1)); }
      if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
        lua_pushfstring(L, "cannot create the folder %s", buf);
        return tt_fail_errno(L, ENOTDIR, lua_tostring(L, -1));
      }
    }
    if (i < len) buf[i] = '/';
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.check_private_dir(path) -> true | nil, "unsafe"|errno name, message
 * For the folder that holds tokens: it must be a folder owned by this
 * process's effective user that neither its group nor others can write to
 * (such a user could plant or replace the store file, or read what it
 * writes there). A symbolic link to such a folder is followed and its
 * target checked. */
static int l_check_private_dir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  uid_t me = geteuid();
  if (stat(path, &st) != 0) return tt_fail_errno(L, errno, "cannot check the store folder");
  if (!S_ISDIR(st.st_mode)) return tt_fail_errno(L, ENOTDIR, "cannot check the store folder");
  if (st.st_uid != me)
    return tt_fail(L, "unsafe", TT_NO_TRANSFER, "the store folder %s belongs to user id %d, not to this user (%d); "
                   "run `chown %d %s` (as root), or point the store at a folder of this user", path,
                   (int)st.st_uid, (int)me, (int)me, path);
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", (unsigned)(st.st_mode & 07777));
    return tt_fail(L, "unsafe", TT_NO_TRANSFER, "the store folder %s can be written by other users (mode %s); "
                   "run `chmod 700 %s`", path, mode, path);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg lock_methods[] = {
  {"unlock", l_unlock}, {"__gc", l_unlock}, {"__close", l_unlock}, {NULL, NULL}};

static const luaL_Reg files_funcs[] = {
  {"lock", l_lock}, {"read_file", l_read_file}, {"write_file_atomic", l_write_atomic},
  {"stat", l_stat}, {"mkdir_p", l_mkdir_p}, {"check_private_dir", l_check_private_dir}, {NULL, NULL}};

void tt_open_files(lua_State *L) {
  if (luaL_newmetatable(L, LOCK_MT)) {
    lua_pushvalue(L, -1); lua_setfield(L, -2, "__index");
    luaL_setfuncs(L, lock_methods, 0);
    lua_pushliteral(L, LOCK_MT); lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, files_funcs, 0);
}
