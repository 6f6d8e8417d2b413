/* session.c: libcurl sessions (tiktok.core.session): one easy handle that
 * keeps its connections alive across requests, session:request for the API
 * calls and session:upload, a chunk PUT that preads straight from the file.
 *
 * No Lua error ever crosses libcurl: the progress callback runs user code
 * under lua_pcall, parks the error and aborts the transfer; it is raised
 * again once curl_easy_perform has returned and everything is released. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core.h"

#define SESSION_MT "tiktok.core.session"
#define MAX_BODY (16 * 1024 * 1024)     /* cap on any response body */
#define MAX_HEADERS (64 * 1024)

long tt_opt_upload_buffer(lua_State *L, int idx) {
  long bufsize = tt_opt_int(L, idx, "buffer_size", 0);
  if (bufsize != 0 && (bufsize < TT_MIN_UPLOAD_BUFFER || bufsize > TT_MAX_UPLOAD_BUFFER))
    return luaL_error(L, "option 'buffer_size' must be between 16384 and 2097152 bytes");
#if !TT_HAS_UPLOAD_BUFFERSIZE
  if (bufsize != 0) return luaL_error(L, "option 'buffer_size' needs libcurl 7.62.0 or later");
#endif
  return bufsize;
}

/* ---------------------------------------------------------------- buffers */

typedef struct { char *p; size_t len, cap, max; int overflow; } tt_buf;

static void buf_reset(tt_buf *b) { b->len = 0; b->overflow = 0; }
static void buf_free(tt_buf *b) { free(b->p); b->p = NULL; b->len = b->cap = 0; }
static int buf_add(tt_buf *b, const char *s, size_t n) {
  if (b->len + n > b->max) { b->overflow = 1; return -1; }
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *p;
    while (cap < b->len + n) cap *= 2;
    if (cap > b->max) cap = b->max;
    p = realloc(b->p, cap);
    if (!p) { b->overflow = 1; return -1; }
    b->p = p; b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 0;
}

/* ---------------------------------------------------------------- session */

typedef struct {
  CURL *curl;
  char *ca_file;
  long connect_timeout_ms, timeout_ms, low_speed_ms;
  long connects, requests;
  tt_buf body, headers;          /* owned here so nothing leaks on a raise */
  char errbuf[CURL_ERROR_SIZE];
} tt_session;

/* The only process-wide state: curl_global_init, done once (core.c calls it
 * when the module is opened, session() again in case that failed). */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;
static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }
int tt_curl_init(void) { pthread_once(&global_once, global_init); return global_rc == CURLE_OK; }

static tt_session *check_session(lua_State *L, int idx) {
  tt_session *s = luaL_checkudata(L, idx, SESSION_MT);
  luaL_argcheck(L, s->curl != NULL, idx, "attempt to use a closed session");
  return s;
}

/* core.session{ ca_file, connect_timeout_ms, timeout_ms, low_speed_ms }
 * The three durations are required; low_speed_ms = 0 turns the stall
 * check off. */
static int l_session(lua_State *L) {
  tt_session *s;
  const char *ca;
  long cto, to, ls;
  luaL_checktype(L, 1, LUA_TTABLE);
  ca = tt_opt_str(L, 1, "ca_file", NULL);
  cto = tt_opt_int(L, 1, "connect_timeout_ms", -1);
  to = tt_opt_int(L, 1, "timeout_ms", -1);
  ls = tt_opt_int(L, 1, "low_speed_ms", -1);
  s = lua_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  s->body.max = MAX_BODY; s->headers.max = MAX_HEADERS;
  luaL_getmetatable(L, SESSION_MT);
  lua_setmetatable(L, -2);
  if (!tt_curl_init()) return luaL_error(L, "curl_global_init failed");
  if (ca) {
    s->ca_file = strdup(ca);
    if (!s->ca_file) return luaL_error(L, "out of memory");
  }
  s->connect_timeout_ms = cto; s->timeout_ms = to; s->low_speed_ms = ls;
  s->curl = curl_easy_init();
  if (!s->curl) return luaL_error(L, "curl_easy_init failed");
  return 1;
}

static int l_session_close(lua_State *L) {
  tt_session *s = luaL_checkudata(L, 1, SESSION_MT);
  if (s->curl) { curl_easy_cleanup(s->curl); s->curl = NULL; }
  free(s->ca_file); s->ca_file = NULL;
  buf_free(&s->body); buf_free(&s->headers);
  return 0;
}

