#!/bin/sh
# Guest kit, step 1: fetches Debian's stock amd64 kernel and busybox-static
# as .deb files (apt-get download, nothing else) into CACHE and unpacks them
# with dpkg-deb -x into CACHE/kernel and CACHE/busybox. Writes CACHE/kver
# (the kernel release, e.g. 6.1.0-56-amd64) last, as the stamp make uses.
# Works as non-root (apt-get download needs no privileges); as root it runs
# 'apt-get update' once when the package lists are empty.
set -eu
CACHE=${1:?usage: fetch.sh CACHE_DIR}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

die() { echo "guest/fetch.sh: $*" >&2; exit 1; }

# The meta package linux-image-amd64 depends on the current ABI's image,
# linux-image-6.1.0-N-amd64 (the signed build); the same kernel unsigned is
# linux-image-6.1.0-N-amd64-unsigned. Either holds an unmodified bzImage.
resolve_kernel() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}
kpkg=$(resolve_kernel)
if [ -z "$kpkg" ] && [ "$(id -u)" = 0 ]; then
	echo "guest/fetch.sh: empty package lists, running apt-get update" >&2
	apt-get update -qq || die "apt-get update failed"
	kpkg=$(resolve_kernel)
fi
if [ -z "$kpkg" ]; then
	# Offline / no lists: reuse a kernel .deb already in the cache.
	deb=$(ls "$CACHE"/linux-image-*-amd64*_amd64.deb 2>/dev/null | head -n 1 || true)
	[ -n "$deb" ] || die "cannot resolve linux-image-amd64 (run 'sudo apt-get update' or 'sudo make deps')"
	kpkg=$(dpkg-deb -f "$deb" Package)
fi
if apt-cache show "$kpkg-unsigned" >/dev/null 2>&1; then
	kpkg="$kpkg-unsigned"
fi

# Downloads $1 unless a .deb of its candidate version is already cached.
fetch() {
	pkg=$1
	ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	if [ -n "$ver" ] && [ "$ver" != "(none)" ]; then
		# apt-get download names files pkg_version_arch.deb with ':' as %3a.
		f="${pkg}_$(echo "$ver" | sed 's/:/%3a/g')_amd64.deb"
		if [ ! -s "$CACHE/$f" ]; then
			(cd "$CACHE" && apt-get download -q "$pkg") >&2 ||
				die "apt-get download $pkg failed"
		fi
		[ -s "$CACHE/$f" ] || die "apt-get download $pkg did not produce $f"
		echo "$CACHE/$f"
	else
		f=$(ls "$CACHE/${pkg}_"*_amd64.deb 2>/dev/null | head -n 1 || true)
		[ -n "$f" ] || die "package $pkg unknown to apt and not cached"
		echo "$f"
	fi
}

kdeb=$(fetch "$kpkg")
bdeb=$(fetch busybox-static)

rm -rf "$CACHE/kernel" "$CACHE/busybox" "$CACHE/kver"
dpkg-deb -x "$kdeb" "$CACHE/kernel" || die "cannot unpack $kdeb"
dpkg-deb -x "$bdeb" "$CACHE/busybox" || die "cannot unpack $bdeb"
[ -x "$CACHE/busybox/bin/busybox" ] || die "$bdeb holds no bin/busybox"

kver=$(ls "$CACHE/kernel/lib/modules" 2>/dev/null | head -n 1)
[ -n "$kver" ] || die "$kdeb holds no lib/modules/<release>"
[ -f "$CACHE/kernel/boot/vmlinuz-$kver" ] || die "$kdeb holds no boot/vmlinuz-$kver"
echo "$kver" > "$CACHE/kver.tmp"
mv "$CACHE/kver.tmp" "$CACHE/kver"
echo "guest kit: kernel $kpkg ($kver), $(basename "$bdeb")" >&2
