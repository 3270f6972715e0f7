"""Raw MySQL client for the conformance test (sensor_mysql.rs): runs the
same exchanges against a server and prints every server packet in hex, one
per line, with the bytes that differ by design (connection id, scramble)
masked. Run against a real mariadb-server and against the honeypot
imitating it, the two transcripts must be equal.

    python3 mysql_transcript.py PORT USER PASSWORD
"""
import hashlib
import socket
import sys

PORT, USER, PASSWORD = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
out = []


def pkt(seq, payload):
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def read(s):
    h = b""
    while len(h) < 4:
        d = s.recv(4 - len(h))
        if not d:
            return None
        h += d
    n = int.from_bytes(h[:3], "little")
    p = b""
    while len(p) < n:
        d = s.recv(n - len(p))
        if not d:
            return None
        p += d
    return h[3], p


def show(tag, seq, p):
    out.append(f"{tag} seq={seq} {p.hex()}")


def connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    seq, g = read(s)
    v_end = g.index(b"\0", 1)
    p = v_end + 1
    scramble = g[p + 4 : p + 12] + g[p + 31 : p + 43]
    masked = g[: p] + b"\xee" * 4 + b"\xee" * 8 + g[p + 12 : p + 31] + b"\xee" * 12 + g[p + 43 :]
    return s, scramble, masked


def token(pw, scramble):
    if not pw:
        return b""
    s1 = hashlib.sha1(pw).digest()
    s2 = hashlib.sha1(s1).digest()
    m = hashlib.sha1(scramble + s2).digest()
    return bytes(a ^ b for a, b in zip(s1, m))


# The caps of the mariadb CLI (libmariadb 3.3, MariaDB extensions 0x1d) and
# of PyMySQL 1.1 (a "MySQL" client: bit 0 set, no extensions).
CLI = (0x00BFA28C, 0x1D, 33)
PYMYSQL = (0x003AA20D, 0, 45)


def response(caps, ext, charset, user, tok, db=None):
    c = (caps & ~0x8) | (0x8 if db else 0)
    b = c.to_bytes(4, "little") + (1 << 24).to_bytes(4, "little") + bytes([charset])
    b += b"\0" * 19 + ext.to_bytes(4, "little") + user + b"\0"
    b += bytes([len(tok)]) + tok
    if db:
        b += db + b"\0"
    b += b"mysql_native_password\0"
    attrs = b"\x0c_client_name\x04test"
    b += bytes([len(attrs)]) + attrs
    return pkt(1, b)


def drain(s, limit=64):
    """Server packets until the end of one reply (OK, ERR, or a result set's
    final EOF)."""
    first = read(s)
    if first is None:
        out.append("CLOSED")
        return
    show("S", *first)
    seq, p = first
    if p[:1] in (b"\x00", b"\xff", b"\xfe") or len(p) == 0:
        return
    eofs = 0
    for _ in range(limit):
        r = read(s)
        if r is None:
            out.append("CLOSED")
            return
        show("S", *r)
        if r[1][:1] == b"\xfe" and len(r[1]) < 9:
            eofs += 1
            if eofs == 2:
                return
        if r[1][:1] == b"\xff":
            return


def until_close(s):
    # A close with a FIN and one with a RST (mariadbd closing with unread
    # bytes in its buffer) are both "closed" here: the honeypot's harness
    # always closes politely.
    while True:
        try:
            r = read(s)
        except (ConnectionResetError, socket.timeout):
            r = None
        if r is None:
            out.append("CLOSED")
            return
        show("S", *r)


def scenarios():
    # The greeting.
    s, scramble, masked = connect()
    out.append("greeting " + masked.hex())
    s.close()

    # Denied logins: wrong password, no password, both client kinds.
    for caps, ext, cs in (CLI, PYMYSQL):
        for pw in (b"wrong", b""):
            s, scramble, _ = connect()
            s.sendall(response(caps, ext, cs, b"nobody", token(pw, scramble)))
            until_close(s)
            s.close()

    # Broken handshakes.
    for data in (pkt(1, b"\x05\xa2"), b"GET / HTTP/1.0\r\n\r\n", pkt(1, b"\x8d\xa2\x3a\x00" + b"\0" * 28 + b"noterm")):
        s, _, _ = connect()
        s.sendall(data)
        until_close(s)
        s.close()

    # Logged in: what clients send at connect, errors, state changes.
    QUERIES = [
        b"select @@version_comment limit 1",
        b"SELECT VERSION()",
        b"SELECT DATABASE()",
        b"select 1",
        b"selec 1",
        b"select * from nothere",
        b"SET autocommit=0",
        b"select 1, 'a', NULL",
    ]
    for caps, ext, cs in (CLI, PYMYSQL):
        s, scramble, _ = connect()
        s.sendall(response(caps, ext, cs, USER, token(PASSWORD, scramble)))
        drain(s)
        for q in QUERIES:
            s.sendall(pkt(0, b"\x03" + q))
            drain(s)
        for c in (b"\x02mysql", b"\x0e", b"\x03SELECT DATABASE()", b"\x99", b"\x02nodb"):
            s.sendall(pkt(0, c))
            drain(s)
        s.sendall(pkt(0, b"\x01"))
        until_close(s)
        s.close()


try:
    scenarios()
finally:
    print("\n".join(out))
