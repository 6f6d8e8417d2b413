/* relay.c: tiktok.core.relay, the engine that relays a video from a URL into
 * TikTok's chunk upload without holding a chunk in memory or on disk.
 *
 * One relay object owns a curl multi handle and two easy handles that keep
 * their connections alive across chunks: `get` downloads from the video URL,
 * `put` uploads to TikTok's upload URL. For a chunk, the multi handle drives
 * both transfers at once: the GET's write callback fills a small ring buffer
 * (1 MiB by default), the PUT's read callback drains it, and each side pauses
 * (CURL_WRITEFUNC_PAUSE / CURL_READFUNC_PAUSE) when the ring is full or
 * empty; the loop below unpauses it once the other side has made room or
 * data. Callbacks only set flags: curl_easy_pause and any Lua code run in
 * the loop, never inside libcurl.
 *
 * A server without range support: relay:spool downloads the whole body once
 * into an unlinked temporary file (O_TMPFILE, or mkstemp + unlink) under a
 * size cap, and the chunks are uploaded from it; it is closed (and so gone)
 * by relay:close. With one chunk the body streams through the ring instead.
 *
 * Safety, because the URL comes from users: https only, every redirect too
 * (CURLOPT_REDIR_PROTOCOLS_STR, at most 3), and every address the download
 * connects to is checked in CURLOPT_OPENSOCKETFUNCTION, i.e. the address
 * actually used after name resolution (DNS rebinding cannot get around it),
 * and again for every request in CURLOPT_PREREQFUNCTION (libcurl 7.80+:
 * a reused connection too):
 * no loopback, private, link-local, shared, multicast, reserved or
 * unspecified IPv4 address, and the same for IPv6 (IPv4-mapped, -compatible,
 * NAT64 and 6to4 addresses are judged by the IPv4 address inside), unless
 * allow_private. No proxy from the environment (the check would then judge
 * the proxy), no decompression (Accept-Encoding: identity; a compressed
 * answer is refused), a byte cap, connect and low-speed timeouts. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core.h"
#include "tt.h"

#define RELAY_MT "tiktok.core.relay"
#define RELAY_RING_DEFAULT (1024 * 1024)
#define RELAY_RING_MIN (64 * 1024)
#define RELAY_RING_MAX (16 * 1024 * 1024)
#define RELAY_RECV_BUFFER (256 * 1024L)   /* CURLOPT_BUFFERSIZE of the GET */
#define RELAY_WINDOW 65536                 /* probe read window */
#define RELAY_MAX_PROBE_FETCHES 24         /* ranged fetches the probe may make */
#define RELAY_MAX_PROBE_PASSES 3           /* whole-body passes without ranges */
#define RELAY_MAX_REDIRS 3
#define RELAY_PUT_BODY_MAX 65536
#define RELAY_MAX_ALLOW 16               /* allow_private = { addresses } */
#define RELAY_PUT_HEADERS_MAX 65536

/* ------------------------------------------------------- address checks */

/* 1 when an IPv4 address (host order) must not be relayed from. */
static int v4_private(uint32_t a) {
  return (a >> 24) == 0 ||                    /* 0.0.0.0/8 "this network" */
         (a >> 24) == 10 ||                   /* 10/8 */
         (a >> 22) == (100u << 2 | 1) ||      /* 100.64/10 shared (CGNAT) */
         (a >> 24) == 127 ||                  /* loopback */
         (a >> 16) == (169u << 8 | 254) ||    /* 169.254/16 link-local, cloud metadata */
         (a >> 20) == (172u << 4 | 1) ||      /* 172.16/12 */
         (a >> 8) == (192u << 16) ||          /* 192.0.0/24 IETF */
         (a >> 8) == (192u << 16 | 2) ||      /* 192.0.2/24 TEST-NET-1 */
         (a >> 16) == (192u << 8 | 168) ||    /* 192.168/16 */
         (a >> 17) == (198u << 7 | 9) ||      /* 198.18/15 benchmarking */
         (a >> 8) == (198u << 16 | 51 << 8 | 100) ||  /* 198.51.100/24 TEST-NET-2 */
         (a >> 8) == (203u << 16 | 0 << 8 | 113) ||   /* 203.0.113/24 TEST-NET-3 */
         (a >> 28) >= 14;                     /* 224/4 multicast, 240/4 reserved, broadcast */
}

static uint32_t v4_at(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int v6_private(const unsigned char *b) {
  static const unsigned char zero[16];
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1)) return 1;   /* :: and ::1 */
  if (memcmp(b, mapped, 12) == 0) return v4_private(v4_at(b + 12));       /* ::ffff:a.b.c.d */
  if (memcmp(b, zero, 12) == 0) return v4_private(v4_at(b + 12));         /* ::a.b.c.d (old) */
  if (memcmp(b, nat64, 12) == 0) return v4_private(v4_at(b + 12));        /* 64:ff9b::/96 */
  if (b[0] == 0x20 && b[1] == 0x02) return v4_private(v4_at(b + 2));      /* 2002::/16 6to4 */
  if ((b[0] & 0xfe) == 0xfc) return 1;                                    /* fc00::/7 unique local */
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return 1;                    /* fe80::/10 link-local */
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return 1;                    /* fec0::/10 site-local */
  if (b[0] == 0xff) return 1;                                             /* multicast */
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return 1;  /* 2001:db8::/32 doc */
  if (b[0] == 0x01 && b[1] == 0 && memcmp(b + 2, zero, 6) == 0) return 1; /* 100::/64 discard */
  return 0;
}

/* 1 when the socket address may not be connected to; the text of the
 * address goes to out. */
static int addr_refused(const struct sockaddr *sa, char *out, size_t outlen) {
  out[0] = 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
    inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)outlen);
    return v4_private(ntohl(in->sin_addr.s_addr));
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)outlen);
    return v6_private(in6->sin6_addr.s6_addr);
  }
  snprintf(out, outlen, "an address of family %d", (int)sa->sa_family);
  return 1;                                   /* unix sockets and anything else */
}

/* core.relay_address_refused(text) -> boolean: the address rule alone (for
 * specs and callers that want to check a literal address early). */
static int l_address_refused(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  unsigned char b[16];
  if (inet_pton(AF_INET, s, b) == 1) { lua_pushboolean(L, v4_private(v4_at(b))); return 1; }
  if (inet_pton(AF_INET6, s, b) == 1) { lua_pushboolean(L, v6_private(b)); return 1; }
  return luaL_argerror(L, 1, "not an IPv4 or IPv6 address");
}

/* ---------------------------------------------------------------- relay */

typedef struct { char *p; size_t len, max; int overflow; } rbuf;

