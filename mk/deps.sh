#!/bin/sh
# Installs the Debian packages roam needs to build, test and run its demo,
# but only those missing. Non-root: names what is missing and fails.
set -eu
PKGS="build-essential pkg-config clang nasm
libsqlite3-dev sqlite3 libzstd-dev zstd libssl-dev libssh2-1-dev libarchive-dev
libfuse3-dev fuse3 libext2fs-dev e2fsprogs libslirp-dev libglib2.0-dev liblzma-dev xz-utils
zlib1g-dev liblz4-dev libcapstone-dev
busybox-static kmod cpio fdisk python3 openssh-server openssh-client iproute2 rsync
qemu-system-x86 qemu-utils"
missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "roam: missing Debian packages:$missing — run 'sudo make deps'" >&2
	exit 1
fi
echo "roam: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
