#!/bin/bash
# Captures real keepalived VRRP adverts (v2 and v3) between two network
# namespaces on a private bridge; writes v2.pcap and v3.pcap in $OUT.
set -euo pipefail
OUT=${OUT:-$(pwd)}
BR=rhv-capbr
cleanup() {
  for p in "$OUT"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
  ip netns del rhv-cap1 2>/dev/null || true
  ip netns del rhv-cap2 2>/dev/null || true
  ip link del $BR 2>/dev/null || true
  iptables -D DOCKER-USER -i $BR -o $BR -j ACCEPT 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip link add $BR type bridge && ip link set $BR up
iptables -I DOCKER-USER -i $BR -o $BR -j ACCEPT 2>/dev/null || true
for i in 1 2; do
  ip netns add rhv-cap$i
  ip link add rhv-capv$i type veth peer name eth0 netns rhv-cap$i
  ip link set rhv-capv$i master $BR up
  ip -n rhv-cap$i addr add 10.78.0.20$i/24 dev eth0
  ip -n rhv-cap$i link set eth0 up
  ip -n rhv-cap$i link set lo up
done
run() { # version interval
  local v=$1 int=$2
  for i in 1 2; do
    cat > "$OUT/ka$i.conf" <<CONF
global_defs {
  router_id cap$i
  vrrp_version $v
  script_user root
  enable_script_security
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority $((100 + i * 10))
  advert_int $int
  virtual_ipaddress {
    10.78.0.100/24
    10.78.0.101/24
  }
}
CONF
    ip netns exec rhv-cap$i keepalived -n -l -D -P -G -f "$OUT/ka$i.conf" \
      -p "$OUT/ka$i.main" -r "$OUT/ka$i.vrrp" -c "$OUT/ka$i.chk" > "$OUT/ka$i-v$v.log" 2>&1 &
    echo $! > "$OUT/ka$i.pid"
  done
  tcpdump -U -i $BR -w "$OUT/v$v.pcap" 'ip proto 112' >/dev/null 2>&1 &
  local td=$!
  sleep 5
  # graceful stop of each master in turn produces priority-0 adverts
  kill -TERM "$(cat "$OUT/ka2.pid")"; sleep 3
  kill -TERM "$(cat "$OUT/ka1.pid")"; sleep 0.5
  kill $td; wait $td || true
  for i in 1 2; do rm -f "$OUT/ka$i.pid"; done
  sleep 0.5
}
run 2 1
run 3 0.5