static void rbuf_add(rbuf *b, const char *s, size_t n) {
  char *p;
  if (b->overflow) return;
  if (b->len + n > b->max) { b->overflow = 1; return; }
  p = realloc(b->p, b->len + n + 1);
  if (!p) { b->overflow = 1; return; }
  memcpy(p + b->len, s, n);
  b->p = p; b->len += n; b->p[b->len] = 0;
}

enum { SINK_RING, SINK_BUF, SINK_SPOOL };

/* One download: what was asked, what the answer said, where bytes go. */
typedef struct {
  int sink;
  int ranged;            /* a Range was asked for */
  int allow_200;         /* a 200 to a Range means "no range support" (open) */
  int64_t off, len;      /* wanted range; len < 0: to the end */
  int64_t skip;          /* no-range reads: body bytes to drop first */
  int64_t expect_total;  /* -1: not known yet */
  int64_t cap;           /* most body bytes accepted (size cap) */
  int64_t seen, got;     /* body bytes seen / given to the sink */
  int checked, stopped, paused, done;
  size_t pause_need;
  /* the current response's headers */
  long status;
  char crange[96], cenc[64], ctype[128];
  int64_t clen;
  /* outcome of the checks: kind NULL = fine */
  const char *bad_kind;
  char bad[256];
  int64_t total;         /* the resource's size, once checked */
  int no_ranges;         /* the server answered 200 to a Range */
  /* sinks */
  unsigned char *buf; size_t bufcap;
  int fd;
} rget;

typedef struct {
  CURLM *multi;
  CURL *get, *put;
  char *ca_file;
  long connect_timeout_ms, low_speed_ms;
  int allow_private;           /* 1: every address; 0: public ones and allow[] */
  int allow_http;              /* plain http too (local tests and benchmarks) */
  int nallow;
  struct { int family; unsigned char a[16]; } allow[RELAY_MAX_ALLOW];
  unsigned char *ring;
  size_t cap, head, len;       /* ring: read position and bytes held */
  int spool_fd;
  int64_t spool_size;
  rget *g;                     /* the download in progress */
  int refused;                 /* the address check refused a connect */
  char refused_addr[64];
  rbuf put_body, put_headers;
  /* the PUT in progress */
  int put_paused, put_from_spool, put_read_failed;
  int64_t put_off, put_len, put_pos;
  long put_reads;              /* read callback calls of this PUT (buffer_size tuning) */
  long connects, requests;
  int busy;                    /* a transfer is running (progress may call back) */
  char get_err[CURL_ERROR_SIZE], put_err[CURL_ERROR_SIZE];
} tt_relay;

/* busy: the progress callback runs Lua code in the middle of a transfer;
 * using or closing the same relay from there is refused. */
static tt_relay *check_relay(lua_State *L, int idx) {
  tt_relay *r = luaL_checkudata(L, idx, RELAY_MT);
  luaL_argcheck(L, r->multi != NULL, idx, "attempt to use a closed relay");
  if (r->busy) luaL_error(L, "the relay is busy with a transfer (called from its progress callback)");
  return r;
}

static int64_t ropt_i64(lua_State *L, int t, const char *k, int64_t def) {
  lua_Number n;
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return def; }
  if (!lua_isnumber(L, -1)) luaL_error(L, "option '%s' must be a number", k);
  n = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (!(n >= 0 && n <= 9007199254740992.0) || n != (lua_Number)(int64_t)n)
    luaL_error(L, "option '%s' must be a non-negative integer", k);
  return (int64_t)n;
}

static int clean(const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 0;
  return 1;
}

/* -------------------------------------------------------------- callbacks */

/* Whether an address (family, network-order bytes) is in allow_private's list. */
static int allowed_raw(const tt_relay *r, int family, const void *bytes) {
  int i;
  for (i = 0; i < r->nallow; i++)
    if (r->allow[i].family == family && memcmp(r->allow[i].a, bytes, family == AF_INET ? 4 : 16) == 0) return 1;
  return 0;
}

