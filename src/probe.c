/* probe.c: bounded container probe. It reads box headers only (at most
 * MAX_BOXES per level) and the mvhd box, never the media data, so a 4 GB
 * file costs a handful of small reads wherever its moov box sits. */
#include <string.h>
#include "tt.h"

#define MAX_BOXES 512

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t be64(const unsigned char *p) {
  return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Reads the box header at off; sets type, header size and total size. */
static int box_at(tt_read_fn rd, void *ud, int64_t off, int64_t end,
                  char type[5], int64_t *hdr, int64_t *bsize) {
  unsigned char h[16];
  uint64_t sz;
  if (end - off < 8 || rd(ud, off, h, 8)) return -1;
  memcpy(type, h + 4, 4); type[4] = 0;
  sz = be32(h); *hdr = 8;
  if (sz == 1) {
    if (end - off < 16 || rd(ud, off + 8, h + 8, 8)) return -1;
    sz = be64(h + 8); *hdr = 16;
  } else if (sz == 0) {
    sz = (uint64_t)(end - off);
  }
  if (sz < (uint64_t)*hdr || sz > (uint64_t)(end - off)) return -1;
  *bsize = (int64_t)sz;
  return 0;
}

static int printable(const char t[4]) {
  int i;
  for (i = 0; i < 4; i++) if ((unsigned char)t[i] < 32 || (unsigned char)t[i] > 126) return 0;
  return 1;
}

static const char *mvhd(tt_read_fn rd, void *ud, int64_t off, int64_t len, tt_media *m) {
  unsigned char b[32];
  uint64_t timescale, duration;
  if (len < 20 || rd(ud, off, b, 1)) return "the MP4 mvhd box is truncated";
  if (b[0] == 1) {
    if (len < 32 || rd(ud, off, b, 32)) return "the MP4 mvhd box is truncated";
    timescale = be32(b + 20); duration = be64(b + 24);
  } else {
    if (rd(ud, off, b, 20)) return "the MP4 mvhd box is truncated";
    timescale = be32(b + 12); duration = be32(b + 16);
  }
  if (timescale == 0) return "the MP4 mvhd box has a zero timescale";
  if (duration == UINT64_MAX || duration == 0xffffffffu) { m->duration_ms = -1; return 0; }
  if (duration > (uint64_t)INT64_MAX / 1000) return "the MP4 duration is out of range";
  m->duration_ms = (int64_t)(duration * 1000 / timescale);
  return 0;
}

const char *tt_probe(tt_read_fn rd, void *ud, int64_t size, tt_media *m) {
  unsigned char h[12];
  char type[5];
  int64_t off = 0, hdr, bsize;
  int n, seen_ftyp = 0;
  m->container = NULL; m->content_type = NULL; m->duration_ms = -1;
  if (size < 12 || rd(ud, 0, h, 12)) return "the file is too small to be a video";
  if (h[0] == 0x1A && h[1] == 0x45 && h[2] == 0xDF && h[3] == 0xA3) {
    m->container = "webm"; m->content_type = "video/webm";
    return 0;   /* duration of WebM is not probed */
  }
  for (n = 0; n < MAX_BOXES && off < size; n++) {
    if (box_at(rd, ud, off, size, type, &hdr, &bsize) || !printable(type))
      break;
    if (n == 0) {
      if (strcmp(type, "ftyp") == 0) {
        unsigned char brand[4];
        if (bsize < hdr + 4 || rd(ud, off + hdr, brand, 4)) return "the MP4 ftyp box is truncated";
        seen_ftyp = 1;
        if (memcmp(brand, "qt  ", 4) == 0) { m->container = "mov"; m->content_type = "video/quicktime"; }
        else { m->container = "mp4"; m->content_type = "video/mp4"; }
      } else if (strcmp(type, "moov") == 0 || strcmp(type, "wide") == 0 ||
                 strcmp(type, "mdat") == 0 || strcmp(type, "free") == 0) {
        m->container = "mov"; m->content_type = "video/quicktime";  /* old QuickTime, no ftyp */
      } else {
        break;
      }
    }
    if (strcmp(type, "moov") == 0) {
      int64_t coff = off + hdr, cend = off + bsize, chdr, csize;
      int k;
      for (k = 0; k < MAX_BOXES && coff < cend; k++) {
        if (box_at(rd, ud, coff, cend, type, &chdr, &csize)) return "the MP4 moov box is malformed";
        if (strcmp(type, "mvhd") == 0) return mvhd(rd, ud, coff + chdr, csize - chdr, m);
        coff += csize;
      }
      return "the MP4 moov box has no mvhd box";
    }
    off += bsize;
  }
  if (m->container == NULL)
    return "the file is not an MP4, MOV or WebM video";
  (void)seen_ftyp;
  return 0;   /* container known, no moov found: duration unknown */
}
