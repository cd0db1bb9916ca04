# Phantom — build, test, demo and benchmark entry points.
#
#   make            build bin/phantom (release: -O3 with link-time optimization)
#   make test       install missing Debian packages, build everything (release +
#                   ASan/UBSan + unit tests + fuzzers), run unit tests, a short
#                   fuzz run, and the integration tests against the sanitizer build
#   make demo       run the demo (demo/run.sh)
#   make bench      run every benchmark (not a test: prints ratios)
#   make fuzz       run each fuzz target for longer (FUZZ_SECONDS, default 300)
#   make valgrind   the release proxy under valgrind memcheck over representative
#                   integration tests (tests/valgrind/run.sh, ~2 min; part of make test)
#   make stress     the long variants: fuzz 2 min per target, the 500-client load
#                   test for 5 min, the fault tests 3 times, valgrind over more
#                   tests (tests/stress/run.sh, ~45 min; not part of make test)
#   make lint       clang-format --dry-run and cppcheck
#
# Sources are discovered by wildcard: every src/**/*.c except src/main.c goes
# into the core library, every tests/unit/test_*.c becomes one cmocka binary,
# every fuzz/fuzz_*.c one libFuzzer binary.

CC      ?= cc
# V=1 prints every command; by default one short line per step.
Q       := $(if $(V),,@)
CLANG   ?= clang
PKGS    := libevent_core libevent_extra libevent_pthreads libevent_openssl libssl libcrypto yaml-0.1 jansson libcurl p11-kit-1 libpq sqlite3
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wvla -Wno-unused-parameter
BASE_CFLAGS := -std=c17 -D_GNU_SOURCE -Isrc $(WARN) $(PKG_CFLAGS) -MMD -MP
# -O3 and LTO: the hot path is many small functions across files (wire readers,
# buffer appends, codecs); inlining them took ~9 % of the instructions per
# encrypted lookup and ~10 % of the proxy's user CPU (bench/encrypted).
CFLAGS  ?= -O3 -g -flto=auto
LDLIBS  := $(PKG_LIBS) -lpg_query -lpthread

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
             -fno-sanitize-recover=all

LIB_SRC  := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
MAIN_SRC := src/main.c
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))

REL_OBJ  := $(LIB_SRC:%.c=build/rel/%.o)
SAN_OBJ  := $(LIB_SRC:%.c=build/san/%.o)
FUZ_OBJ  := $(LIB_SRC:%.c=build/fuzz/%.o)

UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/tests/%)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzzers/%)

FUZZ_SECONDS ?= 300
FUZZ_SHORT   ?= 10

.PHONY: all test unit fuzz-short fuzz integration demo bench lint deps clean sanitize fuzzers
.PHONY: valgrind stress

all: bin/phantom

deps:
	@bash scripts/install-deps.sh

bin/phantom: $(REL_OBJ) build/rel/src/main.o
	@mkdir -p $(@D)
	@echo '  $(if $(findstring fuzz,$@),FUZZ,CC)' $@
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

bin/phantom-asan: $(SAN_OBJ) build/san/src/main.o
	@mkdir -p $(@D)
	@echo '  $(if $(findstring fuzz,$@),FUZZ,CC)' $@
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

build/rel/%.o: %.c
	@mkdir -p $(@D)
	@echo '  $(if $(findstring fuzz,$@),FUZZ,CC)' $@
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -c -o $@ $<

build/san/%.o: %.c
	@mkdir -p $(@D)
	@echo '  $(if $(findstring fuzz,$@),FUZZ,CC)' $@
	$(Q)$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

build/fuzz/%.o: %.c
	@mkdir -p $(@D)
	@echo '  $(if $(findstring fuzz,$@),FUZZ,CC)' $@
	$(Q)$(CLANG) $(BASE_CFLAGS) -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
		-fno-sanitize-recover=all -c -o $@ $<

# Unit tests link the sanitizer objects: every unit test runs under ASan+UBSan.
build/tests/%: tests/unit/%.c $(SAN_OBJ)
	@mkdir -p $(@D)
	@echo '  $(if $(findstring fuzz,$@),FUZZ,CC)' $@
	$(Q)$(CC) $(BASE_CFLAGS) $(SAN_FLAGS) -o $@ $< $(SAN_OBJ) $(LDLIBS) -lcmocka

# Listed only by the pattern rule below, the fuzzer objects would count as
# intermediate files that make deletes after each build (and rebuilds next time).
.SECONDARY: $(FUZ_OBJ)
build/fuzzers/%: fuzz/%.c $(FUZ_OBJ)
	@mkdir -p $(@D)
	@echo '  $(if $(findstring fuzz,$@),FUZZ,CC)' $@
	$(Q)$(CLANG) $(BASE_CFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -o $@ $< $(FUZ_OBJ) $(LDLIBS)

sanitize: bin/phantom-asan
fuzzers: $(FUZZ_BIN)

unit: $(UNIT_BIN)
	@bash tests/run-unit.sh $(UNIT_BIN)

fuzz-short: $(FUZZ_BIN)
	@bash fuzz/run.sh $(FUZZ_SHORT) $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	@bash fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

integration: bin/phantom bin/phantom-asan
	@PHANTOM_BIN=$(CURDIR)/bin/phantom-asan bash tests/integration/run.sh

# valgrind memcheck runs the RELEASE build (ASan and valgrind do not mix).
valgrind: bin/phantom
	@bash tests/valgrind/run.sh

# Not part of `make test`: about 45 minutes (see tests/stress/run.sh).
stress: deps
	@$(MAKE) --no-print-directory all sanitize $(FUZZ_BIN)
	@bash tests/stress/run.sh $(FUZZ_BIN)

# The README's test command. Order: cheapest first, so a broken build fails fast.
test: deps
	@$(MAKE) --no-print-directory all sanitize $(UNIT_BIN) $(FUZZ_BIN)
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory fuzz-short
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory valgrind

demo: deps
	@$(MAKE) --no-print-directory all
	@bash demo/run.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@bash bench/passthrough
	@bash bench/crypto
	@bash bench/encrypted
	@bash bench/migrate
	@bash bench/token

lint:
	clang-format --dry-run --Werror $$(find src tests/unit fuzz -name '*.[ch]')
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr --std=c11 -D_GNU_SOURCE -Isrc --suppress=missingIncludeSystem src

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