static int allowed(const tt_relay *r, const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return allowed_raw(r, AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr);
  if (sa->sa_family == AF_INET6)
    return allowed_raw(r, AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
  return 0;
}

static curl_socket_t on_open(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
  tt_relay *r = ud;
  char text[64];
  curl_socket_t fd;
  (void)purpose;
  if (!r->allow_private && addr_refused(&a->addr, text, sizeof text) && !allowed(r, &a->addr)) {
    r->refused = 1;
    memcpy(r->refused_addr, text, sizeof text);
    return CURL_SOCKET_BAD;
  }
  fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

#if LIBCURL_VERSION_NUM >= 0x075000
/* Every request, on a new or a reused connection: the address it goes to
 * (a second check; the socket callback above sees only new connections). */
static int on_prereq(void *ud, char *ip, char *local_ip, int remote_port, int local_port) {
  tt_relay *r = ud;
  unsigned char b[16];
  int bad;
  (void)local_ip; (void)remote_port; (void)local_port;
  if (r->allow_private) return CURL_PREREQFUNC_OK;
  if (inet_pton(AF_INET, ip, b) == 1) bad = v4_private(v4_at(b)) && !allowed_raw(r, AF_INET, b);
  else if (inet_pton(AF_INET6, ip, b) == 1) bad = v6_private(b) && !allowed_raw(r, AF_INET6, b);
  else bad = 1;
  if (!bad) return CURL_PREREQFUNC_OK;
  r->refused = 1;
  snprintf(r->refused_addr, sizeof r->refused_addr, "%s", ip);
  return CURL_PREREQFUNC_ABORT;
}
#endif

static int hdr_is(const char *p, size_t n, const char *name, size_t nl) {
  return n > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':';
}

static void hdr_copy(char *dst, size_t cap, const char *p, size_t n, size_t nl) {
  size_t s = nl + 1, e = n, k;
  while (s < e && (p[s] == ' ' || p[s] == '\t')) s++;
  while (e > s && (p[e - 1] == '\r' || p[e - 1] == '\n' || p[e - 1] == ' ')) e--;
  k = e - s < cap - 1 ? e - s : cap - 1;
  memcpy(dst, p + s, k);
  dst[k] = 0;
}

static size_t on_get_header(char *p, size_t sz, size_t n, void *ud) {
  rget *g = ud;
  size_t len = sz * n;
  char num[32];
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    g->crange[0] = g->cenc[0] = g->ctype[0] = 0;
    g->clen = -1;
  } else if (hdr_is(p, len, "content-range", 13)) {
    hdr_copy(g->crange, sizeof g->crange, p, len, 13);
  } else if (hdr_is(p, len, "content-encoding", 16)) {
    hdr_copy(g->cenc, sizeof g->cenc, p, len, 16);
  } else if (hdr_is(p, len, "content-type", 12)) {
    hdr_copy(g->ctype, sizeof g->ctype, p, len, 12);
  } else if (hdr_is(p, len, "content-length", 14)) {
    char *end;
    long long v;
    hdr_copy(num, sizeof num, p, len, 14);
    errno = 0;
    v = strtoll(num, &end, 10);
    g->clen = (errno == 0 && end != num && *end == 0 && v >= 0) ? (int64_t)v : -1;
  }
  return len;
}

static void get_fail(rget *g, const char *kind, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
static void get_fail(rget *g, const char *kind, const char *fmt, ...) {
  va_list ap;
  if (g->bad_kind) return;
  g->bad_kind = kind;
  va_start(ap, fmt);
  vsnprintf(g->bad, sizeof g->bad, fmt, ap);
  va_end(ap);
}

/* The final response's status and headers, checked before its first body
 * byte is used. 0 when the body may be used. */
static int get_check(tt_relay *r, rget *g) {
  long status = 0;
  int64_t first, last, total;
  curl_easy_getinfo(r->get, CURLINFO_RESPONSE_CODE, &status);
  g->status = status;
  g->checked = 1;
  if (g->cenc[0] && strcasecmp(g->cenc, "identity") != 0) {
    get_fail(g, "http", "the video URL answered with a compressed body (Content-Encoding: %.40s)", g->cenc);
    return -1;
  }
  if (g->ranged && status == 206) {
    if (tt_parse_content_range(g->crange, strlen(g->crange), &first, &last, &total) || first < 0 ||
        last < first || total < 0 || last >= total) {
      get_fail(g, "http", "the video URL answered 206 without a valid Content-Range");
      return -1;
    }
    if (first != g->off || (g->len >= 0 && last != g->off + g->len - 1 && !(g->allow_200 && last == total - 1))) {
      get_fail(g, "http", "the video URL answered bytes %lld-%lld where %lld-%lld were asked for",
               (long long)first, (long long)last, (long long)g->off, (long long)(g->off + g->len - 1));
      return -1;
    }
    g->total = total;
  } else if (status == 200 && (!g->ranged || g->allow_200)) {
    if (g->ranged) { g->no_ranges = 1; g->ranged = 0; g->skip = g->off; }
    g->total = g->clen;
    if (g->total < 0 && g->expect_total < 0) {
      get_fail(g, "unsupported_media", "the video URL does not say how large the video is (no Content-Length "
               "and no range support), so it cannot be planned into chunks");
      return -1;
    }
    if (g->total < 0) g->total = g->expect_total;
  } else if (status == 200) {
    get_fail(g, "http", "the video URL stopped honouring range requests (HTTP 200 to a Range)");
    return -1;
  } else {
    get_fail(g, "http", "the video URL answered HTTP %ld", status);
    return -1;
  }
  if (g->expect_total >= 0 && g->total != g->expect_total) {
    get_fail(g, "http", "the video at the URL changed while it was relayed (%lld bytes, %lld before)",
             (long long)g->total, (long long)g->expect_total);
    return -1;
  }
  if (g->total > g->cap) {
    get_fail(g, "refused", "the video at the URL is %lld bytes, more than the %lld allowed",
             (long long)g->total, (long long)g->cap);
    return -1;
  }
  return 0;
}

static size_t on_get_write(char *p, size_t sz, size_t n, void *ud) {
  tt_relay *r = ud;
  rget *g = r->g;
  size_t len = sz * n, i, room;
  if (!g->checked && get_check(r, g)) return 0;
  if (g->stopped) return 0;
  if (g->sink == SINK_RING) {
    /* Ranged reads, or the whole body without ranges (skip 0). */
    if (g->len >= 0 && g->got + (int64_t)len > g->len) {
      get_fail(g, "http", "the video URL sent more bytes than were asked for");
      return 0;
    }
    if (len > r->cap) { get_fail(g, "network", "a piece of the download is larger than the buffer"); return 0; }
    if (r->cap - r->len < len) { g->paused = 1; g->pause_need = len; return CURL_WRITEFUNC_PAUSE; }
    for (i = 0; i < len; i += room) {
      size_t tail = (r->head + r->len) % r->cap;
      room = r->cap - tail;
      if (room > len - i) room = len - i;
      memcpy(r->ring + tail, p + i, room);
      r->len += room;
    }
    g->got += (int64_t)len; g->seen += (int64_t)len;
    return len;
  }
  i = 0;
  if (g->seen < g->skip) {                 /* no ranges: drop what comes before off */
    int64_t drop = g->skip - g->seen;
    i = drop < (int64_t)len ? (size_t)drop : len;
    g->seen += (int64_t)i;
  }
  if (i == len) return len;
  if (g->sink == SINK_BUF) {
    size_t take = len - i;
    if ((int64_t)g->bufcap - g->got < (int64_t)take) take = (size_t)((int64_t)g->bufcap - g->got);
    memcpy(g->buf + g->got, p + i, take);
    g->got += (int64_t)take; g->seen += (int64_t)take;
    if ((size_t)g->got == g->bufcap) { g->stopped = 1; return take + i == len ? len : 0; }
    return len;
  }
  /* SINK_SPOOL */
  if (g->seen + (int64_t)(len - i) > g->total) {
    get_fail(g, "http", "the video URL sent more bytes than its Content-Length");
    return 0;
  }
  while (i < len) {
    ssize_t w = pwrite(g->fd, p + i, len - i, (off_t)g->got);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      get_fail(g, "file", "writing the temporary copy of the video failed: %s", strerror(w < 0 ? errno : EIO));
      return 0;
    }
    i += (size_t)w; g->got += w; g->seen += w;
  }
  return len;
}

static size_t on_put_read(char *buf, size_t sz, size_t n, void *ud) {
  tt_relay *r = ud;
  size_t want = sz * n, take, i, part;
  r->put_reads++;
  if (r->put_pos >= r->put_len) return 0;
  if ((int64_t)want > r->put_len - r->put_pos) want = (size_t)(r->put_len - r->put_pos);
  if (r->put_from_spool) {
    ssize_t got;
    do { got = pread(r->spool_fd, buf, want, (off_t)(r->put_off + r->put_pos)); } while (got < 0 && errno == EINTR);
    if (got <= 0) { r->put_read_failed = 1; return CURL_READFUNC_ABORT; }
    r->put_pos += got;
    return (size_t)got;
  }
  if (r->len == 0) {
    if (r->g && r->g->done) { r->put_read_failed = 1; return CURL_READFUNC_ABORT; }  /* download ended short */
    r->put_paused = 1;
    return CURL_READFUNC_PAUSE;
  }
  take = want < r->len ? want : r->len;
  for (i = 0; i < take; i += part) {
    part = r->cap - r->head;
    if (part > take - i) part = take - i;
    memcpy(buf + i, r->ring + r->head, part);
    r->head = (r->head + part) % r->cap;
    r->len -= part;
  }
  if (r->len == 0) r->head = 0;
  r->put_pos += (int64_t)take;
  return take;
}

static size_t on_put_body(char *p, size_t sz, size_t n, void *ud) {
  rbuf *b = ud;
  rbuf_add(b, p, sz * n);
  return sz * n;                  /* an oversized answer is cut, not an error */
}

static size_t on_put_header(char *p, size_t sz, size_t n, void *ud) {
  rbuf *b = ud;
  size_t len = sz * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { b->len = 0; b->overflow = 0; }
  rbuf_add(b, p, len);
  return len;
}

/* ------------------------------------------------------------ easy setup */

static void common(tt_relay *r, CURL *c, const char *url, long timeout_ms, char *errbuf) {
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (r->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, r->ca_file);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  if (r->low_speed_ms > 0) {
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (r->low_speed_ms + 999) / 1000);
  }
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "lua-tiktok/0.1 libcurl/" LIBCURL_VERSION);
  errbuf[0] = 0;
}

