#!/usr/bin/env bash
# sys_cli_rdv.sh - the CLI with a real rendezvous on loopback: init
# registers the name (a taken name fails init and keeps nothing), buddy add
# without --id looks the name up and pins the peer id (TOFU), a later
# different id for a pinned name is refused, an unreachable rendezvous
# keeps the identity with a warning.
. "$(dirname "$0")/lib.sh"

BFS=$BUILD/buddyfs
trap '[ -n "$RDV_PID" ] && kill "$RDV_PID" 2>/dev/null; chmod -R u+rwx "$LIB_TMP" 2>/dev/null; rm -rf "$LIB_TMP"' EXIT

start_rendezvous rendezvous_start
PORT=$RDV_PORT

A=$LIB_TMP/alice B=$LIB_TMP/bob C=$LIB_TMP/carol
check_out init_registers '^registered alice at 127\.0\.0\.1:' "$BFS" --home "$A" init alice --rendezvous "127.0.0.1:$PORT"
check_out init_bob_registers '^registered bob at' "$BFS" --home "$B" init bob --rendezvous "127.0.0.1:$PORT"
check_err init_taken_name_refused 1 "taken" "$BFS" --home "$C" init alice --rendezvous "127.0.0.1:$PORT"
if [ -e "$C/identity.key" ] || [ -e "$C/cert" ]; then
	fail init_taken_name_keeps_nothing "files left in $C"
else
	pass init_taken_name_keeps_nothing
fi
check_out init_carol_other_name '^registered carol at' "$BFS" --home "$C" init carol --rendezvous "127.0.0.1:$PORT"

BOB_ID=$("$BFS" --home "$B" id | cut -d' ' -f2)
check_out buddy_add_looks_up "added bob $BOB_ID" "$BFS" --home "$A" buddy add bob
check_out buddy_list_shows_pinned "^bob +$BOB_ID" "$BFS" --home "$A" buddy list
check_err buddy_add_unknown_name 1 "cannot look 'dave' up" "$BFS" --home "$A" buddy add dave
CAROL_ID=$("$BFS" --home "$C" id | cut -d' ' -f2)
check_err pinned_id_change_refused 1 "bob is pinned to $BOB_ID" "$BFS" --home "$A" buddy add bob --id "$CAROL_ID"

# No rendezvous set: the lookup says what to do instead.
N=$LIB_TMP/nordv
check init_without_rendezvous "$BFS" --home "$N" init nina
check_err buddy_add_needs_rendezvous 1 "pass --id PEERID" "$BFS" --home "$N" buddy add bob

# A rendezvous nobody answers on: the identity is kept, with a warning.
kill "$RDV_PID"
wait "$RDV_PID" 2>/dev/null
RDV_PID=
D=$LIB_TMP/dora
check_err init_unreachable_warns 0 "could not register 'dora'" "$BFS" --home "$D" init dora --rendezvous "127.0.0.1:$PORT"
check init_unreachable_keeps_identity "$BFS" --home "$D" id
check_err lookup_unreachable_fails 1 "no answer from 127\.0\.0\.1:$PORT" "$BFS" --home "$A" buddy add carol

finish
