#!/bin/sh
# Guest kit, step 3: the small ext4 root (data) disk OUT, SIZE MiB, made with
# 'mke2fs -d' from a directory holding /etc/hostname, a README and /data.
set -eu
OUT=${1:?usage: rootfs.sh OUT [SIZE_MIB]}
SIZE=${2:-64}
die() { echo "guest/rootfs.sh: $*" >&2; exit 1; }
export PATH="$PATH:/sbin:/usr/sbin"
stage="$OUT.stage"
rm -rf "$stage"
mkdir -p "$stage/etc" "$stage/data"
echo roam-guest > "$stage/etc/hostname"
cat > "$stage/README" <<'TXT'
roam guest kit root disk.
The kit's init mounts this disk (/dev/vda) at /mnt; /data is for tests and
for whatever you want to keep across boots.
TXT
rm -f "$OUT.tmp"
mke2fs -q -F -t ext4 -L roam-root -E root_owner=0:0 -d "$stage" "$OUT.tmp" "${SIZE}M" ||
	die "mke2fs failed"
mv "$OUT.tmp" "$OUT"
rm -rf "$stage"
