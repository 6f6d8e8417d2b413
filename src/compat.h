/* compat.h: every Lua-version difference lives here and nowhere else. */
#ifndef TIKTOK_COMPAT_H
#define TIKTOK_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
/* Lua 5.1 headers (PUC) lack these; LuaJIT 2.1 already defines them. */
# if !defined(LUAJIT_VERSION) && !defined(luaL_newlib)
#  define luaL_newlib(L, l) (lua_newtable(L), luaL_register(L, NULL, l))
static void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
static void *luaL_testudata(lua_State *L, int ud, const char *tname) {
  void *p = lua_touserdata(L, ud);
  if (p != NULL && lua_getmetatable(L, ud)) {
    luaL_getmetatable(L, tname);
    if (!lua_rawequal(L, -1, -2)) p = NULL;
    lua_pop(L, 2);
    return p;
  }
  return NULL;
}
# endif
# define tt_rawlen(L, i) lua_objlen(L, (i))
#else
# define tt_rawlen(L, i) lua_rawlen(L, (i))
#endif

#endif
