#!/bin/sh
# The guest kit (stock Debian kernel + busybox initramfs, build/kit/) under
# `roam boot --engine bt`: boots to "roam-guest: ready" with one vCPU,
# mounts the root disk and writes a file there; a second boot with two
# vCPUs reads the file back and shuts down cleanly (reset -> status 0).
# Skipped when the kit is not built (make kit).
. "$ROAM_SRC/tests/integration/lib.sh"

KIT=${ROAM_KIT:-$ROAM_BUILD/kit}
if [ ! -f "$KIT/vmlinuz" ] || [ ! -f "$KIT/initrd.img" ] || [ ! -f "$KIT/root.ext4" ]; then
	skip bt_kit "guest kit not built (make kit)"
	exit 0
fi
if ! "$ROAM" boot --help >/dev/null 2>&1; then skip bt_kit "roam boot is not built"; exit 0; fi
cp "$KIT/root.ext4" "$T/root.ext4"
# a private copy: the build tree's binary may be rewritten during the boots
cp "$ROAM" "$T/roam" && ROAM=$T/roam

# boot NAME CPUS APPEND: one boot with the root disk, console in $T/NAME.out.
boot() {
	timeout -k 5 300 "$ROAM" boot --engine bt --cpus "$2" --mem 512M \
		--initrd "$KIT/initrd.img" --disk "$T/root.ext4" --append "$3" \
		"$KIT/vmlinuz" >"$T/$1.out" 2>"$T/$1.err" </dev/null
}

stamp="written-by-bt-$$"
boot write 1 "roam.run=\"echo $stamp > /mnt/bt_stamp && sync\""
rc=$?
if [ $rc -eq 0 ] && grep -q "roam-guest: ready" "$T/write.out" &&
   grep -q "roam-guest: cpus=1" "$T/write.out"; then
	pass bt_kit_boot_1cpu
else
	fail bt_kit_boot_1cpu "exit $rc: $(tail -n 3 "$T/write.out" | tr '\r\n' '  ')$(tail -n 2 "$T/write.err" | tr '\n' ' ')"
fi
if grep -q "roam-guest: disk mounted" "$T/write.out" && grep -q "roam-guest: run status=0" "$T/write.out"; then
	pass bt_kit_write_file
else
	fail bt_kit_write_file "$(grep 'roam-guest' "$T/write.out" | tr '\r\n' '  ')"
fi

boot read 2 "roam.run=\"cat /mnt/bt_stamp\""
rc=$?
if [ $rc -eq 0 ] && grep -q "roam-guest: cpus=2" "$T/read.out"; then
	pass bt_kit_boot_2cpus
else
	fail bt_kit_boot_2cpus "exit $rc: $(tail -n 3 "$T/read.out" | tr '\r\n' '  ')$(tail -n 2 "$T/read.err" | tr '\n' ' ')"
fi
if grep -q "^$stamp" "$T/read.out" && grep -q "roam-guest: run status=0" "$T/read.out"; then
	pass bt_kit_second_boot_reads_file
else
	fail bt_kit_second_boot_reads_file "$(grep 'roam-guest' "$T/read.out" | tr '\r\n' '  ')"
fi
if grep -qE "Kernel panic|BUG:|WARNING:|Oops" "$T/write.out" "$T/read.out"; then
	fail bt_kit_clean_log "$(grep -hE 'Kernel panic|BUG:|WARNING:|Oops' "$T/write.out" "$T/read.out" | head -n 2 | tr '\r\n' '  ')"
else
	pass bt_kit_clean_log
fi
