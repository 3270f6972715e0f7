#!/usr/bin/env bash
# Benchmark: failed login attempts per second against the MySQL honeypot
# (an event written for every attempt) and against a real mariadb-server,
# same load generator, same run, same private network namespace.
#
#   sudo bash bench/mysql/run.sh [SECONDS] [CONCURRENCY]
#
# Defaults 10 s and 64 concurrent clients. The load generator
# (crates/mirage-sensor/examples/mysql_authload.rs) logs in as root with a
# wrong password over mysql_native_password, one connection per attempt.
# Both servers imitate the same release: the honeypot is configured with
# mariadb-server's own version string, so both take the same protocol path
# (handshake, native-password response, ERR 1045). Needs mariadb-server
# (scripts/install-test-deps.sh installs it). Not a test: run by hand, record
# the figures in docs/benchmarks.md; do not run it while anything compiles.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SECS="${1:-10}"
CONC="${2:-64}"
S="$$$RANDOM"
NS="mybench_$S"
TMP="$(mktemp -d /tmp/mirage-bench-mysql.XXXXXX)"
REAL_PORT=3306
HP_PORT=3307
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

(cd "$root" && cargo build --release -q -p mirage && cargo build --release -q -p mirage-sensor --example mysql_authload)
BIN="$CARGO_TARGET_DIR/release/mirage"
LOAD="$CARGO_TARGET_DIR/release/examples/mysql_authload"

cleanup() {
  # Everything started inside the namespace, by PID.
  for p in $(ip netns pids "$NS" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
inns() { ip netns exec "$NS" "$@"; }

# The real server: a private datadir, skip-name-resolve (the honeypot does
# no DNS either), enough connections for the load.
mariadb-install-db --datadir="$TMP/data" --user=root --auth-root-authentication-method=normal >"$TMP/install.log" 2>&1
inns mariadbd --no-defaults --datadir="$TMP/data" --socket="$TMP/mysqld.sock" --port=$REAL_PORT \
  --bind-address=127.0.0.1 --user=root --skip-name-resolve --max-connections=1000 \
  --pid-file="$TMP/mysqld.pid" --log-error="$TMP/mariadb.err" >/dev/null 2>&1 &
real_version=$(mariadbd --version | awk '{print $3}')
cat >"$TMP/mirage.toml" <<TOML
[services.mysql]
version = "5.5.5-$real_version"
TOML
inns "$BIN" sensor --config "$TMP/mirage.toml" --service "mysql=127.0.0.1:$HP_PORT" --log-dir "$TMP/events" --name bench >"$TMP/mirage.log" 2>&1 &
for port in $REAL_PORT $HP_PORT; do
  for _ in $(seq 200); do inns bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && break; sleep 0.1; done
done

echo "failed logins, $CONC concurrent clients, ${SECS}s each   ($(nproc) cores, $(date -u +%F))"
echo "real:     mariadbd $real_version (--skip-name-resolve)"
echo "honeypot: mirage $("$BIN" --version | cut -d' ' -f2), version 5.5.5-$real_version emulated, an event per attempt"
real=$(inns "$LOAD" 127.0.0.1:$REAL_PORT "$CONC" "$SECS")
hp=$(inns "$LOAD" 127.0.0.1:$HP_PORT "$CONC" "$SECS")
echo "real:     $real"
echo "honeypot: $hp"
r=$(echo "$real" | awk '{print $2}')
h=$(echo "$hp" | awk '{print $2}')
printf 'ratio honeypot/real: %.2f\n' "$(echo "$h / $r" | bc -l)"
attempts=$(cat "$TMP"/events/*.jsonl | grep -c '"auth.attempt"' || true)
echo "honeypot auth.attempt events written: $attempts"
