/* core.c: tiktok.core, the C half of lua-tiktok.
 *
 * Transport (libcurl easy handles that keep their connections alive across
 * requests), a streaming chunk PUT that preads straight from the file,
 * CSPRNG, SHA-256, percent-encoding, the chunk planner, the container probe,
 * the JSON big-integer guard and the file primitives the file store needs
 * (flock, atomic replace).
 *
 * Conventions:
 * - Misuse (wrong argument types) raises via luaL_check*; every such check
 *   runs before any allocation that Lua does not own.
 * - Runtime failures return nil, kind, message[, sent].
 * - No Lua error ever crosses libcurl: callbacks run user code under
 *   lua_pcall, park the error and abort the transfer.
 * - The only process-wide state is curl_global_init, done once. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dlfcn.h>

#include <curl/curl.h>

#include "compat.h"
#include "tt.h"

#define TT_API __attribute__((visibility("default")))
#define SESSION_MT "tiktok.core.session"
#define LOCK_MT "tiktok.core.lock"
#define MAX_BODY (16 * 1024 * 1024)     /* cap on any response body */
#define MAX_HEADERS (64 * 1024)

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

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;
static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static tt_session *check_session(lua_State *L, int idx) {
  tt_session *s = luaL_checkudata(L, idx, SESSION_MT);
  luaL_argcheck(L, s->curl != NULL, idx, "attempt to use a closed session");
  return s;
}

static long opt_ms(lua_State *L, int t, const char *k, long def) {
  long v;
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return def; }
  if (!lua_isnumber(L, -1)) luaL_error(L, "option '%s' must be a number", k);
  v = (long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (v < 0) luaL_error(L, "option '%s' must not be negative", k);
  return v;
}

static const char *opt_str(lua_State *L, int t, const char *k, size_t *len) {
  const char *s;
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); if (len) *len = 0; return NULL; }
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "option '%s' must be a string", k);
  s = lua_tolstring(L, -1, len);
  lua_pop(L, 1);   /* still referenced by the options table */
  return s;
}

