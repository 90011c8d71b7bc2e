#!/bin/sh
# bench/sync: push of a VM with a 1 GiB disk and 512 MiB memory over a real
# sshd on loopback, against rsync and scp of the equivalent raw files.
#
#   disk: 1 GiB = 400 MiB of files from /usr (binaries, text), 200 MiB of
#         random bytes, the rest zeros (holes)
#   VM:   the counter kernel with --mem 512M, run under BT for 3 s and
#         suspended (memory mostly untouched), so the head commit holds
#         disk0, memory (512 MiB) and state
#   raw equivalents: disk0.raw and memory.raw exported from that commit
#   change: 20 MiB of disk writes: one 20 MiB region of file data (from
#         /usr/share) at a 4 KiB-aligned offset plus 32 scattered 4 KiB
#         random writes, made as a new head commit with bench/sync/mutate.c
#         (through the store's tree builder) and, byte for byte, with dd into
#         disk0.raw; memory and state unchanged
#   compared:
#     full:        roam push (empty far store)  vs  scp of zstd -3 raw files
#                  (and roam push with ROAM_SYNC_WIRE=stored: protocol 1,
#                  objects as stored, to a second far store: the before)
#     incremental: roam push                    vs  rsync -z --inplace of the
#                                                   raw files (far copy holds
#                                                   the old raw files)
# roam's wire codec (protocol 2) picks its level by size (sync/wire.c);
# ROAM_SYNC_WIRE=N forces level N, =stored protocol 1.
# Bytes are what crossed the SSH channel: roam's protocol counter, rsync's
# --stats "Total bytes sent", scp's file sizes.
# Usage: sh bench/sync/run.sh [BUILD]   (root; needs sshd, rsync, zstd)
set -u
BUILD=${1:-build}
ROAM=${ROAM:-$PWD/$BUILD/roam}
ROAM_BUILD=$PWD/$BUILD
ROAM_SRC=$PWD
K=$ROAM_BUILD/guest/counter.elf
T=$(mktemp -d /tmp/roam-bench-sync.XXXXXX)
skip() { echo "SKIP: $1: $2"; }
pass() { :; }
. "$ROAM_SRC/tests/integration/sync_sshd.inc"
now() { date +%s.%N; }
el() { echo "$2 - $1" | bc -l | sed 's/^\./0./;s/\(\.[0-9][0-9]\).*/\1/'; }
PKG=$(pkg-config --libs sqlite3 libzstd libcrypto libssh2 libarchive fuse3 ext2fs slirp liblzma zlib liblz4)
cc -O2 -std=gnu11 -D_GNU_SOURCE -I. -o "$T/mutate" bench/sync/mutate.c "$BUILD/libroam.a" $PKG -lm -pthread ||
	{ echo "cannot build mutate"; exit 1; }
SSH="ssh -i $HOME/.ssh/id_ed25519 -o UserKnownHostsFile=$HOME/.ssh/known_hosts -p $PORT"

echo "== building the 1 GiB disk"
find /usr/lib /usr/bin /usr/share -type f -size +16k 2>/dev/null | head -20000 | xargs cat 2>/dev/null |
	head -c 400M > "$T/disk.img"
head -c 200M /dev/urandom >> "$T/disk.img"
truncate -s 1G "$T/disk.img"
A="$ROAM --store $T/a"
$A init >/dev/null
$A create vm --kernel "$K" --disk "$T/disk.img" --mem 512M >/dev/null || exit 1
rm -f "$T/disk.img"
$A run vm --engine bt </dev/null >"$T/run.log" 2>&1 &
rp=$!
sleep 3
$A suspend vm >/dev/null || { echo "suspend failed"; tail "$T/run.log"; exit 1; }
wait $rp
mkdir -p "$T/raw" "$T/far"
"$T/mutate" export "$T/a" vm "$T/raw" || exit 1
ls -ls "$T/raw"

echo "== full: roam push vs scp of zstd-compressed raw files"
sync   # the exported raw files' writeback would slow whichever push runs first
t0=$(now)
$A --json push "$URLA" vm $RR > "$T/full.json" || exit 1
t1=$(now)
full_roam_t=$(el "$t0" "$t1")
full_roam_b=$(sed -n 's/.*"bytes_sent":\([0-9]*\).*/\1/p' "$T/full.json")
URLS="ssh://root@127.0.0.1:$PORT$T/remote1"
t0=$(now)
ROAM_SYNC_WIRE=stored $A --json push "$URLS" vm $RR > "$T/full1.json" || exit 1
t1=$(now)
full_v1_t=$(el "$t0" "$t1")
full_v1_b=$(sed -n 's/.*"bytes_sent":\([0-9]*\).*/\1/p' "$T/full1.json")
t0=$(now)
zstd -q -3 -T1 -f "$T/raw/disk0.raw" -o "$T/disk0.raw.zst"
zstd -q -3 -T1 -f "$T/raw/memory.raw" -o "$T/memory.raw.zst"
t1=$(now)
scp -q -i "$HOME/.ssh/id_ed25519" -o UserKnownHostsFile="$HOME/.ssh/known_hosts" -P "$PORT" \
	"$T/disk0.raw.zst" "$T/memory.raw.zst" "root@127.0.0.1:$T/far/" || exit 1
