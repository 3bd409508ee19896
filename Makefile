# buddyfs - peer-to-peer shared folders over RTMFP.
#
#   make            build build/buddyfs, build/buddyfs-rendezvous (and tools)
#   make deps       install missing Debian packages (needs root or sudo)
#   make test       deps, build, run every unit and system test
#   make check      build and run the tests, without the deps step
#   make asan       the same tests built with ASan+UBSan (clang)
#   make fuzz       libFuzzer target per parser, each run FUZZ_SECONDS
#                   (FUZZ_FILTER=word picks targets, FUZZ_BUILD=dir)
#   make bench      build and run the benchmarks in bench/
#   make demo       deps, build, then a rendezvous and two buddies (alice,
#                   bob) on loopback with mounts under demo/; a file crosses
#   make demo-stop  unmount and stop everything the demo started
#   TEST_FILTER=w   run only the tests whose path contains w
#   BUILD=dir       build somewhere else than build/
#   V=1             show the commands
#
# The package flags come from pkg-config at parse time, so targets that
# install packages first re-run make for the rest.

BUILD        ?= build
CC           ?= cc
PKGS         := fuse3 libsodium lmdb
OPT_CFLAGS   ?= -O2 -g
FUZZ_SECONDS ?= 20
TEST_FILTER  ?=

Q := $(if $(filter 1,$(V)),,@)

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CPPFLAGS += -D_GNU_SOURCE -Iinclude
WARNINGS := -std=c11 -Wall -Wextra -Werror -Wpedantic -Wshadow -Wvla
CFLAGS   := $(OPT_CFLAGS) $(WARNINGS) $(PKG_CFLAGS) -MMD -MP $(EXTRA_CFLAGS)
LDLIBS   := $(PKG_LIBS) -lpthread -lm $(EXTRA_LDLIBS)

LIB_SRCS  := $(filter-out src/main_%.c,$(wildcard src/*.c))
LIB_OBJS  := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/libbuddyfs.a

# Program name for each src/main_*.c.
prog_name = $(if $(filter buddyfs,$(1)),buddyfs,$(if $(filter rendezvous,$(1)),buddyfs-rendezvous,$(subst _,-,$(1))))
MAIN_SRCS := $(wildcard src/main_*.c)
PROGS     := $(foreach m,$(MAIN_SRCS:src/main_%.c=%),$(BUILD)/$(call prog_name,$(m)))

TEST_SRCS  := $(wildcard tests/test_*.c)
TEST_BINS  := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
SYS_TESTS  := $(wildcard tests/sys_*.sh)
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
FUZZ_SRCS  := $(wildcard tests/fuzz_*.c)

# pick - the words of $(2) that contain $(1) (all of them when $(1) is empty).
pick = $(if $(1),$(foreach w,$(2),$(if $(findstring $(1),$(w)),$(w))),$(2))

.PHONY: all deps test check asan fuzz bench demo demo-stop clean
.DELETE_ON_ERROR:

all: $(PROGS) $(TEST_BINS) $(BENCH_BINS)

deps:
	$(Q)sh scripts/deps.sh

test: deps
	$(Q)$(MAKE) --no-print-directory check

check: pkgcheck all
	$(Q)BUILD=$(BUILD) sh tests/run.sh $(call pick,$(TEST_FILTER),$(TEST_BINS) $(SYS_TESTS))

.PHONY: pkgcheck
pkgcheck:
	$(Q)pkg-config --exists $(PKGS) || { echo "missing development packages: run 'make deps' (or 'make test', which runs it)" >&2; exit 1; }

$(BUILD)/obj/%.o: src/%.c | pkgcheck
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	$(if $(Q),@echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

define prog_rule
$(BUILD)/$(call prog_name,$(1)): $(BUILD)/obj/main_$(1).o $(LIB)
	$(if $(Q),@echo "  LD      $$@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $$@ $$^ $(LDLIBS)
endef
$(foreach m,$(MAIN_SRCS:src/main_%.c=%),$(eval $(call prog_rule,$(m))))

$(BUILD)/tests/%: tests/%.c $(LIB) tests/t.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) -Itests -DT_NAME='"$*"' $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# ASan+UBSan: the whole suite again, built with clang in its own tree.
asan: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan CC=clang \
		OPT_CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		EXTRA_LDLIBS="-fsanitize=address,undefined" check

# libFuzzer: one binary per tests/fuzz_*.c, linked with the library built
# for fuzzing; each runs FUZZ_SECONDS from its seed corpus in tests/corpus/.
FUZZ_BUILD  ?= build-fuzz
FUZZ_FILTER ?=
fuzz: deps
	$(Q)$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang \
		OPT_CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -DBFS_FUZZING" \
		fuzz-run

.PHONY: fuzz-run
fuzz-run: $(patsubst tests/%.c,$(BUILD)/fuzz/%,$(call pick,$(FUZZ_FILTER),$(FUZZ_SRCS)))
	$(Q)BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz.sh $^

$(BUILD)/fuzz/%: tests/%.c $(LIB)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  FUZZ    $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB) $(LDLIBS)

bench: deps
	$(Q)$(MAKE) --no-print-directory $(PROGS) $(BENCH_BINS)
	$(Q)BUILD=$(BUILD) sh bench/run.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory $(PROGS)
	$(Q)BUILD=$(BUILD) bash scripts/demo.sh

demo-stop:
	$(Q)BUILD=$(BUILD) bash scripts/demo-stop.sh

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJS:.o=.d) $(BUILD)/obj/main_*.d $(TEST_BINS:=.d) $(BENCH_BINS:=.d)