/* The download: https only, its redirects too, each connect checked. */
static void setup_get(tt_relay *r, rget *g, const char *url, long timeout_ms, struct curl_slist *hl) {
  CURL *c = r->get;
  char range[64];
  curl_easy_reset(c);
  common(r, c, url, timeout_ms, r->get_err);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, r->allow_http ? "http,https" : "https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, r->allow_http ? "http,https" : "https");
#else
  curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(r->allow_http ? CURLPROTO_HTTP | CURLPROTO_HTTPS : CURLPROTO_HTTPS));
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, (long)(r->allow_http ? CURLPROTO_HTTP | CURLPROTO_HTTPS : CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)RELAY_MAX_REDIRS);
  curl_easy_setopt(c, CURLOPT_PROXY, "");            /* no proxy from the environment */
  curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_open);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, r);
#if LIBCURL_VERSION_NUM >= 0x075000
  curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, on_prereq);
  curl_easy_setopt(c, CURLOPT_PREREQDATA, r);
#endif
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, RELAY_RECV_BUFFER);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);      /* Accept-Encoding: identity */
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_get_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, g);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_get_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  if (g->ranged) {
    if (g->len >= 0) snprintf(range, sizeof range, "%lld-%lld", (long long)g->off, (long long)(g->off + g->len - 1));
    else snprintf(range, sizeof range, "%lld-", (long long)g->off);
    curl_easy_setopt(c, CURLOPT_RANGE, range);     /* copied by libcurl */
  }
  g->clen = -1;
  g->total = -1;
  r->g = g;
  r->refused = 0;
}

/* What a failed download means: kind and sentence into g (if not set). */
static void get_result(tt_relay *r, rget *g, CURLcode rc) {
  long redirects = 0;
  if (rc == CURLE_OK || g->bad_kind) return;
  if (g->stopped && rc == CURLE_WRITE_ERROR) return;
  curl_easy_getinfo(r->get, CURLINFO_REDIRECT_COUNT, &redirects);
  if (r->refused && (rc == CURLE_COULDNT_CONNECT || rc == CURLE_ABORTED_BY_CALLBACK)) {
    get_fail(g, "refused", "the video URL%s leads to %s, a private, loopback, link-local or otherwise "
             "non-public address; the relay only downloads from public addresses",
             redirects ? " (after a redirect)" : "", r->refused_addr);
  } else if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
    get_fail(g, "refused", redirects || g->checked ? "the video URL redirects to a URL that is not https"
                                                   : "the video URL is not an https URL");
  } else if (rc == CURLE_TOO_MANY_REDIRECTS) {
    get_fail(g, "refused", "the video URL redirects more than %d times", RELAY_MAX_REDIRS);
  } else {
    const char *kind = "network";
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: kind = "timeout"; break;
    case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER: case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH: case CURLE_SSL_INVALIDCERTSTATUS: case CURLE_SSL_CRL_BADFILE:
      kind = "tls"; break;
    default: break;
    }
    get_fail(g, kind, "downloading from the video URL failed: %s",
             r->get_err[0] ? r->get_err : curl_easy_strerror(rc));
  }
}

/* ------------------------------------------------------------- the loop */

typedef struct {
  lua_State *L;
  int progress;            /* stack index of the progress function, 0: none */
  double last_call;
  curl_off_t last_bytes;
  int failed, cancelled;   /* a Lua error is parked on the stack top / false returned */
} rprog;

static int call_progress(rprog *pr, tt_relay *r, int final) {
  curl_off_t up = 0;
  double now;
  if (!pr || !pr->progress) return 0;
  curl_easy_getinfo(r->put, CURLINFO_SIZE_UPLOAD_T, &up);
  if (up == pr->last_bytes) return 0;
  now = tt_mono();
  if (!final && now - pr->last_call < 0.2) return 0;
  pr->last_call = now; pr->last_bytes = up;
  lua_pushvalue(pr->L, pr->progress);
  lua_pushinteger(pr->L, (lua_Integer)up);
  if (lua_pcall(pr->L, 1, 1, 0) != 0) { pr->failed = 1; return -1; }
  if (!lua_isnil(pr->L, -1) && !lua_toboolean(pr->L, -1)) { lua_pop(pr->L, 1); pr->cancelled = 1; return -1; }
  lua_pop(pr->L, 1);
  return 0;
}

typedef struct { CURLcode get_rc, put_rc; int get_done, put_done, put_started; } rrun;

/* Drives the download (and, with_put, the upload once the download's
 * answer is checked) until the upload ends, or the download ends without an
 * upload, or either fails. Handles are removed from the multi on return. */
