#!/bin/sh
# bench/store: roam's store against its peers on one realistic 1 GiB raw disk
# image (an ext4 filesystem holding several copies of system files and
# busybox, a file of random data, and free space = zeros).
#   import speed:   roam disk import   vs  zstd -1 -T2, qemu-img convert -c -O qcow2
#   stored bytes:   roam (du stored)   vs  zstd -3 -T2, compressed qcow2
#   export speed:   roam disk export   vs  cat of the raw file into a file
# All inputs are read from the page cache (the image is read once before
# timing), as are the peers'. Times are the best of 3 runs (zstd -1, roam
# import/export, cat) since the machines are shared; roam's export and the
# cat baseline both fsync their output, roam's import makes it durable. Usage: sh bench/store/run.sh  (ROAM=path/to/roam;
# BENCH_IMG=path keeps the generated image there and reuses it next time)
set -eu
ROAM=${ROAM:-$PWD/build/roam}
W=$(mktemp -d /tmp/roam-bench-store.XXXXXX)
trap 'rm -rf "$W"' EXIT
export ROAM_STORE=$W/store

now() { date +%s.%N; }
min() { echo "if ($1 < $2) $1 else $2" | bc -l; }   # this machine is shared: best of runs
# CPU seconds (user + sys) of a command, into $W/cpu; the load of other
# users of the machine does not change them as much as wall time.
cpu() {
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f '%U %S' -o "$W/cpu.t" "$@" && awk '{ print $1 + $2 }' "$W/cpu.t" > "$W/cpu"
	else
		"$@" && echo 0 > "$W/cpu"   # GNU time (package "time") not installed
	fi
}
secs() { echo "$2 - $1" | bc -l; }
mb_s() { echo "scale=1; $1 / 1048576 / $2" | bc -l; }
fsize() { stat -c %s "$1"; }

IMG=${BENCH_IMG:-}
if [ -n "$IMG" ] && [ -f "$IMG" ]; then
	echo "using the test image $IMG"
else
IMG=${BENCH_IMG:-$W/disk.img}
echo "building the test image $IMG ..."
mkdir -p "$W/root"
i=0
for src in /usr/lib/x86_64-linux-gnu /usr/share/doc /usr/share/perl /usr/lib/python3; do
	[ -d "$src" ] || continue
	i=$((i + 1))
	mkdir -p "$W/root/c$i"
	# about 110 MiB of files from each tree
	(cd "$src" && find . -type f -size -8M -printf '%s %p\n' 2>/dev/null |
		awk '{ t += $1; if (t > 110 * 1048576) exit; sub(/^[0-9]+ /, ""); print }' |
		tar cf - -T - 2>/dev/null) | (cd "$W/root/c$i" && tar xf -)
done
mkdir -p "$W/root/bin"
for k in 1 2 3; do
	cp /bin/busybox "$W/root/bin/busybox$k"
	# the copies the issue asks for: system files repeated, as on real disks
	[ -d "$W/root/c1" ] && cp -r "$W/root/c1" "$W/root/copy$k"
done
head -c $((96 << 20)) /dev/urandom > "$W/root/random.bin"
truncate -s 1G "$W/sparse.img"
mke2fs -q -t ext4 -d "$W/root" "$W/sparse.img"
# A raw image as a disk holds it: fully allocated (zeros written out).
cp --sparse=never "$W/sparse.img" "$IMG"
rm -rf "$W/root" "$W/sparse.img"
fi
SIZE=$(fsize "$IMG")
cat "$IMG" > /dev/null
echo "image: $((SIZE >> 20)) MiB, $(($(du -k "$IMG" | cut -f1) >> 10)) MiB allocated"

zstd1_t=999
for run in 1 2 3; do
	t0=$(now); cpu zstd -q -1 -T2 -f "$IMG" -o "$W/z1.zst"; t1=$(now)
	zstd1_cpu=$(cat "$W/cpu")
	zstd1_t=$(min "$zstd1_t" "$(secs "$t0" "$t1")"); zstd1_b=$(fsize "$W/z1.zst"); rm -f "$W/z1.zst"
done
# zstd's output made durable too, as roam's import makes its store (shown
# for information; the target is against plain zstd -1 -T2)
zstd1s_t=999
for run in 1 2 3; do
	t0=$(now); zstd -q -1 -T2 -f "$IMG" -o "$W/z1.zst" && sync "$W/z1.zst"; t1=$(now)
	zstd1s_t=$(min "$zstd1s_t" "$(secs "$t0" "$t1")"); rm -f "$W/z1.zst"
done
t0=$(now); zstd -q -3 -T2 -f "$IMG" -o "$W/z3.zst"; t1=$(now)
zstd3_t=$(secs "$t0" "$t1"); zstd3_b=$(fsize "$W/z3.zst"); rm -f "$W/z3.zst"
t0=$(now); qemu-img convert -c -O qcow2 "$IMG" "$W/q.qcow2"; t1=$(now)
qcow_t=$(secs "$t0" "$t1"); qcow_b=$(du -B1 "$W/q.qcow2" | cut -f1); rm -f "$W/q.qcow2"

