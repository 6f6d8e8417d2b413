/* libFuzzer: every plan the planner makes passes the checker and its
 * chunks tile the file exactly. */
#include <stdlib.h>
#include <string.h>
#include "../src/tt.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  int64_t s = 0, pref = 0, c, n, i, off, len, end = 0;
  if (size < 16) return 0;
  memcpy(&s, data, 8); memcpy(&pref, data + 8, 8);
  s = s < 0 ? -(s + 1) : s;
  s %= TT_MAX_VIDEO + 2;
  pref = pref < 0 ? -(pref + 1) : pref;
  pref %= TT_MAX_CHUNK + 2;
  if (tt_plan(s, pref, &c, &n)) return 0;
  if (tt_plan_check(s, c, n)) abort();
  for (i = 0; i < n; i++) {
    tt_chunk_range(s, c, n, i, &off, &len);
    if (off != end || len <= 0) abort();
    end = off + len;
  }
  if (end != s) abort();
  return 0;
}
