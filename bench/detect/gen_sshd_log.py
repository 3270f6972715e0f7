#!/usr/bin/env python3
"""Generate a realistic /var/log/auth.log-style sshd log for the detection
benchmark: rsyslog traditional file format, a mix of brute-force noise,
scanners and legitimate logins from many source addresses.

usage: gen_sshd_log.py OUT [LINES] [SEED]
"""
import random
import sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 42)

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
USERS = ["root"] * 20 + ["admin", "test", "user", "oracle", "postgres", "ubuntu", "pi",
         "git", "ftpuser", "guest", "support", "deploy", "mysql", "hadoop", "nagios"]
VALID = {"root", "git", "ubuntu", "deploy", "mysql"}
HOSTS = ["web1", "web2", "db1", "bastion"]

# Many sources: a heavy tail of scanners plus a few persistent brute forcers.
heavy = [f"198.51.100.{i}" for i in range(1, 40)]


def src():
    r = rng.random()
    if r < 0.25:
        return rng.choice(heavy)
    if r < 0.30:
        return f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}"
    return f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


t = 1_795_200_000  # 2026-11-20
lines = []
with open(out, "w") as f:
    for i in range(n):
        t += rng.random() * 0.17
        lt = int(t)
        # Naive UTC breakdown for the stamp (Nov 2026 only: fine for a bench).
        day = 20 + (lt - 1_795_132_800) // 86400  # 1_795_132_800 = 2026-11-20T00:00Z
        s = lt % 86400
        stamp = f"Nov {day:2d} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
        host = rng.choice(HOSTS)
        prog = "sshd" if rng.random() < 0.6 else "sshd-session"
        pid = rng.randrange(1000, 65000)
        ip = src()
        port = rng.randrange(1024, 65536)
        user = rng.choice(USERS)
        inv = "" if user in VALID else "invalid user "
        r = rng.random()
        if r < 0.50:
            msg = f"Failed password for {inv}{user} from {ip} port {port} ssh2"
        elif r < 0.58:
            msg = f"Invalid user {user} from {ip} port {port}"
        elif r < 0.66:
            msg = f"Connection closed by {('authenticating user ' + user + ' ') if not inv else ('invalid user ' + user + ' ')}{ip} port {port} [preauth]"
        elif r < 0.70:
            msg = f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}"
        elif r < 0.73:
            msg = f"Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"
        elif r < 0.76:
            msg = f"Disconnected from {inv or 'authenticating user '}{user} {ip} port {port} [preauth]"
        elif r < 0.78:
            k = rng.randrange(2, 6)
            msg = f"message repeated {k} times: [ Failed password for {inv}{user} from {ip} port {port} ssh2]"
        elif r < 0.80:
            msg = f"error: maximum authentication attempts exceeded for {inv}{user} from {ip} port {port} ssh2 [preauth]"
        elif r < 0.83:
            fp = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(43))
            msg = f"Accepted publickey for deploy from 192.0.2.{rng.randrange(1, 20)} port {port} ssh2: ED25519 SHA256:{fp}"
        elif r < 0.86:
            msg = f"pam_unix(sshd:session): session opened for user deploy(uid=1000) by deploy(uid=0)"
        elif r < 0.89:
            msg = f"pam_unix(sshd:session): session closed for user deploy"
        elif r < 0.92:
            msg = f"Unable to negotiate with {ip} port {port}: no matching key exchange method found. Their offer: diffie-hellman-group14-sha1,diffie-hellman-group1-sha1 [preauth]"
        elif r < 0.95:
            msg = f"Connection reset by {ip} port {port} [preauth]"
        elif r < 0.97:
            msg = f"Did not receive identification string from {ip} port {port}"
        else:
            msg = f"pam_unix(sshd:auth): check pass; user unknown"
        f.write(f"{stamp} {host} {prog}[{pid}]: {msg}\n")
