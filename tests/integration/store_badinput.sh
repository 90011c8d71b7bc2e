#!/bin/sh
# Bad input gets one clear line and leaves the store valid: not a store, a
# foreign or newer database, missing or unusable input files, bad names and
# options, a full filesystem, and a write lock held too long by another
# process. Concurrent writers wait for each other.
. "$ROAM_SRC/tests/integration/lib.sh"
trap 'umount "$T/small" 2>/dev/null; rm -rf "$T"' EXIT

check_fails "not a store" "is not a roam store.*roam init" "$ROAM" --store "$T/nothing" ls
mkdir -p "$T/foreign"
if command -v sqlite3 >/dev/null; then
	sqlite3 "$T/foreign/store.db" "CREATE TABLE t(x);"
	check_fails "foreign SQLite database" "not a roam store" "$ROAM" --store "$T/foreign" ls
fi
echo "this is not a database, just some words in a file" > "$T/foreign/store.db"
check_fails "garbage database" "not a roam store" "$ROAM" --store "$T/foreign" verify

check "init" "$ROAM" init
if command -v sqlite3 >/dev/null; then
	"$ROAM" init "$T/newer" >/dev/null
	sqlite3 "$T/newer/store.db" "PRAGMA user_version=99;"
	check_fails "store from a newer roam" "newer than this roam.*upgrade" "$ROAM" --store "$T/newer" ls
fi
check_fails "bad chunk size" "power of two" "$ROAM" init "$T/x1" --chunk-size 3000
check_fails "chunk size too large" "power of two" "$ROAM" init "$T/x2" --chunk-size 2M
check_fails "bad level" "level" "$ROAM" init "$T/x3" --level 40
check_fails "missing file" "cannot open $T/missing: No such file" "$ROAM" disk import d "$T/missing"
check_fails "directory as disk" "not a regular file or block device" "$ROAM" disk import d "$T"
echo data > "$T/secret"; chmod 000 "$T/secret"
if [ "$(id -u)" = 0 ]; then
	skip "unreadable file" "running as root: permission bits do not apply"
else
	check_fails "unreadable file" "Permission denied" "$ROAM" disk import d "$T/secret"
fi
check_fails "bad disk name" "not a valid disk name" "$ROAM" disk import ../x "$T/secret"
check_fails "export of a missing disk" "no disk 'nope'" "$ROAM" disk export nope "$T/out"
check_fails "export into a missing directory" "cannot create $T/no/dir/out" \
	sh -c "head -c 1000 /dev/urandom > '$T/k' && '$ROAM' disk import k '$T/k' >/dev/null && '$ROAM' disk export k '$T/no/dir/out'"
check_fails "unknown subcommand" "unknown disk subcommand" "$ROAM" disk frob
check_fails "bad ref for show" "no object or ref named" "$ROAM" show disks/zzz
check "store still valid" "$ROAM" verify

# A full filesystem: the import fails cleanly, the store stays valid.
mkdir -p "$T/small"
if mount -t tmpfs -o size=6m tmpfs "$T/small" 2>/dev/null; then
	S=$T/small/store
	head -c 300000 /dev/urandom > "$T/little"
	head -c 16777216 /dev/urandom > "$T/big"
	"$ROAM" --store "$S" init >/dev/null && "$ROAM" --store "$S" disk import little "$T/little" >/dev/null
	check_fails "import into a full filesystem" "filesystem is full" "$ROAM" --store "$S" disk import big "$T/big"
	check "full: store still verifies" "$ROAM" --store "$S" verify
	check "full: earlier disk still exports" sh -c "'$ROAM' --store '$S' disk export little '$T/l.out' && cmp '$T/little' '$T/l.out'"
	check_fails "full: failed disk has no ref" "no disk 'big'" "$ROAM" --store "$S" disk export big "$T/b.out"
	check "full: gc works" "$ROAM" --store "$S" gc
	check "full: small import after gc" sh -c "head -c 100000 /dev/urandom > '$T/l2' && '$ROAM' --store '$S' disk import l2 '$T/l2'"
	umount "$T/small"
else
	skip "full filesystem" "cannot mount a tmpfs here (not root?)"
fi

# Another process holds the write lock longer than we wait.
if command -v sqlite3 >/dev/null; then
	head -c 200000 /dev/urandom > "$T/w"
	( echo "BEGIN IMMEDIATE;"; sleep 4; echo "COMMIT;" ) | sqlite3 "$ROAM_STORE/store.db" &
	holder=$!
	sleep 0.5
	t0=$(date +%s)
	ROAM_LOCK_TIMEOUT=1 check_fails "lock timeout" "locked by another roam process.*try again" \
		"$ROAM" disk import w "$T/w"
	t1=$(date +%s)
	[ $((t1 - t0)) -le 3 ] && pass "lock timeout is honoured" || fail "lock timeout is honoured" "$((t1 - t0)) s"
	wait "$holder"
	check "after the lock is released" "$ROAM" disk import w "$T/w"
fi
# Two writers at once: the second waits for the first, both succeed.
head -c 8388608 /dev/urandom > "$T/p1"
head -c 8388608 /dev/urandom > "$T/p2"
"$ROAM" disk import p1 "$T/p1" >/dev/null 2>"$T/e1" &
a=$!
"$ROAM" disk import p2 "$T/p2" >/dev/null 2>"$T/e2"
rc2=$?
wait $a; rc1=$?
[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && pass "concurrent writers wait" || fail "concurrent writers wait" "$(cat "$T/e1" "$T/e2")"
check "both concurrent disks export" sh -c "'$ROAM' disk export p1 '$T/o1' && cmp '$T/p1' '$T/o1' && '$ROAM' disk export p2 '$T/o2' && cmp '$T/p2' '$T/o2'"
check "store valid at the end" "$ROAM" verify
