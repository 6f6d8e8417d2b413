/* encode.c: percent-encoding and the JSON big-integer guard. Pure. */
#include "tt.h"

static const char HEX[] = "0123456789ABCDEF";

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

size_t tt_pct_encode(const char *in, size_t len, char *out, int form) {
  size_t i, o = 0;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (unreserved(c)) out[o++] = (char)c;
    else if (form && c == ' ') out[o++] = '+';
    else { out[o++] = '%'; out[o++] = HEX[c >> 4]; out[o++] = HEX[c & 15]; }
  }
  return o;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

size_t tt_pct_decode(const char *in, size_t len, char *out, int form) {
  size_t i, o = 0;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == '%') {
      int h, l;
      if (i + 2 >= len) return (size_t)-1;
      h = hexval((unsigned char)in[i + 1]); l = hexval((unsigned char)in[i + 2]);
      if (h < 0 || l < 0) return (size_t)-1;
      out[o++] = (char)(h * 16 + l);
      i += 2;
    } else if (form && c == '+') {
      out[o++] = ' ';
    } else {
      out[o++] = (char)c;
    }
  }
  return o;
}

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
