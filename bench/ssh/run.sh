#!/usr/bin/env bash
# Benchmark (issue 8): what an SSH honeypot under brute force needs, for
# mirage's `ssh` service and, in the same run, cowrie 3.1.4 from PyPI:
#   1. CPU seconds per 1,000 authentication attempts: one hydra, 16 tasks,
#      a list of ATTEMPTS wrong passwords; the server's own utime+stime
#      (from /proc) over the attempts it logged;
#   2. concurrent brute-forcers: PROCS hydra processes with 64 tasks each
#      (the most hydra allows), each with its own user name and the same
#      PER_PROC wrong passwords, all at once; the peak of established
#      connections, how long hydra took, and whether every (user, password)
#      pair hydra tried was logged;
#   3. RSS growth per idle connection: IDLE connections that never send
#      their version line, then KEX_IDLE connections that finish the key
#      exchange and stop there (`mirage x-connflood idle` / `ssh-kex`).
#
#   sudo bash bench/ssh/run.sh [ATTEMPTS] [PROCS] [PER_PROC] [IDLE] [KEX_IDLE]
#
# Defaults 600 attempts, 32 processes x 320 passwords (2,048 tasks),
# 10,000 idle, 2,000 after KEX. Each server runs in a fresh private
# network namespace on loopback. Both keep their failed-password delay
# (mirage: Debian's 2 s; cowrie: its own), so wall times are not the
# point; CPU and completeness are. Not a test: run by hand, record the
# figures in docs/benchmarks.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ATTEMPTS="${1:-600}"
PROCS="${2:-32}"
PER_PROC="${3:-320}"
IDLE="${4:-10000}"
KEX_IDLE="${5:-2000}"
PORT=2222
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release -q -p mirage)
BIN="$CARGO_TARGET_DIR/release/mirage"
# shellcheck source=bench/ssh/cowrie.sh
source "$here/cowrie.sh"
VENV="$here/.venv"
cowrie_install "$VENV"
for tool in hydra ss; do
  command -v "$tool" > /dev/null || { echo "needs $tool" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)"

TMP="$(mktemp -d /tmp/mirage-bench-ssh.XXXXXX)"
chmod 755 "$TMP" # cowrie runs as nobody and keeps its files under it
NS_PREFIX=mbssh
# shellcheck source=bench/lib/netns.sh
source "$here/../lib/netns.sh"
TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
secs() { python3 -c "print(round($1 / $TCK, 2))"; }

# Password lists: wrong for both servers.
python3 - "$TMP" "$ATTEMPTS" "$PER_PROC" <<'EOF'
import sys
tmp, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
open(f"{tmp}/cpu.lst", "w").write("".join(f"wrong-{i:05d}\n" for i in range(n)))
open(f"{tmp}/per.lst", "w").write("".join(f"nope-{i:05d}\n" for i in range(per)))
EOF

# Peak of established connections to $PORT while $1 (a pid) lives.
peak_established() { # pid -> prints the peak
  local peak=0 n
  while kill -0 "$1" 2>/dev/null; do
    n=$(inns ss -Htn state established "( sport = :$PORT )" | wc -l)
    [ "$n" -gt "$peak" ] && peak=$n
    sleep 0.25
  done
  echo "$peak"
}

