#!/bin/bash
# sys_cli.sh - the buddyfs command line, offline: init, id, buddy
# add/list/remove, names, homes (refused: symbolic links, foreign non-empty
# directories, open key files), help and exit statuses, and a valgrind run.
# Uses $BUILD/buddyfs; prints PASS/FAIL lines (tests/lib.sh).
. "$(dirname "$0")/lib.sh"

BFS=$BUILD/buddyfs
if [ ! -x "$BFS" ]; then
	fail cli_binary "$BFS is missing: build it first (make BUILD=$BUILD)"
	finish
fi
# Keep the user's real homes out of reach.
export HOME=$LIB_TMP/userhome
mkdir -p "$HOME"
unset BUDDYFS_HOME XDG_DATA_HOME

HEX64='[0-9a-f]{64}'
PID_B=$(printf 'b%.0s' $(seq 64))
PID_C=$(printf 'c%.0s' $(seq 64))

# ---- init and id ----
H=$(tmp_dir)/home
check_out init_prints_peer_id "^peer id $HEX64 \(alice\)$" "$BFS" --home "$H" init alice
PEER=$(printf '%s\n' "$OUT" | sed -n 's/^peer id \([0-9a-f]*\) .*/\1/p')
if [ "$(printf '%s\n' "$OUT" | wc -l)" -eq 1 ]; then pass init_one_line; else fail init_one_line "$OUT"; fi

mode() { stat -c %a "$1"; }
if [ "$(mode "$H")" = 700 ]; then pass home_mode_0700; else fail home_mode_0700 "mode $(mode "$H")"; fi
if [ "$(mode "$H/identity.key")" = 600 ]; then pass key_mode_0600; else fail key_mode_0600 "mode $(mode "$H/identity.key" 2>&1)"; fi

HW=$(tmp_dir)
chmod 755 "$HW"
check_out init_existing_home "\(wide\)$" "$BFS" --home "$HW" init wide
if [ "$(mode "$HW")" = 700 ]; then pass existing_home_tightened_0700; else fail existing_home_tightened_0700 "mode $(mode "$HW")"; fi

check_out id_prints_name_and_peer_id "^alice $PEER$" "$BFS" --home "$H" id

# the peer id is SHA-256 of the certificate, which is 0x01 + 32 bytes
cert_hex=$(od -An -tx1 -v "$H/cert" | tr -d ' \n')
if [ "${#cert_hex}" -eq 66 ] && [ "${cert_hex:0:2}" = 01 ] &&
	[ "$(sha256sum "$H/cert" | cut -d' ' -f1)" = "$PEER" ]; then
	pass peer_id_is_sha256_of_cert
else
	fail peer_id_is_sha256_of_cert "cert $cert_hex, peer id $PEER"
fi

cp "$H/identity.key" "$LIB_TMP/key.before"
check_err second_init_refused 1 "already holds an identity.*--home" "$BFS" --home "$H" init bob
if printf '%s\n' "$ERR" | grep -qF "$H"; then pass second_init_names_home; else fail second_init_names_home "$ERR"; fi
check second_init_key_unchanged cmp "$LIB_TMP/key.before" "$H/identity.key"
check_out id_after_second_init "^alice $PEER$" "$BFS" --home "$H" id

# ---- names ----
check_out name_case_folded "^peer id $HEX64 \(alice\)$" "$BFS" --home "$(tmp_dir)/h" init Alice
check_out name_allowed_chars "\(a.b_c-9\)$" "$BFS" --home "$(tmp_dir)/h" init a.b_c-9
NAME32=$(printf 'n%.0s' $(seq 32))
check_out name_32_chars "\($NAME32\)$" "$BFS" --home "$(tmp_dir)/h" init "$NAME32"
i=0
for bad in "a/b" "" "${NAME32}x" ".." "." "é" "a b" "tab	x"; do
	i=$((i + 1))
	hb=$(tmp_dir)/h
	check_err "bad_name_refused_$i" 2 "bad name '.*'" "$BFS" --home "$hb" init "$bad"
	if [ -e "$hb/identity.key" ]; then fail "bad_name_no_identity_$i" "made $hb"; fi
done
check_err bad_name_quoted 2 "bad name 'a/b'" "$BFS" --home "$(tmp_dir)/h" init a/b
check_err bad_name_newline_escaped 2 "bad name 'x.x0ay'" "$BFS" --home "$(tmp_dir)/h" init "$(printf 'x\ny')"
if [ "$(printf '%s\n' "$ERR" | wc -l)" -eq 1 ]; then pass bad_name_message_one_line; else fail bad_name_message_one_line "$ERR"; fi
check_out name_after_dashdash "\(-dash\)$" "$BFS" --home "$(tmp_dir)/h" init -- -dash

