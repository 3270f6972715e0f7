#!/usr/bin/env bash
# Re-captures the ClientHello fixtures: each client connects to a local
# listener that saves the first bytes it receives (until 300 ms of silence)
# as NAME.bin and closes; reference.py then records what tshark and ja4plus
# compute for those bytes as NAME.json. Run from anywhere; needs curl,
# openssl, python3, chromium, tshark and the repo's .venv (ja4plus).
# Outbound traffic: none, everything goes to 127.0.0.1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../../../.." && pwd)"
py="$repo/.venv/bin/python"
[ -x "$py" ] || py=python3

listen() { # listen NAME -> prints the port, saves the first flight to NAME.bin
  python3 - "$here/$1.bin" <<'PY'
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); c.settimeout(0.3); data = b""
try:
    while len(data) < 65536:
        b = c.recv(65536)
        if not b: break
        data += b
except socket.timeout:
    pass
open(sys.argv[1], "wb").write(data); c.close(); s.close()
PY
}

run() { # run NAME COMMAND... ; %PORT% in the command is replaced
  local name=$1; shift
  local fifo; fifo=$(mktemp -u); mkfifo "$fifo"
  listen "$name" > "$fifo" &
  local pid=$!
  local port; read -r port < "$fifo"; rm -f "$fifo"
  local args=("${@//%PORT%/$port}")
  timeout 20 "${args[@]}" >/dev/null 2>&1 || true
  wait "$pid"
  "$py" "$here/reference.py" "$here/$name.bin" > "$here/$name.json"
  echo "$name: $(wc -c < "$here/$name.bin") bytes: $(cat "$here/$name.json")"
}

run curl-h2 curl -s --max-time 5 --resolve example.test:%PORT%:127.0.0.1 https://example.test:%PORT%/
run curl-tls12 curl -s --max-time 5 --http1.1 --tlsv1.2 --tls-max 1.2 --resolve example.test:%PORT%:127.0.0.1 https://example.test:%PORT%/
run curl-ip curl -s --max-time 5 https://127.0.0.1:%PORT%/
run openssl-sni sh -c 'openssl s_client -connect 127.0.0.1:%PORT% -servername example.test </dev/null'
run openssl-nosni-alpn sh -c 'openssl s_client -connect 127.0.0.1:%PORT% -noservername -alpn http/1.1 </dev/null'
run python-ssl python3 -c '
import socket, ssl
ctx = ssl.create_default_context(); ctx.set_alpn_protocols(["http/1.1"])
s = socket.create_connection(("127.0.0.1", %PORT%))
try: ctx.wrap_socket(s, server_hostname="example.test")
except Exception: pass'
run chromium chromium --headless --no-sandbox --disable-gpu --no-first-run \
  --host-resolver-rules="MAP example.test 127.0.0.1" --dump-dom https://example.test:%PORT%/