/* core.session{ ca_file, connect_timeout_ms, timeout_ms, low_speed_ms } */
static int l_session(lua_State *L) {
  tt_session *s;
  const char *ca;
  long cto, to, ls;
  luaL_checktype(L, 1, LUA_TTABLE);
  ca = opt_str(L, 1, "ca_file", NULL);
  cto = opt_ms(L, 1, "connect_timeout_ms", 10000);
  to = opt_ms(L, 1, "timeout_ms", 30000);
  ls = opt_ms(L, 1, "low_speed_ms", 30000);
  s = lua_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  s->body.max = MAX_BODY; s->headers.max = MAX_HEADERS;
  luaL_getmetatable(L, SESSION_MT);
  lua_setmetatable(L, -2);
  pthread_once(&global_once, global_init);
  if (global_rc != CURLE_OK) return luaL_error(L, "curl_global_init failed");
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

/* Pushes the parsed response headers (lower-case names, last value wins). */
static void push_headers(lua_State *L, tt_buf *b) {
  size_t i = 0;
  lua_newtable(L);
  while (i < b->len) {
    size_t e = i, colon = 0, k;
    while (e < b->len && b->p[e] != '\n') e++;
    for (k = i; k < e; k++) if (b->p[k] == ':') { colon = k; break; }
    if (colon > i) {
      size_t vs = colon + 1, ve = e;
      char name[128];
      size_t nl = colon - i < sizeof name ? colon - i : sizeof name - 1;
      for (k = 0; k < nl; k++) {
        char ch = b->p[i + k];
        name[k] = (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
      }
      while (vs < ve && (b->p[vs] == ' ' || b->p[vs] == '\t')) vs++;
      while (ve > vs && (b->p[ve - 1] == '\r' || b->p[ve - 1] == ' ')) ve--;
      lua_pushlstring(L, name, nl);
      lua_pushlstring(L, b->p + vs, ve - vs);
      lua_rawset(L, -3);
    }
    i = e + 1;
  }
}

static int fail(lua_State *L, const char *kind, const char *msg, int sent) {
  lua_pushnil(L);
  lua_pushstring(L, kind);
  lua_pushstring(L, msg);
  lua_pushboolean(L, sent);
  return 4;
}

static int finish(lua_State *L, tt_session *s, CURLcode rc) {
  long status = 0, conns = 0, reqsize = 0;
  curl_easy_getinfo(s->curl, CURLINFO_NUM_CONNECTS, &conns);
  curl_easy_getinfo(s->curl, CURLINFO_REQUEST_SIZE, &reqsize);
  s->connects += conns;
  s->requests++;
  if (rc != CURLE_OK) {
    const char *kind = classify(rc);
    if (rc == CURLE_WRITE_ERROR && s->body.overflow) {
      return fail(L, "too_big", "the response body is larger than 16 MiB", 1);
    }
    if (rc == CURLE_WRITE_ERROR && s->headers.overflow) {
      return fail(L, "too_big", "the response headers are larger than 64 KiB", 1);
    }
    return fail(L, kind, s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc), reqsize > 0);
  }
  curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, status); lua_setfield(L, -2, "status");
  lua_pushlstring(L, s->body.p ? s->body.p : "", s->body.len); lua_setfield(L, -2, "body");
  push_headers(L, &s->headers); lua_setfield(L, -2, "headers");
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
 * once = true: never resend the body (non-idempotent requests).
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
  method = opt_str(L, 2, "method", NULL);
  url = opt_str(L, 2, "url", &urllen);
  body = opt_str(L, 2, "body", &bodylen);
  timeout = opt_ms(L, 2, "timeout_ms", s->timeout_ms);
  if (!method) method = "GET";
  if (!url) return luaL_error(L, "option 'url' is required");
  if (!clean_line(url, urllen) || strlen(url) != urllen)
    return fail(L, "invalid", "the URL contains a line break or NUL byte", 0);
  nh = check_headers(L, 2);
  if (nh < 0) return fail(L, "invalid", "a header contains a line break or NUL byte", 0);
  /* No raising below this line until hl is freed. */
  hl = make_headers(L, 2, nh, &oom);
  if (!oom) {
    nl = curl_slist_append(hl, "Expect:");   /* small bodies: no 100-continue round trip */
    if (nl) hl = nl; else oom = 1;
  }
  if (oom) { curl_slist_free_all(hl); return fail(L, "network", "out of memory", 0); }
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
  double last_call;
  curl_off_t last_bytes;
  int read_errno;
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
  return (size_t)got;
}

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int on_xfer(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
  tt_put *u = ud;
  double now;
  (void)dt; (void)dn; (void)ut;
  if (!u->progress_ref || un == u->last_bytes) return 0;
  now = mono();
  if (now - u->last_call < 0.2 && un < u->length) return 0;
  u->last_call = now;
  u->last_bytes = un;
  lua_pushvalue(u->L, u->progress_ref);
  lua_pushinteger(u->L, (lua_Integer)un);
  if (lua_pcall(u->L, 1, 1, 0) != 0) { u->failed = 1; return 1; }  /* error parked */
  if (lua_toboolean(u->L, -1) == 0 && !lua_isnil(u->L, -1)) {       /* false cancels */
    lua_pop(u->L, 1);
    lua_pushliteral(u->L, "cancelled by the progress callback");
    u->failed = 1;
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

/* session:upload{ url, path, offset, length, total, content_type,
 *                 timeout_ms, progress = function(bytes_sent_in_chunk) }
 *   -> { status, headers, body, connects } | nil, kind, message, sent
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
  int top;
  luaL_checktype(L, 2, LUA_TTABLE);
  memset(&u, 0, sizeof u);
  u.L = L; u.fd = -1;
  url = opt_str(L, 2, "url", &urllen);
  path = opt_str(L, 2, "path", NULL);
  ctype = opt_str(L, 2, "content_type", &ctlen);
  if (!url || !path || !ctype) return luaL_error(L, "options 'url', 'path' and 'content_type' are required");
  u.offset = opt_i64(L, 2, "offset");
  u.length = opt_i64(L, 2, "length");
  total = opt_i64(L, 2, "total");
  timeout = opt_ms(L, 2, "timeout_ms", 0);
  if (u.length == 0 || u.offset + u.length > total) return luaL_error(L, "invalid byte range");
  if (!clean_line(url, urllen) || !clean_line(ctype, ctlen) || ctlen > 64)
    return fail(L, "invalid", "the URL or content type contains a line break", 0);
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
  if (u.fd < 0) {
    lua_pushnil(L); lua_pushliteral(L, "file"); lua_pushfstring(L, "cannot open the file: %s", strerror(errno));
    lua_pushboolean(L, 0);
    return 4;
  }
  nl = curl_slist_append(hl, h1); if (nl) hl = nl;
  nl = nl ? curl_slist_append(hl, h2) : NULL; if (nl) hl = nl;
  nl = nl ? curl_slist_append(hl, "Accept-Encoding: identity") : NULL; if (nl) hl = nl;
  if (!nl) { curl_slist_free_all(hl); close(u.fd); return fail(L, "network", "out of memory", 0); }
  curl_easy_reset(s->curl);
  setup(s, url, timeout);
  curl_easy_setopt(s->curl, CURLOPT_UPLOAD, 1L);     /* PUT */
  curl_easy_setopt(s->curl, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(s->curl, CURLOPT_READDATA, &u);
  curl_easy_setopt(s->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)u.length);
  curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, hl);
  if (u.progress_ref) {
    curl_easy_setopt(s->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(s->curl, CURLOPT_XFERINFOFUNCTION, on_xfer);
    curl_easy_setopt(s->curl, CURLOPT_XFERINFODATA, &u);
  }
  rc = curl_easy_perform(s->curl);
  curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
  curl_slist_free_all(hl);
  close(u.fd);
  if (u.failed) {                 /* re-raise the parked callback error */
    lua_error(L);
  }
  lua_settop(L, top);
  if (rc == CURLE_ABORTED_BY_CALLBACK && u.read_errno) {
    s->connects += 0;
    lua_pushnil(L); lua_pushliteral(L, "file");
    lua_pushfstring(L, "reading the file failed: %s", strerror(u.read_errno));
    lua_pushboolean(L, 1);
    return 4;
  }
  return finish(L, s, rc);
}

/* ------------------------------------------------------------ file lock */

typedef struct { int fd; } tt_lock;

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000; ts.tv_nsec = (ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* core.lock(path, timeout_ms) -> lock | nil, "busy"|"store", message */
static int l_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  long timeout = (long)luaL_optinteger(L, 2, 10000);
  double deadline = mono() + timeout / 1000.0;
  long wait = 1;
  tt_lock *lk = lua_newuserdata(L, sizeof *lk);
  lk->fd = -1;
  luaL_getmetatable(L, LOCK_MT);
  lua_setmetatable(L, -2);
  do { lk->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600); } while (lk->fd < 0 && errno == EINTR);
  if (lk->fd < 0) {
    lua_pushnil(L); lua_pushliteral(L, "store");
    lua_pushfstring(L, "cannot open the lock file: %s", strerror(errno));
    return 3;
  }
  for (;;) {
    if (flock(lk->fd, LOCK_EX | LOCK_NB) == 0) return 1;
    if (errno != EWOULDBLOCK && errno != EINTR) break;
    if (mono() >= deadline) {
      close(lk->fd); lk->fd = -1;
      lua_pushnil(L); lua_pushliteral(L, "busy");
      lua_pushliteral(L, "another process held the store lock for too long");
      return 3;
    }
    sleep_ms(wait);
    if (wait < 20) wait *= 2;
  }
  {
    int e = errno;
    close(lk->fd); lk->fd = -1;
    lua_pushnil(L); lua_pushliteral(L, "store");
    lua_pushfstring(L, "cannot lock the store: %s", strerror(e));
    return 3;
  }
}

