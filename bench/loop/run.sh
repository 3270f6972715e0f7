#!/usr/bin/env bash
# Detection-to-enforcement latency (issue 4): from the moment the fifth
# failed-login line is written to the sshd log a `mirage agent` tails, to
# the moment the attacker's address is in the agent's nftables set, through
# `mirage server` (syslog in, rules, decision, policy long poll). Not a
# test: run by hand as root, record the figures in docs/benchmarks.md.
#
#   bash bench/loop/run.sh [TRIALS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
trials=${1:-200}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release -q -p mirage)
bin=$CARGO_TARGET_DIR/release/mirage
work=$(mktemp -d /tmp/mirage-bench-loop.XXXXXX)
ns=mbloop_$$
ip netns add "$ns"
cleanup() {
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
ip -n "$ns" link set lo up
ip netns exec "$ns" "$bin" server --syslog 127.0.0.1:10514 --listen 127.0.0.1:8515 \
    --data-dir "$work/data" 2> "$work/server.log" &
until grep -q "policy API: listening" "$work/server.log" 2>/dev/null; do sleep 0.1; done
token=$("$bin" server tokens create --data-dir "$work/data")
: > "$work/sshd.log"
ip netns exec "$ns" "$bin" agent --server 127.0.0.1:8515 --enroll "$token" --mode deception \
    --redirect 22=10.98.0.2:2222 --syslog 127.0.0.1:10514 --tail "ssh:$work/sshd.log" \
    --state-dir "$work/agent" 2> "$work/agent.log" &
until ip netns exec "$ns" nft list table inet mirage >/dev/null 2>&1; do sleep 0.1; done
echo "== $trials trials (server and agent in namespace $ns; files in $work)"
python3 "$here/trials.py" "$ns" "$work/sshd.log" "$trials"
