/* crypto.c: SHA-256 and HMAC-SHA256 over sha256.c (PKCE challenge, webhook
 * signatures), random hex from getrandom(2) (state, PKCE verifier) and a
 * constant-time comparison (state, signatures, session cookies). */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "core.h"
#include "tt.h"

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
static const luaL_Reg crypto_funcs[] = {
  {"sha256_hex", l_sha256_hex}, {"hmac_sha256_hex", l_hmac_sha256_hex},
  {"random_hex", l_random_hex}, {"consteq", l_consteq}, {NULL, NULL}};

void tt_open_crypto(lua_State *L) { luaL_setfuncs(L, crypto_funcs, 0); }
