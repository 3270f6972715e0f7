"""The all-port seed's pandas analysis, as a baseline for `mirage report`.

Reads mirage JSONL event files (as the seed's notebook read its logs) in
chunks with pandas and computes what the seed plots: events per day,
distinct source IPs and destination ports per day, top ports raw and by
distinct source IP, distinct source IPs overall. Prints a JSON summary so
the bench can check both tools agree.

usage: python pandas_seed.py DIR [TOP]
"""
import glob
import json
import os
import sys

import pandas as pd


def main() -> None:
    directory = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    files = sorted(glob.glob(os.path.join(directory, "*.jsonl")))
    per_day = []
    day_ip = []
    day_port = []
    port_counts = []
    port_ip = []
    ips = []
    for path in files:
        for chunk in pd.read_json(path, lines=True, chunksize=500_000, dtype=False):
            chunk = chunk[["ts", "src_ip", "dst_port"]]
            chunk["day"] = chunk["ts"].str.slice(0, 10)
            per_day.append(chunk.groupby("day").size())
            day_ip.append(chunk[["day", "src_ip"]].drop_duplicates())
            day_port.append(chunk[["day", "dst_port"]].drop_duplicates())
            port_counts.append(chunk.groupby("dst_port").size())
            port_ip.append(chunk[["dst_port", "src_ip"]].drop_duplicates())
            ips.append(chunk["src_ip"].drop_duplicates())
    days = pd.concat(per_day).groupby(level=0).sum()
    ip_per_day = pd.concat(day_ip).drop_duplicates().groupby("day").size()
    port_per_day = pd.concat(day_port).drop_duplicates().groupby("day").size()
    ports = pd.concat(port_counts).groupby(level=0).sum()
    ports = ports.sort_values(ascending=False, kind="stable")
    by_ip = pd.concat(port_ip).drop_duplicates().groupby("dst_port").size()
    by_ip = by_ip.sort_values(ascending=False, kind="stable")
    distinct_ips = pd.concat(ips).nunique()
    out = {
        "days": {d: [int(days[d]), int(ip_per_day[d]), int(port_per_day[d])] for d in days.index},
        "top_ports": [[int(p), int(n)] for p, n in ports.head(top).items()],
        "top_ports_by_ip": [[int(p), int(n)] for p, n in by_ip.head(top).items()],
        "distinct_ips": int(distinct_ips),
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
