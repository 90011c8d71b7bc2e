# Push, pull and clone over a real sshd: round trips of a VM with
# checkpoints, incremental pushes that move only what changed (bytes on the
# wire asserted), resume of a pulled VM, leases, remotes, and every SSH
# failure refused with a clear one-line error.
. "$ROAM_SRC/tests/integration/lib.sh"
. "$ROAM_SRC/tests/integration/sync_sshd.inc"
A="$ROAM --store $T/a"
B="$ROAM --store $T/b"
K=$ROAM_BUILD/guest/counter.elf
[ -f "$K" ] || { skip sync_ssh "no $K (make guest-tests)"; exit 0; }
head -c 6M /dev/urandom > "$T/d.img"
$A init >/dev/null && $A create vm --kernel "$K" --disk "$T/d.img" --mem 64M >/dev/null &&
	$A checkpoint vm base >/dev/null || { fail sync_setup "cannot create the VM"; exit 0; }

json_field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

# host keys: unknown refused with the fingerprint, accepted on request, changed refused
mv "$HOME/.ssh/known_hosts" "$T/kh.good"
check_fails hostkey_unknown_refused 'not in .*known_hosts.*SHA256:.*--accept-new-host-key' \
	$A push "$URLA" vm $RR
[ ! -d "$T/remote" ] && pass hostkey_unknown_nothing_made || fail hostkey_unknown_nothing_made
check hostkey_accept_new $A push "$URLA" vm $RR --accept-new-host-key
grep -q "^\[127.0.0.1\]:$PORT ssh-ed25519 " "$HOME/.ssh/known_hosts" && pass hostkey_recorded ||
	fail hostkey_recorded "$(cat "$HOME/.ssh/known_hosts")"
ssh-keygen -q -t ed25519 -N '' -f "$T/other_key" >/dev/null
printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$T/other_key.pub")" > "$HOME/.ssh/known_hosts"
check_fails hostkey_changed_refused 'HOST KEY OF .* HAS CHANGED' $A push "$URLA" vm $RR
cp "$T/kh.good" "$HOME/.ssh/known_hosts"

# connection and auth failures
check_fails dns_failure 'cannot resolve host' $A push ssh://no-such-host.invalid/x vm
check_fails conn_refused 'refused: is sshd running' $A push "ssh://127.0.0.1:1$T/x" vm
check_fails auth_failure 'authentication as root .* failed' \
	$A push "$URLA" vm $RR -i "$T/other_key"
check_fails remote_roam_missing 'roam was not found on .*--remote-roam' \
	$A push "$URLA" vm --remote-roam /nonexistent/roam
printf '#!/bin/sh\necho "roam: unknown command serve" >&2\nexit 2\n' > "$T/oldroam"
chmod +x "$T/oldroam"
check_fails remote_roam_too_old 'too old' $A push "$URLA" vm --remote-roam "$T/oldroam"

# remotes
check remote_add $A remote add home "$URLA" --remote-roam "$ROAM"
check_fails remote_add_dup 'exists' $A remote add home "$URLA"
check_fails remote_add_bad_url 'not a valid|not ssh|names no store path' $A remote add bad "ssh://"
$A --json remote ls > "$T/rls" 2>&1
grep -q '"name":"home"' "$T/rls" && pass remote_ls_json || fail remote_ls_json "$(cat "$T/rls")"

# the first push went over already (accept-new); a second one moves nothing
$A --json push home vm > "$T/p0" 2>"$T/p0e"
[ "$(json_field objects < "$T/p0")" = 0 ] && pass push_again_moves_nothing ||
	fail push_again_moves_nothing "$(cat "$T/p0" "$T/p0e")"

# clone into store b over ssh, then run it there and suspend
check clone $B clone "$URLA" vm $RR
$B log vm > "$T/blog" 2>&1
grep -q '(base' "$T/blog" && pass clone_has_checkpoint || fail clone_has_checkpoint "$(cat "$T/blog")"
check clone_verify $B verify
$B remote ls | grep -q '^origin' && pass clone_records_origin || fail clone_records_origin

# change on a: run the counter kernel (it writes its disk), suspend, checkpoint
$A run vm --engine bt </dev/null >"$T/runa.log" 2>&1 &
rp=$!
sleep 2
$A suspend vm >/dev/null 2>&1 || fail run_suspend_a "$(tail -3 "$T/runa.log")"
wait $rp
$A checkpoint vm after-run >/dev/null 2>&1
$A --json push home vm > "$T/p1" 2>"$T/p1e" && pass push_incremental || fail push_incremental "$(cat "$T/p1e")"
sent=$(json_field bytes_sent < "$T/p1")
# a 6 MiB random disk and 64 MiB memory: the change is a few hundred KiB
if [ -n "$sent" ] && [ "$sent" -lt 2000000 ] && [ "$sent" -gt 1000 ]; then pass push_incremental_small;
else fail push_incremental_small "sent=$sent bytes: $(cat "$T/p1")"; fi

# pull on b: fast-forward, resume under BT, suspend
$B --json pull home vm > "$T/l1" 2>"$T/l1e" || $B --json pull origin vm > "$T/l1" 2>"$T/l1e"
recv=$(json_field bytes_received < "$T/l1")
if [ -n "$recv" ] && [ "$recv" -lt 2000000 ]; then pass pull_incremental_small;
else fail pull_incremental_small "received=$recv: $(cat "$T/l1" "$T/l1e")"; fi
[ "$($A log vm | head -1 | cut -c1-12)" = "$($B log vm | head -1 | cut -c1-12)" ] && pass pull_same_head ||
	fail pull_same_head
$B run vm --engine bt </dev/null >"$T/runb.log" 2>&1 &
rp=$!
sleep 2
$B suspend vm >"$T/susb" 2>&1
wait $rp
grep -q 'resumed' "$T/runb.log" && pass resume_pulled_vm || fail resume_pulled_vm "$(tail -3 "$T/runb.log")"
check verify_b $B verify

# b is ahead now; pushing a (behind) is refused as diverged... a's head is an ancestor: push from a refused
check_fails push_diverged_refused 'diverged' $A push "ssh://root@127.0.0.1:$PORT$T/b" vm $RR
check push_b_to_remote $B push "$URLA" vm $RR
check pull_a_fast_forward $A pull home vm
$A --json push home vm --force > "$T/pf" 2>&1 && pass push_force || fail push_force "$(cat "$T/pf")"

check verify_all sh -c "$A verify && $B verify && $ROAM --store $T/remote verify"
