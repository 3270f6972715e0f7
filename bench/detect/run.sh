#!/usr/bin/env bash
# Detection benchmark: mirage's parse+rules vs fail2ban-regex on the same
# generated 1,000,000-line sshd log. Not a test: run by hand, record the
# figures in docs/benchmarks.md.
#
#   bash bench/detect/run.sh [LINES]
#
# Needs python3 and (for the comparison) fail2ban:
#   apt-get -o DPkg::Lock::Timeout=600 install -y fail2ban
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lines=${1:-1000000}
work=${BENCH_DIR:-$(mktemp -d /tmp/mirage-bench-detect.XXXXXX)}
log=$work/auth.log
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

echo "== generating $lines lines into $log"
python3 "$here/gen_sshd_log.py" "$log" "$lines" 42

echo "== building (release)"
(cd "$root" && cargo build --release -q -p mirage-rules --example replay)

if ! command -v fail2ban-regex >/dev/null; then
    echo "== mirage: syslog + sshd parser + built-in rule pack, one core"
    taskset -c 0 "$CARGO_TARGET_DIR/release/examples/replay" "$log" 2026 | tee "$work/mirage.txt"
    echo "fail2ban-regex not installed: skipping the comparison"
    exit 0
fi

# This machine is shared: a neighbour's burst can halve one run. Run both
# tools ROUNDS times, interleaved on the same core, and compare the best
# run of each (the one least disturbed) as well as the medians.
rounds=${ROUNDS:-3}
: > "$work/mirage.rates"; : > "$work/f2b.rates"
for r in $(seq 1 "$rounds"); do
    echo "== round $r/$rounds: mirage (syslog + sshd parser + built-in rule pack, one core, median of 5 passes)"
    taskset -c 0 "$CARGO_TARGET_DIR/release/examples/replay" "$log" 2026 | tee "$work/mirage.txt"
    awk '/^throughput:/ {print $2}' "$work/mirage.txt" >> "$work/mirage.rates"
    echo "== round $r/$rounds: fail2ban-regex, Debian's sshd filter, same file"
    start=$(date +%s.%N)
    /usr/bin/time -f "fail2ban peak RSS: %M KiB" taskset -c 0 \
        fail2ban-regex "$log" /etc/fail2ban/filter.d/sshd.conf > "$work/fail2ban.txt" 2> "$work/fail2ban.time"
    end=$(date +%s.%N)
    grep -E "^Lines:|Failregex:" "$work/fail2ban.txt" || true
    cat "$work/fail2ban.time"
    echo "$lines / ($end - $start)" | bc -l >> "$work/f2b.rates"
    printf "fail2ban-regex:    %.0f lines/s\n" "$(tail -1 "$work/f2b.rates")"
done
best() { sort -g "$1" | tail -1; }
median() { sort -g "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mb=$(best "$work/mirage.rates"); fb=$(best "$work/f2b.rates")
mm=$(median "$work/mirage.rates"); fm=$(median "$work/f2b.rates")
printf "mirage best/median:          %.0f / %.0f lines/s\n" "$mb" "$mm"
printf "fail2ban-regex best/median:  %.0f / %.0f lines/s\n" "$fb" "$fm"
printf "ratio (best/best):           %.1fx\n" "$(echo "$mb / $fb" | bc -l)"
printf "ratio (median/median):       %.1fx\n" "$(echo "$mm / $fm" | bc -l)"
echo "(files in $work)"
