# image/: the store (objects, trees, commits, refs, gc, verify, import/export).
LIB_SRCS += $(wildcard image/*.c)
UNIT_TESTS += image
