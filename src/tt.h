/* tt.h: the pure C helpers of tiktok.core. None of them touches Lua or
 * libcurl, so each can be unit-tested and fuzzed on its own. */
#ifndef TIKTOK_TT_H
#define TIKTOK_TT_H

#include <stddef.h>
#include <stdint.h>

/* Media Transfer Guide, conservative reading. */
#define TT_MIN_CHUNK 5242880LL           /* 5 MiB: smallest non-final chunk */
#define TT_MAX_CHUNK 64000000LL          /* 64 MB: largest non-final chunk */
#define TT_MAX_FINAL_CHUNK 128000000LL   /* largest final chunk */
#define TT_MAX_CHUNKS 1000LL
#define TT_MAX_VIDEO 4294967296LL        /* 4 GB (4 GiB, the larger reading) */

/* Chunk plan: fills *chunk_size and *count for a file of `size` bytes with
 * a preferred chunk size (0 = the default, TT_MAX_CHUNK). Returns NULL on
 * success or a static sentence saying why no valid plan exists. */
const char *tt_plan(int64_t size, int64_t preferred, int64_t *chunk_size,
                    int64_t *count);
/* Byte range of chunk `index` (0-based) of a plan. */
void tt_chunk_range(int64_t size, int64_t chunk_size, int64_t count,
                    int64_t index, int64_t *offset, int64_t *length);
/* Checks a plan against the rules; NULL when it is valid. */
const char *tt_plan_check(int64_t size, int64_t chunk_size, int64_t count);

/* "bytes a-b/total" (also "bytes=a-b" and "bytes * /total"). Returns 0 on
 * success with first/last (-1 when absent) and total (-1 when '*'). */
int tt_parse_content_range(const char *s, size_t len, int64_t *first,
                           int64_t *last, int64_t *total);

/* JSON: copies `in` to `out`, wrapping every integer literal with more than
 * 15 digits in double quotes so that a double-based decoder keeps it exact.
 * `out` needs len + 2 * (len / 16 + 1) bytes. Returns output length, or
 * (size_t)-1 when the input is not lexically valid JSON text. */
size_t tt_json_quote_bigints(const char *in, size_t len, char *out);

/* SHA-256 */
typedef struct { uint32_t h[8]; uint64_t n; unsigned char buf[64]; size_t used; } tt_sha256;
void tt_sha256_init(tt_sha256 *c);
void tt_sha256_update(tt_sha256 *c, const void *data, size_t len);
void tt_sha256_final(tt_sha256 *c, unsigned char out[32]);

/* MP4/MOV/WebM header probe over a read function. */
typedef int (*tt_read_fn)(void *ud, int64_t off, void *buf, size_t len);
typedef struct {
  const char *container;     /* "mp4", "mov", "webm" or NULL */
  const char *content_type;  /* "video/mp4", ... */
  int64_t duration_ms;       /* -1 when unknown */
} tt_media;
/* Returns NULL on success or a sentence. Reads at most a bounded number of
 * box headers and one mvhd box. */
const char *tt_probe(tt_read_fn rd, void *ud, int64_t size, tt_media *m);

#endif
