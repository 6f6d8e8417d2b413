/* pgcore.c: tiktok.store.pgcore, the small libpq binding under
 * tiktok.store.postgres (its own rock, lua-tiktok-postgres, so the core rock
 * does not need libpq).
 *
 *   pgcore.connect(conninfo[, application_name]) -> conn | nil, kind, message
 *   conn:exec(sql, p1, p2, ...)  -> rows, affected | nil, kind, message, sqlstate
 *   conn:reset()                 -> true | nil, kind, message
 *   conn:status()                -> "ok" | "bad" | "closed"
 *   conn:backend_pid()           -> integer (0 when not connected)
 *   conn:close()                 (idempotent; also __gc)
 *
 * Only PQexecParams: every value travels as a parameter, never inside SQL
 * text. Parameters are strings, numbers, booleans or nil (NULL). rows is an
 * array of { column = value } tables: bool columns come back as booleans,
 * integer and float columns as numbers, NULL as nil, the rest as strings.
 *
 * kind: "connection" (no connection, or it was lost: the statement may or may
 * not have run unless `dead_before` is said, see exec), "timeout"
 * (statement_timeout), "lock_timeout" (lock_timeout, 55P03), "query"
 * (anything else the server refused; sqlstate tells which).
 *
 * No Lua error crosses libpq: argument checks run before any libpq call,
 * and a PGresult lives in a userdata box whose __gc clears it, so a memory
 * error while building the rows cannot leak it. A connection inherited
 * through fork() is never used nor finished in the child (its socket is
 * the parent's): the child closes its copy of the socket and connects anew. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "../compat.h"

#define PG_API __attribute__((visibility("default")))
#define CONN_MT "tiktok.store.pgcore.conn"
#define RES_MT "tiktok.store.pgcore.result"
#define MAX_PARAMS 64

typedef struct {
  PGconn *conn;
  pid_t pid;        /* the process that opened it */
  int fatal;        /* the server said FATAL/PANIC while we were idle */
} pg_conn;

typedef struct {
  PGresult *res;
} pg_res;

static int fail(lua_State *L, const char *kind, const char *msg, const char *sqlstate) {
  size_t n;
  lua_pushnil(L);
  lua_pushstring(L, kind);
  /* libpq's messages end with a newline and may span lines: keep one line. */
  n = msg ? strlen(msg) : 0;
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) n--;
  if (n == 0) lua_pushliteral(L, "PostgreSQL gave no reason");
  else {
    luaL_Buffer b;
    size_t i;
    luaL_buffinit(L, &b);
    for (i = 0; i < n; i++) luaL_addchar(&b, (msg[i] == '\n' || msg[i] == '\t') ? ' ' : msg[i]);
    luaL_pushresult(&b);
  }
  if (sqlstate) { lua_pushstring(L, sqlstate); return 4; }
  return 3;
}

/* A connection opened by another process (we were forked): forget it
 * without talking on the parent's socket. */
static void drop_inherited(pg_conn *c) {
  if (c->conn && c->pid != getpid()) {
    int fd = PQsocket(c->conn);
    if (fd >= 0) close(fd);
    /* PQfinish would try to send Terminate on the closed descriptor (which
     * fails harmlessly) and frees libpq's memory. */
    PQfinish(c->conn);
    c->conn = NULL;
  }
}

static pg_conn *check_conn(lua_State *L) {
  return (pg_conn *)luaL_checkudata(L, 1, CONN_MT);
}

/* Notices go nowhere (libpq's default prints them on stderr); a FATAL one
 * received while idle (pg_terminate_backend, a server shutting down) marks
 * the connection dead. */
static void on_notice(void *arg, const PGresult *res) {
  pg_conn *c = (pg_conn *)arg;
  const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)) c->fatal = 1;
}

