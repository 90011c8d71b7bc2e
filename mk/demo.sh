#!/bin/sh
# make demo: the main job end to end with the guest kit (Debian's kernel,
# busybox initrd, ext4 root disk) on whatever engine this host supports:
# create a VM, boot it, leave state in its memory and on its disk, suspend
# it, browse its disk without booting, resume it and see it continue.
set -eu
BUILD=${BUILD:-build}
ROAM="$PWD/$BUILD/roam"
D=$(mktemp -d /tmp/roam-demo.XXXXXX)
export ROAM_STORE="$D/store"
trap 'rc=$?; exec 3>&-; kill "$pid" 2>/dev/null || true; rm -rf "$D"; exit $rc' EXIT
pid=999999999
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# wait_for PATTERN SECONDS: until the guest console shows PATTERN.
wait_for() {
	n=0
	until grep -aq "$1" "$D/console"; do
		n=$((n + 1))
		if [ $n -gt $(($2 * 5)) ]; then
			echo "demo: timed out waiting for '$1'; console tail:" >&2
			tail -n 20 "$D/console" >&2
			exit 1
		fi
		sleep 0.2
	done
}
guest() { printf '%s\n' "$*" >&3; }
start() { # start the VM with its console on a FIFO
	: > "$D/console"
	rm -f "$D/in" && mkfifo "$D/in"
	"$ROAM" run demo < "$D/in" > "$D/console" 2> "$D/roam.log" &
	pid=$!
	exec 3> "$D/in"
}

say "roam init $ROAM_STORE"
"$ROAM" init
say "roam create demo   (the guest kit: kernel, initrd, root disk)"
"$ROAM" create demo --mem 512M
say "roam run demo   (boots Debian's kernel; under the binary translator this takes a while)"
t0=$(date +%s)
start
wait_for 'roam-guest: disk mounted' 300
echo "booted in $(( $(date +%s) - t0 )) s"
guest 'echo "written before suspend" > /mnt/note.txt; sync'
guest 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 1; done &'
guest 'echo marker-$((6*7))'
wait_for 'marker-42' 60
sleep 3
guest 'echo count-before-$(cat /tmp/count)'
wait_for 'count-before-[0-9]' 60
before=$(grep -ao 'count-before-[0-9][0-9]*' "$D/console" | head -n 1 | sed 's/.*-//')
echo "the guest's counter is at $before"
say "roam suspend demo   (memory, CPU, devices and disk into the store)"
"$ROAM" suspend demo
wait "$pid" || true
exec 3>&-
"$ROAM" status
"$ROAM" log demo
"$ROAM" du
say "roam cat demo:/note.txt   (read the guest's disk without booting it)"
"$ROAM" cat demo:/note.txt
say "roam run demo   (resume where it was)"
start
guest 'sleep 2; echo count-now-$(cat /tmp/count); cat /mnt/note.txt; cat /proc/uptime'
wait_for 'count-now-[0-9]' 120
after=$(grep -ao 'count-now-[0-9][0-9]*' "$D/console" | head -n 1 | sed 's/.*-//')
grep -a 'written before suspend' "$D/console" | head -n 1
echo "resumed: two seconds later the counter is at $after (it was $before when suspended)"
[ "$after" -ge "$before" ] || { echo "demo: the counter went backwards" >&2; exit 1; }
say "roam suspend demo"
"$ROAM" suspend demo
wait "$pid" || true
"$ROAM" status demo
echo
echo "demo done: the VM was created, booted, suspended, browsed and resumed."
