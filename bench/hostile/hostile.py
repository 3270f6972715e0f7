#!/usr/bin/env python3
"""The review's attacks on `mirage server` and `mirage agent` (issue 21),
one scenario per run, printing its figures as one JSON line.

    hostile.py SCENARIO MIRAGE_BINARY WORKDIR

Run by run.sh inside a fresh network namespace (so every address here is
the namespace's loopback and nothing outside is touched), once with the
binary from before the fixes and once with the new one. Scenarios:

  disk_full      data dir on a 2 MiB tmpfs, 30,000 syslog lines, signed
                 ingest while full, the disk enlarged, kill -9: what was
                 acknowledged and is not stored; whether it recovers alone;
                 how long SIGTERM takes while full
  acked_loss     agent -> server with the store held busy, kill -9 of both:
                 lines the agent counts as delivered that are not stored
  spoofed_udp    one forged UDP datagram naming the operator; 100 datagrams
                 of "message repeated 1000 times": decisions, events, bytes
  forged_policy  an enrolled agent (firewall mode) whose server is replaced
                 by a fake one answering an unsigned snapshot: what of it
                 lands in nftables
  http_flood     200 unsigned 16 MiB ingest bodies and 2,000 slow-loris
                 clients on each HTTP listener, the server started at a
                 1,024 open-file soft limit: peak RSS, legitimate latency
  idle_syslog    1,030 idle syslog connections, then a sender's five
                 failed logins: seconds until the decision
  sensor_memory  `mirage sensor` (Redis, default config): 300 connections
                 from two addresses each sending all but the end of an
                 8 MB bulk: peak RSS, whether PING still answers in 1 s,
                 sessions cut
"""

import asyncio
import hashlib
import hmac
import json
import os
import re
import resource
import signal
import socket
import sqlite3
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

KEY = b"shared-secret-of-more-than-32-bytes-0123456789"
SYSLOG = ("127.0.0.1", 10514)
INGEST = ("127.0.0.1", 8514)
API = ("127.0.0.1", 8515)


def wait_port(addr, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(addr, timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {addr}")


class Server:
    """A `mirage server` child with its data dir, config and log."""

    def __init__(self, binary, work, config="", prefix=()):
        self.binary, self.work, self.prefix = binary, work, list(prefix)
        self.data = os.path.join(work, "data")
        self.config = os.path.join(work, "server.toml")
        with open(self.config, "w") as f:
            f.write(config)
        self.proc = None

    def start(self):
        log = open(os.path.join(self.work, "server.log"), "a")
        self.proc = subprocess.Popen(
            self.prefix
            + [self.binary, "server", "--config", self.config, "--data-dir", self.data,
               "--syslog", f"{SYSLOG[0]}:{SYSLOG[1]}"],
            stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "MIRAGE_LOG": "info"})
        wait_port(SYSLOG)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def cli(self, *args, timeout=60):
        return subprocess.run([self.binary, "server", *args, "--data-dir", self.data],
                              capture_output=True, text=True, timeout=timeout)

    def decisions(self):
        r = self.cli("decisions", "list", "--format", "json")
        return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else []

    def events(self):
        r = self.cli("events", "--format", "json", "--limit", "10000000", timeout=300)
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    def peak_rss_mib(self):
        return status_kib(self.proc.pid, "VmHWM") // 1024


def status_kib(pid, field):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def signed_headers(method, path, body):
    ts = str(int(time.time()))
    nonce = uuid.uuid4().hex
    digest = hashlib.sha256(body).hexdigest()
    msg = f"{method}\n{path}\n{ts}\n{nonce}\n{digest}".encode()
    sig = hmac.new(KEY, msg, hashlib.sha256).hexdigest()
    return {"x-mirage-timestamp": ts, "x-mirage-nonce": nonce, "x-mirage-signature": sig,
            "x-mirage-content-sha256": digest, "x-mirage-sensor": "bench"}


def http_post(addr, path, body, headers=None, tls_pin=None, timeout=10):
    """A minimal HTTP/1.1 POST; returns (status, body). With `tls_pin`, TLS
    to a certificate whose SHA-256 is that pin (what the agent does)."""
    s = socket.create_connection(addr, timeout=timeout)
    if tls_pin is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname="mirage-server")
        if hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest() != tls_pin:
            raise OSError("certificate does not match the pin")
    head = f"POST {path} HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    s.sendall(head.encode() + b"\r\n" + body)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data.split(b"\r\n\r\n", 1)[-1]


