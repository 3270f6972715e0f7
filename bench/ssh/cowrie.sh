# shellcheck shell=bash
# Helpers to run cowrie 3.1.4 (PyPI) as an SSH benchmark peer.
# Source this file; it defines:
#   cowrie_install VENV
#   cowrie_start VENV WORKDIR NS PORT   -> echoes PID of the twistd python server
#   cowrie_stop PID
#   cowrie_count_attempts JSONFILE      -> count of cowrie.login.failed + cowrie.login.success
#   cowrie_list_attempts WORKDIR        -> "user password" per logged attempt
#
# Notes (cowrie 3.1.4, read from the installed source):
# - Config = bundled cowrie.cfg.dist, overlaid by /etc/cowrie/cowrie.cfg,
#   ./etc/cowrie.cfg, ./cowrie.cfg (cwd-relative), and env vars
#   COWRIE_<SECTION>_<OPTION> (uppercased) override any key. We write
#   WORKDIR/etc/cowrie.cfg and run with cwd=WORKDIR.
# - cowrie refuses to run as root (both the `cowrie` script and the twistd
#   plugin's makeService check getuid()==0), so the server runs as
#   nobody (65534) via setpriv. Hence the venv must be built from a python
#   that nobody can execute (/usr/bin/python3, not a pyenv under /root).
# - Auth: default UserDB (etc/userdb.txt, else bundled userdb.example which
#   lets root in with almost any password). We write an EMPTY
#   WORKDIR/etc/userdb.txt, so UserDB.checklogin() matches nothing and every
#   password attempt fails (cowrie.login.failed).
# - We run `twistd -n` directly (no fork, no pidfile: --pidfile=), exec'd
#   through `ip netns exec` and `setpriv`, so $! is the python server itself.

COWRIE_VERSION=${COWRIE_VERSION:-3.1.4}

cowrie_install() {
    local venv=$1
    local py=${COWRIE_PYTHON:-/usr/bin/python3}
    if ! { [ -x "$venv/bin/twistd" ] && "$venv/bin/python" -c \
        "import importlib.metadata as m,sys; sys.exit(m.version('cowrie')!='$COWRIE_VERSION')" 2>/dev/null; }; then
        [ -x "$venv/bin/python" ] || "$py" -m venv "$venv" || return 1
        "$venv/bin/pip" install -q "cowrie==$COWRIE_VERSION" >&2 || return 1
    fi
    # Prime twisted's plugin cache as root (the server runs as nobody and
    # cannot write dropin.cache; it would otherwise rescan on every start).
    if ! ls "$venv"/lib/python3*/site-packages/twisted/plugins/dropin.cache >/dev/null 2>&1; then
        (cd / && "$venv/bin/python" -c \
            "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))") >/dev/null 2>&1
        chmod -R a+rX "$venv"
    fi
}

cowrie_start() {
    local venv=$1 wd=$2 ns=$3 port=$4
    venv=$(cd "$venv" && pwd) || return 1
    mkdir -p "$wd" && wd=$(cd "$wd" && pwd) || return 1
    mkdir -p "$wd/etc" "$wd/var/log/cowrie" "$wd/var/lib/cowrie/downloads" \
        "$wd/var/lib/cowrie/tty" "$wd/var/run"
    : > "$wd/etc/userdb.txt"          # empty userdb => every login fails
    cat > "$wd/etc/cowrie.cfg" <<EOF
[honeypot]
log_path = $wd/var/log/cowrie
state_path = $wd/var/lib/cowrie
download_path = $wd/var/lib/cowrie/downloads
etc_path = $wd/etc
ttylog = false
logtype = plain
auth_class = UserDB
backend = shell

[ssh]
enabled = true
listen_endpoints = tcp:$port:interface=127.0.0.1
forwarding = false
forward_redirect = false
forward_tunnel = false
sftp_enabled = false
auth_keyboard_interactive_enabled = false

[telnet]
enabled = false

[output_jsonlog]
enabled = true
logfile = $wd/cowrie.json
EOF
    chown -R 65534:65534 "$wd"
    # exec chain: subshell -> ip netns exec -> setpriv -> twistd(python); no forks.
    (
        cd "$wd" || exit 1
        exec ip netns exec "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups \
            env -i PATH="$venv/bin:/usr/bin:/bin" HOME="$wd" LANG=C.UTF-8 TZ=UTC \
            "$venv/bin/twistd" -n --umask=0022 --pidfile= \
            --logger cowrie.python.logfile.logger cowrie
    ) > "$wd/twistd.out" 2>&1 < /dev/null &
    local pid=$!
    # first start generates host keys (RSA 2048 etc.), allow up to 60 s
    local i
    for i in $(seq 1 600); do
        if ! kill -0 "$pid" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
            echo "cowrie exited early; see $wd/twistd.out $wd/var/log/cowrie/cowrie.log" >&2
            return 1
        fi
        if ip netns exec "$ns" ss -Hltn "sport = :$port" 2>/dev/null | grep -q LISTEN; then
            echo "$pid"
            return 0
        fi
        sleep 0.1
    done
    echo "cowrie did not listen on $port within 60s" >&2
    kill "$pid" 2>/dev/null
    return 1
}

cowrie_stop() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    return 0
}

# Login attempts = lines with eventid cowrie.login.failed or cowrie.login.success.
cowrie_count_attempts() {
    local f=$1
    [ -f "$f" ] || { echo 0; return; }
    grep -cE '"eventid":"cowrie\.login\.(failed|success)"' "$f"
}

# The (username, password) of every logged attempt, one "user password"
# line each, from WORKDIR/cowrie.json.
cowrie_list_attempts() {
    local f=$1/cowrie.json
    [ -f "$f" ] || return 0
    python3 -c "
import json, sys
for l in open(sys.argv[1], errors='replace'):
    try:
        e = json.loads(l)
    except ValueError:
        continue
    if e.get('eventid') in ('cowrie.login.failed', 'cowrie.login.success'):
        print(e.get('username'), e.get('password'))" "$f"
}
