#!/usr/bin/env bash
# Benchmark (issue 7): short connections (connect, send one line, close) as
# fast as possible, a fixed count, against
#   1. mirage's catch-all (connect, payload and close events per session),
#   2. OpenCanary (PyPI, its tcpbanner module: a Python/Twisted peer that
#      logs each connection),
#   3. a bare Rust accept-and-close loop (`mirage x-connflood accept`), the
#      ceiling,
# in one run, with the same load generator (`mirage x-connflood short`),
# then counts the sessions each one recorded (loss) and prints rates and
# ratios. Last, RSS growth per idle connection at 10,000 idle connections
# for mirage's catch-all and OpenCanary.
#
#   sudo bash bench/catchall/run.sh [COUNT] [CONCURRENCY]
#
# Defaults 100000 connections, 200 in flight. Everything runs inside a
# private network namespace on loopback (no conntrack, so the kernel does
# not drop SYNs). OpenCanary is installed in a virtualenv under
# bench/catchall/.venv. Not a test: run by hand, record the figures in
# docs/benchmarks.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
COUNT="${1:-100000}"
CONC="${2:-200}"
IDLE=10000
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release -q -p mirage)
BIN="$CARGO_TARGET_DIR/release/mirage"

VENV="$here/.venv"
if [ ! -x "$VENV/bin/opencanaryd" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q opencanary==0.9.10
fi

TMP="$(mktemp -d /tmp/mirage-bench-catchall.XXXXXX)"
# Each server gets a fresh namespace: TIME_WAIT sockets (the clients close
# first) are per namespace, and a server measured after another's 100,000
# connections would find most source ports still taken.
NS_PREFIX=mbcatch
# shellcheck source=bench/lib/netns.sh
source "$here/../lib/netns.sh"
SOURCES=()
for i in 2 3 4 5 6 7 8 9; do SOURCES+=(--source "127.0.0.$i"); done

flood() { # port -> JSON summary
  inns "$BIN" x-connflood short "127.0.0.1:$1" "$COUNT" --concurrency "$CONC" \
    --line "GET /flood HTTP/1.0" "${SOURCES[@]}"
}
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }

# RSS growth per idle connection at $IDLE idle connections, measured on
# each server right after its flood (so both are warm, alike).
idle_growth() { # pid port
  local before after holder
  before=$(rss_kib "$1")
  coproc HOLD { ip netns exec "$NS" "$BIN" x-connflood idle "127.0.0.1:$2" "$IDLE"; }
  read -r line <&"${HOLD[0]}"
  sleep 3
  after=$(rss_kib "$1")
  eval "exec ${HOLD[1]}>&-"
  wait "$HOLD_PID" 2>/dev/null || true
  echo "$line: rss $before KiB -> $after KiB = $(( (after - before) * 1024 / IDLE )) bytes per idle connection"
}
# 1. mirage's catch-all
fresh_ns mirage
cat > "$TMP/mirage.toml" <<EOF
[limits]
max_connections = 20000
max_connections_per_ip = 20000
[services.catchall]
probe_log_group = 0
peek_ms = 200
data_timeout_secs = 600
EOF
# `ip netns exec` execs the program, so $! is the sensor's own pid.
ip netns exec "$NS" "$BIN" sensor --config "$TMP/mirage.toml" --service catchall=127.0.0.1:7001 \
  --log-dir "$TMP/mirage" 2> "$TMP/mirage.log" &
MPID=$!
wait_port 7001
M=$(flood 7001)
for _ in $(seq 1 100); do
  closes=$(cat "$TMP"/mirage/events-*.jsonl | grep -c '"session.close"' || true)
  [ "$closes" -ge "$(field "$M" ok)" ] && break
  sleep 0.2
done
m_conn=$(cat "$TMP"/mirage/events-*.jsonl | grep -c '"session.connect"' || true)
m_pay=$(cat "$TMP"/mirage/events-*.jsonl | grep -c '"kind":"payload"' || true)
m_idle=$(idle_growth "$MPID" 7001)

