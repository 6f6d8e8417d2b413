/* aead.c: AES-256-GCM through OpenSSL's libcrypto, for tokens encrypted at
 * rest in the stores (tiktok.store.file{key}, tiktok.store.postgres{key}).
 *
 *   core.aead_seal(key, plaintext, aad) -> base64(nonce | ciphertext | tag)
 *   core.aead_open(key, sealed, aad)    -> plaintext | nil, kind, message
 *
 * key is 32 raw bytes; a fresh 12-byte nonce comes from RAND_bytes for every
 * seal; the tag is 16 bytes. kinds: "invalid" (not base64 of at least
 * nonce + tag), "auth" (wrong key, wrong associated data, or altered),
 * "crypto" (libcrypto failed). Every buffer is a Lua userdata allocated
 * before the cipher context exists, so nothing can raise while it does. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core.h"

#define NONCE 12
#define TAG 16
#define MAX_PLAIN (1 << 20)

static EVP_CIPHER_CTX *ctx_for(const unsigned char *key, const unsigned char *nonce, int enc) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return NULL;
  if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1
      || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) != 1
      || EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

static int l_aead_seal(lua_State *L) {
  size_t klen, plen, alen, blen;
  const unsigned char *key = (const unsigned char *)luaL_checklstring(L, 1, &klen);
  const unsigned char *plain = (const unsigned char *)luaL_checklstring(L, 2, &plen);
  const unsigned char *aad = (const unsigned char *)luaL_optlstring(L, 3, "", &alen);
  unsigned char *raw, *b64;
  EVP_CIPHER_CTX *ctx;
  int n, ok;
  luaL_argcheck(L, klen == 32, 1, "the key must be 32 bytes");
  luaL_argcheck(L, plen <= MAX_PLAIN, 2, "too long to seal");
  raw = (unsigned char *)lua_newuserdata(L, NONCE + plen + TAG);
  blen = 4 * ((NONCE + plen + TAG + 2) / 3) + 1;
  b64 = (unsigned char *)lua_newuserdata(L, blen);
  if (RAND_bytes(raw, NONCE) != 1) return tt_fail(L, "crypto", TT_NO_TRANSFER, "no random nonce from libcrypto");
  ctx = ctx_for(key, raw, 1);
  if (!ctx) return tt_fail(L, "crypto", TT_NO_TRANSFER, "libcrypto could not set up AES-256-GCM");
  ok = (alen == 0 || EVP_CipherUpdate(ctx, NULL, &n, aad, (int)alen) == 1)
       && EVP_CipherUpdate(ctx, raw + NONCE, &n, plain, (int)plen) == 1
       && EVP_CipherFinal_ex(ctx, raw + NONCE + n, &n) == 1
       && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, raw + NONCE + plen) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return tt_fail(L, "crypto", TT_NO_TRANSFER, "libcrypto could not encrypt");
  n = EVP_EncodeBlock(b64, raw, (int)(NONCE + plen + TAG));
  lua_pushlstring(L, (const char *)b64, (size_t)n);
  return 1;
}

static int l_aead_open(lua_State *L) {
  size_t klen, slen, alen, rlen, clen;
  const unsigned char *key = (const unsigned char *)luaL_checklstring(L, 1, &klen);
  const unsigned char *sealed = (const unsigned char *)luaL_checklstring(L, 2, &slen);
  const unsigned char *aad = (const unsigned char *)luaL_optlstring(L, 3, "", &alen);
  unsigned char *raw, *plain;
  EVP_CIPHER_CTX *ctx;
  int n, dec, ok;
  luaL_argcheck(L, klen == 32, 1, "the key must be 32 bytes");
  if (slen % 4 != 0 || slen < 4 * ((NONCE + TAG + 2) / 3) || slen > 4 * ((MAX_PLAIN + NONCE + TAG + 2) / 3))
    return tt_fail(L, "invalid", TT_NO_TRANSFER, "not a sealed value");
  raw = (unsigned char *)lua_newuserdata(L, slen / 4 * 3 + 1);
  dec = EVP_DecodeBlock(raw, sealed, (int)slen);
  if (dec < 0) return tt_fail(L, "invalid", TT_NO_TRANSFER, "not a sealed value (bad base64)");
  rlen = (size_t)dec;
  /* EVP_DecodeBlock counts the padding's zero bytes: take them off. */
  if (slen >= 1 && sealed[slen - 1] == '=') rlen--;
  if (slen >= 2 && sealed[slen - 2] == '=') rlen--;
  if (rlen < NONCE + TAG) return tt_fail(L, "invalid", TT_NO_TRANSFER, "not a sealed value (too short)");
  clen = rlen - NONCE - TAG;
  plain = (unsigned char *)lua_newuserdata(L, clen + 1);
  ctx = ctx_for(key, raw, 0);
  if (!ctx) return tt_fail(L, "crypto", TT_NO_TRANSFER, "libcrypto could not set up AES-256-GCM");
  ok = (alen == 0 || EVP_CipherUpdate(ctx, NULL, &n, aad, (int)alen) == 1)
       && EVP_CipherUpdate(ctx, plain, &n, raw + NONCE, (int)clen) == 1
       && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, raw + NONCE + clen) == 1
       && EVP_CipherFinal_ex(ctx, plain + n, &n) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return tt_fail(L, "auth", TT_NO_TRANSFER, "the value cannot be decrypted with this key");
  lua_pushlstring(L, (const char *)plain, clen);
  return 1;
}

void tt_open_aead(lua_State *L) {
  static const luaL_Reg f[] = { { "aead_seal", l_aead_seal }, { "aead_open", l_aead_open }, { NULL, NULL } };
  luaL_setfuncs(L, f, 0);
}
