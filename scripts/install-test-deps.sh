#!/usr/bin/env bash
# Installs everything mirage's tests drive: real servers, real clients,
# scanners, and a Python virtualenv (.venv) with client libraries.
# Idempotent: installs only what is missing. Needs root (apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  redis-server redis-tools   # real Redis for conformance tests and benchmarks; redis-cli
  nmap                       # nmap -sV service detection tests
  mariadb-client             # the mariadb/mysql CLI against the MySQL honeypot
  mariadb-server             # the real server the MySQL benchmark compares with
  iproute2                   # network namespaces for floods and benches
  procps                     # ps/pkill-free process inspection
  chromium                   # the HTML report opened headless
  python3-venv
  rsyslog                    # a real syslog producer forwarding to mirage server
  rsyslog-relp               # rsyslog's RELP output (omrelp, librelp) against the server's RELP receiver
  bsdutils                   # util-linux logger (RFC 3164/5424, TCP/UDP, octet counting)
  openssh-server sshpass     # a real sshd receiving failed logins, for detection tests
  hydra                      # brute-force client against real sshd and honeypots (ssh, mysql, ftp)
  openssh-client             # ssh and ssh-keygen, for the agent's real-sshd log test
  systemd                    # journalctl, which the agent's journald source runs
  systemd-journal-remote     # writes journal files for the journald source tests (no journald here)
  nftables conntrack socat   # the agent's firewall tests: nft, conntrack -D, clients and listeners in namespaces
  lftp                       # FTP client (plain and AUTH TLS) against the FTP honeypot
  curl                       # curl ftp:// (list, download, -T upload, --ssl-reqd) against the FTP honeypot
  rsync                      # the real rsync client (and daemon, for side-by-side output) against the rsync honeypot
  nodejs                     # node 20 with npm (this machine: NodeSource build): runs mongosh, installed from npm below
  ssh-audit                  # SSH honeypot: algorithm lists compared with a real sshd
  expect                     # SSH/Telnet honeypots: interactive sessions driven through a pty
  telnet                     # Telnet honeypot: a real telnet client
  nginx                      # the real server the HTTP honeypot's pages are compared with (tests) and benchmarked against
  wrk                        # HTTP load generator for bench/http
  tshark                     # JA3 of the ClientHello fixtures by Wireshark's dissector (text2pcap comes with it)
  openssl                    # catch-all: openssl s_client with an SNI through on-demand TLS
  iproute2                   # ip netns, ss: namespace topologies of the catch-all and firewall tests
  sqlite3                    # loads the schema-2 database dump the store upgrade test starts from
  util-linux                 # prlimit: the server started at a 1,024 open-file limit
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python client libraries, pinned in scripts/test-requirements.txt.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! cmp -s scripts/test-requirements.txt .venv/.installed-requirements 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check -r scripts/test-requirements.txt
  cp scripts/test-requirements.txt .venv/.installed-requirements
fi

# mongosh (the MongoDB shell, an npm package) for the MongoDB honeypot
# tests, pinned, into the gitignored .npm-tools/ (tests run
# .npm-tools/node_modules/.bin/mongosh). Needs node >= 20 and npm.
MONGOSH_VERSION=2.12.0
if [ "$(cat .npm-tools/.installed-mongosh 2>/dev/null)" != "$MONGOSH_VERSION" ]; then
  mkdir -p .npm-tools
  npm install --prefix .npm-tools --no-audit --no-fund --loglevel=error "mongosh@$MONGOSH_VERSION"
  echo "$MONGOSH_VERSION" > .npm-tools/.installed-mongosh
fi

# cargo-fuzz, for the short fuzz runs in CI (stable toolchain, `-s none`).
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install --locked -q cargo-fuzz
fi