# Phases 1 and 2 against a server already listening in $NS; $1 its pid,
# $2 a command printing the (user, password) pairs it logged, one per line.
brute() { # pid pairs-cmd -> sets CPU_LINE, CONC_LINE
  local pid=$1 pairs=$2 t0 t1 n0 n1 start end
  n0=$($pairs | wc -l)
  t0=$(cpu_ticks "$pid")
  inns hydra -l root -P "$TMP/cpu.lst" -t 16 -I -q -s "$PORT" ssh://127.0.0.1 > "$TMP/$SERVER-hydra-cpu.out" 2>&1 || true
  sleep 3
  t1=$(cpu_ticks "$pid")
  n1=$($pairs | wc -l)
  CPU_LINE="$((n1 - n0)) attempts logged of $ATTEMPTS, CPU $(secs $((t1 - t0))) s = $(python3 -c "print(round(($t1 - $t0) / $TCK / max($n1 - $n0, 1) * 1000, 3))") s per 1,000"

  n0=$($pairs | wc -l)
  t0=$(cpu_ticks "$pid")
  start=$(date +%s.%N)
  local hydras=()
  for i in $(seq -w 1 "$PROCS"); do
    inns hydra -l "user$i" -P "$TMP/per.lst" -t 64 -I -q -s "$PORT" ssh://127.0.0.1 \
      > "$TMP/$SERVER-hydra-$i.out" 2>&1 &
    hydras+=($!)
  done
  # Watch the peak while the first hydra runs (they all start together).
  local watcher_out="$TMP/$SERVER-peak.out"
  (peak_established "${hydras[0]}" > "$watcher_out") &
  local watcher=$!
  for h in "${hydras[@]}"; do wait "$h" || true; done
  end=$(date +%s.%N)
  wait "$watcher" || true
  sleep 3
  t1=$(cpu_ticks "$pid")
  n1=$($pairs | wc -l)
  local want=$((PROCS * PER_PROC)) missing
  missing=$($pairs | sort -u | python3 -c "
import sys
seen = set(l.rstrip('\n') for l in sys.stdin)
procs, per = $PROCS, $PER_PROC
w = len(str(procs))
miss = sum(1 for i in range(1, procs + 1) for j in range(per)
           if f'user{i:0{w}d} nope-{j:05d}' not in seen)
print(miss)")
  local errors
  errors=$(cat "$TMP/$SERVER"-hydra-[0-9]*.out | grep -c '\[ERROR\]' || true)
  CONC_LINE="$PROCS hydra x 64 tasks: peak $(cat "$watcher_out") established, $(python3 -c "print(round($end - $start, 1))") s, $((n1 - n0)) attempts logged for $want tried, $missing (user, password) pairs never logged, $errors hydra [ERROR] lines, CPU $(secs $((t1 - t0))) s = $(python3 -c "print(round(($t1 - $t0) / $TCK / max($n1 - $n0, 1) * 1000, 3))") s per 1,000"
}

# Phase 3 (run first, see measure): growth per idle connection.
idle_growth() { # pid mode count -> prints a line
  local pid=$1 mode=$2 count=$3 before after fifo="$TMP/$SERVER-hold-$2.fifo" line out="$TMP/$SERVER-hold-$2.out"
  before=$(rss_kib "$pid")
  rm -f "$fifo"; mkfifo -m 600 "$fifo"
  inns "$BIN" x-connflood "$mode" "127.0.0.1:$PORT" "$count" < "$fifo" > "$out" &
  HOLDERS+=($!)
  exec 7> "$fifo"
  until [ -s "$out" ]; do sleep 0.2; done
  sleep 3
  after=$(rss_kib "$pid")
  line=$(cat "$out")
  exec 7>&-
  wait "${HOLDERS[-1]}" || true
  sleep 2
  echo "$line: RSS $before KiB -> $after KiB = $(( (after - before) * 1024 / count )) bytes each"
}

# All three phases on one server, fresh: idle first (after the brute
# force its heap is at its peak), then the brute force; appends to REPORT.
REPORT=""
measure() { # name pid pairs-cmd
  SERVER=$1
  local rss0 idle kex
  rss0=$(rss_kib "$2")
  idle=$(idle_growth "$2" idle "$IDLE")
  kex=$(idle_growth "$2" ssh-kex "$KEX_IDLE")
  brute "$2" "$3"
  REPORT+="$1  RSS at start $rss0 KiB
  cpu:  $CPU_LINE
  conc: $CONC_LINE
  idle, no version line: $idle
  idle after KEX:        $kex
"
}

# 1. mirage
fresh_ns mirage
cat > "$TMP/mirage.toml" <<EOF
[limits]
max_connections = 19000
max_connections_per_ip = 19000
handshake_timeout_secs = 600
idle_timeout_secs = 600
EOF
ip netns exec "$NS" "$BIN" sensor --config "$TMP/mirage.toml" --service "ssh=127.0.0.1:$PORT" \
  --log-dir "$TMP/mirage" 2> "$TMP/mirage.log" &
MPID=$!
wait_port "$PORT"
mirage_pairs() {
  { cat "$TMP"/mirage/events-*.jsonl 2>/dev/null || true; } | python3 -c "
import sys, json
for l in sys.stdin:
    e = json.loads(l)
    if e.get('kind') == 'auth.attempt' and e.get('method') == 'password':
        print(e.get('username'), e.get('password'))"
}
measure mirage "$MPID" mirage_pairs
if grep -E ' (ERROR|WARN) ' "$TMP/mirage.log" | head -3; then echo "(mirage logged the above)"; fi

# 2. cowrie
fresh_ns cowrie
CPID=$(cowrie_start "$VENV" "$TMP/cowrie" "$NS" "$PORT")
cowrie_pairs() { cowrie_list_attempts "$TMP/cowrie"; }
measure cowrie "$CPID" cowrie_pairs
cowrie_stop "$CPID"
drop_ns

echo "== SSH brute force (files in $TMP)"
printf "%s" "$REPORT"
