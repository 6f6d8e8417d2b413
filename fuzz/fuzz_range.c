/* libFuzzer: the Content-Range parser never accepts an inconsistent range. */
#include <stdlib.h>
#include "../src/tt.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  int64_t a, b, t;
  if (tt_parse_content_range((const char *)data, size, &a, &b, &t) == 0) {
    if (a >= 0 && (b < a)) abort();
    if (t >= 0 && b >= t) abort();
    if (a < 0 && b >= 0) abort();
  }
  return 0;
}
