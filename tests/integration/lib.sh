# Shared helpers for integration scripts: source it, then call pass/fail/skip.
# $ROAM is the binary under test; each script gets a scratch dir $T that is
# removed on exit.
set -u
T=$(mktemp -d /tmp/roam-it.XXXXXX)
trap 'rm -rf "$T"' EXIT
export ROAM_STORE=$T/store
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1${2:+: $2}"; }
skip() { echo "SKIP: $1: $2"; }
# check NAME CMD... : pass if CMD succeeds
check() { n=$1; shift; if "$@" >"$T/.out" 2>&1; then pass "$n"; else fail "$n" "$(tail -n 3 "$T/.out" | tr '\n' ' ')"; fi; }
# check_fails NAME PATTERN CMD... : pass if CMD fails with one line matching PATTERN on stderr
check_fails() {
	n=$1; pat=$2; shift 2
	if "$@" >"$T/.out" 2>"$T/.err"; then fail "$n" "succeeded but should fail"; return; fi
	rc=$?
	if [ $rc -ge 128 ]; then fail "$n" "killed by signal $((rc-128))"; return; fi
	if grep -qE "$pat" "$T/.err"; then pass "$n"; else fail "$n" "stderr: $(head -c 300 "$T/.err")"; fi
}
have_kvm() { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }
have_vmx() { grep -qwE 'vmx|svm' /proc/cpuinfo; }
