#!/usr/bin/env bash
# Enforcement benchmark: how fast a decision handed to the nftables backend
# steers a live attacker to the honeypot (and back when deleted), and what
# snapshots and deltas of 1 to 100,000 decisions cost, against the per-IP
# anchor (one nft process per element). Not a test: run by hand as root,
# record the figures in docs/benchmarks.md; do not run it while anything
# compiles (2 shared cores).
#
#   sudo bash bench/enforce/run.sh [TRIALS]
#
# Topology (the lab notes' three namespaces): the attacker's prober in att_S
# connects to 10.99.0.1:22 in host_S, where the controller drives the
# backend (nft run directly, as the agent runs it) and a real service
# answers "real"; the honeypot in hp_S answers "honeypot" on :2222.
# Driver: crates/mirage-agent/examples/enforce_bench.rs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
TRIALS="${1:-200}"
S="$$$RANDOM"
ATT="eatt_$S" HOST="ehost_$S" HP="ehp_$S"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

(cd "$root" && cargo build --release -q -p mirage-agent --example enforce_bench)
BIN="$CARGO_TARGET_DIR/release/examples/enforce_bench"

cleanup() {
  # Everything started inside our namespaces, by PID.
  for n in "$ATT" "$HOST" "$HP"; do
    for p in $(ip netns pids "$n" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  done
  wait 2>/dev/null || true
  for n in "$ATT" "$HOST" "$HP"; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT

for n in "$ATT" "$HOST" "$HP"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n "$HOST" link add h-att type veth peer name eth0 netns "$ATT"
ip -n "$HOST" link add h-hp type veth peer name eth0 netns "$HP"
ip -n "$HOST" addr add 10.99.0.1/24 dev h-att; ip -n "$HOST" link set h-att up
ip -n "$HOST" addr add 10.98.0.1/24 dev h-hp; ip -n "$HOST" link set h-hp up
ip -n "$ATT" addr add 10.99.0.2/24 dev eth0; ip -n "$ATT" link set eth0 up
ip -n "$ATT" route add default via 10.99.0.1
ip -n "$HP" addr add 10.98.0.2/24 dev eth0; ip -n "$HP" link set eth0 up
ip -n "$HP" route add default via 10.98.0.1
ip netns exec "$HOST" sysctl -qw net.ipv4.ip_forward=1

ip netns exec "$HOST" "$BIN" serve real 22 &
ip netns exec "$HP" "$BIN" serve honeypot 2222 &
sleep 0.5

echo "== $(date -u +%FT%TZ) on $(nproc) cores, $(uname -r), $(nft --version), load $(cut -d' ' -f1-3 /proc/loadavg)"
ip netns exec "$HOST" "$BIN" control "$ATT" "$TRIALS"
