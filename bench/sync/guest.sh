#!/bin/sh
# bench/sync/guest.sh: the second incremental case of bench/sync, where the
# guest itself makes the change, so its memory (page cache) changes too.
#
#   VM:     the guest kit's Linux under BT, 512 MiB, one 1 GiB ext4 data
#           disk (mounted on /mnt by the kit's init) holding 400 MiB of
#           files from /usr and chg.gz: 20 MiB of text from /usr/share,
#           gzip -6 (3.3 MB)
#   base:   booted, suspended (commit A); pushed to two far stores (wire
#           codec, and protocol 1 = objects as stored); disk0.raw and
#           memory.raw exported from A and copied to the far side for rsync
#   change: resumed, the guest runs `zcat chg.gz > new.txt; sync` (20 MiB
#           of new file data on its disk and in its page cache), suspended
#           (commit B); raw files exported from B
#   compared: roam push (wire codec; protocol 1) vs rsync -z --inplace of
#           the raw disk + memory files, over the same sshd on loopback
# Usage: sh bench/sync/guest.sh [BUILD]   (root; after make and make kit)
set -u
BUILD=${1:-build}
ROAM=${ROAM:-$PWD/$BUILD/roam}
ROAM_BUILD=$PWD/$BUILD
ROAM_SRC=$PWD
KIT=${ROAM_KIT:-$PWD/build/kit}
for f in "$ROAM" "$KIT/vmlinuz" "$KIT/initrd.img"; do
	[ -e "$f" ] || { echo "missing $f (make; make kit)"; exit 1; }
done
T=$(mktemp -d /tmp/roam-bench-syncg.XXXXXX)
skip() { echo "SKIP: $1: $2"; }
pass() { :; }
. "$ROAM_SRC/tests/integration/sync_sshd.inc"
RPID=
trap '[ -n "$RPID" ] && kill -9 $RPID 2>/dev/null; sshd_stop; rm -rf "$T"' EXIT
export ROAM_KIT=$KIT
now() { date +%s.%N; }
el() { echo "$2 - $1" | bc -l | sed 's/^\./0./;s/\(\.[0-9][0-9]\).*/\1/'; }
ratio() { echo "$1 / $2" | bc -l | cut -c1-5; }
sent() { sed -n 's/.*"bytes_sent":\([0-9]*\).*/\1/p' "$1"; }
wait_for() { # FILE PATTERN SECONDS
	k=0
	while ! { [ -f "$1" ] && tr -d '\r' < "$1" | grep -aqE "$2"; }; do
		k=$((k + 1)); [ $k -gt $(($3 * 20)) ] && return 1; sleep 0.05
	done
}
PKG=$(pkg-config --libs sqlite3 libzstd libcrypto libssh2 libarchive fuse3 ext2fs slirp liblzma zlib liblz4)
cc -O2 -std=gnu11 -D_GNU_SOURCE -I. -o "$T/mutate" bench/sync/mutate.c "$BUILD/libroam.a" $PKG -lm -pthread ||
	{ echo "cannot build mutate"; exit 1; }
SSH="ssh -i $HOME/.ssh/id_ed25519 -o UserKnownHostsFile=$HOME/.ssh/known_hosts -p $PORT"
URL1="ssh://root@127.0.0.1:$PORT$T/remote1"

echo "== building the 1 GiB ext4 data disk"
mkdir -p "$T/fs/usr" "$T/raw" "$T/far"
find /usr/lib /usr/bin -type f -size +16k 2>/dev/null | head -20000 | xargs cat 2>/dev/null |
	head -c 400M | split -b 4M - "$T/fs/usr/part."
find /usr/share -type f -size +4k 2>/dev/null | tail -5000 | xargs cat 2>/dev/null | head -c 20M |
	gzip -6 > "$T/fs/chg.gz"
