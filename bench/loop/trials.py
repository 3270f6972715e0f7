"""Writes five failed-login lines per trial (a new source address each) and
times how long until that address is in the agent's nft set. The set is
read with `nft -j list set` about every 2 ms; that sampling is included in
the figures (they are upper bounds by up to one sample)."""
import json
import subprocess
import sys
import time

ns, log, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])


def in_set(ip):
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-j", "list", "set", "inet", "mirage", "deceive_v4"],
        capture_output=True, text=True).stdout
    return ip in out


lat = []
for i in range(trials):
    ip = f"10.{100 + i // 60000}.{(i // 250) % 250}.{1 + i % 250}"
    lines = "".join(
        f"Failed password for root from {ip} port {40000 + k} ssh2\n" for k in range(5))
    with open(log, "a") as f:
        f.write(lines)
        f.flush()
        t0 = time.monotonic()
    while not in_set(ip):
        if time.monotonic() - t0 > 10:
            sys.exit(f"trial {i}: {ip} never enforced")
        time.sleep(0.002)
    lat.append((time.monotonic() - t0) * 1000)
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]
print(f"trials: {len(lat)}")
print(f"p50: {pct(50):.1f} ms  p90: {pct(90):.1f} ms  p99: {pct(99):.1f} ms  max: {lat[-1]:.1f} ms")