static void drive(tt_relay *r, rget *g, int with_put, rprog *pr, rrun *st) {
  int running = 0;
  memset(st, 0, sizeof *st);
  st->get_rc = st->put_rc = CURLE_OK;
  r->head = r->len = 0;
  r->put_paused = 0;
  if (g) curl_multi_add_handle(r->multi, r->get); else st->get_done = 1;
  if (with_put && (!g || r->put_from_spool)) { curl_multi_add_handle(r->multi, r->put); st->put_started = 1; }
  for (;;) {
    CURLMsg *m;
    int q, woke = 0;
    if (curl_multi_perform(r->multi, &running) != CURLM_OK) {
      if (g) get_fail(g, "network", "the transfer engine failed (out of memory)");
      break;
    }
    while ((m = curl_multi_info_read(r->multi, &q)) != NULL) {
      if (m->msg != CURLMSG_DONE) continue;
      if (g && m->easy_handle == r->get) { st->get_done = 1; st->get_rc = m->data.result; g->done = 1; }
      else if (m->easy_handle == r->put) { st->put_done = 1; st->put_rc = m->data.result; }
    }
    if (g && st->get_done && st->get_rc == CURLE_OK && !g->checked && !g->bad_kind) {
      get_check(r, g);                          /* an answer without a body */
      if (!g->bad_kind) get_fail(g, "http", "the video URL answered without any bytes");
    }
    if (st->put_done) break;
    if (g && g->bad_kind) break;              /* refused, or failed checks */
    if (g && st->get_done && (st->get_rc != CURLE_OK || !with_put)) break;
    if (with_put && !st->put_started && g && g->checked) {
      curl_multi_add_handle(r->multi, r->put);  /* the answer is fine: start the upload */
      st->put_started = 1;
      woke = 1;
    }
    if (with_put && st->put_started && r->put_paused && (r->len > 0 || st->get_done)) {
      r->put_paused = 0;
      curl_easy_pause(r->put, CURLPAUSE_CONT);
      woke = 1;
    }
    if (g && g->paused && !st->get_done) {
      size_t need = g->pause_need > r->cap / 4 ? g->pause_need : r->cap / 4;
      if (r->cap - r->len >= need) {
        g->paused = 0;
        curl_easy_pause(r->get, CURLPAUSE_CONT);
        woke = 1;
      }
    }
    if (with_put && st->put_started && call_progress(pr, r, 0)) break;
    if (!woke) curl_multi_poll(r->multi, NULL, 0, 100, NULL);
  }
  if (g) { curl_multi_remove_handle(r->multi, r->get); r->requests++; }
  if (st->put_started) { curl_multi_remove_handle(r->multi, r->put); r->requests++; }
  if (g) {
    long c = 0;
    curl_easy_getinfo(r->get, CURLINFO_NUM_CONNECTS, &c); r->connects += c;
    if (!st->get_done && !g->bad_kind && !st->put_done) get_fail(g, "network", "the download was stopped");
    get_result(r, g, st->get_rc);
  }
  if (st->put_started) { long c = 0; curl_easy_getinfo(r->put, CURLINFO_NUM_CONNECTS, &c); r->connects += c; }
  r->g = NULL;
}

/* A download into a buffer (open and the probe's reads): blocking. */
static int fetch(tt_relay *r, rget *g, const char *url, long timeout_ms, struct curl_slist *hl) {
  rrun st;
  setup_get(r, g, url, timeout_ms, hl);
  drive(r, g, 0, NULL, &st);
  return g->bad_kind ? -1 : 0;
}

/* ------------------------------------------------------------------ Lua */

static struct curl_slist *identity_headers(void) {
  return curl_slist_append(NULL, "Accept-Encoding: identity");
}

/* core.relay{ ca_file, connect_timeout_ms, low_speed_ms, allow_private,
 *             buffer_size } -> relay
 * connect_timeout_ms and low_speed_ms are required (0 turns the stall check
 * off); allow_private = true lets the download connect to any address, a
 * list of addresses ({ "10.1.2.3", "::1" }) to those only; allow_http = true
 * accepts plain http URLs and redirects too (a local test server, a
 * benchmark over loopback HTTP; never for URLs from users); buffer_size is the ring between download and upload (64 KiB to
 * 16 MiB, default 1 MiB). */
static int l_relay(lua_State *L) {
  tt_relay *r;
  const char *ca;
  long cto, ls, bs;
  int priv;
  luaL_checktype(L, 1, LUA_TTABLE);
  ca = tt_opt_str(L, 1, "ca_file", NULL);
  cto = tt_opt_int(L, 1, "connect_timeout_ms", -1);
  ls = tt_opt_int(L, 1, "low_speed_ms", -1);
  bs = tt_opt_int(L, 1, "buffer_size", RELAY_RING_DEFAULT);
  if (bs < RELAY_RING_MIN || bs > RELAY_RING_MAX)
    return luaL_error(L, "option 'buffer_size' must be between 65536 and 16777216 bytes");
  r = lua_newuserdata(L, sizeof *r);
  memset(r, 0, sizeof *r);
  lua_getfield(L, 1, "allow_private");
  if (lua_istable(L, -1)) {
    int i, n = (int)tt_rawlen(L, -1);
    if (n > RELAY_MAX_ALLOW) return luaL_error(L, "option 'allow_private' lists more than %d addresses", RELAY_MAX_ALLOW);
    for (i = 1; i <= n; i++) {
      const char *s;
      lua_rawgeti(L, -1, i);
      s = lua_tostring(L, -1);
      if (s && inet_pton(AF_INET, s, r->allow[i - 1].a) == 1) r->allow[i - 1].family = AF_INET;
      else if (s && inet_pton(AF_INET6, s, r->allow[i - 1].a) == 1) r->allow[i - 1].family = AF_INET6;
      else return luaL_error(L, "allow_private[%d] is not an IPv4 or IPv6 address", i);
      lua_pop(L, 1);
    }
    r->nallow = n;
    priv = 0;
  } else {
    priv = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "allow_http");
  r->allow_http = lua_toboolean(L, -1);
  lua_pop(L, 1);
  r->spool_fd = -1;
  r->put_body.max = RELAY_PUT_BODY_MAX; r->put_headers.max = RELAY_PUT_HEADERS_MAX;
  luaL_getmetatable(L, RELAY_MT);
  lua_setmetatable(L, -2);
  if (!tt_curl_init()) return luaL_error(L, "curl_global_init failed");
  r->connect_timeout_ms = cto; r->low_speed_ms = ls; r->allow_private = priv;
  if (ca && !(r->ca_file = strdup(ca))) return luaL_error(L, "out of memory");
  r->cap = (size_t)bs;
  r->ring = malloc(r->cap);
  r->multi = curl_multi_init();
  r->get = curl_easy_init();
  r->put = curl_easy_init();
  if (!r->ring || !r->multi || !r->get || !r->put) return luaL_error(L, "out of memory");
  return 1;
}

static void drop_spool(tt_relay *r) {
  if (r->spool_fd >= 0) { close(r->spool_fd); r->spool_fd = -1; }
  r->spool_size = 0;
}

static int l_relay_close(lua_State *L) {
  tt_relay *r = luaL_checkudata(L, 1, RELAY_MT);
  if (r->busy) return luaL_error(L, "the relay is busy with a transfer (called from its progress callback)");
  drop_spool(r);
  if (r->get) { curl_easy_cleanup(r->get); r->get = NULL; }
  if (r->put) { curl_easy_cleanup(r->put); r->put = NULL; }
  if (r->multi) { curl_multi_cleanup(r->multi); r->multi = NULL; }
  free(r->ring); r->ring = NULL;
  free(r->ca_file); r->ca_file = NULL;
  free(r->put_body.p); r->put_body.p = NULL;
  free(r->put_headers.p); r->put_headers.p = NULL;
  return 0;
}

