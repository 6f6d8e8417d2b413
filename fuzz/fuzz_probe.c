/* libFuzzer: the MP4/MOV/WebM probe on arbitrary bytes: bounded reads, no
 * out-of-range access, a sane answer. */
#include <stdlib.h>
#include <string.h>
#include "../src/tt.h"

typedef struct { const unsigned char *p; size_t n; int reads; } mem;

static int rd(void *ud, int64_t off, void *buf, size_t len) {
  mem *m = ud;
  m->reads++;
  if (off < 0 || (uint64_t)off > m->n || len > m->n - (size_t)off) return -1;
  memcpy(buf, m->p + off, len);
  return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  mem m = { data, size, 0 };
  tt_media md;
  const char *err = tt_probe(rd, &m, (int64_t)size, &md);
  if (!err && (!md.container || !md.content_type || md.duration_ms < -1)) abort();
  if (m.reads > 4 * 512 + 16) abort();    /* bounded: box headers only */
  return 0;
}
