/* encode.c: the JSON big-integer guard. Pure. */
#include "tt.h"

size_t tt_json_quote_bigints(const char *in, size_t len, char *out) {
  size_t i = 0, o = 0;
  while (i < len) {
    unsigned char c = (unsigned char)in[i];
    if (c == '"') {                       /* copy a string literal */
      out[o++] = in[i++];
      for (;;) {
        if (i >= len) return (size_t)-1;
        c = (unsigned char)in[i];
        out[o++] = in[i++];
        if (c == '\\') {
          if (i >= len) return (size_t)-1;
          out[o++] = in[i++];
        } else if (c == '"') {
          break;
        }
      }
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t start = i, ndig = 0, j;
      int integer = 1;
      if (c == '-') i++;
      while (i < len) {
        c = (unsigned char)in[i];
        if (c >= '0' && c <= '9') ndig++;
        else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') integer = 0;
        else break;
        i++;
      }
      if (ndig == 0) return (size_t)-1;
      if (integer && ndig > 15) out[o++] = '"';
      for (j = start; j < i; j++) out[o++] = in[j];
      if (integer && ndig > 15) out[o++] = '"';
    } else {
      out[o++] = in[i++];
    }
  }
  return o;
}