static int l_unlock(lua_State *L) {
  tt_lock *lk = luaL_checkudata(L, 1, LOCK_MT);
  if (lk->fd >= 0) { close(lk->fd); lk->fd = -1; }   /* closing releases the flock */
  return 0;
}

/* -------------------------------------------------------- file primitives */

static int errno_fail(lua_State *L, const char *what, int e) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, strerror(e));
  lua_pushstring(L, e == ENOENT ? "ENOENT" : e == EISDIR ? "EISDIR" : e == EACCES ? "EACCES" : "EIO");
  return 3;
}

/* core.read_file(path[, max]) -> data | nil, message, errname */
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
  if (fd < 0) return errno_fail(L, "cannot open the file", errno);
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) { close(fd); return errno_fail(L, "cannot read the file", EISDIR); }
  /* The fd is closed on every path; luaL_Buffer only raises on OOM. */
  luaL_buffinit(L, &b);
  for (;;) {
    got = read(fd, tmp, sizeof tmp);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    total += got;
    if (total > max) { close(fd); return errno_fail(L, "the file is too large", EFBIG); }
    luaL_addlstring(&b, tmp, (size_t)got);
  }
  if (got < 0) { int e = errno; close(fd); return errno_fail(L, "cannot read the file", e); }
  close(fd);
  luaL_pushresult(&b);
  return 1;
}