# ---- rendezvous option ----
HR=$(tmp_dir)/h
# (loopback names only: nothing answers there, so init keeps the identity
# and warns after its registration attempt times out)
check_out init_rendezvous "^peer id $HEX64 \(rdvuser\)$" "$BFS" --home "$HR" init rdvuser --rendezvous LocalHost
check_out rendezvous_default_port '^rendezvous localhost:1935$' cat "$HR/config"
check_out init_rendezvous_v6 "\(v6\)$" "$BFS" --home "$(tmp_dir)/h" init v6 --rendezvous '[::1]:7000'
for bad in "host:0" "host:65536" ":1935" "host:" "::1" "host:x"; do
	check_err "bad_rendezvous_${bad//[^a-z0-9]/_}" 2 "bad rendezvous '" \
		"$BFS" --home "$(tmp_dir)/h" init x --rendezvous "$bad"
done

# ---- where the home is ----
HB=$(tmp_dir)/envhome
check_out buddyfs_home_init "\(carol\)$" env BUDDYFS_HOME="$HB" "$BFS" init carol
if [ -f "$HB/identity.key" ]; then pass buddyfs_home_used; else fail buddyfs_home_used "nothing in $HB"; fi
check_out buddyfs_home_id "^carol $HEX64$" env BUDDYFS_HOME="$HB" "$BFS" id
check_out home_option_beats_env "^alice $PEER$" env BUDDYFS_HOME="$HB" "$BFS" --home "$H" id
check_out home_option_after_command "^alice $PEER$" "$BFS" id --home "$H"
check_out home_option_equals "^alice $PEER$" "$BFS" --home="$H" id
X=$(tmp_dir)
check_out xdg_data_home_init "\(dave\)$" env XDG_DATA_HOME="$X" "$BFS" init dave
if [ -f "$X/buddyfs/identity.key" ]; then pass xdg_data_home_used; else fail xdg_data_home_used "nothing in $X/buddyfs"; fi
check_out default_home_init "\(erin\)$" "$BFS" init erin
if [ -f "$HOME/.local/share/buddyfs/identity.key" ]; then pass default_home_used; else fail default_home_used "nothing in $HOME/.local/share/buddyfs"; fi

# ---- without an identity ----
E=$(tmp_dir)/empty
mkdir -p "$E"
check_err no_identity_id 1 "run 'buddyfs init" "$BFS" --home "$E" id
check_err no_identity_buddy_list 1 "run 'buddyfs init" "$BFS" --home "$E" buddy list
check_err no_identity_buddy_add 1 "run 'buddyfs init" "$BFS" --home "$E" buddy add bob --id "$PID_B"
check_err no_identity_buddy_remove 1 "run 'buddyfs init" "$BFS" --home "$E" buddy remove bob
check_err no_home_dir_id 1 "run 'buddyfs init" "$BFS" --home "$E/missing" id
if [ -z "$(ls -A "$E")" ]; then pass no_identity_leaves_nothing; else fail no_identity_leaves_nothing "$(ls -A "$E")"; fi

# ---- damaged identity files: a clear error, never a crash ----
HD=$(tmp_dir)/h
"$BFS" --home "$HD" init damaged >/dev/null
printf 'garbage' >"$HD/identity.key"
check_err damaged_key_clear_error 1 "identity\.key: malformed" "$BFS" --home "$HD" id
head -c 20 /dev/urandom >"$HD/cert"
check_err damaged_cert_or_key 1 "cannot load the identity" "$BFS" --home "$HD" buddy list

# ---- refused homes and keys (the identity module's hardening) ----
# a home that is a symbolic link: refused, its target keeps its mode and files
HT=$(tmp_dir)
chmod 755 "$HT"
printf 'Host *\n' >"$HT/config"
ln -s "$HT" "$LIB_TMP/linkhome"
check_err symlink_home_refused 1 "linkhome is a symbolic link.*--home" "$BFS" --home "$LIB_TMP/linkhome" init mallory
if [ "$(mode "$HT")" = 755 ] && [ "$(cat "$HT/config")" = 'Host *' ] && [ ! -e "$HT/identity.key" ] &&
	[ ! -e "$HT/cert" ]; then
	pass symlink_home_target_untouched
else
	fail symlink_home_target_untouched "mode $(mode "$HT"), $(ls -A "$HT" | tr '\n' ' ')"
