#!/bin/sh
# The serial console of `roam boot` with the real binary (BT engine, the
# timer test kernel told to run for ~1000 s): on a terminal, Ctrl-A x
# quits and the terminal settings come back unchanged; when the reader of
# the console output goes away, roam stops (status 141) instead of
# running on or dying with the terminal raw.
. "$ROAM_SRC/tests/integration/lib.sh"

K=$ROAM_BUILD/guest/timer.elf
if [ ! -f "$K" ]; then skip console "no test kernels in $ROAM_BUILD/guest (make guest-tests)"; exit 0; fi
if ! "$ROAM" boot --help >/dev/null 2>&1; then skip console "roam boot is not built"; exit 0; fi
LONG="ticks=100000 test=pit_ioapic"

# Ctrl-A x through a pseudo-terminal made by script(1).
if command -v script >/dev/null 2>&1 && command -v stty >/dev/null 2>&1; then
	(sleep 3; printf '\001x') | timeout -k 5 60 script -qfec \
		"stty -g >'$T/before'; '$ROAM' boot --engine bt '$K' --append '$LONG'; echo \$? >'$T/rc'; stty -g >'$T/after'" \
		/dev/null >"$T/tty.out" 2>&1
	if [ "$(cat "$T/rc" 2>/dev/null)" = 0 ] && grep -q 'timer: PIT' "$T/tty.out"; then
		pass console_escape_quit
	else
		fail console_escape_quit "status $(cat "$T/rc" 2>/dev/null || echo none): $(tail -n 2 "$T/tty.out" | tr '\r\n' '  ')"
	fi
	if grep -q 'Ctrl-A x quit' "$T/tty.out"; then pass console_escape_help; else fail console_escape_help "no help line"; fi
	if [ -s "$T/before" ] && cmp -s "$T/before" "$T/after"; then
		pass console_tty_restored
	else
		fail console_tty_restored "stty before: $(cat "$T/before" 2>/dev/null) after: $(cat "$T/after" 2>/dev/null)"
	fi
else
	skip console_escape_quit "script(1) or stty missing"
fi

# The output pipe closes after the first line.
start=$(date +%s)
{ timeout -k 5 60 "$ROAM" boot --engine bt "$K" --append "$LONG" </dev/null 2>"$T/pipe.err"; echo $? >"$T/rc2"; } | head -n 1 >"$T/first"
took=$(( $(date +%s) - start ))
if [ "$(cat "$T/rc2")" = 141 ] && grep -q '^ROAM-GUEST' "$T/first" && [ "$took" -lt 30 ]; then
	pass console_output_closed
else
	fail console_output_closed "status $(cat "$T/rc2") after ${took}s, first line: $(cat "$T/first")"
fi