static PGconn *open_conn(const char *conninfo, const char *appname) {
  /* Our defaults come first: anything the conninfo says overrides them. */
  const char *keys[] = { "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                         "keepalives_count", "application_name", "dbname", NULL };
  const char *vals[] = { "10", "1", "30", "10", "3", appname, conninfo, NULL };
  return PQconnectdbParams(keys, vals, 1);
}

static int l_connect(lua_State *L) {
  const char *conninfo = luaL_checkstring(L, 1);
  const char *appname = luaL_optstring(L, 2, "lua-tiktok");
  pg_conn *c = (pg_conn *)lua_newuserdata(L, sizeof *c);
  c->conn = NULL;
  c->pid = getpid();
  c->fatal = 0;
  luaL_getmetatable(L, CONN_MT);
  lua_setmetatable(L, -2);
  c->conn = open_conn(conninfo, appname);
  if (c->conn == NULL) return fail(L, "connection", "out of memory opening a PostgreSQL connection", NULL);
  if (PQstatus(c->conn) != CONNECTION_OK) {
    lua_pushstring(L, PQerrorMessage(c->conn));
    PQfinish(c->conn);
    c->conn = NULL;
    return fail(L, "connection", lua_tostring(L, -1), NULL);
  }
  PQsetNoticeReceiver(c->conn, on_notice, c);
  PQsetClientEncoding(c->conn, "UTF8");
  return 1;
}

/* True when the idle connection is known dead before anything is sent: the
 * server closed it (restart, pg_terminate_backend) and said so. */
static int dead_before_send(pg_conn *c) {
  struct pollfd p;
  int fd = PQsocket(c->conn), i;
  if (c->fatal || PQstatus(c->conn) != CONNECTION_OK || fd < 0) return 1;
  /* Something arriving while idle is a FATAL message and/or EOF. */
  for (i = 0; i < 4; i++) {
    p.fd = fd; p.events = POLLIN; p.revents = 0;
    if (poll(&p, 1, 0) <= 0) break;
    if (!PQconsumeInput(c->conn)) return 1;
    if (c->fatal || PQstatus(c->conn) != CONNECTION_OK) return 1;
  }
  return 0;
}

static void push_value(lua_State *L, PGresult *res, int row, int col) {
  const char *v;
  if (PQgetisnull(res, row, col)) { lua_pushnil(L); return; }
  v = PQgetvalue(res, row, col);
  switch (PQftype(res, col)) {
    case 16: lua_pushboolean(L, v[0] == 't'); return;                 /* bool */
    case 20: case 21: case 23: case 26:                                  /* int8 int2 int4 oid */
#if LUA_VERSION_NUM >= 503
      lua_pushinteger(L, (lua_Integer)strtoll(v, NULL, 10)); return;
#else
      lua_pushnumber(L, (lua_Number)strtod(v, NULL)); return;
#endif
    case 700: case 701: case 1700:                                       /* float4 float8 numeric */
      lua_pushnumber(L, (lua_Number)strtod(v, NULL)); return;
    default:
      lua_pushlstring(L, v, (size_t)PQgetlength(res, row, col));
  }
}

/* conn:exec(sql, ...) -> rows, affected | nil, kind, message[, sqlstate][, dead_before]
 * The fifth value (dead_before = true) says the connection was found dead
 * before the statement was sent: nothing ran, it is safe to reconnect and
 * send it again. */
static int l_exec(lua_State *L) {
  pg_conn *c = check_conn(L);
  const char *sql = luaL_checkstring(L, 2);
  int nparams = lua_gettop(L) - 2, i, rows, cols, r, k;
  const char *values[MAX_PARAMS];
  pg_res *box;
  PGresult *res;
  ExecStatusType st;
  luaL_argcheck(L, nparams <= MAX_PARAMS, MAX_PARAMS + 3, "too many parameters");
  for (i = 0; i < nparams; i++) {
    int idx = i + 3;
    switch (lua_type(L, idx)) {
      case LUA_TNIL: values[i] = NULL; break;
      case LUA_TBOOLEAN: values[i] = lua_toboolean(L, idx) ? "true" : "false"; break;
      case LUA_TNUMBER: case LUA_TSTRING: values[i] = lua_tostring(L, idx); break;
      default: return luaL_argerror(L, idx, "a parameter must be a string, number, boolean or nil");
    }
  }
  /* The box exists before the result does, so raising later cannot leak. */
  box = (pg_res *)lua_newuserdata(L, sizeof *box);
  box->res = NULL;
  luaL_getmetatable(L, RES_MT);
  lua_setmetatable(L, -2);

  drop_inherited(c);
  if (c->conn == NULL) {
    fail(L, "connection", "the PostgreSQL connection is closed", NULL);
    lua_pushnil(L); lua_pushboolean(L, 1);
    return 5;
  }
  if (dead_before_send(c)) {
    fail(L, "connection", "the server had closed the connection (restarted, or the session was terminated)",
         NULL);
    lua_pushnil(L);          /* no sqlstate */
    lua_pushboolean(L, 1);   /* dead before sending */
    return 5;
  }
  res = PQexecParams(c->conn, sql, nparams, NULL, values, NULL, NULL, 0);
  box->res = res;
  if (res == NULL) return fail(L, "connection", PQerrorMessage(c->conn), NULL);
  st = PQresultStatus(res);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    rows = PQntuples(res);
    cols = PQnfields(res);
    lua_createtable(L, rows, 0);
    for (r = 0; r < rows; r++) {
      lua_createtable(L, 0, cols);
      for (k = 0; k < cols; k++) {
        push_value(L, res, r, k);
        lua_setfield(L, -2, PQfname(res, k));
      }
      lua_rawseti(L, -2, r + 1);
    }
    {
      const char *aff = PQcmdTuples(res);
      lua_pushinteger(L, (aff && *aff) ? (lua_Integer)strtoll(aff, NULL, 10) : rows);
    }
    PQclear(res);
    box->res = NULL;
    return 2;
  } else {
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *kind = "query";
    int n;
    if (PQstatus(c->conn) != CONNECTION_OK || c->fatal) kind = "connection";
    else if (state && strcmp(state, "57014") == 0) kind = "timeout";
    else if (state && strcmp(state, "55P03") == 0) kind = "lock_timeout";
    else if (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)) kind = "connection";
    /* Only the primary message: DETAIL may quote the row's values. */
    lua_pushstring(L, primary ? primary : PQerrorMessage(c->conn));
    lua_pushstring(L, state ? state : "");
    PQclear(res);
    box->res = NULL;
    n = fail(L, kind, lua_tostring(L, -2), lua_tostring(L, -1));
    return n;
  }
}

