#!/bin/bash
# sys_fs.sh - the daemon and the FUSE file system with real mounts, local
# behaviour only (no network): mount/status/umount, one daemon per home,
# stale mounts after kill -9, the root listing with the TEST-ONLY switch
# -o test_online, writing and reading files back, directories, renames,
# bad names, and kill -9 during a copy publishing nothing.
# Needs root and /dev/fuse (skipped otherwise).  Prints PASS/FAIL lines.
. "$(dirname "$0")/lib.sh"

BFS=$BUILD/buddyfs
if [ ! -x "$BFS" ]; then
	fail fs_binary "$BFS is missing: build it first (make BUILD=$BUILD)"
	finish
fi
if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
	note "sys_fs.sh skipped: needs root and /dev/fuse"
	finish
fi
export HOME=$LIB_TMP/userhome
mkdir -p "$HOME"
unset BUDDYFS_HOME XDG_DATA_HOME

MOUNTS=()
# fs_cleanup - whatever happened, leave no mount and no daemon behind
# (before lib.sh removes $LIB_TMP: rm must never walk into a mount).
fs_cleanup() {
	local m pid
	for m in "${MOUNTS[@]}"; do
		pid=$(cat "$m.pid" 2>/dev/null)
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
		timeout 10 fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	for m in "$LIB_TMP"/*/h/daemon.lock; do
		[ -f "$m" ] || continue
		pid=$(cut -d' ' -f1 "$m" 2>/dev/null)
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	done
	return 0
}
trap 'fs_cleanup; chmod -R u+rwx "$LIB_TMP" 2>/dev/null; rm -rf "$LIB_TMP"' EXIT

T=$(tmp_dir)
H=$T/h
M=$T/mnt
MOUNTS+=("$M")
mkdir -p "$M"
"$BFS" --home "$H" init alice >/dev/null || { fail fs_init "init failed"; finish; }
PID_B=$(printf 'b%.0s' $(seq 64))

bfs() { timeout -k 5 60 "$BFS" --home "$H" "$@"; }
is_mounted() { grep -q " $1 fuse.buddyfs " /proc/self/mounts; }
daemon_pid() { cut -d' ' -f1 "$H/daemon.lock" 2>/dev/null; }

# ---- mount, status, umount ----
check_exit status_without_daemon 1 bfs status
check_err mount_missing_dir 1 "cannot mount on" bfs mount "$T/nope"
if [ "$(printf '%s\n' "$ERR" | wc -l)" -eq 1 ]; then pass mount_error_one_line; else fail mount_error_one_line "$ERR"; fi
check_exit mount_bad_option 2 bfs mount "$M" -o frobnicate=1
check_err mount_without_identity 1 "no identity" timeout 20 "$BFS" --home "$T/empty" mount "$M"
if is_mounted "$M"; then fail nothing_mounted_after_errors "$M is mounted"; else pass nothing_mounted_after_errors; fi

check mount "$BFS" --home "$H" mount "$M"
if is_mounted "$M"; then pass mount_live_on_return; else fail mount_live_on_return "not in /proc/self/mounts"; fi
check_out status_home "^home $H$" bfs status
check_out status_mount "^mount $M$" bfs status
check_out status_peer "^peer [0-9a-f]{64} alice$" bfs status
check_out status_transfers "^transfers none$" bfs status
check_err second_mount_refused 1 "already runs" bfs mount "$T"
check_out root_empty_without_online '^$' timeout 10 ls -A "$M"
check umount bfs umount "$M"
if is_mounted "$M"; then fail umount_gone "still mounted"; else pass umount_gone; fi
if [ -z "$(daemon_pid)" ] || ! kill -0 "$(daemon_pid)" 2>/dev/null; then pass daemon_exited; else fail daemon_exited "pid $(daemon_pid) alive"; fi
check_exit status_after_umount 1 bfs status
check_err umount_not_mounted 1 "not a buddyfs mount" bfs umount "$M"

# ---- stale mounts after kill -9 ----
check mount_again bfs mount "$M"
P=$(daemon_pid)
kill -9 "$P"
for _ in $(seq 50); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
run timeout 10 ls "$M"
if [ "$RC" -ne 0 ] && printf '%s' "$ERR" | grep -q "not connected"; then pass stale_after_kill9; else fail stale_after_kill9 "ls: $RC $ERR"; fi
check mount_cleans_stale bfs mount "$M"
check_out ls_after_stale_mount '^$' timeout 10 ls -A "$M"
P=$(daemon_pid)
kill -9 "$P"
for _ in $(seq 50); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
check umount_cleans_stale bfs umount "$M"
if is_mounted "$M"; then fail stale_umounted "still mounted"; else pass stale_umounted; fi

# ---- SIGTERM unmounts ----
check mount_for_sigterm bfs mount "$M"
P=$(daemon_pid)
kill -TERM "$P"
for _ in $(seq 100); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
if ! kill -0 "$P" 2>/dev/null && ! is_mounted "$M"; then pass sigterm_unmounts; else fail sigterm_unmounts "pid $P or mount left"; fi

# ---- relative paths: the daemon leaves the caller's directory ----
BFS_ABS=$(realpath "$BFS")
check mount_relative sh -c "cd '$T' && exec '$BFS_ABS' --home h mount mnt"
check_out status_absolute_paths "^mount $M$" bfs status
check umount_relative_without_home sh -c "cd '$T' && exec '$BFS_ABS' umount mnt"

# ---- the root: buddies, with the TEST-ONLY online switch ----
check buddy_add bfs buddy add bob --id "$PID_B"
check mount_test_online bfs mount "$M" -o test_online,timeout=5
check_out ls_shows_buddy '^bob$' timeout 10 ls "$M"
# the daemon raises the mount's read-ahead (1 MiB requests need more than the kernel's 128 KiB)
RA_DEV=$(awk -v m="$M" '$5 == m { d = $3 } END { print d }' /proc/self/mountinfo)
if [ ! -w /sys/class/bdi ]; then
	note "read-ahead not checked: /sys/class/bdi is read-only here"
elif [ "$(cat "/sys/class/bdi/$RA_DEV/read_ahead_kb" 2>/dev/null)" = 8192 ]; then
	pass readahead_raised
else
	fail readahead_raised "bdi $RA_DEV: $(cat "/sys/class/bdi/$RA_DEV/read_ahead_kb" 2>&1)"
fi
check_out status_buddy "^buddy bob $PID_B sharing=mutual online=yes$" bfs status
check_fails root_is_read_only timeout 10 mkdir "$M/carol"

# ---- files: write, read back, survive a remount ----
SRC=$T/src.bin
head -c 3000000 /dev/urandom >"$SRC"
sum() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }
check cp_in timeout 60 cp "$SRC" "$M/bob/a.bin"
if [ "$(sum "$M/bob/a.bin")" = "$(sum "$SRC")" ]; then pass read_back_sha256; else fail read_back_sha256 "differs"; fi
check_out stat_size '^3000000$' timeout 10 stat -c %s "$M/bob/a.bin"
echo hello >"$T/small"
check cp_small timeout 10 cp "$T/small" "$M/bob/small.txt"
check_out cat_small '^hello$' timeout 10 cat "$M/bob/small.txt"
check append timeout 10 sh -c "echo world >>'$M/bob/small.txt'"
check_out cat_appended '^hello world$' timeout 10 sh -c "cat '$M/bob/small.txt' | tr '\n' ' ' | sed 's/ \$//'"
check truncate timeout 10 truncate -s 2 "$M/bob/small.txt"
check_out cat_truncated '^he$' timeout 10 cat "$M/bob/small.txt"
check touch_empty timeout 10 touch "$M/bob/empty"
check_out empty_size '^0$' timeout 10 stat -c %s "$M/bob/empty"
check chmod timeout 10 chmod 600 "$M/bob/small.txt"
check_out chmod_seen '^600$' timeout 10 stat -c %a "$M/bob/small.txt"
check utimens timeout 10 touch -d '2001-02-03 04:05:06 UTC' "$M/bob/small.txt"
check_out utimens_seen '^981173106$' timeout 10 stat -c %Y "$M/bob/small.txt"
check_out statfs '^[0-9]+' timeout 10 stat -f -c %b "$M/bob"
check umount_with_files bfs umount "$M"
check mount_with_files bfs mount "$M" -o test_online
if [ "$(sum "$M/bob/a.bin")" = "$(sum "$SRC")" ]; then pass survives_remount; else fail survives_remount "differs"; fi
check_out small_survives '^he$' timeout 10 cat "$M/bob/small.txt"
check_out mode_survives '^600 981173106$' timeout 10 stat -c '%a %Y' "$M/bob/small.txt"
if ls "$H/objects" | grep -Eq '^[0-9a-f]{64}$'; then pass object_store_used; else fail object_store_used "$(ls "$H/objects")"; fi

# ---- directories, renames, unlink ----
check mkdir timeout 10 mkdir "$M/bob/d"
check mkdir_nested timeout 10 mkdir "$M/bob/d/e"
check cp_nested timeout 10 cp "$T/small" "$M/bob/d/e/f.txt"
check rename_dir timeout 10 mv "$M/bob/d" "$M/bob/d2"
check_out renamed_dir_content '^hello$' timeout 10 cat "$M/bob/d2/e/f.txt"
check_fails old_dir_gone timeout 10 stat "$M/bob/d"
check rename_file timeout 10 mv "$M/bob/a.bin" "$M/bob/d2/b.bin"
if [ "$(sum "$M/bob/d2/b.bin")" = "$(sum "$SRC")" ]; then pass renamed_file_content; else fail renamed_file_content "differs"; fi
check rename_over timeout 10 mv -f "$M/bob/empty" "$M/bob/small.txt"
check_out rename_over_result '^0$' timeout 10 stat -c %s "$M/bob/small.txt"
check_fails rmdir_not_empty timeout 10 rmdir "$M/bob/d2/e"
check unlink timeout 10 rm "$M/bob/d2/e/f.txt"
check rmdir timeout 10 rmdir "$M/bob/d2/e"
check_out ls_after_changes '^b.bin$' timeout 10 ls "$M/bob/d2"
check_fails rename_into_itself timeout 10 mv "$M/bob/d2" "$M/bob/d2/x"

# ---- a file being written is listed, and published when closed ----
exec 9>"$M/bob/open.txt"
echo partial >&9
check_out ls_shows_file_being_written '^open.txt$' timeout 10 sh -c "ls '$M/bob' | grep open"
exec 9>&-
check_out closed_file_published '^partial$' timeout 10 cat "$M/bob/open.txt"

# ---- bad names ----
LONG=$(printf 'n%.0s' $(seq 256))
OK255=$(printf 'n%.0s' $(seq 255))
check_err name_too_long 1 "too long" timeout 10 touch "$M/bob/$LONG"
check name_255_ok timeout 10 touch "$M/bob/$OK255"
check_fails dotdot_refused timeout 10 mkdir "$M/bob/.."

# ---- kill -9 during a large copy publishes nothing ----
BIG=$T/big.bin
head -c 200000000 /dev/zero | tr '\0' 'x' >"$BIG"
check cp_v1 timeout 10 cp "$T/small" "$M/bob/big.bin"
V1=$(sum "$T/small")
P=$(daemon_pid)
timeout 120 cp "$BIG" "$M/bob/big.bin" 2>/dev/null &
CP=$!
# wait until a few MB are staged, then kill the daemon mid-copy
for _ in $(seq 200); do
	s=$(du -sb "$H/staging" 2>/dev/null | cut -f1)
	[ "${s:-0}" -gt 20000000 ] && break
	sleep 0.05
done
kill -9 "$P"
wait "$CP" 2>/dev/null
for _ in $(seq 50); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
check mount_after_kill_mid_copy bfs mount "$M" -o test_online
got=$(sum "$M/bob/big.bin")
if [ "$got" = "$V1" ]; then pass kill9_keeps_previous_version; else fail kill9_keeps_previous_version "sha $got"; fi
if [ -z "$(ls -A "$H/staging")" ]; then pass staging_cleaned; else fail staging_cleaned "$(ls "$H/staging")"; fi
check cp_big_whole timeout 120 cp "$BIG" "$M/bob/big.bin"
if [ "$(sum "$M/bob/big.bin")" = "$(sum "$BIG")" ]; then pass big_read_back; else fail big_read_back "differs"; fi
# ---- publishing (hashing) runs beside new requests: newer versions win in order ----
check cp_big_then_small timeout 120 sh -c "cp '$BIG' '$M/bob/async.bin' && cp '$T/small' '$M/bob/async.bin'"
check_out newest_version_now '^hello$' timeout 10 cat "$M/bob/async.bin"
check cp_big_then_rename timeout 120 sh -c "cp '$BIG' '$M/bob/x.bin' && mv '$M/bob/x.bin' '$M/bob/y.bin'"
check cp_big_then_unlink timeout 120 sh -c "cp '$BIG' '$M/bob/z.bin' && rm '$M/bob/z.bin'"
check cp_big_then_append timeout 120 sh -c "cp '$BIG' '$M/bob/w.bin' && echo tail >>'$M/bob/w.bin'"

# umount without --home: the mount's source names the daemon's home
check final_umount timeout 60 "$BFS" umount "$M"
if is_mounted "$M"; then fail final_unmounted "still mounted"; else pass final_unmounted; fi
check remount_after_publishes bfs mount "$M" -o test_online
check_out newest_version_survives '^hello$' timeout 10 cat "$M/bob/async.bin"
if [ "$(sum "$M/bob/y.bin")" = "$(sum "$BIG")" ]; then pass renamed_while_publishing; else fail renamed_while_publishing "y.bin differs"; fi
check_fails renamed_old_name_gone timeout 10 stat "$M/bob/x.bin"
check_fails unlinked_while_publishing timeout 10 stat "$M/bob/z.bin"
W_SUM=$( (cat "$BIG"; echo tail) | sha256sum | cut -d' ' -f1)
if [ "$(sum "$M/bob/w.bin")" = "$W_SUM" ]; then pass appended_while_publishing; else fail appended_while_publishing "w.bin differs"; fi
check umount_after_publishes bfs umount "$M"
if [ -z "$(ls -A "$H/staging")" ]; then pass staging_empty_after_umount; else fail staging_empty_after_umount "$(ls "$H/staging")"; fi

# an ASan/UBSan build reports into the daemon's log (stderr after start-up)
if grep -q 'Sanitizer\|runtime error' "$H/daemon.log" 2>/dev/null; then
	fail daemon_log_clean "$(grep -m3 'Sanitizer\|runtime error\|#[0-9]' "$H/daemon.log")"
else
	pass daemon_log_clean
fi

# ---- valgrind: the CLI side, and a foreground daemon through a few operations ----
if ! have valgrind; then
	note "valgrind is not installed: the valgrind checks did not run"
elif grep -q '__asan_init\|__tsan_init' "$BFS"; then
	note "$BFS is built with a sanitizer, which watches it instead: no valgrind run"
else
	VG="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99"
	# shellcheck disable=SC2086
	{
		timeout -k 5 120 $VG "$BFS" --home "$H" mount "$M" -f -o test_online 2>"$T/vg.err" &
		VGP=$!
		for _ in $(seq 300); do is_mounted "$M" && break; sleep 0.1; done
		check_exit valgrind_status 0 $VG "$BFS" --home "$H" status
		check_exit valgrind_second_mount 1 $VG "$BFS" --home "$H" mount "$M"
		check vg_cp timeout 30 cp "$T/small" "$M/bob/vg.txt"
		check vg_ops timeout 30 sh -c "mkdir '$M/bob/vgd' && mv '$M/bob/vg.txt' '$M/bob/vgd/' && ls -lR '$M' >/dev/null && cat '$M/bob/vgd/vg.txt' >/dev/null && rm '$M/bob/vgd/vg.txt' && rmdir '$M/bob/vgd'"
		check_exit valgrind_umount 0 $VG "$BFS" --home "$H" umount "$M"
		wait "$VGP"
		RC=$?
		if [ "$RC" -eq 0 ]; then pass valgrind_daemon; else fail valgrind_daemon "exit $RC: $(head -c 600 "$T/vg.err")"; fi
	}
fi

# ---- ENOSPC while staging publishes nothing (a home on a small tmpfs) ----
T2=$(tmp_dir)
H2=$T2/h
M2=$T2/mnt
mkdir -p "$H2" "$M2"
if mount -t tmpfs -o size=24m buddyfs-test "$H2" 2>/dev/null; then
	MOUNTS+=("$M2" "$H2")
	"$BFS" --home "$H2" init carol >/dev/null
	"$BFS" --home "$H2" buddy add bob --id "$PID_B" >/dev/null
	check mount_small_home timeout 60 "$BFS" --home "$H2" mount "$M2" -o test_online
	check enospc_v1 timeout 10 cp "$T/small" "$M2/bob/f"
	check_fails enospc_cp_fails timeout 60 cp "$BIG" "$M2/bob/f"
	check_out enospc_keeps_previous '^hello$' timeout 10 cat "$M2/bob/f"
	check enospc_umount timeout 60 "$BFS" --home "$H2" umount "$M2"
	# the daemon may still be closing its files in the home
	for _ in $(seq 100); do umount "$H2" 2>/dev/null && break; sleep 0.1; done
else
	note "ENOSPC test skipped: cannot mount a tmpfs"
fi
finish