static int l_session_stats(lua_State *L) {
  tt_session *s = check_session(L, 1);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, s->connects); lua_setfield(L, -2, "connects");
  lua_pushinteger(L, s->requests); lua_setfield(L, -2, "requests");
  return 1;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
  tt_buf *b = ud;
  return buf_add(b, p, sz * n) ? 0 : sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
  tt_buf *b = ud;
  size_t len = sz * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) buf_reset(b);  /* keep the last response only */
  return buf_add(b, p, len) ? 0 : len;
}

/* A header value or URL must not smuggle a line break or NUL. */
static int clean_line(const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 0;
  return 1;
}

static const char *classify(CURLcode rc) {
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT: return "timeout";
  case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER: case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH: case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CRL_BADFILE: case CURLE_USE_SSL_FAILED:
    return "tls";
  case CURLE_ABORTED_BY_CALLBACK: return "aborted";
  case CURLE_WRITE_ERROR: return "too_big";
  default: return "network";
  }
}

/* Common easy-handle setup; the caller has reset the handle. */
static void setup(tt_session *s, const char *url, long timeout_ms) {
  CURL *c = s->curl;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (s->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  if (s->low_speed_ms > 0) {
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (s->low_speed_ms + 999) / 1000);
  }
  curl_easy_setopt(c, CURLOPT_USERAGENT, "lua-tiktok/0.1 libcurl/" LIBCURL_VERSION);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &s->body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &s->headers);
  s->errbuf[0] = 0;
  buf_reset(&s->body); buf_reset(&s->headers);
}

/* Whether any byte of the request may have reached the peer (the `sent`
 * of tt_fail): libcurl got as far as sending (the connection was ready,
 * pretransfer time set) or counted request bytes. */
static int maybe_sent(tt_session *s) {
  long reqsize = 0;
  curl_off_t pretransfer = 0;
  curl_easy_getinfo(s->curl, CURLINFO_REQUEST_SIZE, &reqsize);
  curl_easy_getinfo(s->curl, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
  return reqsize > 0 || pretransfer > 0;
}

static int finish(lua_State *L, tt_session *s, CURLcode rc) {
  long status = 0, conns = 0;
  curl_easy_getinfo(s->curl, CURLINFO_NUM_CONNECTS, &conns);
  s->connects += conns;
  s->requests++;
  if (rc != CURLE_OK) {
    if (rc == CURLE_WRITE_ERROR && s->body.overflow)
      return tt_fail(L, "too_big", 1, "the response body is larger than 16 MiB");
    if (rc == CURLE_WRITE_ERROR && s->headers.overflow)
      return tt_fail(L, "too_big", 1, "the response headers are larger than 64 KiB");
    return tt_fail(L, classify(rc), maybe_sent(s), "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
  }
  curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, status); lua_setfield(L, -2, "status");
  lua_pushlstring(L, s->body.p ? s->body.p : "", s->body.len); lua_setfield(L, -2, "body");
  tt_push_headers(L, s->headers.p, s->headers.len); lua_setfield(L, -2, "headers");
  lua_pushinteger(L, conns); lua_setfield(L, -2, "connects");
  return 1;
}

/* Builds a curl_slist from the array at table field "headers". Raises only
 * before the first allocation; returns -1 (list freed) on a bad header. */
static int check_headers(lua_State *L, int t) {
  int i, n;
  lua_getfield(L, t, "headers");
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
  luaL_argcheck(L, lua_istable(L, -1), 1, "headers must be an array of strings");
  n = (int)tt_rawlen(L, -1);
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *h;
    lua_rawgeti(L, -1, i);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "headers[%d] must be a string", i);
    h = lua_tolstring(L, -1, &len);
    if (!clean_line(h, len)) { lua_pop(L, 2); return -1; }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return n;
}

static struct curl_slist *make_headers(lua_State *L, int t, int n, int *oom) {
  struct curl_slist *list = NULL, *nl;
  int i;
  *oom = 0;
  if (n == 0) return NULL;
  lua_getfield(L, t, "headers");
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    nl = curl_slist_append(list, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (!nl) { *oom = 1; break; }
    list = nl;
  }
  lua_pop(L, 1);
  return list;
}

/* A request body that libcurl may send once only. libcurl silently resends
 * a request when a reused connection dies before any answer arrives; for a
 * body already (partly) written that needs a rewind, which this refuses, so
 * the transfer fails (CURLE_SEND_FAIL_REWIND) instead of posting twice. */
typedef struct { const char *p; size_t len, pos; } tt_once;

