#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 15) on the stable
# toolchain (`-s none`: sanitizers need nightly). A crash fails the run and
# leaves the input under fuzz/artifacts/. The committed corpus is read
# only: libFuzzer writes the inputs it finds into its first corpus
# directory, here a scratch one, so a run never adds thousands of files to
# the working tree.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-15}"
targets=$(cargo fuzz list)
[ -n "$targets" ] || { echo "no fuzz targets"; exit 0; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in $targets; do
  mkdir -p "corpus/$t" "$scratch/$t"
  echo "fuzzing $t for ${secs}s"
  cargo fuzz run "$t" -s none "$scratch/$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 | tail -n 2
done
