#!/bin/sh
# Browsing a VM's checkpoints: a VM whose guest changes one file between two
# checkpoints shows both versions, and roam diff names exactly that file.
# The guest is the counter test kernel writing its records straight into the
# sectors of /data/log.bin (found with debugfs), so no Linux boot is needed.
. "$ROAM_SRC/tests/integration/lib.sh"
R="$ROAM"
K="$ROAM_BUILD/guest/counter.elf"
cd "$T" || exit 1
[ -f "$K" ] || { fail setup "$K missing (make guest-tests)"; exit 0; }
mkdir -p src/data src/etc
echo roam-guest > src/etc/hostname
head -c 1048576 /dev/zero | tr '\0' x > src/data/log.bin
echo unchanged > src/data/other.txt
mke2fs -q -t ext4 -b 4096 -d src fs.img 32M || { fail setup mke2fs; exit 0; }
# First 4 KiB block of the file -> 512-byte sector.
blk=$(debugfs -R "bmap /data/log.bin 0" fs.img 2>/dev/null)
[ -n "$blk" ] && [ "$blk" -gt 0 ] || { fail setup "debugfs bmap failed"; exit 0; }
sector=$((blk * 8))
$R init >/dev/null
$R create v --kernel "$K" --disk fs.img --mem 64M --append "start=$sector records=16 flush_every=1" >/dev/null
check tag_A $R checkpoint v A
$R run v --engine bt > run.log 2>&1
check guest_wrote grep -q "COUNTER done records=16" run.log
check tag_B $R checkpoint v B
check diff_names_the_file sh -c "[ \"\$($R diff v@A v@B)\" = 'M /data/log.bin' ]"
check cat_old_version sh -c "$R cat v@A:/data/log.bin | cmp -s - src/data/log.bin"
check cat_new_version sh -c "! $R cat v@B:/data/log.bin | cmp -s - src/data/log.bin"
check other_file_same sh -c "[ \"\$($R cat v@B:/data/other.txt)\" = unchanged ]"
if [ -c /dev/fuse ]; then
	mkdir mnt
	if $R mount mnt; then
		check fuse_both_versions sh -c "! cmp -s mnt/vms/v/checkpoints/A/files/data/log.bin mnt/vms/v/checkpoints/B/files/data/log.bin"
		check fuse_head_is_B cmp mnt/vms/v/head/files/data/log.bin mnt/vms/v/checkpoints/B/files/data/log.bin
		check fuse_config grep -q '"name":"v"' mnt/vms/v/head/config.json
		check fuse_new_checkpoint_appears sh -c "$R checkpoint v C >/dev/null && ls mnt/vms/v/checkpoints | grep -qx C"
		check umount $R umount mnt
	else
		fail fuse_mount "roam mount failed"
	fi
else
	skip fuse "/dev/fuse absent"
fi
