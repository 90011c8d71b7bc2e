#!/bin/sh
# `roam boot --engine kvm|auto` as seen on this host: where KVM cannot be
# used, an explicit --engine kvm fails with one clear line and a non-zero
# exit (never a crash or a hang), and auto falls back to the binary
# translator saying why. Where KVM works, --engine kvm boots the hello
# test kernel.
. "$ROAM_SRC/tests/integration/lib.sh"
K=$ROAM_BUILD/guest/hello.elf
if [ ! -f "$K" ]; then
	skip kvm_cli "test kernel $K not built (make guest-tests)"
	exit 0
fi

if ! have_kvm; then
	if [ -e /dev/kvm ]; then why="no /dev/kvm access"; else why="/dev/kvm absent"; fi
	check_fails kvm_engine_refused "no /dev/kvm access" timeout 30 "$ROAM" boot --engine kvm "$K"
	n=$(grep -c . "$T/.err")
	if [ "$n" -eq 1 ]; then pass kvm_engine_refused_one_line
	else fail kvm_engine_refused_one_line "$n lines on stderr: $(head -c 300 "$T/.err")"; fi
	if grep -q "$why" "$T/.err"; then pass kvm_engine_refused_names_reason
	else fail kvm_engine_refused_names_reason "stderr lacks '$why': $(head -c 300 "$T/.err")"; fi
	skip kvm_boot_hello "$why"
else
	timeout 60 "$ROAM" boot --engine kvm "$K" >"$T/out" 2>"$T/err" </dev/null
	rc=$?
	if [ $rc -eq 33 ] && grep -q "RESULT: PASS" "$T/out"; then pass kvm_boot_hello
	else fail kvm_boot_hello "exit $rc: $(tail -n 3 "$T/out" "$T/err" | tr '\n' ' ')"; fi
fi

# auto never fails for lack of KVM; without vmx/svm it says it uses BT.
timeout 120 "$ROAM" boot --engine auto "$K" >"$T/out" 2>"$T/err" </dev/null
rc=$?
if [ $rc -eq 33 ]; then pass auto_engine_boots
else fail auto_engine_boots "exit $rc: $(tail -n 3 "$T/err" | tr '\n' ' ')"; fi
if ! have_vmx; then
	if grep -q "no hardware virtualization (vmx/svm)" "$T/err" "$T/out"; then pass auto_engine_says_why
	else fail auto_engine_says_why "no note about vmx/svm: $(head -c 300 "$T/err")"; fi
fi