mke2fs -q -t ext4 -d "$T/fs" "$T/data.img" 1G || { echo "mke2fs failed"; exit 1; }
rm -rf "$T/fs"
A="$ROAM --store $T/a"
$A init >/dev/null
$A create vm --mem 512M --disk "$T/data.img" >/dev/null || exit 1
rm -f "$T/data.img"
mkfifo "$T/in"
exec 3<>"$T/in"
run() { $A run vm --engine bt <&3 > "$T/$1.out" 2> "$T/$1.err" & RPID=$!; }
t0=$(now)
run boot
wait_for "$T/boot.out" 'disk mounted' 900 || { echo "the guest did not boot"; tail -5 "$T/boot.err"; exit 1; }
sleep 2
printf '%s\n' 'stty -echo; PS1=; sync; echo UP$((1+1))' >&3
wait_for "$T/boot.out" UP2 120 || { echo "no shell"; exit 1; }
echo "booted in $(el "$t0" "$(now)") s"
$A suspend vm >/dev/null || exit 1
wait $RPID; RPID=
"$T/mutate" export "$T/a" vm "$T/raw" || exit 1
cp --sparse=always "$T/raw/disk0.raw" "$T/raw/memory.raw" "$T/far/"
sync   # the exported raw files' writeback would slow whichever push runs first
t0=$(now); $A --json push "$URLA" vm $RR > "$T/full.json" || exit 1; t1=$(now)
echo "full push (wire codec): $(sent "$T/full.json") bytes, $(el "$t0" "$t1") s"
t0=$(now); ROAM_SYNC_WIRE=stored $A --json push "$URL1" vm $RR > "$T/full1.json" || exit 1; t1=$(now)
echo "full push (protocol 1): $(sent "$T/full1.json") bytes, $(el "$t0" "$t1") s"

echo "== the guest writes 20 MiB (zcat to its ext4 disk)"
t0=$(now)
run change
printf '%s\n' 'zcat /mnt/chg.gz > /mnt/new.txt; sync; echo DONE$((1+2)) $(wc -c < /mnt/new.txt)' >&3
wait_for "$T/change.out" 'DONE3 ' 900 || { echo "the guest did not finish"; tail -5 "$T/change.err"; exit 1; }
echo "guest wrote $(tr -d '\r' < "$T/change.out" | sed -n 's/^DONE3 //p') bytes; $(el "$t0" "$(now)") s with resume"
$A suspend vm >/dev/null || exit 1
wait $RPID; RPID=
"$T/mutate" export "$T/a" vm "$T/raw" || exit 1
sync

echo "== incremental"
t0=$(now); $A --json push "$URLA" vm $RR > "$T/inc.json" || exit 1; t1=$(now)
inc_t=$(el "$t0" "$t1"); inc_b=$(sent "$T/inc.json")
t0=$(now); ROAM_SYNC_WIRE=stored $A --json push "$URL1" vm $RR > "$T/inc1.json" || exit 1; t1=$(now)
inc1_t=$(el "$t0" "$t1"); inc1_b=$(sent "$T/inc1.json")
t0=$(now)
rsync -z --inplace --stats -e "$SSH" "$T/raw/disk0.raw" "$T/raw/memory.raw" "root@127.0.0.1:$T/far/" \
	> "$T/rsync.txt" || exit 1
t1=$(now)
rs_t=$(el "$t0" "$t1")
rs_b=$(sed -n 's/^Total bytes sent: \([0-9,]*\).*/\1/p' "$T/rsync.txt" | tr -d ,)
echo "roam push (wire codec): $inc_b bytes, ${inc_t} s  ($(cat "$T/inc.json"))"
echo "roam push (protocol 1): $inc1_b bytes, ${inc1_t} s"
echo "rsync -z:               $rs_b bytes, ${rs_t} s"
echo
echo "== ratios (roam / rsync; lower is better)"
echo "incremental bytes  wire $(ratio "$inc_b" "$rs_b"), protocol 1 $(ratio "$inc1_b" "$rs_b")   (target <= 0.5)"
echo "incremental time   wire $(ratio "$inc_t" "$rs_t"), protocol 1 $(ratio "$inc1_t" "$rs_t")   (target <= 1.0)"
$ROAM --store "$T/remote" verify && $ROAM --store "$T/remote1" verify