static int l_reset(lua_State *L) {
  pg_conn *c = check_conn(L);
  drop_inherited(c);
  if (c->conn == NULL) return fail(L, "connection", "the PostgreSQL connection is closed", NULL);
  c->fatal = 0;
  PQreset(c->conn);
  if (PQstatus(c->conn) != CONNECTION_OK) return fail(L, "connection", PQerrorMessage(c->conn), NULL);
  PQsetClientEncoding(c->conn, "UTF8");
  lua_pushboolean(L, 1);
  return 1;
}

static int l_status(lua_State *L) {
  pg_conn *c = check_conn(L);
  drop_inherited(c);
  if (c->conn == NULL) lua_pushliteral(L, "closed");
  else if (PQstatus(c->conn) == CONNECTION_OK && !c->fatal) lua_pushliteral(L, "ok");
  else lua_pushliteral(L, "bad");
  return 1;
}

static int l_backend_pid(lua_State *L) {
  pg_conn *c = check_conn(L);
  drop_inherited(c);
  lua_pushinteger(L, c->conn ? PQbackendPID(c->conn) : 0);
  return 1;
}

static int l_ssl(lua_State *L) {
  pg_conn *c = check_conn(L);
  drop_inherited(c);
  lua_pushboolean(L, c->conn != NULL && PQsslInUse(c->conn));
  return 1;
}

static int l_close(lua_State *L) {
  pg_conn *c = check_conn(L);
  drop_inherited(c);
  if (c->conn) { PQfinish(c->conn); c->conn = NULL; }
  return 0;
}

static int l_res_gc(lua_State *L) {
  pg_res *b = (pg_res *)luaL_checkudata(L, 1, RES_MT);
  if (b->res) { PQclear(b->res); b->res = NULL; }
  return 0;
}

static int l_tostring(lua_State *L) {
  pg_conn *c = check_conn(L);
  lua_pushfstring(L, "tiktok.store.pgcore.conn (%s)", c->conn ? "open" : "closed");
  return 1;
}

static const luaL_Reg conn_methods[] = {
  { "exec", l_exec }, { "reset", l_reset }, { "status", l_status }, { "backend_pid", l_backend_pid },
  { "ssl", l_ssl }, { "close", l_close }, { NULL, NULL }
};

PG_API int luaopen_tiktok_store_pgcore(lua_State *L) {
  static const luaL_Reg funcs[] = { { "connect", l_connect }, { NULL, NULL } };
  /* libpq stays loaded when Lua unloads this module at lua_close: it keeps
   * process-wide state (its OpenSSL BIO method) that must not dangle. */
  (void)dlopen("libpq.so.5", RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
  if (luaL_newmetatable(L, CONN_MT)) {
    lua_newtable(L);
    luaL_setfuncs(L, conn_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close); lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_tostring); lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, RES_MT)) {
    lua_pushcfunction(L, l_res_gc); lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_setfuncs(L, funcs, 0);
  lua_pushinteger(L, PQlibVersion()); lua_setfield(L, -2, "libpq_version");
  return 1;
}