def event_batch(n, pad=600):
    ids, lines = [], []
    for _ in range(n):
        eid = str(uuid.uuid7()) if hasattr(uuid, "uuid7") else str(uuid.uuid4())
        ids.append(eid)
        lines.append(json.dumps({
            "schema": 1, "id": eid, "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sensor": "hp1", "service": "redis", "transport": "tcp",
            "src_ip": "203.0.113.9", "src_port": 40000, "dst_ip": "10.0.0.1", "dst_port": 6379,
            "kind": "command", "command": "set", "args": [], "raw": "x" * pad}))
    return ("\n".join(lines) + "\n").encode(), ids


# The ingest certificate's pin once the server under test serves ingest
# over TLS (binaries with `mirage server pin`; older ones speak plain HTTP).
INGEST_PIN = None


def has_ingest_tls(binary):
    """Whether `binary` serves ingest over TLS by default (it has `server pin`)."""
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([binary, "server", "pin", "--data-dir", d], capture_output=True, text=True)
    return r.returncode == 0


def learn_ingest_pin(srv):
    global INGEST_PIN
    r = srv.cli("pin")
    INGEST_PIN = r.stdout.strip() if r.returncode == 0 else None


def ingest(body):
    try:
        return http_post(INGEST, "/api/v1/events", body, signed_headers("POST", "/api/v1/events", body),
                         tls_pin=INGEST_PIN)[0]
    except OSError:
        return 0


def ingest_batches(n, acked):
    """Post `n` signed batches of 100 events; the ids of those answered
    200 go to `acked`. Returns how many got each status (0: no answer)."""
    answers = {}
    for _ in range(n):
        body, ids = event_batch(100)
        st = ingest(body)
        answers[st] = answers.get(st, 0) + 1
        if st == 200:
            acked += ids
    return answers


def syslog_lines(lines):
    s = socket.create_connection(SYSLOG)
    s.sendall("".join(l + "\n" for l in lines).encode())
    s.close()


def now5424():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def failed(user, ip, port):
    return f"<38>1 {now5424()} web1 sshd 1 - - Failed password for {user} from {ip} port {port} ssh2"


# ---------------------------------------------------------------- disk_full

def disk_full(binary, work):
    data = os.path.join(work, "data")
    os.makedirs(data)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", data], check=True)
    try:
        key = os.path.join(work, "ingest.key")
        open(key, "wb").write(KEY)
        srv = Server(binary, work, f'[ingest]\nlisten = "{INGEST[0]}:{INGEST[1]}"\nkey_file = "{key}"\n')
        srv.start()
        wait_port(INGEST)
        learn_ingest_pin(srv)
        syslog_lines([failed(f"user{i}", f"198.51.100.{i % 200}", 1024 + i % 60000) for i in range(30000)])
        time.sleep(3)
        acked = []
        answers_full = ingest_batches(50, acked)
        r = srv.cli("decisions", "add", "203.0.113.77", "--type", "block", "--ttl", "1h")
        add_while_full = "ok" if r.returncode == 0 else r.stderr.strip()[:80]
        subprocess.run(["mount", "-o", "remount,size=256m", data], check=True)
        time.sleep(5)
        answers_after = ingest_batches(20, acked)
        # Recovered alone: the events acknowledged after the disk grew are
        # readable while the same process runs.
        stored_live = {e.get("id") for e in srv.events()}
        recovered = all(i in stored_live for i in acked[-100:]) if acked else False
        srv.kill9()
        srv.start()
        stored = [e.get("id") for e in srv.events()]
        counts = {}
        for i in stored:
            counts[i] = counts.get(i, 0) + 1
        lost = sum(1 for i in acked if i not in counts)
        dup = sum(1 for i in acked if counts.get(i, 0) > 1)
        # SIGTERM while the disk is full again.
        used = int(subprocess.run(["df", "--output=used", "-k", data], capture_output=True,
                                  text=True).stdout.split()[-1])
        subprocess.run(["mount", "-o", f"remount,size={used + 512}k", data], check=True)
        syslog_lines([failed(f"again{i}", f"198.51.100.{i % 200}", 1024 + i % 60000) for i in range(30000)])
        ingest_batches(20, [])
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            srv.proc.wait(timeout=60)
            sigterm = round(time.time() - t0, 1)
        except subprocess.TimeoutExpired:
            sigterm = ">60"
            srv.kill9()
        log = open(os.path.join(work, "server.log")).read()
        return {"ingest_answers_while_full": answers_full, "decisions_add_while_full": add_while_full,
                "ingest_answers_after_space": answers_after, "recovered_without_restart": recovered,
                "acked": len(acked), "acked_lost_after_kill9": lost, "acked_duplicated": dup,
                "sigterm_secs_while_full": sigterm,
                "disk_full_log_lines": len(re.findall(r"disk full|database or disk is full", log))}
    finally:
        subprocess.run(["umount", "-l", data])