# roam with the defaults (16 KiB chunks, zstd level 1), and with 64 KiB
# chunks, which miss most file copies (ext4 aligns files to 4 KiB blocks, not
# to 64 KiB).
roam_run() { # tag init-args...
	tag=$1; shift
	best=999
	for run in 1 2 3; do
		rm -rf "$ROAM_STORE"
		"$ROAM" init "$@" >/dev/null
		t0=$(now); cpu "$ROAM" disk import bench "$IMG" >/dev/null; t1=$(now)
		best=$(min "$best" "$(secs "$t0" "$t1")")
	done
	eval "imp_$tag=$best cpu_$tag=$(cat "$W/cpu")"
	eval "sto_$tag=$("$ROAM" du --json | sed 's/.*"stored_bytes":\([0-9]*\).*/\1/')"
	eval "fil_$tag=$("$ROAM" du --json | sed 's/.*"file_bytes":\([0-9]*\).*/\1/')"
	t0=$(now); "$ROAM" disk import again "$IMG" >/dev/null; t1=$(now)
	eval "re_$tag=$(secs "$t0" "$t1")"
	best=999
	for run in 1 2 3; do
		t0=$(now); "$ROAM" disk export bench "$W/out.img"; t1=$(now)
		best=$(min "$best" "$(secs "$t0" "$t1")")
		cmp "$IMG" "$W/out.img" || { echo "EXPORT DIFFERS ($tag)" >&2; exit 1; }
		rm -f "$W/out.img"
	done
	eval "exp_$tag=$best"
}
roam_run c16
roam_run c64 --chunk-size 64K

cat_t=999
for run in 1 2 3; do
	t0=$(now); cat "$IMG" > "$W/cat.img"; sync "$W/cat.img"; t1=$(now)
	cat_t=$(min "$cat_t" "$(secs "$t0" "$t1")")
	rm -f "$W/cat.img"
done

printf '\n%-34s %9s %10s %12s\n' "" "seconds" "MB/s" "bytes"
printf '%-34s %9.2f %10s %12s\n' "zstd -1 -T2" "$zstd1_t" "$(mb_s "$SIZE" "$zstd1_t")" "$zstd1_b"
printf '%-34s %9.2f %10s\n' "zstd -1 -T2, output synced" "$zstd1s_t" "$(mb_s "$SIZE" "$zstd1s_t")"
printf '%-34s %9.2f %10s %12s\n' "zstd -3 -T2" "$zstd3_t" "$(mb_s "$SIZE" "$zstd3_t")" "$zstd3_b"
printf '%-34s %9.2f %10s %12s\n' "qemu-img convert -c -O qcow2" "$qcow_t" "$(mb_s "$SIZE" "$qcow_t")" "$qcow_b"
for tag in c16 c64; do
	eval "it=\$imp_$tag st=\$sto_$tag rt=\$re_$tag et=\$exp_$tag"
	c="64K chunks"; [ $tag = c16 ] && c="16K chunks"
	printf '%-34s %9.2f %10s %12s\n' "roam disk import ($c)" "$it" "$(mb_s "$SIZE" "$it")" "$st"
	printf '%-34s %9.2f %10s %12s\n' "  same image again ($c)" "$rt" "$(mb_s "$SIZE" "$rt")" "+0"
	printf '%-34s %9.2f %10s\n' "  roam disk export ($c)" "$et" "$(mb_s "$SIZE" "$et")"
done
printf '%-34s %9.2f %10s\n' "cat image > file" "$cat_t" "$(mb_s "$SIZE" "$cat_t")"
echo "(store.db on disk: 16K: $fil_c16 bytes, 64K: $fil_c64 bytes; load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
for tag in c16 c64; do
	eval "it=\$imp_$tag st=\$sto_$tag et=\$exp_$tag"
	c="16 KiB chunks (default)"; [ $tag = c64 ] && c="64 KiB chunks (init --chunk-size 64K)"
	echo "$c:"
	printf '  import speed   roam / zstd -1 -T2 = %.2fx  (target >= 0.8)\n' "$(echo "$zstd1_t / $it" | bc -l)"
	printf '  import speed   roam / (zstd -1 -T2 + sync) = %.2fx\n' "$(echo "$zstd1s_t / $it" | bc -l)"
	printf '  import speed   roam / qcow2 -c    = %.2fx\n' "$(echo "$qcow_t / $it" | bc -l)"
	eval "ic=\$cpu_$tag"
	[ "$ic" != 0 ] && printf '  import CPU s   zstd -1 -T2 %.2f, roam %.2f: %.2fx\n' \
		"$zstd1_cpu" "$ic" "$(echo "$zstd1_cpu / $ic" | bc -l)"
	printf '  stored bytes   roam / zstd -3     = %.3fx  (target <= 1.0)\n' "$(echo "$st / $zstd3_b" | bc -l)"
	# What the store takes on disk: SQLite pages hold whole rows, and a
	# 64 KiB page holds only three incompressible 16 KiB chunks.
	eval "fb=\$fil_$tag"
	printf '  store on disk  roam / zstd -3     = %.3fx  (store.db, compressed objects + SQLite pages)\n' \
		"$(echo "$fb / $zstd3_b" | bc -l)"
	printf '  stored bytes   roam / qcow2 -c    = %.3fx\n' "$(echo "$st / $qcow_b" | bc -l)"
	printf '  export speed   roam / cat         = %.2fx\n' "$(echo "$cat_t / $et" | bc -l)"
done
