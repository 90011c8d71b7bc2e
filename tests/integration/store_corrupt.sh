#!/bin/sh
# Corruption: a byte flipped in a stored chunk (edited in SQLite behind
# roam's back) makes reads of that chunk fail naming it, never return wrong
# data; verify names the object and every ref that reaches it and exits
# non-zero; a flipped byte in a tree node is caught as well.
. "$ROAM_SRC/tests/integration/lib.sh"

command -v sqlite3 >/dev/null || { skip "corruption" "sqlite3 CLI missing"; exit 0; }
"$ROAM" init >/dev/null || { fail "init"; exit 0; }
head -c 1048576 /dev/urandom > "$T/a"
yes "compressible text compressible text" | head -c 1048576 >> "$T/a"
head -c 524288 /dev/urandom > "$T/b"
"$ROAM" disk import one "$T/a" >/dev/null && "$ROAM" disk import two "$T/a" >/dev/null ||
	{ fail "imports"; exit 0; }
check "verify clean store" "$ROAM" verify
DB=$ROAM_STORE/store.db

# Flip byte 100 of one compressed chunk (text, in disks one and two) and of
# one raw chunk (random data).
flip() { # hash-hex
	sqlite3 "$DB" "UPDATE objects SET data = substr(data, 1, 99) ||
		CASE WHEN substr(data, 100, 1) = x'00' THEN x'01' ELSE x'00' END ||
		substr(data, 101) WHERE hex(hash) = upper('$1');"
}
chunk_hash() { # codec: 0 raw (a random-data chunk), 1 zstd (a text chunk)
	sqlite3 "$DB" "SELECT lower(hex(hash)) FROM objects WHERE kind = 1 AND codec = $1 ORDER BY hash LIMIT 1"
}
raw=$(chunk_hash 0)
zst=$(chunk_hash 1)
[ -n "$raw" ] && [ -n "$zst" ] || { fail "find chunks"; exit 0; }
flip "$raw"
flip "$zst"
# A disk sharing nothing with the damaged chunks.
"$ROAM" disk import other "$T/b" >/dev/null || fail "import other"

check_fails "export fails naming the chunk" "$zst|$raw" "$ROAM" disk export one "$T/out"
check_fails "show of the chunk fails naming it" "object $zst is corrupt" "$ROAM" show "$zst"
"$ROAM" verify >"$T/v.out" 2>"$T/v.err"; rc=$?
[ $rc -ne 0 ] && pass "verify exits non-zero" || fail "verify exits non-zero"
check "verify names the compressed chunk" grep -q "bad object $zst" "$T/v.out"
check "verify names the raw chunk" grep -q "bad object $raw" "$T/v.out"
check "verify names disk one" grep -q "reached from ref disks/one" "$T/v.out"
check "verify names disk two" grep -q "reached from ref disks/two" "$T/v.out"
"$ROAM" verify --json > "$T/v.json"
check "verify --json" grep -q "\"ok\":false.*\"hash\":\"$zst\".*\"refs\":\[\"disks/one\",\"disks/two\"\]" "$T/v.json"
check "verify --json lists damaged refs" grep -q '"bad_refs":\["disks/one","disks/two"' "$T/v.json"
# No wrong data ever: every export either fails or is exact.
for d in one two other; do
	if "$ROAM" disk export "$d" "$T/out" 2>/dev/null; then
		src=$T/a; [ "$d" = other ] && src=$T/b
		cmp -s "$src" "$T/out" && pass "export $d is exact" || fail "export $d returned wrong data"
	else
		pass "export $d refused"
	fi
done
# A corrupt tree node: the disk's root.
root=$("$ROAM" ls --json | sed -n 's/.*"name":"disks\/other","kind":"tree","hash":"\([0-9a-f]*\)".*/\1/p')
sqlite3 "$DB" "UPDATE objects SET data = x'00' || substr(data, 2) WHERE hex(hash) = upper('$root')"
check_fails "corrupt tree: export fails naming it" "$root" "$ROAM" disk export other "$T/out"
"$ROAM" verify > "$T/v2.out" 2>&1
check "verify names the tree and disk other" sh -c "grep -q 'bad object $root' '$T/v2.out' && grep -q 'reached from ref disks/other' '$T/v2.out'"
check_fails "gc refuses over a corrupt reachable tree" "cannot be read.*roam verify" "$ROAM" gc
