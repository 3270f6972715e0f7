"""Commits batches of decisions straight into the server's SQLite store (one
transaction per batch, with their change-log rows, as the CLI writes them)
and times until every agent's `deceive_v4` set holds all of them."""
import json
import sqlite3
import subprocess
import sys
import time

db, suffix, agents = sys.argv[1], sys.argv[2], int(sys.argv[3])


def set_size(i):
    out = subprocess.run(
        ["ip", "netns", "exec", f"mbf_a{i}_{suffix}", "nft", "-j", "list", "set",
         "inet", "mirage", "deceive_v4"], capture_output=True, text=True).stdout
    try:
        for item in json.loads(out)["nftables"]:
            if "set" in item:
                return len(item["set"].get("elem", []))
    except (ValueError, KeyError):
        pass
    return 0


def commit(first, n):
    now = int(time.time() * 1e6)
    exp = now + 3600 * 1_000_000
    rows = [(f"10.{(k >> 16) & 255}.{(k >> 8) & 255}.{k & 255}",) for k in range(first, first + n)]
    con = sqlite3.connect(db, timeout=60)
    with con:
        con.executemany(
            "INSERT OR REPLACE INTO decisions (ip, decision, rule, severity, reason, key, "
            "created_micros, expires_micros, evidence, origin) "
            f"VALUES (?, 'deceive', 'bench', 'high', 'bench', '', {now}, {exp}, 0, 'cli')", rows)
        con.executemany(
            "INSERT INTO decision_changes (op, at_micros, ip, decision, rule, severity, reason, key, "
            "created_micros, expires_micros, evidence, origin) "
            f"VALUES ('add', {now}, ?, 'deceive', 'bench', 'high', 'bench', '', {now}, {exp}, 0, 'cli')", rows)
    con.close()


total = 0
first = 1
for n in (1, 1000, 100000):
    t0 = time.monotonic()
    commit(first, n)
    committed = time.monotonic() - t0
    first += n
    total += n
    done = {}
    while len(done) < agents:
        for i in range(1, agents + 1):
            if i not in done and set_size(i) >= total:
                done[i] = time.monotonic() - t0
        if time.monotonic() - t0 > 120:
            sys.exit(f"{n}: only {len(done)} of {agents} agents enforced within 120 s")
        time.sleep(0.005 if n < 1000 else 0.05)
    times = sorted(done.values())
    print(f"{n:>7} decisions (set now {total}): store commit {committed * 1000:.0f} ms; "
          f"all {agents} agents enforced: first {times[0] * 1000:.0f} ms, "
          f"median {times[len(times) // 2] * 1000:.0f} ms, last {times[-1] * 1000:.0f} ms")
