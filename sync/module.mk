# sync/: push, pull, clone, serve and bundles (issue 7).
LIB_SRCS += $(wildcard sync/*.c)
UNIT_TESTS += sync