t2=$(now)
zstd_t=$(el "$t0" "$t1"); scp_t=$(el "$t1" "$t2")
scp_b=$(( $(stat -c %s "$T/disk0.raw.zst") + $(stat -c %s "$T/memory.raw.zst") ))
rm -f "$T/disk0.raw.zst" "$T/memory.raw.zst" "$T/far/"*.zst
echo "roam push:   $full_roam_b bytes, ${full_roam_t} s"
echo "roam push, protocol 1 (as stored): $full_v1_b bytes, ${full_v1_t} s"
echo "zstd + scp:  $scp_b bytes, ${zstd_t} s compress + ${scp_t} s copy"

echo "== incremental: 20 MiB changed"
cp --sparse=always "$T/raw/disk0.raw" "$T/far/disk0.raw"
cp --sparse=always "$T/raw/memory.raw" "$T/far/memory.raw"
find /usr/share -type f -size +4k 2>/dev/null | tail -5000 | xargs cat 2>/dev/null | head -c 20M > "$T/chg.bin"
args="$((123456 * 4096)):$T/chg.bin"
i=0
while [ $i -lt 32 ]; do
	head -c 4096 /dev/urandom > "$T/s$i.bin"
	args="$args $(( (i * 7919 + 13) * 8 * 4096 % (1 << 30) )):$T/s$i.bin"
	i=$((i + 1))
done
"$T/mutate" write "$T/a" vm $args || exit 1
for a in $args; do
	off=${a%%:*}; f=${a#*:}
	dd if="$f" of="$T/raw/disk0.raw" bs=4096 seek=$((off / 4096)) conv=notrunc,sparse status=none
done
mkdir -p "$T/check" && "$T/mutate" export "$T/a" vm "$T/check" || exit 1
cmp -s "$T/check/disk0.raw" "$T/raw/disk0.raw" && echo "(store and raw disk agree after the change)" ||
	echo "WARNING: store and raw disk differ"
rm -rf "$T/check"
t0=$(now)
$A --json push "$URLA" vm $RR > "$T/inc.json" || exit 1
t1=$(now)
inc_roam_t=$(el "$t0" "$t1")
inc_roam_b=$(sed -n 's/.*"bytes_sent":\([0-9]*\).*/\1/p' "$T/inc.json")
t0=$(now)
ROAM_SYNC_WIRE=stored $A --json push "$URLS" vm $RR > "$T/inc1.json" || exit 1
t1=$(now)
inc_v1_t=$(el "$t0" "$t1")
inc_v1_b=$(sed -n 's/.*"bytes_sent":\([0-9]*\).*/\1/p' "$T/inc1.json")
t0=$(now)
rsync -z --inplace --stats -e "$SSH" "$T/raw/disk0.raw" "$T/raw/memory.raw" "root@127.0.0.1:$T/far/" > "$T/rsync.txt" || exit 1
t1=$(now)
rs_t=$(el "$t0" "$t1")
rs_b=$(sed -n 's/^Total bytes sent: \([0-9,]*\).*/\1/p' "$T/rsync.txt" | tr -d ,)
echo "roam push:   $inc_roam_b bytes, ${inc_roam_t} s  ($(cat "$T/inc.json"))"
echo "roam push, protocol 1 (as stored): $inc_v1_b bytes, ${inc_v1_t} s"
echo "rsync -z:    $rs_b bytes, ${rs_t} s"
echo
echo "== ratios (roam / peer; lower is better)"
echo "incremental bytes  roam/rsync = $(echo "$inc_roam_b / $rs_b" | bc -l | cut -c1-5)   (target <= 0.5; protocol 1: $(echo "$inc_v1_b / $rs_b" | bc -l | cut -c1-5))"
echo "incremental time   roam/rsync = $(echo "$inc_roam_t / $rs_t" | bc -l | cut -c1-5)   (target <= 1.0)"
echo "full bytes         roam/zstd+scp = $(echo "$full_roam_b / $scp_b" | bc -l | cut -c1-5)   (protocol 1: $(echo "$full_v1_b / $scp_b" | bc -l | cut -c1-5))"
echo "full time          roam wire/protocol 1 = $(echo "$full_roam_t / $full_v1_t" | bc -l | cut -c1-5)"
echo "full time          roam/scp = $(echo "$full_roam_t / $scp_t" | bc -l | cut -c1-5), roam/(zstd+scp) = $(echo "$full_roam_t / ($zstd_t + $scp_t)" | bc -l | cut -c1-5)"
$ROAM --store "$T/remote" verify
$ROAM --store "$T/remote1" verify
