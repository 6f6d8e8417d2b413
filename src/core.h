/* core.h: what the Lua-facing files of tiktok.core share.
 *
 * core.c only opens the areas, one file each (as luasystem's core.c does):
 *   session.c  libcurl sessions: request, streaming chunk upload
 *   files.c    file primitives of the store: read, atomic write, stat, lock
 *   crypto.c   SHA-256/HMAC glue, getrandom, constant-time compare
 *   media.c    glue for the pure planner and probe: plan, chunk ranges,
 *              Content-Range, the container probe
 *   util.c     the one failure helper, clocks, the JSON big-integer guard
 *   relay.c    the URL relay engine: a video URL's byte ranges streamed
 *              into chunk PUTs through one curl multi handle
 *   aead.c     AES-256-GCM (libcrypto) for the stores' tokens at rest
 * The pure helpers behind them (plan.c, encode.c, probe.c, sha256.c) are
 * declared in tt.h and touch neither Lua nor libcurl.
 *
 * Every tt_open_* adds its functions to the module table on the stack top
 * and registers the metatables of its types. Everything here is hidden
 * (-fvisibility=hidden): only luaopen_tiktok_core is exported. */
#ifndef TIKTOK_CORE_H
#define TIKTOK_CORE_H

#include <sys/types.h>

#include "compat.h"

#define TT_API __attribute__((visibility("default")))

/* session.c: lowers the calling thread's priority by `by` (0: nothing) for
 * one transfer, and restores it (see session.c for when it cannot). */
typedef struct { int active; pid_t tid; int old; } tt_nice;
void tt_nice_lower(tt_nice *n, int by);
void tt_nice_restore(tt_nice *n);

/* util.c */
double tt_mono(void);              /* CLOCK_MONOTONIC in seconds */
void tt_sleep_ms(long ms);         /* sleeps, resuming after signals */

/* The one way a tiktok.core function reports a runtime failure (in the
 * manner of luv's luv_error). It pushes
 *     nil, kind, message          for everything but transfers
 *     nil, kind, message, sent    for session:request, session:upload and
 *                                 the relay's put_chunk (which adds a fifth
 *                                 value, "download", when the failure is
 *                                 the video URL's rather than the PUT's)
 * and returns how many values it pushed, so `return tt_fail(...)` ends the
 * function. Misuse (wrong argument types, a missing required option)
 * raises instead.
 *
 * kind is a short stable name, the message a sentence for people (fmt and
 * its arguments as lua_pushfstring takes them):
 *   transfers  "timeout", "tls", "network", "aborted" (the progress callback
 *              said stop), "too_big" (an answer over its cap), "invalid" (a
 *              URL or header with a line break: nothing was sent), "file"
 *              (the upload's file could not be opened or read)
 *   files      the errno name ("ENOENT", "EACCES", "ELOOP", "EFBIG", ...;
 *              "EOTHER" for one not in tt_errno_name's list), "busy" (the
 *              lock was held past the timeout), "unsafe" (a folder others
 *              can write to, or owned by someone else)
 *   media      "unsupported_media" (not an MP4, MOV or WebM; probe, relay)
 *   relay      "refused" (a video URL it will not fetch), "http" (the video
 *              URL answered an unusable status)
 *   aead       "crypto" (libcrypto failed), "auth" (wrong key or altered
 *              value), "invalid" (not a sealed value)
 *   parsers    "invalid" (plan, plan_check, parse_content_range,
 *              json_quote_bigints)
 *
 * sent (transfers only) is false only when no byte of the request can have
 * reached the peer: the request was refused before libcurl ran, or libcurl
 * failed before the connection was ready to carry it (name lookup, connect,
 * TLS handshake). Anything else is true, because a request whose bytes left
 * this process may have been acted on even though no answer came back: a
 * caller must then treat an init or a token exchange as possibly done.
 * TT_NO_TRANSFER leaves sent out. */
#define TT_NO_TRANSFER (-1)

/* CURLOPT_UPLOAD_BUFFERSIZE (libcurl 7.62.0 and later) and the bounds of the
 * buffer_size option of session:upload and relay:put_chunk. */
#define TT_HAS_UPLOAD_BUFFERSIZE (LIBCURL_VERSION_NUM >= 0x073e00)
#define TT_MIN_UPLOAD_BUFFER 16384L
#define TT_MAX_UPLOAD_BUFFER 2097152L
/* Option 'buffer_size' of the table at idx: 0 when absent (libcurl's
 * default), raises when out of bounds or unsupported by this libcurl. */
long tt_opt_upload_buffer(lua_State *L, int idx);
int tt_fail(lua_State *L, const char *kind, int sent, const char *fmt, ...);
/* kind = tt_errno_name(e), message "what: strerror(e)" (ELOOP says that the
 * path is a symbolic link). */
int tt_fail_errno(lua_State *L, int e, const char *what);
const char *tt_errno_name(int e);

/* Options from the table at index t (they raise on a wrong type, so call
 * them before allocating anything Lua does not own). tt_opt_int reads a
 * non-negative integer (durations in ms, sizes, nice); def < 0 makes it
 * required: the defaults live in Lua, so C raises instead of inventing
 * one. tt_opt_str returns NULL when absent (the string stays referenced
 * by the table). */
long tt_opt_int(lua_State *L, int t, const char *k, long def);
const char *tt_opt_str(lua_State *L, int t, const char *k, size_t *len);
/* Pushes a table of the HTTP header block p[0..len) (the last response's):
 * lower-case names, surrounding blanks trimmed, the last value wins. */
void tt_push_headers(lua_State *L, const char *p, size_t len);
/* session.c */
int tt_curl_init(void);            /* curl_global_init once; 0 when it failed */

/* The areas. */
void tt_open_session(lua_State *L);
void tt_open_files(lua_State *L);
void tt_open_crypto(lua_State *L);
void tt_open_media(lua_State *L);
void tt_open_util(lua_State *L);
void tt_open_relay(lua_State *L);
void tt_open_aead(lua_State *L);   /* aead.c: AES-256-GCM (libcrypto) */
void tt_open_signals(lua_State *L); /* signals.c: SIGTERM for workers */

#endif
