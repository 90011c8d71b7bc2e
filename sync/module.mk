# sync/: push, pull, clone, serve and bundles (issue 7).
LIB_SRCS += $(wildcard sync/*.c)
UNIT_TESTS += sync
FUZZERS += sync_frame_fuzz
FUZZ_SRCS_sync_frame_fuzz := sync/frame.c sync/objs.c sync/wire.c $(wildcard image/*.c)
FUZZERS += bundle_fuzz
FUZZ_SRCS_bundle_fuzz := sync/bundle.c sync/objs.c sync/frame.c checkpoint/vmcreate.c \
	checkpoint/vmconfig.c $(wildcard image/*.c)
