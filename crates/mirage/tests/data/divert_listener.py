"""Stand-in for the catch-all in the `mirage firewall` tests: a listener on
one port that reports, for every TCP connection and UDP datagram that
reaches it, the original destination the kernel kept (SO_ORIGINAL_DST
under redirect, the transparent socket's local address under TPROXY,
IP(V6)_RECVORIGDSTADDR for UDP). One line per arrival on stdout:
`tcp|udp PEER_IP ORIG_IP ORIG_PORT`.

Usage: divert_listener.py redirect|tproxy PORT
"""
import select
import socket
import struct
import sys

SO_ORIGINAL_DST = 80
IP_TRANSPARENT = 19
IP_RECVORIGDSTADDR = 20
IPV6_TRANSPARENT = 75
IPV6_RECVORIGDSTADDR = 74


def sockaddr(raw):
    family = struct.unpack_from("=H", raw)[0]
    port = struct.unpack_from("!H", raw, 2)[0]
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    socks = []
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        sol = socket.SOL_IP if family == socket.AF_INET else socket.IPPROTO_IPV6
        transparent = IP_TRANSPARENT if family == socket.AF_INET else IPV6_TRANSPARENT
        recv_orig = IP_RECVORIGDSTADDR if family == socket.AF_INET else IPV6_RECVORIGDSTADDR
        t = socket.socket(family, socket.SOCK_STREAM)
        u = socket.socket(family, socket.SOCK_DGRAM)
        for s in (t, u):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if mode == "tproxy":
            t.setsockopt(sol, transparent, 1)
        u.setsockopt(sol, transparent, 1)
        u.setsockopt(sol, recv_orig, 1)
        t.bind((host, port))
        t.listen(512)
        u.bind((host, port))
        socks += [(t, "tcp", family), (u, "udp", family)]
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([s for s, _, _ in socks], [], [])
        for s in ready:
            kind, family = next((k, f) for x, k, f in socks if x is s)
            if kind == "tcp":
                conn, peer = s.accept()
                if mode == "tproxy":
                    orig = conn.getsockname()[:2]
                elif family == socket.AF_INET:
                    orig = sockaddr(conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16))
                else:
                    orig = sockaddr(conn.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28))
                conn.close()
            else:
                _, anc, _, peer = s.recvmsg(2048, 256)
                orig = ("?", 0)
                for level, typ, data in anc:
                    if typ in (IP_RECVORIGDSTADDR, IPV6_RECVORIGDSTADDR):
                        orig = sockaddr(data)
            print(kind, peer[0], orig[0], orig[1], flush=True)


main()