static int l_relay_stats(lua_State *L) {
  tt_relay *r = check_relay(L, 1);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, r->connects); lua_setfield(L, -2, "connects");
  lua_pushinteger(L, r->requests); lua_setfield(L, -2, "requests");
  lua_pushinteger(L, (lua_Integer)r->spool_size); lua_setfield(L, -2, "spooled");
  return 1;
}

/* The probe's reads: a cache of the first window and of the last window
 * fetched; a miss fetches a window there (a range, or without ranges one
 * more pass over the body that keeps only that window). */
typedef struct {
  tt_relay *r;
  const char *url;
  long timeout_ms;
  struct curl_slist *hl;
  int64_t size;
  int ranges;
  unsigned char first[RELAY_WINDOW], win[RELAY_WINDOW];
  int64_t first_len, win_off, win_len;
  int fetches, passes;
  rget err;                /* the failure of a miss, for the caller */
} probe_src;

static int probe_read(void *ud, int64_t off, void *buf, size_t len) {
  probe_src *ps = ud;
  rget g;
  if (off < 0 || off + (int64_t)len > ps->size) return -1;
  if (off + (int64_t)len <= ps->first_len) { memcpy(buf, ps->first + off, len); return 0; }
  if (ps->win_len > 0 && off >= ps->win_off && off + (int64_t)len <= ps->win_off + ps->win_len) {
    memcpy(buf, ps->win + (off - ps->win_off), len);
    return 0;
  }
  if (len > RELAY_WINDOW) return -1;
  if (ps->ranges ? ++ps->fetches > RELAY_MAX_PROBE_FETCHES : ++ps->passes > RELAY_MAX_PROBE_PASSES) {
    if (!ps->err.bad_kind)
      get_fail(&ps->err, "unsupported_media", "the video's boxes need too many reads from the URL to find its "
               "duration (the file is unusual or damaged)");
    return -1;
  }
  memset(&g, 0, sizeof g);
  g.sink = SINK_BUF; g.buf = ps->win; g.bufcap = RELAY_WINDOW;
  g.off = off; g.len = ps->size - off < RELAY_WINDOW ? ps->size - off : RELAY_WINDOW;
  g.bufcap = (size_t)g.len;
  g.expect_total = ps->size; g.cap = ps->size;
  if (ps->ranges) g.ranged = 1; else g.skip = off;
  ps->win_len = 0;
  if (fetch(ps->r, &g, ps->url, ps->timeout_ms, ps->hl)) { ps->err = g; return -1; }
  if (g.got < (int64_t)len) {
    get_fail(&ps->err, "http", "the video URL sent fewer bytes than it announced");
    return -1;
  }
  ps->win_off = off; ps->win_len = g.got;
  memcpy(buf, ps->win, len);
  return 0;
}

static int fail_get(lua_State *L, rget *g) {
  return tt_fail(L, g->bad_kind, 0, "%s", g->bad);
}

/* relay:open{ url, max_bytes, timeout_ms } -> { size, ranges, container,
 *   content_type, served_type, duration_ms|nil, fetches }
 *   | nil, kind, message, false
 * kind: "refused" (scheme, address, redirect, size cap), "unsupported_media"
 * (not an MP4/MOV/WebM, or no size), "http" (an unexpected answer),
 * "network", "timeout", "tls". Nothing is uploaded by open. */
static int l_relay_open(lua_State *L) {
  tt_relay *r = check_relay(L, 1);
  const char *url, *perr;
  size_t urllen;
  int64_t maxb;
  long timeout;
  probe_src *ps;
  rget g;
  tt_media m;
  luaL_checktype(L, 2, LUA_TTABLE);
  url = tt_opt_str(L, 2, "url", &urllen);
  if (!url) return luaL_error(L, "option 'url' is required");
  maxb = ropt_i64(L, 2, "max_bytes", TT_MAX_VIDEO);
  timeout = tt_opt_int(L, 2, "timeout_ms", 30000);
  if (!clean(url, urllen) || strlen(url) != urllen)
    return tt_fail(L, "refused", 0, "the video URL contains a line break or NUL byte");
  ps = lua_newuserdata(L, sizeof *ps);         /* collected by Lua: nothing to free on a raise */
  memset(ps, 0, sizeof *ps);
  ps->hl = identity_headers();
  if (!ps->hl) return luaL_error(L, "out of memory");
  ps->r = r; ps->url = url; ps->timeout_ms = timeout;
  memset(&g, 0, sizeof g);
  g.sink = SINK_BUF; g.buf = ps->first; g.bufcap = RELAY_WINDOW;
  g.ranged = 1; g.allow_200 = 1; g.off = 0; g.len = RELAY_WINDOW;
  g.expect_total = -1; g.cap = maxb;
  if (fetch(r, &g, url, timeout, ps->hl)) { curl_slist_free_all(ps->hl); return fail_get(L, &g); }
  ps->size = g.total;
  ps->ranges = !g.no_ranges;
  ps->first_len = g.got;
  if (ps->size < 12) {
    curl_slist_free_all(ps->hl);
    snprintf(ps->err.bad, sizeof ps->err.bad, "the video URL serves %lld bytes, too few to be a video",
             (long long)ps->size);
    return tt_fail(L, "unsupported_media", 0, "%s", ps->err.bad);
  }
  perr = tt_probe(probe_read, ps, ps->size, &m);
  curl_slist_free_all(ps->hl);
  if (ps->err.bad_kind && (perr || strcmp(ps->err.bad_kind, "unsupported_media") != 0))
    return fail_get(L, &ps->err);
  if (perr) return tt_fail(L, "unsupported_media", 0, "%s", perr);
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, (lua_Integer)ps->size); lua_setfield(L, -2, "size");
  lua_pushboolean(L, ps->ranges); lua_setfield(L, -2, "ranges");
  lua_pushstring(L, m.container); lua_setfield(L, -2, "container");
  lua_pushstring(L, m.content_type); lua_setfield(L, -2, "content_type");
  if (g.ctype[0]) { lua_pushstring(L, g.ctype); lua_setfield(L, -2, "served_type"); }
  if (m.duration_ms >= 0) { lua_pushinteger(L, (lua_Integer)m.duration_ms); lua_setfield(L, -2, "duration_ms"); }
  lua_pushinteger(L, ps->fetches + ps->passes + 1); lua_setfield(L, -2, "fetches");
  return 1;
}

/* An unlinked temporary file in dir: O_TMPFILE, else mkstemp + unlink. */
static int tmp_fd(const char *dir) {
  char path[4096];
  int fd;
#ifdef O_TMPFILE
  do { fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600); } while (fd < 0 && errno == EINTR);
  if (fd >= 0) return fd;
