#!/bin/sh
# Browsing without booting: roam cat/ls/cp/diff and the FUSE mount against
# ext4 disks made with mke2fs -d, partitioned disks, and damaged ones.
. "$ROAM_SRC/tests/integration/lib.sh"
R="$ROAM"
cd "$T" || exit 1

# A source tree with the things a filesystem must keep.
mkdir -p src/etc src/data/many src/empty
echo roam-guest > src/etc/hostname
printf 'report of monday\n' > src/data/report.txt
chmod 640 src/data/report.txt
ln src/data/report.txt src/data/hardlink.txt
ln -s ../etc/hostname src/data/rel-link
ln -s /etc/hostname src/abs-link
truncate -s 20M src/data/sparse && printf end >> src/data/sparse
head -c 3000000 /dev/urandom > src/data/random.bin
i=0; while [ $i -lt 1000 ]; do echo $i > src/data/many/f$i; i=$((i+1)); done
chmod 755 src/data/many
mke2fs -q -t ext4 -d src disk.img 64M || { fail setup "mke2fs -d failed"; exit 0; }
$R init >/dev/null && $R disk import d disk.img >/dev/null || { fail setup "import failed"; exit 0; }

check_fails cat_needs_path "VM\[@TAG\]:/path" $R cat d
check cat_hostname sh -c "[ \"\$($R cat d:/etc/hostname)\" = roam-guest ]"
check cat_follows_symlink_in_guest sh -c "[ \"\$($R cat d:/abs-link)\" = roam-guest ]"
check cat_large_file sh -c "$R cat d:/data/random.bin | cmp - src/data/random.bin"
check_fails cat_missing "No such file" $R cat d:/nope
check_fails cat_dir "is a directory" $R cat d:/etc
check_fails cat_unknown_vm "no VM or disk named" $R cat nosuch:/etc/hostname
check ls_1000 sh -c "[ \$($R ls d:/data/many | wc -l) -eq 1000 ]"
check ls_json sh -c "$R ls --json d:/etc | grep -q '\"name\":\"hostname\"'"
check ls_symlink sh -c "$R ls d:/data | grep -q 'rel-link -> ../etc/hostname'"

# roam cp keeps contents, modes, symlinks and times.
check cp_tree $R cp d:/data out
check cp_same_content diff -r --no-dereference src/data out
check cp_modes sh -c "[ \$(stat -c %a out/report.txt) = 640 ] && [ \$(readlink out/rel-link) = ../etc/hostname ]"
check cp_mtime sh -c "[ \$(stat -c %Y out/report.txt) = \$(stat -c %Y src/data/report.txt) ]"

# Two snapshots that differ in one file: roam diff names exactly that.
cp -a src src2 && echo changed > src2/data/report.txt && rm src2/etc/hostname && echo new > src2/added
mke2fs -q -t ext4 -d src2 disk2.img 64M && $R disk import d2 disk2.img >/dev/null
$R diff d d2 > diff.out 2>&1
check diff_exact sh -c "printf 'A /added\nM /data/hardlink.txt\nM /data/report.txt\nD /etc/hostname\n' | diff - diff.out"
check diff_subpath sh -c "[ \"\$($R diff d d2 /etc)\" = 'D /etc/hostname' ]"
check diff_json sh -c "$R diff --json d d2 | grep -q '\"change\":\"A\",\"path\":\"/added\"'"

# A partitioned disk: the filesystem in partition 2 shows as /p2.
truncate -s 80M part.img
printf 'label: dos\nstart=2048, size=4096, type=83\nstart=8192, type=83\n' | sfdisk -q part.img 2>/dev/null
if [ $? -eq 0 ]; then
	dd if=disk.img of=part.img bs=512 seek=8192 conv=notrunc status=none
	$R disk import p part.img >/dev/null
	check part_ls sh -c "$R ls p: | grep -qx 'p2/'"
	check part_cat sh -c "[ \"\$($R cat p:/p2/etc/hostname)\" = roam-guest ]"
	check_fails part_needs_partition "partitioned; paths start with a partition with a filesystem: /p2" $R cat p:/etc/hostname
else
	fail part_setup "sfdisk failed"
fi

# FUSE: the tree under files/ is the source tree.
if [ -c /dev/fuse ]; then
	mkdir mnt
	if $R mount mnt; then
		check fuse_raw cmp mnt/disks/d/disk.raw disk.img
		check fuse_tree diff -r src mnt/disks/d/files --exclude=lost+found
		attrs() { (cd "$1" && find . -path ./lost+found -prune -o \( -type f -printf '%p %m %s %n\n' \) -o \( ! -type f -printf '%p %m %n %l\n' \) | grep -v -e '^./lost+found' -e '^\. ' | sort); }
		check fuse_modes sh -c "$(attrs src > a; attrs mnt/disks/d/files > b) diff a b"
		check fuse_sparse sh -c "[ \$(stat -c %s mnt/disks/d/files/data/sparse) = \$(stat -c %s src/data/sparse) ] && [ \$(stat -c %b mnt/disks/d/files/data/sparse) -lt 100 ]"
		check fuse_readonly sh -c "! touch mnt/disks/d/files/x 2>/dev/null"
		check fuse_new_disk_appears sh -c "$R disk import late disk2.img >/dev/null && [ \"\$(cat mnt/disks/late/files/added)\" = new ]"
		check fuse_partitions sh -c "ls mnt/disks/p/files | grep -qx p2"
		check umount $R umount mnt
	else
		fail fuse_mount "roam mount failed"
	fi
else
	skip fuse "/dev/fuse absent"
fi

# Damage: a disk whose group descriptors are garbage, a truncated disk, and
# corrupt chunks in the store. Errors, never a crash or a hang.
cp disk.img bad.img
dd if=/dev/urandom of=bad.img bs=1024 seek=2 count=2 conv=notrunc status=none
$R disk import bad bad.img >/dev/null
$R cat bad:/etc/hostname > /dev/null 2> bad.err; rc=$?
check bad_fs_no_crash sh -c "[ $rc -ne 0 ] && [ $rc -lt 128 ] && [ \$(wc -l < bad.err) -le 2 ]"
head -c 2M disk.img > trunc.img
$R disk import trunc trunc.img >/dev/null
$R cat trunc:/data/random.bin > /dev/null 2> trunc.err; rc=$?
check truncated_no_crash sh -c "[ $rc -ne 0 ] && [ $rc -lt 128 ]"
cp -r "$ROAM_STORE" store2
sqlite3 store2/store.db "UPDATE objects SET data = zeroblob(length(data)) WHERE kind = 1" 2>/dev/null
ROAM_STORE=$T/store2 $R cat d:/data/random.bin > /dev/null 2> corrupt.err; rc=$?
check_corrupt() { [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -qiE "corrupt|damaged|does not match" corrupt.err; }
check corrupt_chunk_error check_corrupt
if [ -c /dev/fuse ]; then
	mkdir mnt2
	if ROAM_STORE=$T/store2 $R mount mnt2; then
		check_fails corrupt_fuse_eio "Input/output error|No such" cat mnt2/disks/d/files/data/random.bin
		check corrupt_umount $R umount mnt2
	else
		fail corrupt_fuse_mount "roam mount failed"
	fi
fi
