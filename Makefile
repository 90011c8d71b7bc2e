# roam — top-level build. Each subsystem adds its sources and tests in its
# own module.mk fragment, so subsystems never edit this file to add files.
#
#   make            build build/roam
#   make SANITIZE=1 build with ASan + UBSan (into build-san/)
#   make test       install deps, build, run unit + integration tests
#   make demo       install deps, build roam and the guest kit, run the demo
#   make kit        build the guest kit (build/kit/)
#   make deps       install missing Debian packages (root only)
#   make install PREFIX=/usr/local

.DEFAULT_GOAL := all
CC      ?= gcc
PREFIX  ?= /usr/local
SANITIZE ?= 0

ifeq ($(SANITIZE),1)
BUILD   := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   := build
SANFLAGS :=
endif

PKGS := sqlite3 libzstd libcrypto libssh2 libarchive fuse3 ext2fs slirp liblzma zlib liblz4
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
           -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. -pthread $(SANFLAGS) $(PKG_CFLAGS)
LDFLAGS += -pthread $(SANFLAGS)
LDLIBS  += $(PKG_LIBS) -lm

# Filled in by the module.mk fragments:
LIB_SRCS   :=   # everything but cli/ goes into libroam.a
CLI_SRCS   :=   # the roam command
UNIT_TESTS :=   # names; tests/unit/NAME/*.c links against libroam.a
TOOLS      :=   # extra host programs: build/tools/NAME from tools src lists
FUZZERS    :=   # names; tests/fuzz/NAME.c (clang -fsanitize=fuzzer)

include $(sort $(wildcard */module.mk */*/module.mk */*/*/module.mk))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_BINS := $(UNIT_TESTS:%=$(BUILD)/tests/unit/%)

.PHONY: all deps test unit integration demo kit install clean fuzz bench guest-tests
all: $(BUILD)/roam

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libroam.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/roam: $(CLI_OBJS) $(BUILD)/libroam.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJS) $(BUILD)/libroam.a $(LDLIBS)

# Unit tests: one program per module, from every .c under tests/unit/NAME/.
# .SECONDARY: their objects are not deleted as intermediates (no rebuilds).
.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/tests/unit/%: $$(addprefix $(BUILD)/obj/,$$(subst .c,.o,$$(wildcard tests/unit/$$*/*.c))) $(BUILD)/libroam.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(BUILD)/libroam.a $(LDLIBS)

unit-bins: $(UNIT_BINS)

# libFuzzer harnesses: tests/fuzz/NAME.c linked with the library sources it
# names in FUZZ_SRCS_NAME (built with clang, ASan + UBSan).
FUZZ_BINS := $(FUZZERS:%=build/fuzz/%)
fuzz: $(FUZZ_BINS)
build/fuzz/%: tests/fuzz/%.c $$(FUZZ_SRCS_$$*)
	@mkdir -p $(dir $@)
	clang -std=gnu11 -g -O1 -D_GNU_SOURCE -I. $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined \
		-o $@ $< $(FUZZ_SRCS_$*) $(PKG_LIBS) -lm

deps:
	@sh mk/deps.sh

test: deps
	@$(MAKE) --no-print-directory all unit-bins guest-tests kit
	@BUILD=$(BUILD) sh tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory all kit
	@BUILD=$(BUILD) sh mk/demo.sh

install: $(BUILD)/roam
	install -D -m 755 $(BUILD)/roam $(DESTDIR)$(PREFIX)/bin/roam

clean:
	rm -rf build build-san

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(wildcard $(BUILD)/obj/tests/unit/*/*.d)