fi
check_err symlink_home_id_refused 1 "is a symbolic link" "$BFS" --home "$LIB_TMP/linkhome" id
rm -f "$LIB_TMP/linkhome"

# a directory with files of its own (say ~/.ssh): refused, left as it was
check_err nonempty_home_refused 1 "$HT is not empty and does not look like a buddyfs home.*--home" \
	"$BFS" --home "$HT" init mallory
if [ "$(mode "$HT")" = 755 ] && [ "$(cat "$HT/config")" = 'Host *' ] && [ ! -e "$HT/cert" ]; then
	pass nonempty_home_untouched
else
	fail nonempty_home_untouched "mode $(mode "$HT"), $(ls -A "$HT" | tr '\n' ' ')"
fi

# a key file that others may read: refused with the path, its mode and the fix
HK=$(tmp_dir)/h
"$BFS" --home "$HK" init keyuser >/dev/null
chmod 644 "$HK/identity.key"
check_err open_key_refused 1 "$HK/identity.key has mode 0644.*chmod 600 $HK/identity.key" "$BFS" --home "$HK" id
chmod 600 "$HK/identity.key"
check_out open_key_fixed_by_chmod "^keyuser $HEX64$" "$BFS" --home "$HK" id

# a key file that is a symbolic link is not followed
mv "$HK/identity.key" "$LIB_TMP/key.elsewhere"
ln -s "$LIB_TMP/key.elsewhere" "$HK/identity.key"
check_err symlinked_key_refused 1 "identity\.key" "$BFS" --home "$HK" id
rm -f "$HK/identity.key"
mv "$LIB_TMP/key.elsewhere" "$HK/identity.key"

# ---- buddies ----
check_out buddy_list_empty '^NAME +PEERID +SHARING +PRESENCE +ADDRESS +PATH$' "$BFS" --home "$H" buddy list
check_out buddy_add "^added bob $PID_B" "$BFS" --home "$H" buddy add bob --id "$PID_B"
check_out buddy_add_again_idempotent "bob $PID_B" "$BFS" --home "$H" buddy add bob --id "$PID_B"
check_out buddy_add_upper_hex_folded "bob $PID_B" "$BFS" --home "$H" buddy add BOB --id "${PID_B^^}"
check_out buddy_add_second "^added carol $PID_C" "$BFS" --home "$H" buddy add carol --id="$PID_C"
check_out buddy_list_rows "^bob +$PID_B +pending +offline +- +-$" "$BFS" --home "$H" buddy list
rows=$(printf '%s\n' "$OUT" | wc -l)
if [ "$rows" -eq 3 ] && printf '%s\n' "$OUT" | head -n 1 | grep -q '^NAME'; then
	pass buddy_list_header_and_rows
else
	fail buddy_list_header_and_rows "$OUT"
fi
check_err buddy_pinned_conflict 1 "bob is pinned to $PID_B; remove bob first" \
	"$BFS" --home "$H" buddy add bob --id "$PID_C"
check_err buddy_same_id_other_name 1 "already" "$BFS" --home "$H" buddy add robert --id "$PID_B"
check_err buddy_self_refused 1 "your own peer id" "$BFS" --home "$H" buddy add me --id "$PEER"
for bad in xyz "${PID_B:0:63}" "${PID_B}0" "${PID_B:0:63}g" ""; do
	check_err "buddy_bad_peer_id_${#bad}" 2 "bad peer id '" "$BFS" --home "$H" buddy add zed --id "$bad"
done
check_err buddy_bad_name 2 "bad buddy name 'b/c'" "$BFS" --home "$H" buddy add b/c --id "$PID_C"
check_err buddy_add_needs_id 1 "rendezvous.*--id" "$BFS" --home "$H" buddy add frank
check_out buddy_remove "^removed bob$" "$BFS" --home "$H" buddy remove bob
check_err buddy_remove_missing 1 "bob is not a buddy" "$BFS" --home "$H" buddy remove bob
run "$BFS" --home "$H" buddy list
if [ "$RC" -eq 0 ] && ! printf '%s\n' "$OUT" | grep -q '^bob ' && printf '%s\n' "$OUT" | grep -q '^carol '; then
	pass buddy_list_after_remove
else
	fail buddy_list_after_remove "$OUT"
fi
check_err buddy_readd_same_id_as_carol 1 "carol" "$BFS" --home "$H" buddy add bob --id "$PID_C"