/* core.write_file_atomic(path, data) -> true | nil, message
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
  if (plen + 32 > sizeof tmp) return errno_fail(L, "the store path is too long", ENAMETOOLONG);
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) memset(rnd, 0, sizeof rnd);
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%02x%02x%02x%02x%02x%02x", path, (long)getpid(),
           rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
  do { fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600); } while (fd < 0 && errno == EINTR);
  if (fd < 0) return errno_fail(L, "cannot create the temporary store file", errno);
  while (off < dlen) {
    ssize_t w = write(fd, data + off, dlen - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { e = errno; close(fd); unlink(tmp); return errno_fail(L, "cannot write the store", e); }
    off += (size_t)w;
  }
  if (fsync(fd) != 0) { e = errno; close(fd); unlink(tmp); return errno_fail(L, "cannot sync the store", e); }
  close(fd);
  if (rename(tmp, path) != 0) { e = errno; unlink(tmp); return errno_fail(L, "cannot replace the store", e); }
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

/* core.stat(path) -> { size, type = "file"|"directory"|"other", mode } | nil, msg, errname */
static int l_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) return errno_fail(L, "cannot stat the file", errno);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)st.st_size); lua_setfield(L, -2, "size");
  lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" : "other");
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, st.st_mode & 07777); lua_setfield(L, -2, "mode");
  return 1;
}

