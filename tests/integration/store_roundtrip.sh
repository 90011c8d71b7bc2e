#!/bin/sh
# Store round trips and dedup: import then export is byte-identical (empty,
# tiny, odd sizes, all zeros, random, sparse, a 4 GiB sparse file); the same
# data imported twice, or two disks sharing most data, are stored once; ls,
# show, du and gc report what is there.
. "$ROAM_SRC/tests/integration/lib.sh"

jnum() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }   # jnum KEY < json

check "init" "$ROAM" init
check_fails "init twice" "already a roam store" "$ROAM" init

mk() { # name size: random data
	head -c "$2" /dev/urandom > "$T/$1"
}
mk tiny 1
mk odd 200001
mk rnd 3145728
: > "$T/empty"
head -c 10485760 /dev/zero > "$T/zeros"           # all zeros, not sparse
truncate -s 64M "$T/sparse"                        # holes with data islands
dd if="$T/rnd" of="$T/sparse" bs=1k seek=7 conv=notrunc 2>/dev/null
dd if="$T/odd" of="$T/sparse" bs=1k seek=40000 conv=notrunc 2>/dev/null
truncate -s 4G "$T/big"                            # 4 GiB sparse
dd if="$T/odd" of="$T/big" bs=1 seek=$((4 * 1024 * 1024 * 1024 - 200001)) conv=notrunc 2>/dev/null
dd if="$T/odd" of="$T/big" bs=1k seek=1048576 conv=notrunc 2>/dev/null

for f in empty tiny odd rnd zeros sparse big; do
	if "$ROAM" disk import "$f" "$T/$f" >"$T/.o" 2>&1 &&
	   "$ROAM" disk export "$f" "$T/$f.out" >>"$T/.o" 2>&1 &&
	   cmp "$T/$f" "$T/$f.out" >>"$T/.o" 2>&1; then
		pass "round trip $f"
	else
		fail "round trip $f" "$(tail -n 2 "$T/.o" | tr '\n' ' ')"
	fi
done
# Exports of sparse data are sparse; the 4 GiB disk costs almost nothing.
alloc=$(du -k "$T/big.out" | cut -f1)
[ "$alloc" -lt 4096 ] && pass "export leaves holes" || fail "export leaves holes" "${alloc} KiB allocated"
rm -f "$T/big.out"
"$ROAM" show --json disks/big > "$T/show.json" 2>&1
st=$(jnum stored_size < "$T/show.json")
[ "${st:-99999}" -lt 8192 ] && grep -q '"logical_size":4294967296' "$T/show.json" &&
	pass "4 GiB sparse tree is tiny" || fail "4 GiB sparse tree is tiny" "$(cat "$T/show.json")"
check "export over an existing file" sh -c "head -c 9000000 /dev/urandom > '$T/rnd.out' && '$ROAM' disk export rnd '$T/rnd.out' && cmp '$T/rnd' '$T/rnd.out'"

# Dedup: the same disk again adds nothing; a disk differing in one chunk
# adds about one chunk.
s0=$("$ROAM" du --json | jnum stored_bytes)
"$ROAM" disk import rnd2 "$T/rnd" >/dev/null 2>&1
s1=$("$ROAM" du --json | jnum stored_bytes)
# rnd2 has the same chunks: only the tree is shared too, so nothing is added
[ "$s1" -eq "$s0" ] && pass "dedup: same disk twice stores nothing new" || fail "dedup: same disk twice" "$s0 -> $s1"
cp "$T/rnd" "$T/rnd3"
printf 'roam' | dd of="$T/rnd3" bs=1 seek=100000 conv=notrunc 2>/dev/null
"$ROAM" disk import rnd3 "$T/rnd3" >/dev/null 2>&1
s2=$("$ROAM" du --json | jnum stored_bytes)
grow=$((s2 - s1))
chunk=$("$ROAM" show --json disks/rnd3 | jnum chunk_size)
# one random chunk (stored raw) plus the changed tree node, whatever the chunk size
[ "$grow" -gt "$chunk" ] && [ "$grow" -lt $((chunk + 24576)) ] && pass "dedup: shared chunks stored once" || fail "dedup: shared chunks" "grew by $grow bytes"
"$ROAM" du --json > "$T/du.json"
check "du reports dedup" grep -qE '"dedup_ratio":(1\.[1-9]|[2-9])' "$T/du.json"
check "du human output" sh -c "'$ROAM' du | grep -q '^dedup:'"

# Compressible data is compressed.
yes "roam roam roam roam" | head -c 4194304 > "$T/text"
"$ROAM" disk import text "$T/text" >/dev/null 2>&1
s3=$("$ROAM" du --json | jnum stored_bytes)
[ $((s3 - s2)) -lt 100000 ] && pass "compression" || fail "compression" "4 MiB of text took $((s3 - s2)) bytes"

# ls / show
check "ls lists disks" sh -c "'$ROAM' ls | grep -q '^disks/rnd3 '"
check "ls --json" sh -c "'$ROAM' ls --json | grep -q '\"name\":\"disks/sparse\",\"kind\":\"tree\"'"
h=$("$ROAM" ls --json | sed 's/.*"name":"disks\/tiny","kind":"tree","hash":"\([0-9a-f]*\)".*/\1/')
check "show by hash prefix" sh -c "'$ROAM' show $(echo "$h" | cut -c1-10) | grep -q '^tree $h'"
check_fails "show unknown" "no object or ref named" "$ROAM" show nothing-like-this
check_fails "import over existing needs --force" "already exists.*--force" "$ROAM" disk import rnd "$T/odd"
check "import --force replaces" sh -c "'$ROAM' disk import rnd '$T/odd' --force >/dev/null && '$ROAM' disk export rnd '$T/x' && cmp '$T/odd' '$T/x'"

# gc frees what no ref reaches, and nothing else.
before=$("$ROAM" du --json | jnum stored_bytes)
"$ROAM" disk rm rnd3 && "$ROAM" disk rm rnd2
check "gc keeps shared chunks" sh -c "'$ROAM' gc | grep -q '^freed [1-9]'"
after=$("$ROAM" du --json | jnum stored_bytes)
[ "$after" -lt "$before" ] && pass "gc frees space" || fail "gc frees space" "$before -> $after"
check "after gc: verify" "$ROAM" verify
check "after gc: rnd still exports" sh -c "'$ROAM' disk export sparse '$T/y' && cmp '$T/sparse' '$T/y'"
check_fails "rm unknown disk" "no disk 'rnd3'" "$ROAM" disk rm rnd3
