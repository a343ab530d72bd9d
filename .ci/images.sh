#!/usr/bin/env bash
# make images: builds the lab's node image offline from Debian packages and
# caches it. The image carries only Debian's daemons (redis-server,
# redis-sentinel, haproxy, keepalived) and network tools; the project's own
# binaries (bin/redisha-*) are bind-mounted into containers by the lab, so a
# code change never rebuilds the image.
#
# Cache: the image carries the hash of every build input as the label
# redisha.inputs; the build runs again only when that hash changes.
#
# Environment:
#   REDISHA_NODE_IMAGE   image name (default redisha/node:bookworm). Set it to an
#                        image of your own (e.g. one built from upstream images)
#                        and this script only checks it is there (or pulls it).
#   REDISHA_SUITE        Debian suite (default: this machine's, else bookworm)
#   REDISHA_MIRROR       Debian mirror (default: the first one apt uses here)
#   REDISHA_IMAGES_FORCE=1  rebuild even when the hash matches
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_IMAGE=redisha/node:bookworm
IMAGE=${REDISHA_NODE_IMAGE:-$DEFAULT_IMAGE}
CACHE_DIR=${REDISHA_IMAGE_CACHE:-/var/cache/redisha/debootstrap}

say() { echo "images: $*"; }
die() { echo "images: $*" >&2; exit 1; }

docker version >/dev/null 2>&1 || die "no Docker engine answers; run 'make deps' (as root) first"

if [[ $IMAGE != "$DEFAULT_IMAGE" && -z ${REDISHA_IMAGES_BUILD:-} ]]; then
	# A user-chosen image: never build over it.
	if docker image inspect "$IMAGE" >/dev/null 2>&1; then
		say "using $IMAGE (REDISHA_NODE_IMAGE)"
	else
		say "pulling $IMAGE (REDISHA_NODE_IMAGE)"
		docker pull "$IMAGE" || die "cannot find or pull $IMAGE; unset REDISHA_NODE_IMAGE to build the default image offline"
	fi
	exit 0
fi

# Packages of the node image. tini is in the image for users who run it by
# hand; the lab itself asks Docker for its init (docker-init), which works for
# any image.
PACKAGES=(
	redis-server redis-sentinel redis-tools
	haproxy keepalived
	iproute2 nftables iptables
	procps psmisc tini ca-certificates
)

host_suite() {
	. /etc/os-release 2>/dev/null || true
	echo "${VERSION_CODENAME:-bookworm}"
}

# The first Debian mirror apt is configured with (deb822 or one-line format).
host_mirror() {
	local m=""
	if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
		m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources)
	fi
	if [[ -z $m && -r /etc/apt/sources.list ]]; then
		m=$(awk '/^deb / && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' /etc/apt/sources.list)
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

SUITE=${REDISHA_SUITE:-$(host_suite)}
# Ubuntu keeps redis, haproxy and keepalived in universe.
COMPONENTS=main
if grep -qi '^ID=ubuntu' /etc/os-release 2>/dev/null; then COMPONENTS=main,universe; fi
MIRROR=${REDISHA_MIRROR:-$(host_mirror)}
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)

# Everything that changes the image's content goes into the hash.
INPUTS=$(printf '%s\n' "script=$(sha256sum "$0" | cut -d' ' -f1)" "suite=$SUITE" "mirror=$MIRROR" "arch=$ARCH" "components=$COMPONENTS" "packages=${PACKAGES[*]}")
HASH=$(sha256sum <<<"$INPUTS" | cut -c1-16)

current=$(docker image inspect -f '{{index .Config.Labels "redisha.inputs"}}' "$IMAGE" 2>/dev/null || true)
if [[ $current == "$HASH" && -z ${REDISHA_IMAGES_FORCE:-} ]]; then
	say "$IMAGE is up to date (inputs $HASH)"
	exit 0
fi

[[ $(id -u) -eq 0 ]] || die "building $IMAGE needs root (debootstrap); run as root or set REDISHA_NODE_IMAGE to an existing image"
command -v debootstrap >/dev/null || die "debootstrap is missing; run 'make deps'"

say "building $IMAGE from $SUITE at $MIRROR (inputs $HASH${current:+, was $current})"
start=$(date +%s)
mkdir -p "$CACHE_DIR"
ROOT=$(mktemp -d /var/tmp/redisha-rootfs.XXXXXX)
trap 'rm -rf --one-file-system "$ROOT"' EXIT

include=$(IFS=,; echo "${PACKAGES[*]}")
log=$CACHE_DIR/debootstrap.log
if ! debootstrap --variant=minbase --arch="$ARCH" --include="$include" --components="$COMPONENTS" \
	--cache-dir="$CACHE_DIR" "$SUITE" "$ROOT" "$MIRROR" >"$log" 2>&1; then
	tail -n 30 "$log" >&2
	die "debootstrap failed (full log: $log)"
fi
say "debootstrap done in $(($(date +%s) - start))s"

# Debian's packages ship daemons set up for systemd; in the lab the stack's
# own start script runs them in the foreground, so only trim the image.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
	"$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
	"$ROOT"/usr/share/locale/* "$ROOT"/var/log/*.log
# Debian's redis.conf and haproxy.cfg are replaced by the stack's rendered
# configs at container create; the package defaults stay for reference.
: >"$ROOT"/etc/hostname

old=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
tar -C "$ROOT" --numeric-owner -c . | docker import \
	--change "LABEL redisha.inputs=$HASH" \
	--change "LABEL redisha.image=node" \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'ENTRYPOINT ["/usr/bin/tini", "--"]' \
	--change 'CMD ["/bin/sleep", "infinity"]' \
	- "$IMAGE" >/dev/null
new=$(docker image inspect -f '{{.Id}}' "$IMAGE")
if [[ -n $old && $old != "$new" ]]; then
	docker image rm "$old" >/dev/null 2>&1 || true
fi
say "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')) in $(($(date +%s) - start))s"
