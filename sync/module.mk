# sync/: push, pull, clone, serve and bundles (issue 7).
LIB_SRCS += $(wildcard sync/*.c)
UNIT_TESTS += sync
FUZZERS += sync_frame_fuzz
FUZZ_SRCS_sync_frame_fuzz := sync/frame.c sync/objs.c sync/wire.c image/commit.c image/object.c image/store.c image/refs.c image/tree.c image/tree_read.c image/hashset.c image/import.c image/export.c image/gc.c image/verify.c
