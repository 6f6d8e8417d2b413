/* libFuzzer: percent-encoding round trip and decoding of arbitrary input. */
#include <stdlib.h>
#include <string.h>
#include "../src/tt.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char *enc = malloc(3 * size + 1), *dec = malloc(3 * size + 1);
  int form;
  for (form = 0; form < 2; form++) {
    size_t n = tt_pct_encode((const char *)data, size, enc, form);
    size_t m = tt_pct_decode(enc, n, dec, form);
    if (m != size || memcmp(dec, data, size) != 0) abort();   /* must round-trip */
    m = tt_pct_decode((const char *)data, size, dec, form);    /* arbitrary input */
    if (m != (size_t)-1 && m > size) abort();
  }
  free(enc); free(dec);
  return 0;
}