#endif
  if (snprintf(path, sizeof path, "%s/lua-tiktok-relay.XXXXXX", dir) >= (int)sizeof path) { errno = ENAMETOOLONG; return -1; }
  fd = mkostemp(path, O_CLOEXEC);
  if (fd < 0) return -1;
  unlink(path);
  return fd;
}

/* relay:spool{ url, size, max_bytes, dir, timeout_ms, nice } -> bytes
 *   | nil, kind, message, false
 * For a server without range support: downloads the whole body once into an
 * unlinked temporary file in dir (default TMPDIR or /tmp), refused when size
 * is over max_bytes. Later put_chunk{ spool = true } calls upload from it;
 * relay:close (or the next spool) deletes it. */
static int l_relay_spool(lua_State *L) {
  tt_relay *r = check_relay(L, 1);
  const char *url, *dir;
  int64_t size, maxb;
  long timeout, nice;
  struct curl_slist *hl;
  rget g;
  tt_nice pri;
  luaL_checktype(L, 2, LUA_TTABLE);
  url = tt_opt_str(L, 2, "url", NULL);
  if (!url) return luaL_error(L, "option 'url' is required");
  size = ropt_i64(L, 2, "size", -1);
  if (size < 0) return luaL_error(L, "option 'size' is required");
  maxb = ropt_i64(L, 2, "max_bytes", TT_MAX_VIDEO);
  timeout = tt_opt_int(L, 2, "timeout_ms", 0);
  nice = tt_opt_int(L, 2, "nice", 0);
  if (nice < 0 || nice > 19) return luaL_error(L, "option 'nice' must be between 0 and 19");
  dir = tt_opt_str(L, 2, "dir", NULL);
  if (!dir) dir = getenv("TMPDIR");
  if (!dir || !*dir) dir = "/tmp";
  drop_spool(r);
  if (size > maxb) {
    char msg[256];
    snprintf(msg, sizeof msg, "the video is %lld bytes and its server does not support range requests: "
             "relaying it needs a temporary copy, which is capped at %lld bytes", (long long)size, (long long)maxb);
    return tt_fail(L, "refused", 0, "%s", msg);
  }
  hl = identity_headers();
  if (!hl) return luaL_error(L, "out of memory");
  r->spool_fd = tmp_fd(dir);
  if (r->spool_fd < 0) {
    int e = errno;
    curl_slist_free_all(hl);
    return tt_fail(L, "file", 0, "cannot create a temporary file in %s for the video: %s", dir, strerror(e));
  }
  {
    struct statvfs fs;
    if (fstatvfs(r->spool_fd, &fs) == 0 && (int64_t)fs.f_bavail * (int64_t)fs.f_frsize < size) {
      char msg[320];
      snprintf(msg, sizeof msg, "%s has %lld bytes free, not enough for a temporary copy of the video "
               "(%lld bytes; its server does not support range requests)", dir,
               (long long)fs.f_bavail * (long long)fs.f_frsize, (long long)size);
      curl_slist_free_all(hl);
      drop_spool(r);
      return tt_fail(L, "file", 0, "%s", msg);
    }
  }
  memset(&g, 0, sizeof g);
  g.sink = SINK_SPOOL; g.fd = r->spool_fd; g.off = 0; g.len = -1;
  g.expect_total = size; g.cap = maxb;
  tt_nice_lower(&pri, (int)nice);
  fetch(r, &g, url, timeout, hl);
  tt_nice_restore(&pri);
  curl_slist_free_all(hl);
  if (!g.bad_kind && g.got != size)
    get_fail(&g, "http", "the video URL sent %lld bytes where %lld were announced", (long long)g.got, (long long)size);
  if (g.bad_kind) { drop_spool(r); return fail_get(L, &g); }
  r->spool_size = size;
  lua_pushinteger(L, (lua_Integer)size);
  return 1;
}

/* relay:put_chunk{ url, upload_url, offset, length, total, content_type,
 *                  ranges = true, spool = false, timeout_ms, progress, nice, buffer_size }
 *   -> { status, headers, body, connects, downloaded, reads } | nil, kind, message, sent[, "download"]
 * Downloads [offset, offset+length) of url and uploads it to upload_url at
 * the same time (Content-Range: bytes offset-end/total): ranges = false with
 * offset 0 and length total streams the whole body without a Range; spool =
 * true uploads from relay:spool's copy instead. The upload starts only after
 * the download's answer has been checked, so a refused, failed or changed
 * source sends nothing to TikTok. A failure of the download is reported
 * with its kind ("refused", "http", "network", "timeout", "tls", "file")
 * and a fifth value "download";
 * of the upload as session:upload does ("network", "timeout", "tls");
 * "aborted" when progress returned false; an error raised in progress is
 * raised again after the transfers are cleaned up. nice (0-19, default 0)
 * lowers the calling thread's priority for the transfers, as
 * session:upload's does (spool takes it too). buffer_size sets the PUT's
 * CURLOPT_UPLOAD_BUFFERSIZE as session:upload's does (absent: libcurl's);
 * reads counts the PUT's read callback calls. */
