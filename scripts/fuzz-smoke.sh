#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 15) on the stable
# toolchain (`-s none`: sanitizers need nightly). A crash fails the run and
# leaves the input under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-15}"
targets=$(cargo fuzz list)
[ -n "$targets" ] || { echo "no fuzz targets"; exit 0; }
for t in $targets; do
  mkdir -p "corpus/$t"
  echo "fuzzing $t for ${secs}s"
  cargo fuzz run "$t" -s none "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 | tail -n 2
done