/* ------------------------------------------------------------ pure helpers */

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
  if (ud.fd < 0) return errno_fail(L, "cannot open the file", errno);
  if (fstat(ud.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(ud.fd);
    return errno_fail(L, "not a regular file", S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
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

static int l_pct_encode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int form = lua_toboolean(L, 2);
  luaL_Buffer b;
  char *out;
  size_t n;
  luaL_argcheck(L, len < (size_t)1 << 28, 1, "string too long");
  out = lua_newuserdata(L, 3 * len + 1);    /* Lua-owned scratch */
  n = tt_pct_encode(s, len, out, form);
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, out, n);
  luaL_pushresult(&b);
  return 1;
}

static int l_pct_decode(lua_State *L) {
  size_t len, n;
  const char *s = luaL_checklstring(L, 1, &len);
  int form = lua_toboolean(L, 2);
  char *out = lua_newuserdata(L, len + 1);
  n = tt_pct_decode(s, len, out, form);
  if (n == (size_t)-1) { lua_pushnil(L); lua_pushliteral(L, "malformed percent-encoding"); return 2; }
  lua_pushlstring(L, out, n);
  return 1;
}

/* core.json_quote_bigints(text) -> text with integers over 15 digits quoted */
static int l_json_bigints(lua_State *L) {
  size_t len, n;
  const char *s = luaL_checklstring(L, 1, &len);
  char *out;
  luaL_argcheck(L, len < (size_t)1 << 30, 1, "string too long");
  out = lua_newuserdata(L, len + 2 * (len / 16 + 1) + 1);
  n = tt_json_quote_bigints(s, len, out);
  if (n == (size_t)-1) { lua_pushnil(L); lua_pushliteral(L, "malformed JSON text"); return 2; }
  lua_pushlstring(L, out, n);
  return 1;
}

static void push_hex(lua_State *L, const unsigned char *p, size_t n) {
  static const char H[] = "0123456789abcdef";
  char out[128];
  size_t i;
  for (i = 0; i < n && i < 64; i++) { out[2*i] = H[p[i] >> 4]; out[2*i+1] = H[p[i] & 15]; }
  lua_pushlstring(L, out, 2 * i);
}

static int l_sha256_hex(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  tt_sha256 c;
  unsigned char d[32];
  tt_sha256_init(&c); tt_sha256_update(&c, s, len); tt_sha256_final(&c, d);
  push_hex(L, d, 32);
  return 1;
}

/* core.hmac_sha256_hex(key, message): RFC 2104 HMAC with SHA-256, for
 * TikTok-Signature webhook verification. */
static int l_hmac_sha256_hex(lua_State *L) {
  size_t klen, mlen, i;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *msg = luaL_checklstring(L, 2, &mlen);
  unsigned char k[64], pad[64], inner[32], d[32];
  tt_sha256 c;
  memset(k, 0, sizeof k);
  if (klen > 64) {
    tt_sha256_init(&c); tt_sha256_update(&c, key, klen); tt_sha256_final(&c, k);
  } else {
    memcpy(k, key, klen);
  }
  for (i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
  tt_sha256_init(&c); tt_sha256_update(&c, pad, 64); tt_sha256_update(&c, msg, mlen);
  tt_sha256_final(&c, inner);
  for (i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
  tt_sha256_init(&c); tt_sha256_update(&c, pad, 64); tt_sha256_update(&c, inner, 32);
  tt_sha256_final(&c, d);
  push_hex(L, d, 32);
  return 1;
}

/* core.random_hex(nbytes) -> 2*nbytes lowercase hex chars from getrandom(2) */
static int l_random_hex(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  unsigned char buf[64];
  size_t got = 0;
  luaL_argcheck(L, n > 0 && n <= 64, 1, "between 1 and 64 bytes");
  while (got < (size_t)n) {
    ssize_t r = getrandom(buf + got, (size_t)n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return luaL_error(L, "the OS random number generator failed");
    got += (size_t)r;
  }
  push_hex(L, buf, (size_t)n);
  return 1;
}

/* core.consteq(a, b): compares in time that depends only on the lengths. */
static int l_consteq(lua_State *L) {
  size_t la, lb, i;
  const unsigned char *a = (const unsigned char *)luaL_checklstring(L, 1, &la);
  const unsigned char *b = (const unsigned char *)luaL_checklstring(L, 2, &lb);
  unsigned char d = (unsigned char)(la != lb);
  size_t n = la < lb ? la : lb;
  for (i = 0; i < n; i++) d |= a[i] ^ b[i];
  lua_pushboolean(L, d == 0);
  return 1;
}

static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec * 1000.0 + (lua_Number)(ts.tv_nsec / 1000000));
  return 1;
}

static int l_monotonic(lua_State *L) {
  lua_pushnumber(L, mono() * 1000.0);
  return 1;
}

static int l_sleep(lua_State *L) {
  lua_Number ms = luaL_checknumber(L, 1);
  if (ms > 0) sleep_ms((long)ms);
  return 0;
}

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static const luaL_Reg session_methods[] = {
  {"request", l_request}, {"upload", l_upload}, {"stats", l_session_stats},
  {"close", l_session_close}, {NULL, NULL}};

static const luaL_Reg funcs[] = {
  {"session", l_session}, {"lock", l_lock}, {"read_file", l_read_file},
  {"write_file_atomic", l_write_atomic}, {"stat", l_stat}, {"probe", l_probe},
  {"plan", l_plan}, {"plan_check", l_plan_check}, {"chunk_range", l_chunk_range},
  {"parse_content_range", l_parse_range}, {"pct_encode", l_pct_encode},
  {"pct_decode", l_pct_decode}, {"json_quote_bigints", l_json_bigints},
  {"sha256_hex", l_sha256_hex}, {"hmac_sha256_hex", l_hmac_sha256_hex}, {"random_hex", l_random_hex}, {"consteq", l_consteq},
  {"now_ms", l_now}, {"monotonic_ms", l_monotonic}, {"sleep_ms", l_sleep},
  {"getpid", l_getpid}, {NULL, NULL}};

TT_API int luaopen_tiktok_core(lua_State *L) {
#if LUA_VERSION_NUM < 502
  /* A 5.1/LuaJIT build must not run inside a 5.2+ host: the symbols mostly
   * resolve, but several mean something else there. Only 5.2+ exports this. */
  if (dlsym(RTLD_DEFAULT, "luaL_checkversion_") != NULL)
    return luaL_error(L, "tiktok.core: this build is for Lua 5.1/LuaJIT but was loaded into Lua 5.2+; "
                         "install the build made for this interpreter (check LUA_CPATH_5_4/LUA_CPATH)");
#endif
  if (luaL_newmetatable(L, SESSION_MT)) {
    lua_pushvalue(L, -1); lua_setfield(L, -2, "__index");
    luaL_setfuncs(L, session_methods, 0);
    lua_pushcfunction(L, l_session_close); lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_session_close); lua_setfield(L, -2, "__close");
    lua_pushliteral(L, SESSION_MT); lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, LOCK_MT)) {
    lua_pushvalue(L, -1); lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_unlock); lua_setfield(L, -2, "unlock");
    lua_pushcfunction(L, l_unlock); lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_unlock); lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  pthread_once(&global_once, global_init);
  luaL_newlib(L, funcs);
  lua_pushinteger(L, LUA_VERSION_NUM); lua_setfield(L, -2, "lua_version_num");
  /* curl_version_info, not curl_version(): the latter initialises OpenLDAP,
   * whose SASL setup leaks (found with valgrind). */
  lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version); lua_setfield(L, -2, "curl_version");
  lua_pushinteger(L, (lua_Integer)TT_MAX_CHUNK); lua_setfield(L, -2, "MAX_CHUNK");
  lua_pushinteger(L, (lua_Integer)TT_MIN_CHUNK); lua_setfield(L, -2, "MIN_CHUNK");
  return 1;
}