# --------------------------------------------------------------- acked_loss

def read_queue(qdir):
    """Sequence number of the first unacknowledged record, and the payloads
    from it on (the agent's disk queue layout, docs in queue.rs)."""
    pos = 0
    try:
        raw = open(os.path.join(qdir, "position"), "rb").read()
        if len(raw) == 12:
            pos = struct.unpack("<Q", raw[:8])[0]
    except OSError:
        pass
    held = []
    for name in sorted(os.listdir(qdir)):
        if not name.endswith(".seg"):
            continue
        seq = int(name[:-4])
        buf = open(os.path.join(qdir, name), "rb").read()
        off = 0
        while off + 8 <= len(buf):
            (n,) = struct.unpack("<I", buf[off:off + 4])
            payload = buf[off + 8:off + 8 + n]
            if len(payload) < n:
                break
            if seq >= pos:
                held.append(payload)
            seq += 1
            off += 8 + n
    return held


def acked_loss(binary, work):
    srv = Server(binary, work)
    srv.start()
    time.sleep(1)
    authlog = os.path.join(work, "auth.log")
    open(authlog, "w").close()
    state = os.path.join(work, "agent-state")
    cfg = os.path.join(work, "agent.toml")
    open(cfg, "w").write(
        f'[agent]\nid = "bench-agent"\nhostname = "prod1"\nstate_dir = "{state}"\nheartbeat_secs = 3600\n\n'
        f'[output]\naddress = "{SYSLOG[0]}:{SYSLOG[1]}"\n\n'
        f'[[sources]]\nname = "auth"\nkind = "file"\nservice = "ssh"\npaths = ["{authlog}"]\n'
        f'format = "raw"\nread_from = "start"\n')
    agent = subprocess.Popen([binary, "agent", "--config", cfg], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(work, "agent.log"), "a"))
    n_before, n_busy = 2000, 3000

    def write(rng):
        with open(authlog, "a") as f:
            for i in rng:
                f.write(f"Failed password for user{i} from 192.0.2.{1 + i % 200} port {1024 + i} ssh2\n")

    write(range(n_before))
    time.sleep(4)
    # Another writer holds the store's write lock: the server's commits wait.
    db = sqlite3.connect(os.path.join(srv.data, "mirage.db"), timeout=30, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    write(range(n_before, n_before + n_busy))
    qdir = os.path.join(state, "queue")
    end = time.time() + 30
    needle = f"user{n_before + n_busy - 1} ".encode()
    while time.time() < end and not any(
            needle in open(os.path.join(qdir, f), "rb").read()
            for f in os.listdir(qdir) if f.endswith(".seg")):
        time.sleep(0.2)
    time.sleep(5)
    srv.kill9()
    agent.kill()
    agent.wait()
    db.rollback()
    db.close()
    held = set()
    for p in read_queue(qdir):
        m = re.search(rb"user(\d+) ", p)
        if m:
            held.add(int(m.group(1)))
    delivered = [i for i in range(n_before + n_busy) if i not in held]
    srv.start()
    time.sleep(2)
    counts = {}
    for e in srv.events():
        m = re.search(r"user(\d+)\b", json.dumps(e))
        if m:
            counts[int(m.group(1))] = counts.get(int(m.group(1)), 0) + 1
    srv.kill9()
    return {"lines": n_before + n_busy, "agent_counts_delivered": len(delivered),
            "delivered_not_stored": sum(1 for i in delivered if i not in counts),
            "stored_twice": sum(1 for c in counts.values() if c > 1)}


# -------------------------------------------------------------- spoofed_udp

def db_bytes(data):
    return sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)
               if f.startswith("mirage.db"))


