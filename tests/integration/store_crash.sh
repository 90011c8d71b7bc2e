#!/bin/sh
# Crash safety: kill -9 the importer at random moments (20 trials); after
# each, verify passes and no ref names a missing object; a re-run completes.
# gc running while another process imports (including an import that reuses
# chunks only garbage still holds) loses nothing reachable.
. "$ROAM_SRC/tests/integration/lib.sh"

"$ROAM" init --chunk-size 16K >/dev/null || { fail "init"; exit 0; }
# 20 MiB: random (stored raw), text (compressed), zeros
head -c 8388608 /dev/urandom > "$T/img"
yes "a line of text that compresses well, with a counter-ish tail" | head -c 8388608 >> "$T/img"
head -c 4194304 /dev/zero >> "$T/img"
head -c 12582912 /dev/urandom > "$T/other"

rand_ms() { od -An -N2 -tu2 /dev/urandom | tr -d ' '; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

mkimg() { # fresh content each time, so every import has real work to do
	head -c 6291456 /dev/urandom > "$1"
	yes "trial $2: a line of text that compresses well" | head -c 8388608 >> "$1"
	head -c 2097152 /dev/zero >> "$1"
}
# How long an import takes here: kills land anywhere inside that window.
mkimg "$T/t" 0
t0=$(now_ms)
"$ROAM" disk import probe "$T/t" >/dev/null 2>&1
span=$(( $(now_ms) - t0 ))
[ "$span" -lt 50 ] && span=50
"$ROAM" disk rm probe
"$ROAM" gc >/dev/null 2>&1

bad=0 killed=0 incomplete=0
i=0
while [ $i -lt 20 ]; do
	i=$((i + 1))
	mkimg "$T/t" $i
	"$ROAM" disk import "t$i" "$T/t" >/dev/null 2>&1 &
	pid=$!
	ms=$(( $(rand_ms) % span ))
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	# Adapt the window so that most kills land inside a running import.
	if kill -9 "$pid" 2>/dev/null; then
		killed=$((killed + 1)); span=$((span * 5 / 4 + 1))
	else
		span=$((span * 2 / 3 + 1))
	fi
	wait "$pid" 2>/dev/null
	if ! "$ROAM" verify >"$T/v.out" 2>&1; then
		bad=$((bad + 1))
		fail "verify after kill -9 #$i at ${ms} ms" "$(head -n 3 "$T/v.out" | tr '\n' ' ')"
	fi
	# A ref, if the import got that far, names the whole disk.
	if "$ROAM" ls --json | grep -q "\"disks/t$i\""; then
		"$ROAM" disk export "t$i" "$T/out" && cmp -s "$T/t" "$T/out" || incomplete=$((incomplete + 1))
		"$ROAM" disk rm "t$i"
	fi
	[ $((i % 3)) -eq 0 ] && "$ROAM" gc >/dev/null 2>&1
done
[ "$bad" -eq 0 ] && pass "verify after 20 kill -9 of the importer ($killed killed mid-run)"
[ "$killed" -ge 10 ] && pass "most kills hit a running import" || fail "most kills hit a running import" "only $killed of 20"
[ "$incomplete" -eq 0 ] && pass "refs left by killed imports are complete" || fail "refs left by killed imports are complete" "$incomplete bad"
check "re-run completes" "$ROAM" disk import d0 "$T/t"
check "re-run exports" sh -c "'$ROAM' disk export d0 '$T/out' && cmp '$T/t' '$T/out'"
"$ROAM" disk rm d0
check "gc after crashes" "$ROAM" gc
check "verify after gc" "$ROAM" verify

# gc while another process imports.
"$ROAM" disk import keep "$T/other" >/dev/null 2>&1
for round in 1 2; do
	# Make the import's chunks garbage first, so it reuses chunks that only
	# gc's sweep stands between (the dangerous case), then import afresh.
	"$ROAM" disk import g "$T/img" --force >/dev/null 2>&1
	"$ROAM" disk rm g
	"$ROAM" disk import "b$round" "$T/img" >"$T/imp.out" 2>&1 &
	pid=$!
	gcs=0
	while kill -0 "$pid" 2>/dev/null; do
		"$ROAM" gc >/dev/null 2>&1 && gcs=$((gcs + 1))
	done
	wait "$pid"; rc=$?
	if [ $rc -eq 0 ] && "$ROAM" disk export "b$round" "$T/out" 2>"$T/e" && cmp -s "$T/img" "$T/out"; then
		pass "gc x$gcs during import #$round loses nothing"
	else
		fail "gc during import #$round" "rc=$rc $(cat "$T/imp.out" "$T/e" | tr '\n' ' ')"
	fi
	"$ROAM" disk rm "b$round"
done
check "verify after concurrent gc" "$ROAM" verify
check "kept disk intact" sh -c "'$ROAM' disk export keep '$T/out' && cmp '$T/other' '$T/out'"
"$ROAM" gc >/dev/null 2>&1
left=$("$ROAM" du --json | sed -n 's/.*"blobs":\([0-9]*\).*/\1/p')
# only "keep" remains: 12 MiB of 16 KiB chunks
[ "$left" -eq 768 ] && pass "gc leaves exactly the reachable chunks" || fail "gc leaves exactly the reachable chunks" "$left blobs"
