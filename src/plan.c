/* plan.c: the one chunk planner (Media Transfer Guide, conservative
 * reading) and the Content-Range parser. Pure functions. */
#include "tt.h"

const char *tt_plan_check(int64_t size, int64_t chunk_size, int64_t count) {
  int64_t final;
  if (size <= 0) return "the file is empty";
  if (size > TT_MAX_VIDEO) return "the file is larger than TikTok's 4 GB limit";
  if (chunk_size <= 0 || count < 1 || count > TT_MAX_CHUNKS)
    return "the chunk count must be between 1 and 1000";
  if (count != size / chunk_size)
    return "total_chunk_count must equal floor(video_size / chunk_size)";
  if (count == 1) {
    if (chunk_size != size) return "a single chunk must carry the whole file";
    if (size > TT_MAX_CHUNK) return "files over 64,000,000 bytes must be sent in several chunks";
    return 0;
  }
  if (chunk_size < TT_MIN_CHUNK || chunk_size > TT_MAX_CHUNK)
    return "chunks must be between 5,242,880 and 64,000,000 bytes";
  final = size - (count - 1) * chunk_size;
  if (final > TT_MAX_FINAL_CHUNK) return "the final chunk must be at most 128,000,000 bytes";
  return 0;
}

const char *tt_plan(int64_t size, int64_t preferred, int64_t *chunk_size,
                    int64_t *count) {
  int64_t c, n;
  if (size <= 0) return "the file is empty";
  if (size > TT_MAX_VIDEO) return "the file is larger than TikTok's 4 GB limit";
  if (preferred == 0) preferred = TT_MAX_CHUNK;
  if (preferred < TT_MIN_CHUNK || preferred > TT_MAX_CHUNK)
    return "chunk_size must be between 5,242,880 and 64,000,000 bytes";
  if (size <= TT_MAX_CHUNK && size < 2 * preferred) {
    /* One request carries it all: the fewest requests, and files under
     * 5 MiB must go whole anyway. */
    *chunk_size = size; *count = 1;
    return 0;
  }
  c = preferred;
  n = size / c;
  if (n < 2) {            /* over 64 MB must be several chunks */
    c = size / 2; n = 2;
  }
  if (n > TT_MAX_CHUNKS) {
    c = (size + TT_MAX_CHUNKS - 1) / TT_MAX_CHUNKS;
    n = size / c;
  }
  *chunk_size = c; *count = n;
  return tt_plan_check(size, c, n);
}

void tt_chunk_range(int64_t size, int64_t chunk_size, int64_t count,
                    int64_t index, int64_t *offset, int64_t *length) {
  *offset = index * chunk_size;
  *length = (index == count - 1) ? size - *offset : chunk_size;
}

static int digits(const char **p, const char *end, int64_t *v) {
  const char *s = *p;
  int64_t x = 0;
  if (s >= end || *s < '0' || *s > '9') return -1;
  while (s < end && *s >= '0' && *s <= '9') {
    if (x > (INT64_MAX - 9) / 10) return -1;   /* overflow */
    x = x * 10 + (*s - '0');
    s++;
  }
  *v = x; *p = s;
  return 0;
}

int tt_parse_content_range(const char *s, size_t len, int64_t *first,
                           int64_t *last, int64_t *total) {
  const char *p = s, *end = s + len;
  *first = *last = *total = -1;
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n')) end--;
  if (end - p < 6 || p[0] != 'b' || p[1] != 'y' || p[2] != 't' || p[3] != 'e' || p[4] != 's')
    return -1;
  p += 5;
  if (p < end && (*p == ' ' || *p == '=')) p++; else return -1;
  if (p < end && *p == '*') {
    p++;
  } else {
    if (digits(&p, end, first) || p >= end || *p != '-') return -1;
    p++;
    if (digits(&p, end, last) || *last < *first) return -1;
  }
  if (p == end) return *first >= 0 ? 0 : -1;
  if (*p != '/') return -1;
  p++;
  if (p < end && *p == '*') { p++; }
  else if (digits(&p, end, total)) return -1;
  if (p != end) return -1;
  if (*total >= 0 && *last >= *total) return -1;
  return 0;
}
