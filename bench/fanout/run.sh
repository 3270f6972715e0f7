#!/usr/bin/env bash
# Decisions to enforcement on many agents (issue 4): one `mirage server` and
# AGENTS agents (default 10), each agent in its own network namespace with
# its own nftables table, linked to the server's namespace by a veth pair.
# Batches of 1, 1,000 and 100,000 decisions are committed to the server's
# store in one transaction each (as `decisions add` does, in bulk), and the
# time until every agent's nft set holds them is measured. Not a test: run
# by hand as root and record the figures in docs/benchmarks.md.
#
#   bash bench/fanout/run.sh [AGENTS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
agents=${1:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release -q -p mirage)
bin=$CARGO_TARGET_DIR/release/mirage
work=$(mktemp -d /tmp/mirage-bench-fanout.XXXXXX)
s=$$
srv=mbf_srv_$s
namespaces=("$srv")
cleanup() {
    for n in "${namespaces[@]}"; do
        for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns del "$n" 2>/dev/null || true
    done
}
trap cleanup EXIT
ip netns add "$srv"
ip -n "$srv" link set lo up
for i in $(seq 1 "$agents"); do
    n=mbf_a${i}_$s
    namespaces+=("$n")
    ip netns add "$n"
    ip -n "$n" link set lo up
    ip -n "$srv" link add "v$i" type veth peer name eth0 netns "$n"
    ip -n "$srv" addr add "10.50.$i.1/30" dev "v$i"
    ip -n "$srv" link set "v$i" up
    ip -n "$n" addr add "10.50.$i.2/30" dev eth0
    ip -n "$n" link set eth0 up
done
ip netns exec "$srv" "$bin" server --syslog 0.0.0.0:10514 --listen 0.0.0.0:8515 \
    --data-dir "$work/data" 2> "$work/server.log" &
until grep -q "policy API: listening" "$work/server.log" 2>/dev/null; do sleep 0.1; done
for i in $(seq 1 "$agents"); do
    n=mbf_a${i}_$s
    token=$("$bin" server tokens create --data-dir "$work/data")
    : > "$work/log$i"
    ip netns exec "$n" "$bin" agent --server "10.50.$i.1:8515" --enroll "$token" \
        --mode deception --redirect 22=10.98.0.2:2222 --syslog "10.50.$i.1:10514" \
        --tail "ssh:$work/log$i" --state-dir "$work/agent$i" 2> "$work/agent$i.log" &
done
for i in $(seq 1 "$agents"); do
    until ip netns exec "mbf_a${i}_$s" nft list table inet mirage >/dev/null 2>&1; do sleep 0.1; done
done
echo "== $agents agents enrolled (files in $work)"
python3 "$here/fanout.py" "$work/data/mirage.db" "$s" "$agents"
