#!/bin/sh
# Guest kit, step 2: builds the initramfs OUT (newc cpio, gzip) from what
# fetch.sh unpacked in CACHE: busybox-static with its applet links, the
# kit's /init, and the kernel modules for virtio-pci/blk/net/rng/balloon and
# ext4 plus everything they depend on (modinfo 'depends' and the softdeps
# ext4 needs), with modules.dep made by 'depmod -b'.
set -eu
CACHE=${1:?usage: initrd.sh CACHE_DIR INIT OUT}
INIT=${2:?usage: initrd.sh CACHE_DIR INIT OUT}
OUT=${3:?usage: initrd.sh CACHE_DIR INIT OUT}
die() { echo "guest/initrd.sh: $*" >&2; exit 1; }
export PATH="$PATH:/sbin:/usr/sbin"

kver=$(cat "$CACHE/kver") || die "no $CACHE/kver: run fetch.sh first"
kmods="$CACHE/kernel/lib/modules/$kver"
[ -d "$kmods/kernel" ] || die "no modules in $kmods"

stage="$OUT.stage"
rm -rf "$stage"
mkdir -p "$stage"/bin "$stage"/sbin "$stage"/usr/bin "$stage"/usr/sbin \
	"$stage"/proc "$stage"/sys "$stage"/dev "$stage"/tmp "$stage"/run \
	"$stage"/mnt "$stage"/etc "$stage"/root "$stage/lib/modules/$kver"

# busybox: every applet as a link (busybox --list-full gives the paths).
cp "$CACHE/busybox/bin/busybox" "$stage/bin/busybox"
"$stage/bin/busybox" --list-full > "$stage.applets" || die "busybox --list-full failed"
while read -r a; do
	[ "$a" = bin/busybox ] && continue
	case "$a" in
	bin/*) ln -sf busybox "$stage/$a" ;;
	sbin/*) ln -sf ../bin/busybox "$stage/$a" ;;
	usr/bin/* | usr/sbin/*) ln -sf ../../bin/busybox "$stage/$a" ;;
	esac
done < "$stage.applets"
rm -f "$stage.applets"
cp "$INIT" "$stage/init"
chmod 755 "$stage/init"
echo roam-guest > "$stage/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$stage/etc/passwd"
printf 'root:x:0:\n' > "$stage/etc/group"

# Module closure: wanted modules, their 'depends' and ext4's softdeps.
path_of() { # module name -> path under $kmods (names use - and _ alike)
	n=$(echo "$1" | sed 's/[-_]/[-_]/g')
	find "$kmods/kernel" -regex ".*/$n\.ko\(\.xz\|\.zst\|\.gz\)?" | head -n 1
}
want="virtio virtio_ring virtio_pci virtio_pci_legacy_dev virtio_pci_modern_dev
virtio_blk virtio-rng virtio_net virtio_balloon crc32c_generic crc32c-intel
crc16 mbcache jbd2 ext4"
done_list=" "
while [ -n "$want" ]; do
	next=""
	for m in $want; do
		case "$done_list" in *" $m "*) continue ;; esac
		done_list="$done_list$m "
		p=$(path_of "$m")
		if [ -z "$p" ]; then
			# An alias (softdeps name such as crypto-crc32c): fine when a
			# module already staged provides it (crc32c_generic does).
			if find "$stage/lib/modules" -name '*.ko*' -exec modinfo -F alias {} + |
				grep -qx "$m"; then
				continue
			fi
			# Else built into the kernel: modprobe knows from modules.builtin.
			grep -q "/$(echo "$m" | sed 's/-/_/g')\.ko\$" \
				"$kmods/modules.builtin" 2>/dev/null ||
				die "module $m neither in the package nor built in"
			continue
		fi
		rel=${p#"$kmods"/}
		mkdir -p "$stage/lib/modules/$kver/$(dirname "$rel")"
		cp "$p" "$stage/lib/modules/$kver/$rel"
		deps=$(modinfo -F depends "$p" | tr ',' ' ')
		soft=$(modinfo -F softdep "$p" | sed 's/pre://; s/post://')
		next="$next $deps $soft"
	done
	want=$next
done
for f in modules.builtin modules.builtin.modinfo modules.order; do
	[ -f "$kmods/$f" ] && cp "$kmods/$f" "$stage/lib/modules/$kver/"
done
depmod -b "$stage" "$kver" || die "depmod failed"
[ -s "$stage/lib/modules/$kver/modules.dep" ] || die "depmod wrote no modules.dep"

(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -9n > "$OUT.tmp" || die "cpio/gzip failed"
mv "$OUT.tmp" "$OUT"
rm -rf "$stage"
