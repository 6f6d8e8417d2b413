/* LD_PRELOADed under `make asan` only. lua_close dlcloses every C module
 * before LeakSanitizer runs, which turns memory that libcurl and OpenSSL keep
 * in their globals for the life of the process (curl_global_init) into
 * "leaks" from an unknown module. Keeping modules mapped leaves only real
 * leaks, with the module and function named in the report. */
int dlclose(void *handle) { (void)handle; return 0; }
