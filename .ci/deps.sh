#!/usr/bin/env bash
# make deps: installs what the lab and the tests need and makes sure a Docker
# engine answers. Idempotent and fast (well under 2 s) when everything is there.
#
# As root on Debian/Ubuntu it installs missing packages with apt-get and starts
# dockerd when no engine answers (log: /var/log/redisha-dockerd.log).
# Anywhere else it prints exactly what is missing and exits non-zero.
set -uo pipefail

# Packages the lab, the image build and the tests use. Keep in sync with
# docs/lab.md. The binaries on the right are how "present" is decided quickly,
# without asking dpkg about every package.
declare -A NEED=(
	[docker.io]=dockerd
	[redis-server]=redis-server
	[redis-sentinel]=redis-sentinel
	[redis-tools]=redis-cli
	[haproxy]=haproxy
	[keepalived]=keepalived
	[nftables]=nft
	[iproute2]=ip
	[iptables]=iptables
	[debootstrap]=debootstrap
	[psmisc]=killall
	[procps]=pgrep
	[tini]=tini
	[tcpdump]=tcpdump
	[tshark]=tshark
	[strace]=strace
	[chromium]=chromium
	[python3-redis]=:python3-redis
	[ca-certificates]=:ca-certificates
	[git]=git
	[jq]=jq
	[make]=make
)

DOCKERD_LOG=${REDISHA_DOCKERD_LOG:-/var/log/redisha-dockerd.log}

say() { echo "deps: $*"; }
die() { echo "deps: $*" >&2; exit 1; }

missing=()
for pkg in "${!NEED[@]}"; do
	probe=${NEED[$pkg]}
	if [[ $probe == :* ]]; then
		# No binary to look for: ask dpkg (only for these few).
		dpkg-query -W -f='${Status}' "${probe#:}" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
	else
		command -v "$probe" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$probe" >/dev/null 2>&1 || missing+=("$pkg")
	fi
done
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sed '/^$/d' | sort)

is_debian() { [[ -r /etc/os-release ]] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; }

if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]] || ! is_debian || ! command -v apt-get >/dev/null; then
		echo "deps: missing packages: ${missing[*]}" >&2
		if is_debian; then
			echo "deps: install them as root: apt-get install -y ${missing[*]}" >&2
		else
			echo "deps: this script installs them only as root on Debian/Ubuntu; install the equivalents of: ${missing[*]}" >&2
		fi
		exit 1
	fi
	say "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Only update the package lists when apt cannot find a package as it is.
	if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
		apt-get update -q || die "apt-get update failed"
		apt-get install -y --no-install-recommends "${missing[@]}" || die "apt-get install failed: ${missing[*]}"
	fi
	# Debian's packages start their daemons (redis, haproxy, keepalived) on the
	# host; the lab runs them in containers only, so stop the host copies.
	for svc in redis-server redis-sentinel haproxy keepalived; do
		if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
			systemctl disable --now "$svc" >/dev/null 2>&1 || true
		fi
	done
fi

docker_answers() { timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if docker_answers; then
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	die "no Docker engine answers on ${DOCKER_HOST:-unix:///var/run/docker.sock}; start one (as root: dockerd) or set DOCKER_HOST"
fi

# Prefer the service manager when there is one; otherwise run dockerd ourselves.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
	systemctl start docker >/dev/null 2>&1 || true
fi
if ! docker_answers; then
	if pid=$(pgrep -x dockerd); then
		say "dockerd (pid ${pid//$'\n'/ }) is running but does not answer yet; waiting"
	else
		say "starting dockerd (log: $DOCKERD_LOG)"
		mkdir -p "$(dirname "$DOCKERD_LOG")"
		# setsid: the engine must outlive make and this shell's process group.
		setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
		disown || true
	fi
	for _ in $(seq 1 120); do
		docker_answers && break
		sleep 0.5
	done
fi
docker_answers || die "dockerd did not answer within 60 s; see $DOCKERD_LOG"
say "docker engine $(docker version --format '{{.Server.Version}}') is up"