static size_t once_read(char *buf, size_t sz, size_t n, void *ud) {
  tt_once *o = ud;
  size_t take = sz * n;
  if (take > o->len - o->pos) take = o->len - o->pos;
  memcpy(buf, o->p + o->pos, take);
  o->pos += take;
  return take;
}

static int once_seek(void *ud, curl_off_t off, int origin) {
  (void)ud; (void)off; (void)origin;
  return CURL_SEEKFUNC_FAIL;
}

/* session:request{ method, url, headers = {..}, body, timeout_ms, once }
 * once = true: never resend the body (non-idempotent requests); timeout_ms
 * defaults to the session's.
 *   -> { status, headers, body, connects } | nil, kind, message, sent */
static int l_request(lua_State *L) {
  tt_session *s = check_session(L, 1);
  const char *method, *url, *body;
  size_t urllen, bodylen;
  long timeout;
  int nh, oom, once;
  struct curl_slist *hl, *nl;
  tt_once ob;
  CURLcode rc;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "once");
  once = lua_toboolean(L, -1);
  lua_pop(L, 1);
  method = tt_opt_str(L, 2, "method", NULL);
  url = tt_opt_str(L, 2, "url", &urllen);
  body = tt_opt_str(L, 2, "body", &bodylen);
  timeout = tt_opt_int(L, 2, "timeout_ms", s->timeout_ms);
  if (!method) method = "GET";
  if (!url) return luaL_error(L, "option 'url' is required");
  if (!clean_line(url, urllen) || strlen(url) != urllen)
    return tt_fail(L, "invalid", 0, "the URL contains a line break or NUL byte");
  nh = check_headers(L, 2);
  if (nh < 0) return tt_fail(L, "invalid", 0, "a header contains a line break or NUL byte");
  /* No raising below this line until hl is freed. */
  hl = make_headers(L, 2, nh, &oom);
  if (!oom) {
    nl = curl_slist_append(hl, "Expect:");   /* small bodies: no 100-continue round trip */
    if (nl) hl = nl; else oom = 1;
  }
  if (oom) { curl_slist_free_all(hl); return luaL_error(L, "out of memory"); }
  curl_easy_reset(s->curl);
  setup(s, url, timeout);
  if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(s->curl, CURLOPT_HTTPGET, 1L);
  } else {
    if (strcmp(method, "POST") != 0) curl_easy_setopt(s->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(s->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? bodylen : 0));
    if (once) {
      ob.p = body ? body : ""; ob.len = body ? bodylen : 0; ob.pos = 0;
      curl_easy_setopt(s->curl, CURLOPT_READFUNCTION, once_read);
      curl_easy_setopt(s->curl, CURLOPT_READDATA, &ob);
      curl_easy_setopt(s->curl, CURLOPT_SEEKFUNCTION, once_seek);
    } else {
      curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body ? body : "");
    }
  }
  curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, hl);
  rc = curl_easy_perform(s->curl);
  curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
  curl_slist_free_all(hl);
  return finish(L, s, rc);
}

/* ----------------------------------------------------------------- upload */

typedef struct {
  lua_State *L;
  int fd;
  int64_t offset, length, pos;
  int progress_ref;            /* index of the progress function, 0 = none */
  int failed;                  /* a Lua error is parked on the stack top */
  int cancelled;               /* the progress callback returned false */
  double last_call;
  curl_off_t last_bytes;
  int read_errno;
  long reads;                  /* read callback calls (for tuning buffer_size) */
} tt_put;

static size_t on_read(char *buf, size_t sz, size_t n, void *ud) {
  tt_put *u = ud;
  size_t want = sz * n;
  ssize_t got;
  if (u->pos >= u->length) return 0;
  if ((int64_t)want > u->length - u->pos) want = (size_t)(u->length - u->pos);
  do { got = pread(u->fd, buf, want, (off_t)(u->offset + u->pos)); } while (got < 0 && errno == EINTR);
  if (got <= 0) { u->read_errno = got < 0 ? errno : EIO; return CURL_READFUNC_ABORT; }
  u->pos += got;
  u->reads++;
  return (size_t)got;
}

