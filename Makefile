SHELL := /bin/bash
# lua-tiktok. `make` builds tiktok/core.so for Lua 5.4 and for LuaJIT (5.1
# ABI) under build/; `make test` installs missing Debian packages, builds and
# runs every spec under both interpreters; `make demo` is the README's main job.
PKG_CONFIG   ?= pkg-config
CC           ?= cc
CFLAGS       ?= -O2 -g
WARN         ?= -Wall -Wextra -Wno-unused-parameter
LIBFLAG      ?= -shared
CURL_CFLAGS  ?= $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS    ?= $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)
# libcrypto: AES-256-GCM for tokens encrypted at rest (src/aead.c)
CRYPTO_LIBS  ?= $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null || echo -lcrypto)
LUA54_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
LUAJIT_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
PREFIX       ?= /usr/local
DESTDIR      ?=
SRC          := src/core.c src/session.c src/files.c src/crypto.c src/media.c src/util.c \
                src/plan.c src/encode.c src/sha256.c src/probe.c src/aead.c src/relay.c src/signals.c
HDR          := src/tt.h src/core.h src/compat.h
ALL_CFLAGS    = $(CFLAGS) $(WARN) -fPIC -fvisibility=hidden $(CURL_CFLAGS)

.PHONY: all deps deps-demo deps-cross test test-fast lint asan install clean sandbox demo bench rock-check rock-check-aarch64 fuzz fuzz-build reliability valgrind