def spoofed_udp(binary, work):
    srv = Server(binary, work)
    srv.start()
    time.sleep(1)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    operator = "10.20.30.40"
    u.sendto(f"<38>1 - web1 sshd 1 - - message repeated 5 times: [ Failed password for root from {operator} port 50000 ssh2]".encode(), SYSLOG)
    time.sleep(3)
    operator_blocked = any(d.get("ip") == operator for d in srv.decisions())
    base_events, base_bytes = len(srv.events()), db_bytes(srv.data)
    t0 = time.time()
    sent = 0
    for i in range(100):
        msg = (f"<38>1 - web1 sshd 1 - - message repeated 1000 times: [ Failed password for user{i} "
               f"from 203.0.113.{i % 250} port {1000 + i} ssh2]").encode()
        u.sendto(msg, SYSLOG)
        sent += len(msg)
    time.sleep(4)
    ev = srv.events()
    decisions = srv.decisions()
    srv.kill9()
    return {"operator_blocked_by_one_datagram": operator_blocked, "datagrams": 100, "bytes_sent": sent,
            "events_made": len(ev) - base_events, "db_growth_kib": (db_bytes(srv.data) - base_bytes) // 1024,
            "decisions_made": sum(1 for d in decisions if d.get("ip", "").startswith("203.0.113.")),
            "secs": round(time.time() - t0, 1)}


# ------------------------------------------------------------ forged_policy

FAKE = r'''
import http.server, ssl, sys, json, time
BODY = json.dumps({"type": "snapshot", "version": 999, "mode": "honeypot",
    "whitelist": {"sources": [], "ports": []},
    "services": [{"proto": "tcp", "port": 22, "service": "ssh", "honeypot": "198.51.100.99:22"}],
    "decisions": [{"ip": ip, "decision": "block", "expires_unix": int(time.time()) + 3650 * 86400}
                  for ip in ["10.55.0.1", "0.0.0.0", "255.255.255.255", "198.51.100.66"]]}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", 8515), H).serve_forever()
'''


def nft_table():
    r = subprocess.run(["nft", "list", "table", "inet", "mirage"], capture_output=True, text=True)
    return r.stdout


def forged_policy(binary, work):
    subprocess.run(["ip", "addr", "add", "10.55.0.1/24", "dev", "lo"], check=True)
    srv = Server(binary, work)
    log = open(os.path.join(work, "server.log"), "a")
    srv.proc = subprocess.Popen([binary, "server", "--config", srv.config, "--data-dir", srv.data,
                                 "--syslog", "127.0.0.1:10514", "--listen", "127.0.0.1:8515"],
                                stdout=subprocess.DEVNULL, stderr=log)
    wait_port(API)
    token = srv.cli("tokens", "create").stdout.strip()
    agent = subprocess.Popen([binary, "agent", "--server", "127.0.0.1:8515", "--mode", "firewall",
                              "--syslog", "127.0.0.1:10514", "--state-dir", os.path.join(work, "agent-state"),
                              "--enroll", token], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(work, "agent.log"), "a"))
    end = time.time() + 30
    while time.time() < end and "table inet mirage" not in nft_table():
        time.sleep(0.2)
    srv.cli("decisions", "add", "203.0.113.50", "--type", "block", "--ttl", "1h")
    end = time.time() + 20
    while time.time() < end and "203.0.113.50" not in nft_table():
        time.sleep(0.2)
    srv.kill9()
    open(os.path.join(work, "fake.py"), "w").write(FAKE)
    fake = subprocess.Popen([sys.executable, os.path.join(work, "fake.py")], stderr=subprocess.DEVNULL)
    wait_port(API)
    time.sleep(45)  # the agent's long poll ends and it asks again, more than once
    table = nft_table()
    fake.kill()
    agent.kill()
    agent.wait()
    # The sets that enforce decisions: all but allow_* (which hold what is
    # protected, the host's own addresses among them).
    enforcing = "\n".join(b for b in table.split("\n\tset ") if not b.startswith("allow_"))
    forged = [ip for ip in ["10.55.0.1", "0.0.0.0", "255.255.255.255", "198.51.100.66"]
              if re.search(rf"[ {{,]{re.escape(ip)}[ ,}}\n]", enforcing)]
    subprocess.run(["nft", "delete", "table", "inet", "mirage"], capture_output=True)
    return {"forged_decisions_enforced": forged, "forged_redirect_installed": "198.51.100.99" in table,
            "real_decision_kept": "203.0.113.50" in table}