static int on_xfer(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
  tt_put *u = ud;
  double now;
  (void)dt; (void)dn; (void)ut;
  if (!u->progress_ref || un == u->last_bytes) return 0;
  now = tt_mono();
  if (now - u->last_call < 0.2 && un < u->length) return 0;
  u->last_call = now;
  u->last_bytes = un;
  lua_pushvalue(u->L, u->progress_ref);
  lua_pushinteger(u->L, (lua_Integer)un);
  if (lua_pcall(u->L, 1, 1, 0) != 0) { u->failed = 1; return 1; }  /* error parked */
  if (lua_toboolean(u->L, -1) == 0 && !lua_isnil(u->L, -1)) {       /* false cancels */
    lua_pop(u->L, 1);
    u->cancelled = 1;
    return 1;
  }
  lua_pop(u->L, 1);
  return 0;
}

static int64_t opt_i64(lua_State *L, int t, const char *k) {
  int64_t v;
  lua_getfield(L, t, k);
  if (!lua_isnumber(L, -1)) luaL_error(L, "option '%s' must be a number", k);
  v = (int64_t)lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (v < 0) luaL_error(L, "option '%s' must not be negative", k);
  return v;
}

/* ------------------------------------------------- thread priority (nice)
 *
 * session:upload{ nice = N } (and the relay's spool and put_chunk, with
 * tt_nice_lower/tt_nice_restore) lowers the calling thread's scheduling
 * priority by N (Linux: setpriority(PRIO_PROCESS, gettid()) acts on one
 * thread) for the duration of the PUT, so that a worker thread that
 * encrypts and sends a chunk yields the CPU to nginx's event loop.
 *
 * Lowering is always allowed. Raising it back is not, for an unprivileged
 * thread, unless RLIMIT_NICE permits (it is 0 by default) or the process
 * has CAP_SYS_NICE: then the restore fails (EACCES) and the thread stays
 * at the lowered priority. base remembers, per thread, the priority from
 * before the first lowering that could not be undone, so the next upload on
 * that thread aims at base + N again instead of drifting down by N every
 * time. A thread-local, because nice is a property of the thread. */
static __thread int nice_base = INT_MIN;   /* INT_MIN: nothing to remember */

void tt_nice_lower(tt_nice *n, int by) {
  int target;
  n->active = 0;
  if (by <= 0) return;
  n->tid = (pid_t)syscall(SYS_gettid);
  errno = 0;
  n->old = getpriority(PRIO_PROCESS, (id_t)n->tid);
  if (n->old == -1 && errno != 0) return;
  target = (nice_base != INT_MIN ? nice_base : n->old) + by;
  if (target > 19) target = 19;
  if (n->old >= target) return;            /* already as low (a failed restore) */
  if (setpriority(PRIO_PROCESS, (id_t)n->tid, target) == 0) n->active = 1;
}

void tt_nice_restore(tt_nice *n) {
  if (!n->active) return;
  if (setpriority(PRIO_PROCESS, (id_t)n->tid, n->old) == 0) {
    nice_base = INT_MIN;
  } else if (nice_base == INT_MIN) {
    nice_base = n->old;                     /* EACCES/EPERM: stays lowered */
  }
  n->active = 0;
}

/* session:upload{ url, path, offset, length, total, content_type,
 *                 timeout_ms, progress = function(bytes_sent_in_chunk),
 *                 nice = N, buffer_size = BYTES }
 *   -> { status, headers, body, connects, reads } | nil, kind, message, sent
 * timeout_ms is required (0: no limit on the whole PUT, only the session's
 * low_speed_ms). progress returning false stops the upload: nil, "aborted";
 * an error raised in it is raised again once the transfer is cleaned up.
 * nice (0-19, default 0: unchanged) lowers the calling thread's priority
 * by N for this PUT only (see above); buffer_size (16 KiB to 2 MiB) sets
 * CURLOPT_UPLOAD_BUFFERSIZE, the most the read callback is asked for at
 * once (libcurl's default is 64 KiB); reads counts those calls.
 * Streams [offset, offset+length) of the file with pread: no chunk is ever
 * held in memory. */
