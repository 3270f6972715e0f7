# shellcheck shell=bash
# One private network namespace at a time for a benchmark's servers
# (sourced by bench/catchall and bench/ssh). Set NS_PREFIX first.
#   fresh_ns NAME   delete the current namespace (killing what runs in it,
#                   and the pids in HOLDERS) and create NS_PREFIX_NAME_$$
#                   with lo up; installs the EXIT trap on first use
#   inns CMD...     run CMD in it
#   wait_port PORT  until something listens on PORT in it (10 s)
#   rss_kib PID     VmRSS of PID
NS=""
HOLDERS=()
drop_ns() {
  for h in "${HOLDERS[@]}"; do kill "$h" 2>/dev/null || true; done
  HOLDERS=()
  [ -n "$NS" ] || return 0
  for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  NS=""
}
fresh_ns() { # name
  drop_ns
  trap drop_ns EXIT
  NS="${NS_PREFIX}_$1_$$"
  ip netns add "$NS"
  ip -n "$NS" link set lo up
}
inns() { ip netns exec "$NS" "$@"; }
wait_port() { # port
  for _ in $(seq 1 200); do
    inns ss -Hltn "sport = :$1" | grep -q LISTEN && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  exit 1
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
