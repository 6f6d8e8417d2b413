rockspec_format = "3.0"
package = "lua-tiktok-postgres"
version = "0.1.0-1"
source = {
   url = "git+https://github.com/lua-tiktok/lua-tiktok.git",
   tag = "v0.1.0",
}
description = {
   summary = "PostgreSQL store for lua-tiktok (several machines): the libpq binding",
   detailed = [[
tiktok.store.postgres{ conninfo, schema, key }: the store lua-tiktok uses when
several machines share the accounts (one refresh per expiry everywhere, the
rotated refresh token never lost, rate budgets shared, tokens encrypted at
rest). The Lua module ships with lua-tiktok; this rock adds its libpq binding,
tiktok.store.pgcore, so that lua-tiktok itself does not need libpq.
]],
   homepage = "https://github.com/lua-tiktok/lua-tiktok",
   issues_url = "https://github.com/lua-tiktok/lua-tiktok/issues",
   license = "MIT",
   labels = { "tiktok", "postgresql", "libpq" },
}
dependencies = {
   "lua >= 5.1, < 5.5",
   "lua-tiktok = 0.1.0",
}
-- libpq is looked up by its library only: Debian keeps libpq-fe.h under
-- include/postgresql/, where LuaRocks does not look; the Makefile asks
-- pg_config for it (PG_INCDIR overrides).
external_dependencies = {
   PGSQL = { library = "pq" },
}
-- The make backend (not builtin): builtin would copy the whole lua/ folder
-- again, which lua-tiktok already installs (tiktok/store/postgres.lua
-- included). This rock installs one file: tiktok/store/pgcore.so.
build = {
   type = "make",
   build_target = "pg-rock",
   build_variables = {
      CFLAGS = "$(CFLAGS)", LIBFLAG = "$(LIBFLAG)", LUA_INCDIR = "$(LUA_INCDIR)",
      PG_LIBDIR = "$(PGSQL_LIBDIR)",
   },
   install_target = "pg-rock-install",
   install_variables = { INST_LIBDIR = "$(LIBDIR)" },
}
