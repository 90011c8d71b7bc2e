#!/bin/sh
# bench/browse: from a cold start, read /etc/hostname and list a 1,000-file
# directory inside a VM's disk in the store.
#   roam cat + roam ls        (no mount)
#   roam mount + cat + ls     (FUSE)
#   peer: roam disk export of the raw disk, then fuse2fs mount + cat + ls
#   peer: guestmount on the exported disk, when libguestfs-tools works here
# Caches are dropped before each run (root). Prints medians of 5 runs and the
# ratio of roam cat to the best peer (target: < 100 ms and <= 0.1x).
set -eu
ROAM=${ROAM:-$(cd "$(dirname "$0")/../.." && pwd)/build/roam}
RUNS=${RUNS:-5}
W=$(mktemp -d /tmp/roam-bench-browse.XXXXXX)
trap 'fusermount3 -u -q "$W/m" 2>/dev/null; rm -rf "$W"' EXIT
cd "$W"

if ! command -v fuse2fs >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse2fs >/dev/null 2>&1 || true
fi

# A 1 GiB disk: system-like files, a 1,000-file directory, and bulk data.
mkdir -p src/etc src/var/many src/usr
echo roam-guest > src/etc/hostname
i=0; while [ $i -lt 1000 ]; do echo "file $i" > src/var/many/f$i; i=$((i+1)); done
cp -r /usr/bin src/usr/bin 2>/dev/null || true
head -c 200M /dev/urandom > src/var/blob
mke2fs -q -t ext4 -d src disk.img 1G
export ROAM_STORE="$W/store"
"$ROAM" init >/dev/null
"$ROAM" disk import vmdisk disk.img >/dev/null

cold() { sync; [ "$(id -u)" = 0 ] && echo 3 > /proc/sys/vm/drop_caches || true; }
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { awk -v n="$1" 'BEGIN {printf "%.1f", n / 1e6}'; }

run_cat_only() {
	"$ROAM" cat vmdisk:/etc/hostname >/dev/null
}
run_cat() {
	"$ROAM" cat vmdisk:/etc/hostname >/dev/null && "$ROAM" ls vmdisk:/var/many | wc -l | grep -q 1000
}
run_mount() {
	mkdir -p m && "$ROAM" mount m && cat m/disks/vmdisk/files/etc/hostname >/dev/null &&
	ls m/disks/vmdisk/files/var/many | wc -l | grep -q 1000 && "$ROAM" umount m
}
run_fuse2fs() {
	"$ROAM" disk export vmdisk raw.img >/dev/null && mkdir -p m && fuse2fs -o ro raw.img m >/dev/null 2>&1 &&
	cat m/etc/hostname >/dev/null && ls m/var/many | wc -l | grep -q 1000 && fusermount3 -u m && rm -f raw.img
}
run_guestmount() {
	"$ROAM" disk export vmdisk raw.img >/dev/null && mkdir -p m &&
	timeout 120 guestmount -a raw.img -m /dev/sda --ro m >/dev/null 2>&1 &&
	cat m/etc/hostname >/dev/null && ls m/var/many | wc -l | grep -q 1000 && guestunmount m && rm -f raw.img
}

time_it() { # name fn
	t=""
	for r in $(seq 1 "$RUNS"); do
		cold
		s=$(now)
		if ! $2; then echo "$1: failed"; return 1; fi
		t="$t $(( $(now) - s ))"
	done
	echo $t | tr ' ' '\n' | median
}

only_ns=$(time_it "roam cat" run_cat_only)
cat_ns=$(time_it "roam cat+ls" run_cat)
mount_ns=$(time_it "roam mount" run_mount)
printf '%-28s %10s ms\n' "roam cat /etc/hostname" "$(ms "$only_ns")" "roam cat + ls" "$(ms "$cat_ns")" \
	"roam mount + cat + ls" "$(ms "$mount_ns")"
best=""
if command -v fuse2fs >/dev/null 2>&1; then
	f_ns=$(time_it fuse2fs run_fuse2fs)
	printf '%-28s %10s ms\n' "export + fuse2fs" "$(ms "$f_ns")"
	best=$f_ns
else
	echo "export + fuse2fs: skipped (fuse2fs not installable)"
fi
if command -v guestmount >/dev/null 2>&1 && g_ns=$(RUNS=1 time_it guestmount run_guestmount); then
	printf '%-28s %10s ms\n' "export + guestmount" "$(ms "$g_ns")"
	[ -z "$best" ] || [ "$g_ns" -lt "$best" ] && best=$g_ns
else
	echo "export + guestmount: skipped (libguestfs-tools not installed or its appliance does not start here)"
fi
if [ -n "$best" ]; then
	awk -v a="$cat_ns" -v m="$mount_ns" -v b="$best" 'BEGIN {
		printf "ratio roam cat+ls / best peer:   %.3fx (target <= 0.1x)\n", a / b
		printf "ratio roam mount / best peer: %.3fx\n", m / b }'
fi