# 2. OpenCanary tcpbanner
fresh_ns opencanary
SITE=$("$VENV/bin/python" -c 'import opencanary, os; print(os.path.dirname(opencanary.__file__))')
"$VENV/bin/python" - "$SITE/data/settings.json" "$TMP/opencanary.conf" "$TMP/opencanary.log" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for k in list(d):
    if k.endswith(".enabled"):
        d[k] = False
d["tcpbanner.enabled"] = True
d["tcpbanner_1.enabled"] = True
d["tcpbanner_1.port"] = 7002
d["tcpbanner_1.initbanner"] = ""
d["tcpbanner_1.datareceivedbanner"] = ""
d["tcpbanner_1.alertstring.enabled"] = False
d["tcpbanner_1.keep_alive.enabled"] = False
d["logger"]["kwargs"]["handlers"] = {
    "file": {"class": "logging.FileHandler", "filename": sys.argv[3]}}
json.dump(d, open(sys.argv[2], "w"), indent=1)
EOF
(cd "$TMP" && inns "$VENV/bin/twistd" -noy "$VENV/bin/opencanary.tac" \
  --pidfile "$TMP/oc.pid" > "$TMP/oc.out" 2>&1 &)
wait_port 7002
OCPID=$(inns ss -Hltnp "sport = :7002" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
O=$(flood 7002)
# OpenCanary logs behind the load: wait while its count still grows (up
# to 3 minutes), so "loss" is what it never logged, not what was late.
last=-1; still=0
for _ in $(seq 1 180); do
  n=$(grep -c 'CONNECTION_MADE' "$TMP/opencanary.log" || true)
  [ "$n" -ge "$(field "$O" ok)" ] && break
  if [ "$n" -eq "$last" ]; then still=$((still + 1)); else still=0; fi
  [ "$still" -ge 5 ] && break
  last=$n
  sleep 1
done
o_conn=$(grep -c 'CONNECTION_MADE' "$TMP/opencanary.log" || true)
o_idle=$(idle_growth "$OCPID" 7002)

# 3. bare accept-and-close loop
fresh_ns bare
ip netns exec "$NS" "$BIN" x-connflood accept 127.0.0.1:7003 > "$TMP/bare.out" 2> /dev/null &
BPID=$!
wait_port 7003
B=$(flood 7003)
sleep 0.5
kill -TERM "$BPID"; wait "$BPID" || true
b_conn=$(cat "$TMP/bare.out")

m_rate=$(python3 -c "import sys; print(round($(field "$M" ok) / $(field "$M" secs)))")
o_rate=$(python3 -c "import sys; print(round($(field "$O" ok) / $(field "$O" secs)))")
b_rate=$(python3 -c "import sys; print(round($(field "$B" ok) / $(field "$B" secs)))")
echo "== $COUNT short connections, $CONC in flight (files in $TMP)"
printf "%-22s %8s %8s %10s %10s\n" target ok recorded conn/s loss
printf "%-22s %8s %8s %10s %10s\n" "mirage catch-all" "$(field "$M" ok)" "$m_conn" "$m_rate" "$(( $(field "$M" ok) - m_conn ))"
printf "%-22s %8s %8s %10s %10s\n" "OpenCanary tcpbanner" "$(field "$O" ok)" "$o_conn" "$o_rate" "$(( $(field "$O" ok) - o_conn ))"
printf "%-22s %8s %8s %10s %10s\n" "bare accept loop" "$(field "$B" ok)" "$b_conn" "$b_rate" "$(( $(field "$B" ok) - b_conn ))"
echo "mirage payload events: $m_pay"
python3 -c "print('mirage / bare ceiling: %.2f   mirage / OpenCanary: %.1fx' % ($m_rate / $b_rate, $m_rate / max($o_rate, 1)))"

echo "RSS growth at $IDLE idle connections, measured after the flood:"
echo "mirage catch-all:  $m_idle"
echo "OpenCanary:        $o_idle"
