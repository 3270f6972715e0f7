#!/usr/bin/env bash
# Benchmark of `mirage report` against the seed's pandas analysis.
#
# Generates a synthetic capture (default 10 million events of the mirage
# schema, 14 days, realistic mix: catch-all connections with and without
# payloads, ssh logins, redis commands, exploit droppers, port scanners),
# then times in the same run:
#   1. mirage report DIR --format json   (release build)
#   2. pandas_seed.py DIR                 (the seed's per-day / top-ports /
#                                          distinct-IP analysis, pandas in .venv)
# and prints MB/s, the ratio, and peak RSS of each (/usr/bin/time -v). It also
# checks that both tools agree on the per-day and top-port figures.
#
# Not part of the tests. Usage (from the repo root):
#   bash bench/report/run.sh [EVENTS] [DATA_DIR]
# Needs: /usr/bin/time (Debian `time`), .venv with pandas.
# Targets (2-core machine): >= 300 MB/s, >= 20x pandas, peak RSS < 500 MB.
set -euo pipefail

EVENTS=${1:-10000000}
DATA=${2:-/tmp/mirage-bench-report}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PY=$ROOT/.venv/bin/python
cd "$ROOT"

cargo build --release -p mirage --bin mirage >&2
cargo build --release -p mirage-report --example gen_capture >&2
MIRAGE=$TARGET/release/mirage
GEN=$TARGET/release/examples/gen_capture

if [ ! -f "$DATA/.events-$EVENTS" ]; then
    rm -rf "$DATA"
    "$GEN" "$DATA" "$EVENTS" 14
    touch "$DATA/.events-$EVENTS"
fi
BYTES=$(cat "$DATA"/*.jsonl | wc -c)
MB=$(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1e6 }')
echo "capture: $EVENTS events, $MB MB in $DATA" >&2

measure() { # LABEL OUTFILE CMD...: prints "seconds max_rss_kb"
    local label=$1 out=$2
    shift 2
    /usr/bin/time -v -o "$DATA/time-$label.txt" "$@" > "$out"
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$DATA/time-$label.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$DATA/time-$label.txt")
    echo "$wall $rss"
}

sync
read -r M_S M_RSS < <(measure mirage "$DATA/mirage.json" "$MIRAGE" report "$DATA" --format json --top 10)
read -r P_S P_RSS < <(measure pandas "$DATA/pandas.json" "$PY" "$ROOT/bench/report/pandas_seed.py" "$DATA" 10)

"$PY" - "$DATA/mirage.json" "$DATA/pandas.json" <<'PYEOF'
import json, sys
m = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
tol = 3 * m["params"]["sketch_relative_error"]
assert sorted(d["start"][:10] for d in m["days"]) == sorted(p["days"]), "days differ"
for d in m["days"]:
    want = p["days"][d["start"][:10]]
    got = [d["events"], d["distinct_sources"], d["distinct_ports"]]
    assert got[0] == want[0], ("events per day differ", d, want)
    for g, w in zip(got[1:], want[1:]):
        # Above the sketch threshold a distinct count is an estimate.
        ok = g == w or (d["estimated"] and abs(g - w) <= tol * w)
        assert ok, ("distinct counts per day differ", d, want)
assert [[r["port"], r["events"]] for r in m["top_ports"]] == p["top_ports"], "top ports differ"
assert [r["distinct_sources"] for r in m["top_ports_by_sources"]] == [n for _, n in p["top_ports_by_ip"]], "top ports by IP differ"
assert m["totals"]["distinct_sources"] == p["distinct_ips"], "distinct IPs differ"
print("mirage and pandas agree on per-day counts, top ports and distinct IPs", file=sys.stderr)
PYEOF

awk -v mb="$MB" -v ms="$M_S" -v ps="$P_S" -v mr="$M_RSS" -v pr="$P_RSS" -v ev="$EVENTS" 'BEGIN {
    printf "events            %d\n", ev
    printf "capture           %.1f MB\n", mb
    printf "mirage report     %.2f s  %.0f MB/s  peak RSS %.0f MB\n", ms, mb / ms, mr / 1024
    printf "pandas (seed)     %.2f s  %.1f MB/s  peak RSS %.0f MB\n", ps, mb / ps, pr / 1024
    printf "ratio             %.1fx\n", ps / ms
    ok = (mb / ms >= 300) && (ps / ms >= 20) && (mr / 1024 < 500)
    printf "targets (>=300 MB/s, >=20x, <500 MB): %s\n", ok ? "met" : "NOT met"
}'
