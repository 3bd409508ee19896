#!/bin/sh
# deps.sh - install the Debian packages buddyfs builds, tests and benches
# with, when any is missing.  Does nothing when all are there.
set -eu

PKGS="gcc make pkg-config libfuse3-dev fuse3 libsodium-dev liblmdb-dev
clang libclang-rt-dev valgrind nftables iproute2 util-linux procps psmisc
coreutils python3"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
		|| missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "deps: missing packages:$missing; run 'make deps' as root" >&2
		exit 1
	}
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
