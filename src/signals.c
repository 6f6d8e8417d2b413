/* signals.c: a polite stop for long-running workers (tiktok worker).
 *
 * core.catch_signals({"TERM", "INT"}) installs a handler that only records
 * that the signal arrived; core.signalled() returns its name (once) or nil.
 * A worker checks it between jobs and from its upload progress callback,
 * so SIGTERM finishes the chunk in flight or hands the job back instead of
 * killing the process mid-write. The flag is the one process-wide thing
 * here, because a signal is process-wide; a second TERM still kills (the
 * handler restores the default action after the first). */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>

#include "core.h"

static volatile sig_atomic_t caught = 0;

static void on_signal(int sig) {
  caught = sig;
  signal(sig, SIG_DFL);
}

static const struct { const char *name; int sig; } SIGNALS[] = {
  {"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP}, {NULL, 0}};

/* core.catch_signals(names) -> true */
static int l_catch(lua_State *L) {
  int i, n;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = (int)tt_rawlen(L, 1);
  for (i = 1; i <= n; i++) {
    int k, found = 0;
    const char *name;
    lua_rawgeti(L, 1, i);
    name = luaL_checkstring(L, -1);
    for (k = 0; SIGNALS[k].name; k++) {
      if (strcmp(name, SIGNALS[k].name) == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGNALS[k].sig, &sa, NULL);
        found = 1;
      }
    }
    if (!found) return luaL_argerror(L, 1, "signals are \"TERM\", \"INT\" or \"HUP\"");
    lua_pop(L, 1);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.signalled() -> "TERM" | "INT" | "HUP" | nil (and forgets it) */
static int l_signalled(lua_State *L) {
  int k, sig = caught;
  caught = 0;
  for (k = 0; SIGNALS[k].name; k++) {
    if (SIGNALS[k].sig == sig) { lua_pushstring(L, SIGNALS[k].name); return 1; }
  }
  lua_pushnil(L);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"catch_signals", l_catch}, {"signalled", l_signalled}, {NULL, NULL}};

void tt_open_signals(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
