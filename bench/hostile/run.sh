#!/usr/bin/env bash
# The review's attacks (issue 21) against two mirage binaries, before and
# after, each scenario in a fresh network namespace. Prints one JSON line
# per scenario and binary. Needs root (namespaces, tmpfs, nftables).
#
#   bench/hostile/run.sh BEFORE_BINARY [AFTER_BINARY] [SCENARIO...]
#
# AFTER_BINARY defaults to target/release/mirage (built first); scenarios
# default to all of them (see hostile.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
before=${1:?usage: run.sh BEFORE_BINARY [AFTER_BINARY] [SCENARIO...]}
after=${2:-target/release/mirage}
shift $(( $# >= 2 ? 2 : 1 ))
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(disk_full acked_loss spoofed_udp forged_policy http_flood idle_syslog sensor_memory)
if [ "$after" = target/release/mirage ]; then cargo build --release -q -p mirage; fi

NS_PREFIX=mhostile
# shellcheck source=../lib/netns.sh
source bench/lib/netns.sh
work=$(mktemp -d /tmp/mirage-hostile.XXXXXX)
cleanup() { drop_ns; rm -rf "$work"; }
trap cleanup EXIT

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
for s in "${scenarios[@]}"; do
  for which in before after; do
    bin=$before; [ "$which" = after ] && bin=$after
    fresh_ns "$s"
    dir="$work/$s-$which"
    mkdir -p "$dir"
    if ! out=$(inns python3 bench/hostile/hostile.py "$s" "$bin" "$dir" 2>"$dir/stderr"); then
      out="{\"scenario\": \"$s\", \"failed\": \"$(tail -1 "$dir/stderr" | tr -d '"')\"}"
    fi
    echo "$which $out"
  done
done
drop_ns
