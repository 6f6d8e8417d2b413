/* LD_PRELOADed (after libasan and libubsan) under `make asan` only.
 *
 * 1. lua_close dlcloses every C module before LeakSanitizer runs, which
 *    turns memory that libcurl and OpenSSL keep in their globals for the
 *    life of the process (curl_global_init) into "leaks" from an unknown
 *    module. Keeping modules mapped leaves only real leaks, with the module
 *    and function named in the report.
 * 2. The specs start other programs (sandbox/run, nginx, curl, sed); they
 *    must not inherit the sanitizer runtime, so the variable is removed
 *    once this process has loaded it. */
#include <stdlib.h>

int dlclose(void *handle) { (void)handle; return 0; }

__attribute__((constructor)) static void drop_preload(void) {
  unsetenv("LD_PRELOAD");
}
