#!/usr/bin/env bash
# Benchmark: requests per second against the HTTP honeypot (a `command`
# event written to its JSONL for every request) and against a real nginx
# from Debian serving the same small page, same load generator (wrk), same
# run, both on loopback.
#
#   sudo bash bench/http/run.sh [SECONDS] [CONNECTIONS] [THREADS]
#
# Defaults 10 s, 64 keep-alive connections, 2 wrk threads. nginx runs one
# worker (the honeypot runs tokio on every core; on a 2-core machine the
# figures compare one process against the other, not per-core speed) with
# access_log off. The page both serve is the honeypot's built-in index,
# fetched from the honeypot first and written into nginx's root. After the
# run the JSONL `command` events are counted and compared with wrk's
# completed requests. Installs wrk and nginx if missing. Not a test: run
# by hand, record the figures in docs/benchmarks.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SECS="${1:-10}"
CONN="${2:-64}"
THREADS="${3:-2}"
TMP="$(mktemp -d /tmp/mirage-bench-http.XXXXXX)"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

for p in wrk nginx; do
  command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || \
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$p" >/dev/null
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

(cd "$root" && cargo build --release -q -p mirage)
BIN="$CARGO_TARGET_DIR/release/mirage"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HP_PORT=$(free_port)
NG_PORT=$(free_port)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

"$BIN" sensor --service "http=127.0.0.1:$HP_PORT" --log-dir "$TMP/events" --name bench >"$TMP/mirage.log" 2>&1 &
PIDS+=($!)
mkdir -p "$TMP/www"
chmod 755 "$TMP" "$TMP/www"   # nginx workers run unprivileged
cat >"$TMP/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  client_body_temp_path $TMP/body;
  proxy_temp_path $TMP/proxy;
  fastcgi_temp_path $TMP/fcgi;
  uwsgi_temp_path $TMP/uwsgi;
  scgi_temp_path $TMP/scgi;
  server { listen 127.0.0.1:$NG_PORT; root $TMP/www; }
}
CONF
"$NGINX" -c "$TMP/nginx.conf" -p "$TMP" &
PIDS+=($!)
for port in $HP_PORT $NG_PORT; do
  for _ in $(seq 200); do bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && break; sleep 0.1; done
done
curl -s "http://127.0.0.1:$HP_PORT/" >"$TMP/www/index.html"
chmod 644 "$TMP/www/index.html"
[ "$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$NG_PORT/")" = 200 ] || { echo "nginx does not serve the page" >&2; exit 1; }
echo "page: $(wc -c <"$TMP/www/index.html") bytes; nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load: $(cut -d' ' -f1-3 /proc/loadavg)"

run() { # name port -> prints requests/s, saves wrk output
  wrk -t"$THREADS" -c"$CONN" -d"${SECS}s" --latency "http://127.0.0.1:$2/" >"$TMP/wrk-$1.txt"
  awk '/Requests\/sec/ {print $2}' "$TMP/wrk-$1.txt"
}
nginx_rps=$(run nginx $NG_PORT)
hp_rps=$(run honeypot $HP_PORT)
hp_done=$(awk '/requests in/ {print $1}' "$TMP/wrk-honeypot.txt")
ng_done=$(awk '/requests in/ {print $1}' "$TMP/wrk-nginx.txt")
# wrk stops mid-request at the deadline: let the sensor finish and flush.
kill -TERM "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true
events=$(cat "$TMP"/events/*.jsonl | grep -c '"kind":"command"' || true)
grep -h "Latency \|Socket errors\|Non-2xx" "$TMP"/wrk-*.txt || true
echo "nginx:    $ng_done requests, $nginx_rps req/s"
echo "honeypot: $hp_done requests, $hp_rps req/s, $events command events in the JSONL"
python3 - "$nginx_rps" "$hp_rps" "$hp_done" "$events" <<'PY'
import sys
n, h, done, ev = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(f"ratio honeypot/nginx: {h / n:.2f} (target >= 0.5)")
# wrk counts responses it read; requests cut by the deadline may have been
# logged without their response read, so events >= completed.
print("every completed request logged:", "yes" if ev >= done else f"NO ({done - ev} missing)")
PY