# --------------------------------------------------------------- http_flood

async def slow_loris(n, addr, tls, cut):
    try:
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind((f"127.0.0.{n}", 0))
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, addr)
        r, w = await asyncio.open_connection(sock=sock)
    except OSError:
        return
    try:
        w.write(b"\x16\x03\x01\x02" if tls else b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\n")
        await w.drain()
        for i in range(40):
            try:
                data = await asyncio.wait_for(r.read(512), 1.0)
                if not data:
                    cut.append(1)
                    return
            except asyncio.TimeoutError:
                w.write(b"\x00" if tls else f"X-Slow-{i}: 1\r\n".encode())
                await w.drain()
    except (OSError, ConnectionError):
        cut.append(1)
    finally:
        w.close()


async def body_bomb(addr, answers):
    try:
        r, w = await asyncio.open_connection(*addr)
        w.write(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
                b"Content-Length: 16777216\r\n\r\n")
        chunk = b"{" * 65536

        async def pump():
            for _ in range(256):
                w.write(chunk)
                await w.drain()
        t = asyncio.create_task(pump())
        data = await asyncio.wait_for(r.read(64), 120)
        t.cancel()
        st = data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "closed"
    except (OSError, ConnectionError, asyncio.TimeoutError, IndexError):
        st = "error"
    answers[st] = answers.get(st, 0) + 1


def http_flood(binary, work):
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    key = os.path.join(work, "ingest.key")
    open(key, "wb").write(KEY)
    # Ingest in plain HTTP on both sides, so the body bombs and slow
    # clients hit the HTTP layer itself (the API listener is the TLS case).
    global INGEST_PIN
    INGEST_PIN = None
    plain = "tls = false\n" if has_ingest_tls(binary) else ""
    srv = Server(binary, work,
                 f'[ingest]\nlisten = "{INGEST[0]}:{INGEST[1]}"\nkey_file = "{key}"\n{plain}'
                 f'[api]\nlisten = "{API[0]}:{API[1]}"\n', prefix=["prlimit", "--nofile=1024:"])
    srv.start()
    wait_port(INGEST)
    wait_port(API)
    tokens = [srv.cli("tokens", "create").stdout.strip() for _ in range(3)]
    rss_before = status_kib(srv.proc.pid, "VmRSS") // 1024
    tls = any("." in t for t in tokens)
    latencies = []

    def legit():
        for round_ in range(3):
            t0 = time.time()
            st = ingest(event_batch(1, pad=10)[0])
            latencies.append(("ingest", st, round(time.time() - t0, 3)))
            secret, _, pin = tokens[round_].partition(".")
            body = json.dumps({"token": secret, "agent_id": f"web{round_}", "hostname": "web",
                               "settings": {}}).encode()
            t0 = time.time()
            try:
                st = http_post(API, "/api/v1/enroll", body, {"content-type": "application/json"},
                               tls_pin=pin if tls else None)[0]
            except OSError:
                st = 0
            latencies.append(("enroll", st, round(time.time() - t0, 3)))
            time.sleep(2)

    async def flood():
        cut_i, cut_a, answers = [], [], {}
        tasks = []
        for i in range(2000):
            n = 2 + i % 8
            tasks.append(asyncio.create_task(slow_loris(n, INGEST, False, cut_i)))
            tasks.append(asyncio.create_task(slow_loris(n, API, tls, cut_a)))
        bombs = [asyncio.create_task(body_bomb(INGEST, answers)) for _ in range(200)]
        await asyncio.sleep(2)
        th = threading.Thread(target=legit)
        th.start()
        await asyncio.gather(*bombs)
        while th.is_alive():
            await asyncio.sleep(0.2)
        await asyncio.sleep(8)
        res = (len(cut_i), len(cut_a), answers)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return res

    cut_i, cut_a, answers = asyncio.run(flood())
    peak = srv.peak_rss_mib()
    srv.kill9()
    worst = max((l[2] for l in latencies if l[1] == 200), default=None)
    return {"rss_before_mib": rss_before, "peak_rss_mib": peak, "bomb_answers": answers,
            "slow_clients_cut": {"ingest": cut_i, "api": cut_a},
            "legit_ok": sum(1 for l in latencies if l[1] == 200), "legit_total": len(latencies),
            "legit_worst_secs": worst, "legit": latencies}


# -------------------------------------------------------------- idle_syslog

def idle_syslog(binary, work):
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    srv = Server(binary, work)
    srv.start()
    idle = [socket.create_connection(SYSLOG) for _ in range(1030)]
    time.sleep(3)
    t0 = time.time()
    res = {}

    def send():
        s = socket.create_connection(SYSLOG)
        s.sendall("".join(failed("root", "192.0.2.201", 1000 + i) + "\n" for i in range(5)).encode())
        res["sent_after"] = round(time.time() - t0, 2)
        time.sleep(60)
        s.close()
    threading.Thread(target=send, daemon=True).start()
    decided = None
    while time.time() - t0 < 60:
        if any(d.get("ip") == "192.0.2.201" for d in srv.decisions()):
            decided = round(time.time() - t0, 1)
            break
        time.sleep(0.2)
    for s in idle:
        s.close()
    srv.kill9()
    return {"idle_connections": 1030, "secs_to_decision": decided if decided is not None else ">60"}


# ------------------------------------------------------------ sensor_memory

def sensor_memory(binary, work):
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    port = 6399
    log = open(os.path.join(work, "sensor.log"), "w")
    proc = subprocess.Popen([binary, "sensor", "--service", f"redis=127.0.0.1:{port}",
                             "--log-dir", os.path.join(work, "events")],
                            stdout=subprocess.DEVNULL, stderr=log)
    wait_port(("127.0.0.1", port))
    head = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8000000\r\n"
    body = b"x" * 7_999_000
    conns, held = [], []

    def one(i):
        c = socket.socket()
        c.bind((f"127.0.0.{1 + i % 2}", 0))
        c.connect(("127.0.0.1", port))
        conns.append(c)
        try:
            c.sendall(head + body)
            held.append(1)
        except OSError:
            pass
    t0 = time.time()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(300)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.5)
    t1 = time.time()
    try:
        p = socket.create_connection(("127.0.0.1", port), timeout=5)
        p.sendall(b"*1\r\n$4\r\nPING\r\n")
        pong = p.recv(16) == b"+PONG\r\n"
        p.close()
    except OSError:
        pong = False
    ping_secs = round(time.time() - t1, 3)
    peak = status_kib(proc.pid, "VmHWM") // 1024
    for c in conns:
        c.close()
    time.sleep(1)
    proc.terminate()
    proc.wait(timeout=30)
    cut = 0
    for name in os.listdir(os.path.join(work, "events")):
        if name.endswith(".jsonl"):
            for line in open(os.path.join(work, "events", name)):
                if '"memory_budget"' in line:
                    cut += 1
    return {"connections": 300, "peak_rss_mib": peak, "ping_ok": pong, "ping_secs": ping_secs,
            "writers_fully_sent": len(held), "sessions_cut_memory_budget": cut,
            "flood_secs": round(t1 - t0, 1)}


def main():
    scenario, binary, work = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
    os.makedirs(work, exist_ok=True)
    fn = globals()[scenario]
    print(json.dumps({"scenario": scenario, **fn(binary, work)}), flush=True)


if __name__ == "__main__":
    main()