# ---- help, usage errors, daemon commands ----
check_out help_program '^usage: buddyfs' "$BFS" --help
check_out help_short '^usage: buddyfs' "$BFS" -h
check_out help_command '^usage: buddyfs' "$BFS" help
for c in init id buddy "buddy add" "buddy remove" "buddy list" mount umount status help; do
	# shellcheck disable=SC2086
	check_out "help_${c// /_}" "^usage: buddyfs .*$c" "$BFS" $c --help
	# shellcheck disable=SC2086
	check_out "help_via_help_${c// /_}" "^usage: buddyfs .*$c" "$BFS" help $c
done
check_out help_mentions_exit_status 'Exit status' "$BFS" --help
check_err no_command_is_usage 2 'usage: buddyfs' "$BFS"
check_err unknown_command 2 "unknown command 'frobnicate'.*--help" "$BFS" frobnicate
check_err unknown_option 2 "unknown option '--frob'.*--help" "$BFS" --frob id
check_err unknown_command_option 2 "unknown option '--frob'.*buddyfs init --help" "$BFS" init x --frob
check_err unknown_buddy_command 2 "unknown command 'buddy frob'" "$BFS" buddy frob
check_err buddy_without_subcommand 2 "needs a subcommand" "$BFS" buddy
check_err init_without_name 2 "needs NAME" "$BFS" init
check_err init_extra_argument 2 "unexpected argument 'y'" "$BFS" init x y
check_err home_without_value 2 "--home needs a directory" "$BFS" --home
check_err home_empty_value 2 "--home needs a directory" "$BFS" --home= id
check_err help_unknown 2 "no command 'nope'" "$BFS" help nope
check_err mount_missing_dir 1 "cannot mount on" "$BFS" --home "$H" mount "$LIB_TMP/mnt"
check_err umount_missing_dir 1 "cannot unmount" "$BFS" --home "$H" umount "$LIB_TMP/mnt"
check_err status_no_daemon 1 "no buddyfs daemon runs" "$BFS" --home "$H" status
check_exit mount_needs_dir 2 "$BFS" --home "$H" mount
check_err mount_bad_port 2 "bad mount option 'port=65536'" "$BFS" --home "$H" mount "$LIB_TMP" -o port=65536
check_err mount_bind_needs_number 2 "bad mount option 'bind=localhost'" "$BFS" --home "$H" mount "$LIB_TMP" -o bind=localhost
check_out mount_help_network 'rendezvous=HOST:PORT' "$BFS" mount --help
if [ -w /dev/full ]; then
	check_err stdout_write_error 1 "cannot write" sh -c "exec \"\$0\" --home \"\$1\" id >/dev/full" "$BFS" "$H"
fi

# ---- valgrind: no leaks, no errors ----
if ! have valgrind; then
	note "valgrind is not installed: the valgrind checks did not run"
elif grep -q __asan_init "$BFS"; then
	note "$BFS is built with AddressSanitizer, which watches it instead: no valgrind run"
else
	HV=$(tmp_dir)/h
	ln -s "$HV" "$HV.link"
	VG="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99"
	# shellcheck disable=SC2086
	{
		check_exit valgrind_init 0 $VG "$BFS" --home "$HV" init val
		check_exit valgrind_id 0 $VG "$BFS" --home "$HV" id
		check_exit valgrind_buddy_add 0 $VG "$BFS" --home "$HV" buddy add bob --id "$PID_B"
		check_exit valgrind_buddy_add_again 0 $VG "$BFS" --home "$HV" buddy add bob --id "$PID_B"
		check_exit valgrind_buddy_conflict 1 $VG "$BFS" --home "$HV" buddy add bob --id "$PID_C"
		check_exit valgrind_buddy_list 0 $VG "$BFS" --home "$HV" buddy list
		check_exit valgrind_buddy_remove 0 $VG "$BFS" --home "$HV" buddy remove bob
		check_exit valgrind_second_init 1 $VG "$BFS" --home "$HV" init val
		check_exit valgrind_bad_name 2 $VG "$BFS" --home "$(tmp_dir)/h" init a/b
		check_exit valgrind_no_identity 1 $VG "$BFS" --home "$E" id
		check_exit valgrind_help 0 $VG "$BFS" buddy add --help
		check_exit valgrind_symlink_home 1 $VG "$BFS" --home "$HV.link" init val
		check_exit valgrind_nonempty_home 1 $VG "$BFS" --home "$HT" init val
		chmod 640 "$HV/identity.key"
		check_exit valgrind_open_key 1 $VG "$BFS" --home "$HV" id
		chmod 600 "$HV/identity.key"
	}
fi

finish