static int l_relay_put(lua_State *L) {
  tt_relay *r = check_relay(L, 1);
  const char *url, *uurl, *ctype;
  size_t ulen, uulen, ctlen;
  int64_t off, len, total;
  long timeout, nice, bufsize;
  int ranges, spool, top, sent;
  tt_nice pri;
  char h1[128], h2[160];
  struct curl_slist *ghl = NULL, *phl = NULL, *nl;
  rget g;
  rrun st;
  rprog pr;
  long status = 0, conns = 0;
  luaL_checktype(L, 2, LUA_TTABLE);
  url = tt_opt_str(L, 2, "url", &ulen);
  uurl = tt_opt_str(L, 2, "upload_url", &uulen);
  ctype = tt_opt_str(L, 2, "content_type", &ctlen);
  if (!url || !uurl || !ctype) return luaL_error(L, "options 'url', 'upload_url' and 'content_type' are required");
  off = ropt_i64(L, 2, "offset", -1);
  len = ropt_i64(L, 2, "length", -1);
  total = ropt_i64(L, 2, "total", -1);
  timeout = tt_opt_int(L, 2, "timeout_ms", 0);
  nice = tt_opt_int(L, 2, "nice", 0);
  if (nice < 0 || nice > 19) return luaL_error(L, "option 'nice' must be between 0 and 19");
  bufsize = tt_opt_upload_buffer(L, 2);
  lua_getfield(L, 2, "ranges"); ranges = lua_isnil(L, -1) || lua_toboolean(L, -1); lua_pop(L, 1);
  lua_getfield(L, 2, "spool"); spool = lua_toboolean(L, -1); lua_pop(L, 1);
  if (off < 0 || len <= 0 || total <= 0 || off + len > total) return luaL_error(L, "invalid byte range");
  if (!ranges && !spool && (off != 0 || len != total))
    return luaL_error(L, "without ranges only the whole body can be streamed (spool it first)");
  if (spool && r->spool_size != total) return luaL_error(L, "no spooled copy of this size (call spool first)");
  memset(&pr, 0, sizeof pr);
  pr.L = L;
  lua_getfield(L, 2, "progress");
  if (!lua_isnil(L, -1)) {
    luaL_argcheck(L, lua_isfunction(L, -1), 2, "progress must be a function");
    pr.progress = lua_gettop(L);
  } else {
    lua_pop(L, 1);
  }
  top = lua_gettop(L);
  if (!clean(url, ulen) || !clean(uurl, uulen) || !clean(ctype, ctlen) || ctlen > 64)
    return tt_fail(L, "invalid", 0, "the URL or content type contains a line break");
  snprintf(h1, sizeof h1, "Content-Range: bytes %lld-%lld/%lld", (long long)off, (long long)(off + len - 1),
           (long long)total);
  snprintf(h2, sizeof h2, "Content-Type: %s", ctype);
  /* No raising below until the lists are freed. */
  ghl = identity_headers();
  nl = ghl ? curl_slist_append(phl, h1) : NULL; if (nl) phl = nl;
  nl = nl ? curl_slist_append(phl, h2) : NULL; if (nl) phl = nl;
  nl = nl ? curl_slist_append(phl, "Accept-Encoding: identity") : NULL; if (nl) phl = nl;
  nl = nl ? curl_slist_append(phl, "Expect:") : NULL; if (nl) phl = nl;
  if (!nl) { curl_slist_free_all(ghl); curl_slist_free_all(phl); return luaL_error(L, "out of memory"); }

  memset(&g, 0, sizeof g);
  g.sink = SINK_RING; g.off = off; g.len = len; g.ranged = ranges;
  g.expect_total = total; g.cap = total;
  if (!spool) setup_get(r, &g, url, timeout, ghl);
  curl_easy_reset(r->put);
  common(r, r->put, uurl, timeout, r->put_err);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(r->put, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(r->put, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(r->put, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(r->put, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(r->put, CURLOPT_READFUNCTION, on_put_read);
  curl_easy_setopt(r->put, CURLOPT_READDATA, r);
  curl_easy_setopt(r->put, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(r->put, CURLOPT_HTTPHEADER, phl);
  curl_easy_setopt(r->put, CURLOPT_WRITEFUNCTION, on_put_body);
  curl_easy_setopt(r->put, CURLOPT_WRITEDATA, &r->put_body);
  curl_easy_setopt(r->put, CURLOPT_HEADERFUNCTION, on_put_header);
  curl_easy_setopt(r->put, CURLOPT_HEADERDATA, &r->put_headers);
#if TT_HAS_UPLOAD_BUFFERSIZE
  if (bufsize) curl_easy_setopt(r->put, CURLOPT_UPLOAD_BUFFERSIZE, bufsize);
#endif
  r->put_body.len = 0; r->put_body.overflow = 0;
  r->put_headers.len = 0; r->put_headers.overflow = 0;
  r->put_off = off; r->put_len = len; r->put_pos = 0;
  r->put_from_spool = spool; r->put_read_failed = 0; r->put_reads = 0;
  r->busy = 1;
  tt_nice_lower(&pri, (int)nice);
  drive(r, spool ? NULL : &g, 1, &pr, &st);
  tt_nice_restore(&pri);               /* before anything below can raise */
  r->busy = 0;
  call_progress(st.put_done && st.put_rc == CURLE_OK && !pr.failed && !pr.cancelled ? &pr : NULL, r, 1);
  curl_easy_setopt(r->put, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
  curl_easy_setopt(r->get, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
  curl_slist_free_all(ghl);
  curl_slist_free_all(phl);
  if (pr.failed) lua_error(L);                  /* the parked error of progress */
  lua_settop(L, top);
  sent = st.put_started && r->put_pos > 0;
  if (pr.cancelled) return tt_fail(L, "aborted", sent, "the progress callback cancelled the upload");
  if (st.put_done && st.put_rc == CURLE_OK) {
    curl_easy_getinfo(r->put, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->put, CURLINFO_NUM_CONNECTS, &conns);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, status); lua_setfield(L, -2, "status");
    lua_pushlstring(L, r->put_body.p ? r->put_body.p : "", r->put_body.len); lua_setfield(L, -2, "body");
    tt_push_headers(L, r->put_headers.p, r->put_headers.len); lua_setfield(L, -2, "headers");
    lua_pushinteger(L, conns); lua_setfield(L, -2, "connects");
    lua_pushinteger(L, (lua_Integer)(spool ? len : g.got)); lua_setfield(L, -2, "downloaded");
    lua_pushinteger(L, (lua_Integer)r->put_reads); lua_setfield(L, -2, "reads");
    return 1;
  }
  if (!spool && g.bad_kind) {                   /* the download's failure: 5th value "download" */
    int n = tt_fail(L, g.bad_kind, sent, "%s", g.bad);
    lua_pushliteral(L, "download");
    return n + 1;
  }
  if (spool && r->put_read_failed)
    return tt_fail(L, "file", sent, "reading the temporary copy of the video failed");
  if (!spool && r->put_read_failed)
    return tt_fail(L, "network", sent, "the download ended before the chunk was complete");
  {
    const char *kind = st.put_rc == CURLE_OPERATION_TIMEDOUT ? "timeout" :
                       (st.put_rc == CURLE_SSL_CONNECT_ERROR || st.put_rc == CURLE_PEER_FAILED_VERIFICATION ||
                        st.put_rc == CURLE_SSL_CACERT_BADFILE) ? "tls" : "network";
    return tt_fail(L, kind, sent, "the chunk upload failed: %s",
                   r->put_err[0] ? r->put_err : curl_easy_strerror(st.put_rc));
  }
}

static const luaL_Reg relay_methods[] = {
  {"open", l_relay_open}, {"spool", l_relay_spool}, {"put_chunk", l_relay_put},
  {"stats", l_relay_stats}, {"close", l_relay_close}, {"__gc", l_relay_close},
  {"__close", l_relay_close}, {NULL, NULL}};

static const luaL_Reg relay_funcs[] = {
  {"relay", l_relay}, {"relay_address_refused", l_address_refused}, {NULL, NULL}};

void tt_open_relay(lua_State *L);
void tt_open_relay(lua_State *L) {
  if (luaL_newmetatable(L, RELAY_MT)) {
    lua_pushvalue(L, -1); lua_setfield(L, -2, "__index");
    luaL_setfuncs(L, relay_methods, 0);
    lua_pushliteral(L, RELAY_MT); lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, relay_funcs, 0);
}