# The PostgreSQL store's libpq binding (its own rock, lua-tiktok-postgres)
# is built too when libpq's headers are there (Debian: libpq-dev).
PG_CFLAGS    ?= $(shell $(PKG_CONFIG) --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
PG_LIBS      ?= $(shell $(PKG_CONFIG) --libs libpq 2>/dev/null || echo -lpq)
PG_SRC       := src/pg/pgcore.c
PG_TARGETS   := $(if $(wildcard $(patsubst -I%,%,$(firstword $(PG_CFLAGS)))/libpq-fe.h),build/5.4/tiktok/store/pgcore.so build/5.1/tiktok/store/pgcore.so)

all: build/5.4/tiktok/core.so build/5.1/tiktok/core.so $(PG_TARGETS)

.PHONY: pg
pg: build/5.4/tiktok/store/pgcore.so build/5.1/tiktok/store/pgcore.so

build/5.4/tiktok/store/pgcore.so: $(PG_SRC) src/compat.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(PG_CFLAGS) $(LUA54_CFLAGS) $(LIBFLAG) -o $@ $(PG_SRC) $(PG_LIBS) $(LDFLAGS)

build/5.1/tiktok/store/pgcore.so: $(PG_SRC) src/compat.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(PG_CFLAGS) $(LUAJIT_CFLAGS) $(LIBFLAG) -o $@ $(PG_SRC) $(PG_LIBS) $(LDFLAGS)

# What `luarocks make lua-tiktok-postgres-0.1.0-1.rockspec` runs (LuaRocks
# passes CFLAGS, LIBFLAG, LUA_INCDIR, PG_LIBDIR and INST_LIBDIR).
PG_INCDIR    ?= $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
.PHONY: pg-rock pg-rock-install
pg-rock:
	@mkdir -p build/rock
	$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -I$(LUA_INCDIR) -I$(PG_INCDIR) $(LIBFLAG) -o build/rock/pgcore.so \
	  $(PG_SRC) $(if $(PG_LIBDIR),-L$(PG_LIBDIR)) -lpq

pg-rock-install:
	install -d $(INST_LIBDIR)/tiktok/store
	install -m 0755 build/rock/pgcore.so $(INST_LIBDIR)/tiktok/store/pgcore.so

build/5.4/tiktok/core.so: $(SRC) $(HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LUA54_CFLAGS) $(LIBFLAG) -o $@ $(SRC) $(CURL_LIBS) $(CRYPTO_LIBS) $(LDFLAGS)

build/5.1/tiktok/core.so: $(SRC) $(HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LUAJIT_CFLAGS) $(LIBFLAG) -o $@ $(SRC) $(CURL_LIBS) $(CRYPTO_LIBS) $(LDFLAGS)

# Debian packages: `deps` everything the specs, lint, sanitizers and
# rock-check use; `deps-demo` only what `make demo` runs.
deps:
	@scripts/deps test

deps-demo:
	@scripts/deps demo

deps-cross:
	@scripts/deps cross

test: deps all
	@spec/run

# Without the package check (for a machine that already has everything).
test-fast: all
	@spec/run

lint: deps
	luacheck lua spec bin/tiktok sandbox examples
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr --suppress=toomanyconfigs \
	  -I/usr/include/lua5.4 $(CURL_CFLAGS) src

# The whole suite with the 5.4 build instrumented by ASan + UBSan.
asan: deps
	@mkdir -p build/asan/tiktok
	$(CC) -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
	  $(WARN) -fPIC $(CURL_CFLAGS) $(LUA54_CFLAGS) -shared -o build/asan/tiktok/core.so $(SRC) $(CURL_LIBS) $(CRYPTO_LIBS)
	$(CC) -shared -fPIC -o build/asan/preload.so spec/asan_preload.c
	@TIKTOK_ASAN=1 spec/run asan

# The whole library suite with the LuaJIT build under valgrind memcheck.
valgrind: deps all
	@TIKTOK_VALGRIND=1 spec/run valgrind

# Both builds under PREFIX (the 5.1 one is made with LuaJIT's headers: for
# LuaJIT and OpenResty), every file of lua/ (subdirectories too) and bin/tiktok.
install: all
	install -d $(DESTDIR)$(PREFIX)/lib/lua/5.4/tiktok $(DESTDIR)$(PREFIX)/lib/lua/5.1/tiktok
	install -m 0755 build/5.4/tiktok/core.so $(DESTDIR)$(PREFIX)/lib/lua/5.4/tiktok/core.so
	install -m 0755 build/5.1/tiktok/core.so $(DESTDIR)$(PREFIX)/lib/lua/5.1/tiktok/core.so
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/tiktok $(DESTDIR)$(PREFIX)/bin/tiktok
	for v in 5.4 5.1; do (cd lua && find . -name '*.lua') | while read -r f; do \
	  install -D -m 0644 lua/$$f $(DESTDIR)$(PREFIX)/share/lua/$$v/$$f || exit 1; done || exit 1; done

# Benchmarks side by side with curl; writes BENCHMARKS.md (not part of make test).
bench: deps all
	@bench/run

# Item 7 of make bench alone (pure Lua, no sandbox, about a minute): hostile
# templates and upstream error texts of 1 KB to 1 MB under lua5.4 and luajit;
# BENCHMARKS.md is written again with the other items' saved figures.
.PHONY: bench-hostile
bench-hostile:
	@python3 bench/bench.py --hostile

# Items 8-11 of make bench alone (each with its own sandbox; the figures are
# put into BENCHMARKS.md next to the other items' saved ones): relay of a URL
# vs curl by hand (issue 16, ~5 min), budgets shared by 4 processes (issue
# 14, ~2.5 min), jobs: rate, latency, memory (issue 15, ~4 min), /ping in
# every run and the upload buffer sizes (issue 18, ~8 min).
.PHONY: bench-relay bench-budgets bench-jobs bench-ping
bench-relay: deps all
	@BENCH_ONLY=8 bench/run
bench-budgets: deps all
	@BENCH_ONLY=9 bench/run
bench-jobs: deps all
	@BENCH_ONLY=10 bench/run
bench-ping: deps all
	@BENCH_ONLY=11 bench/run

# The README's main job: the whole journey through bin/tiktok against the
# sandbox. Only the demo's packages and the Lua 5.4 build.
demo: deps-demo build/5.4/tiktok/core.so
	@scripts/demo

sandbox: deps
	@sandbox/run fg --dir $${DIR:-$(CURDIR)/build/sandbox}

clean:
	rm -rf build

# The LuaRocks install with no variables (scripts/rock-check says what it
# proves): luarocks make for 5.4 and 5.1 into fresh trees, require in lua5.4,
# luajit and lua5.1, libcurl under /usr, /usr/local and aarch64 multiarch,
# and luarocks pack + install of the source rock offline.
rock-check: deps
	@scripts/rock-check

# The same for a real aarch64 Debian: arm64 packages unpacked under
# build/aarch64, Debian's aarch64 gcc, the module run by arm64 lua5.4 in qemu.
rock-check-aarch64: deps-cross
	@scripts/rock-check-aarch64

# The long reliability runs whose figures RELIABILITY.md quotes: the fault
# matrix, 1000 SIGKILLs of store writers, 8 processes x 100 operations, and
# 3 machines x 8 processes x 100 operations on one PostgreSQL store.
reliability: deps all
	@mkdir -p build/reliability
	TIKTOK_CRASH_ITERATIONS=1000 TIKTOK_MATRIX_OUT=$(CURDIR)/build/reliability/matrix.json \
	  TIKTOK_SIM_JOBS=300 TIKTOK_SIM_ACCOUNTS=20 TIKTOK_SIM_SECONDS=900 \
	  SPEC_ONLY=spec/reliability spec/run 2>&1 | tee build/reliability/run.log | \
	  grep -E '^(FAULT MATRIX|OUTCOMES|crash safety|concurrency|jobs simulation)|passed, '
	@scripts/reliability-report build/reliability/matrix.json > build/reliability/matrix.md
	TIKTOK_MACHINES=3 TIKTOK_MACHINE_PROCS=8 TIKTOK_MACHINE_OPS=100 SPEC_ONLY=spec/store/machines_spec.lua \
	  spec/run 2>&1 | tee build/reliability/machines.log | grep -E '^(machines|== )|passed, '
	@echo "fault matrix table: build/reliability/matrix.md"

# libFuzzer harnesses (clang) for every C function that reads outside data.
# FUZZ_SECONDS per harness; the corpus grows under build/fuzz/corpus, seeded
# from spec/fuzz-corpus.
FUZZERS      := range json probe plan
FUZZ_SECONDS ?= 30
FUZZ_CFLAGS  ?= -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
fuzz-build: $(foreach f,$(FUZZERS),build/fuzz/fuzz_$(f))
build/fuzz/fuzz_%: fuzz/fuzz_%.c src/plan.c src/encode.c src/probe.c src/sha256.c src/tt.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $< src/plan.c src/encode.c src/probe.c src/sha256.c
fuzz: deps fuzz-build
	@for f in $(FUZZERS); do \
	  mkdir -p build/fuzz/corpus/$$f; \
	  echo "== fuzz_$$f ($(FUZZ_SECONDS) s)"; \
	  build/fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    build/fuzz/corpus/$$f spec/fuzz-corpus/$$f 2>&1 | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==.*ERROR|SUMMARY)' ; \
	  test $${PIPESTATUS[0]:-0} -eq 0 || exit 1; \
	done
