/* libFuzzer: the big-integer guard stays within its output bound and only
 * ever adds quote characters. */
#include <stdlib.h>
#include <string.h>
#include "../src/tt.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  size_t cap = size + 2 * (size / 16 + 1) + 1, n, i, j;
  char *out = malloc(cap);
  n = tt_json_quote_bigints((const char *)data, size, out);
  if (n != (size_t)-1) {
    if (n > cap || n < size || (n - size) % 2) abort();
    /* dropping the added quotes gives the input back */
    for (i = 0, j = 0; i < n; i++) {
      if (j < size && out[i] == (char)data[j]) { j++; continue; }
      if (out[i] != '"') abort();
    }
    if (j != size) abort();
  }
  free(out);
  return 0;
}
