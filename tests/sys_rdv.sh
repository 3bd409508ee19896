#!/usr/bin/env bash
# sys_rdv.sh - the real buddyfs-rendezvous on loopback: usage and errors,
# it prints its peer id at start, serves registrations and lookups from
# separate client processes (bench/rdv_load one-peer mode), refuses a taken
# name, survives garbage datagrams while still serving, exits cleanly on
# SIGTERM, and restarts with the same peer id and registry.
. "$(dirname "$0")/lib.sh"

RDV=$BUILD/buddyfs-rendezvous
PEER=$BUILD/bench/rdv_load
SPID=
trap '[ -n "$SPID" ] && kill -9 "$SPID" 2>/dev/null; chmod -R u+rwx "$LIB_TMP" 2>/dev/null; rm -rf "$LIB_TMP"' EXIT

check_out rdv_help 'usage: buddyfs-rendezvous' "$RDV" --help
check_err rdv_bad_option 2 "unknown option '--frob'" "$RDV" --frob
check_err rdv_bad_listen 2 "bad --listen 'nowhere:99999'" "$RDV" --listen nowhere:99999

DB=$(tmp_dir)/db
SOUT=$LIB_TMP/server.out

# start_server -> SPORT, SPID, SID
start_server() {
	local i
	for i in 1 2 3 4 5; do
		SPORT=${SPORT:-$((20000 + RANDOM % 20000))}
		"$RDV" --listen "127.0.0.1:$SPORT" --db "$DB" >"$SOUT" 2>"$SOUT.err" &
		SPID=$!
		for _ in $(seq 50); do
			grep -q '^listening on' "$SOUT" && break
			kill -0 "$SPID" 2>/dev/null || break
			sleep 0.1
		done
		grep -q '^listening on' "$SOUT" && break
		SPORT=
	done
	SID=$(sed -n 's/^peer id \([0-9a-f]\{64\}\)$/\1/p' "$SOUT")
}

stop_server() {
	kill -TERM "$SPID" 2>/dev/null
	wait "$SPID"
	STOP_RC=$?
	SPID=
}

start_server
if [ -n "$SID" ]; then pass rdv_prints_peer_id; else fail rdv_prints_peer_id "no 'peer id' line"; cat "$SOUT" "$SOUT.err"; fi

peer() { # HOME ARGS...
	local home=$1
	shift
	"$PEER" --server "127.0.0.1:$SPORT" --server-id "$SID" --home "$home" --timeout 10 "$@"
}

HA=$(tmp_dir)/alice
HB=$(tmp_dir)/bob
check_out rdv_register_alice '^registered alice: ok$' peer "$HA" --register alice
check_out rdv_observed_address '^observed 127\.0\.0\.1:[0-9]+$' peer "$HA" --register alice
check_err rdv_taken_name 1 '' peer "$HB" --register alice
if printf '%s\n' "$OUT" | grep -q '^registered alice: the name is taken'; then pass rdv_taken_message; else fail rdv_taken_message "$OUT"; fi
check_out rdv_register_bob '^registered bob: ok$' peer "$HB" --register bob
AID=$(peer "$HA" --lookup alice | sed -n 's/^lookup alice \([0-9a-f]*\)$/\1/p')
check_out rdv_lookup_pinned "^lookup alice $AID\$" peer "$HB" --lookup alice --expect "$AID"
check_fails rdv_lookup_unknown peer "$HB" --lookup nobody

# garbage datagrams: dropped, and the server still serves
for i in $(seq 200); do
	head -c $((1 + RANDOM % 1400)) /dev/urandom >/dev/udp/127.0.0.1/"$SPORT" 2>/dev/null
done
printf '\x0b\x00\x00\x00\x00' >/dev/udp/127.0.0.1/"$SPORT"
if kill -0 "$SPID" 2>/dev/null; then pass rdv_survives_garbage; else fail rdv_survives_garbage "server died"; fi
check_out rdv_serves_after_garbage "^lookup bob " peer "$HA" --lookup bob

stop_server
if [ "$STOP_RC" -eq 0 ]; then pass rdv_sigterm_clean_exit; else fail rdv_sigterm_clean_exit "exit $STOP_RC"; fi

OLD_SID=$SID
start_server
if [ -n "$SID" ] && [ "$SID" = "$OLD_SID" ]; then pass rdv_restart_same_peer_id; else fail rdv_restart_same_peer_id "$OLD_SID -> $SID"; fi
check_out rdv_restart_keeps_registry "^lookup alice $AID\$" peer "$HB" --lookup alice --expect "$AID"
check_err rdv_restart_name_still_taken 1 '' peer "$HB" --register alice
check_out rdv_restart_own_name_again '^registered alice: ok$' peer "$HA" --register alice
stop_server

# a port in use: one line, exit 1
start_server
check_err rdv_port_in_use 1 'cannot start on 127\.0\.0\.1' "$RDV" --listen "127.0.0.1:$SPORT" --db "$(tmp_dir)"
stop_server
finish
