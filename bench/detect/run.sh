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

echo "== mirage: syslog + sshd parser + built-in rule pack, one core"
taskset -c 0 "$CARGO_TARGET_DIR/release/examples/replay" "$log" 2026 | tee "$work/mirage.txt"

if ! command -v fail2ban-regex >/dev/null; then
    echo "fail2ban-regex not installed: skipping the comparison"
    exit 0
fi
echo "== fail2ban-regex, Debian's sshd filter, same file"
start=$(date +%s.%N)
/usr/bin/time -f "fail2ban peak RSS: %M KiB" taskset -c 0 \
    fail2ban-regex "$log" /etc/fail2ban/filter.d/sshd.conf > "$work/fail2ban.txt" 2> "$work/fail2ban.time"
end=$(date +%s.%N)
grep -E "^Lines:|Failregex:" "$work/fail2ban.txt" || true
cat "$work/fail2ban.time"
f2b_secs=$(echo "$end - $start" | bc -l)
f2b_rate=$(echo "$lines / $f2b_secs" | bc -l)
mirage_rate=$(awk '/^throughput:/ {print $2}' "$work/mirage.txt")
printf "fail2ban-regex:    %.1f s, %.0f lines/s\n" "$f2b_secs" "$f2b_rate"
printf "ratio:             %.1fx\n" "$(echo "$mirage_rate / $f2b_rate" | bc -l)"
echo "(files in $work)"
