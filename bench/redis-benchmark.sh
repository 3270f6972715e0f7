#!/usr/bin/env bash
# Benchmark: the Redis honeypot (event logging on) against a real
# redis-server, same client, same run, same private network namespace.
#
#   sudo bash bench/redis-benchmark.sh [REQUESTS] [CLIENTS]
#
# Runs `redis-benchmark -t ping,set,get -c CLIENTS -n REQUESTS` (defaults
# 200000 and 50) against both and prints requests/s and the ratio
# honeypot/real per test. Both servers and the load run inside a fresh
# namespace, so conntrack in the root namespace is not what we measure.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200000}"
C="${2:-50}"
S="$$$RANDOM"
NS="mbench_$S"
TMP="$(mktemp -d)"
REAL_PORT=16400
HP_PORT=16401

cargo build --release -q -p mirage
BIN="$PWD/target/release/mirage"

pids=()
cleanup() {
  # Everything started inside the namespace, by PID (the servers run under
  # `ip netns exec` in subshells, so $! alone would miss them).
  for p in $(ip netns pids "$NS" 2>/dev/null) "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
inns() { ip netns exec "$NS" "$@"; }

inns redis-server --port "$REAL_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" --daemonize no >"$TMP/redis.log" 2>&1 &
pids+=($!)
inns "$BIN" sensor --service "redis=127.0.0.1:$HP_PORT" --log-dir "$TMP/events" --name bench >"$TMP/mirage.log" 2>&1 &
pids+=($!)
for port in $REAL_PORT $HP_PORT; do
  for _ in $(seq 100); do inns redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

run() { # port -> csv lines test,rps
  inns redis-benchmark -p "$1" -t ping,set,get -c "$C" -n "$N" --csv 2>/dev/null \
    | tail -n +2 | tr -d '"' | cut -d, -f1,2
}
echo "redis-benchmark -t ping,set,get -c $C -n $N   ($(nproc) cores, $(date -u +%F))"
echo "real:     $(redis-server --version | cut -d' ' -f3)"
echo "honeypot: mirage $("$BIN" --version | cut -d' ' -f2), version 5.0.7 emulated, logging every command"
real="$(run $REAL_PORT)"
hp="$(run $HP_PORT)"
printf '%-12s %14s %14s %7s\n' test real_rps honeypot_rps ratio
join -t, <(echo "$real" | sort) <(echo "$hp" | sort) | while IFS=, read -r t r h; do
  printf '%-12s %14.0f %14.0f %7.2f\n' "$t" "$r" "$h" "$(echo "$h / $r" | bc -l)"
done
events=$(cat "$TMP"/events/*.jsonl | wc -l)
echo "honeypot events written: $events"