static int l_upload(lua_State *L) {
  tt_session *s = check_session(L, 1);
  const char *url, *path, *ctype;
  size_t urllen, ctlen;
  int64_t total;
  long timeout;
  char h1[128], h2[160];
  struct curl_slist *hl = NULL, *nl;
  tt_put u;
  CURLcode rc;
  int top, n;
  long nice, bufsize;
  tt_nice pri;
  luaL_checktype(L, 2, LUA_TTABLE);
  memset(&u, 0, sizeof u);
  u.L = L; u.fd = -1;
  url = tt_opt_str(L, 2, "url", &urllen);
  path = tt_opt_str(L, 2, "path", NULL);
  ctype = tt_opt_str(L, 2, "content_type", &ctlen);
  if (!url || !path || !ctype) return luaL_error(L, "options 'url', 'path' and 'content_type' are required");
  u.offset = opt_i64(L, 2, "offset");
  u.length = opt_i64(L, 2, "length");
  total = opt_i64(L, 2, "total");
  timeout = tt_opt_int(L, 2, "timeout_ms", -1);
  nice = tt_opt_int(L, 2, "nice", 0);
  if (nice > 19) return luaL_error(L, "option 'nice' must be between 0 and 19");
  bufsize = tt_opt_upload_buffer(L, 2);
  if (u.length == 0 || u.offset + u.length > total) return luaL_error(L, "invalid byte range");
  if (!clean_line(url, urllen) || !clean_line(ctype, ctlen) || ctlen > 64)
    return tt_fail(L, "invalid", 0, "the URL or content type contains a line break");
  lua_getfield(L, 2, "progress");
  if (!lua_isnil(L, -1)) {
    luaL_argcheck(L, lua_isfunction(L, -1), 2, "progress must be a function");
    u.progress_ref = lua_gettop(L);
  } else {
    lua_pop(L, 1);
  }
  top = lua_gettop(L);
  snprintf(h1, sizeof h1, "Content-Range: bytes %lld-%lld/%lld", (long long)u.offset,
           (long long)(u.offset + u.length - 1), (long long)total);
  snprintf(h2, sizeof h2, "Content-Type: %s", ctype);
  /* No raising below until the fd and list are released. */
  do { u.fd = open(path, O_RDONLY | O_CLOEXEC); } while (u.fd < 0 && errno == EINTR);
  if (u.fd < 0) return tt_fail(L, "file", 0, "cannot open the file: %s", strerror(errno));
  nl = curl_slist_append(hl, h1); if (nl) hl = nl;
  nl = nl ? curl_slist_append(hl, h2) : NULL; if (nl) hl = nl;
  nl = nl ? curl_slist_append(hl, "Accept-Encoding: identity") : NULL; if (nl) hl = nl;
  if (!nl) { curl_slist_free_all(hl); close(u.fd); return luaL_error(L, "out of memory"); }
  curl_easy_reset(s->curl);
  setup(s, url, timeout);
  curl_easy_setopt(s->curl, CURLOPT_UPLOAD, 1L);     /* PUT */
  curl_easy_setopt(s->curl, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(s->curl, CURLOPT_READDATA, &u);
  curl_easy_setopt(s->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)u.length);
  curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, hl);
#if TT_HAS_UPLOAD_BUFFERSIZE
  if (bufsize) curl_easy_setopt(s->curl, CURLOPT_UPLOAD_BUFFERSIZE, bufsize);
#endif
  if (u.progress_ref) {
    curl_easy_setopt(s->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(s->curl, CURLOPT_XFERINFOFUNCTION, on_xfer);
    curl_easy_setopt(s->curl, CURLOPT_XFERINFODATA, &u);
  }
  tt_nice_lower(&pri, (int)nice);
  rc = curl_easy_perform(s->curl);
  tt_nice_restore(&pri);               /* before anything below can raise */
  curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
  curl_slist_free_all(hl);
  close(u.fd);
  if (u.failed) {                 /* re-raise the parked callback error */
    lua_error(L);
  }
  lua_settop(L, top);
  if (rc == CURLE_ABORTED_BY_CALLBACK && u.read_errno)
    return tt_fail(L, "file", 1, "reading the file failed: %s", strerror(u.read_errno));
  if (rc == CURLE_ABORTED_BY_CALLBACK && u.cancelled)
    return tt_fail(L, "aborted", 1, "the progress callback cancelled the upload");
  n = finish(L, s, rc);
  if (n == 1) { lua_pushinteger(L, (lua_Integer)u.reads); lua_setfield(L, -2, "reads"); }
  return n;
}


static const luaL_Reg session_methods[] = {
  {"request", l_request}, {"upload", l_upload}, {"stats", l_session_stats},
  {"close", l_session_close}, {"__gc", l_session_close}, {"__close", l_session_close},
  {NULL, NULL}};

static const luaL_Reg session_funcs[] = {{"session", l_session}, {NULL, NULL}};

void tt_open_session(lua_State *L) {
  if (luaL_newmetatable(L, SESSION_MT)) {
    lua_pushvalue(L, -1); lua_setfield(L, -2, "__index");
    luaL_setfuncs(L, session_methods, 0);
    lua_pushliteral(L, SESSION_MT); lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, session_funcs, 0);
}
