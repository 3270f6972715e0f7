#!/usr/bin/env python3
"""Fingerprints of a raw ClientHello by two independent implementations.

Usage: reference.py FILE.bin  (the bytes a client sent first)
Prints one JSON object: ja3 and ja3_full from tshark (Wireshark's TLS
dissector; JA3 is in Wireshark since 3.6), ja4 and ja4_r from the ja4plus
package (PyPI, a Python implementation of FoxIO's JA4 spec), and tshark's
SNI and ALPN list. A key is missing when its tool is not installed, so the
caller can tell "not checked" from "different".

The bytes are wrapped in one synthetic TCP segment to port 443 with
text2pcap (from Wireshark) for tshark, and in a scapy packet for ja4plus:
both tools parse the TLS bytes themselves.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile


def tshark_fields(data: bytes) -> dict:
    if not (shutil.which("tshark") and shutil.which("text2pcap")):
        return {}
    with tempfile.TemporaryDirectory() as d:
        hexdump = os.path.join(d, "hello.txt")
        pcap = os.path.join(d, "hello.pcap")
        with open(hexdump, "w") as f:
            for off in range(0, len(data), 16):
                chunk = data[off:off + 16]
                f.write("%06x %s\n" % (off, " ".join("%02x" % b for b in chunk)))
        subprocess.run(["text2pcap", "-q", "-T", "40000,443", hexdump, pcap],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        fields = ["tls.handshake.ja3", "tls.handshake.ja3_full",
                  "tls.handshake.extensions_server_name", "tls.handshake.extensions_alpn_str"]
        cmd = ["tshark", "-r", pcap, "-n", "-Y", "tls.handshake.type == 1", "-T", "fields",
               "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"]
        for fl in fields:
            cmd += ["-e", fl]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             env=dict(os.environ, HOME=d)).stdout
        line = out.splitlines()[0] if out.strip() else ""
        if not line:
            return {"tshark": "no ClientHello"}
        ja3, ja3_full, sni, alpn = (line.split("\t") + ["", "", "", ""])[:4]
        return {"ja3": ja3, "ja3_full": ja3_full, "sni_tshark": sni or None,
                "alpn_tshark": alpn.split("|") if alpn else []}


def ja4plus_fields(data: bytes) -> dict:
    try:
        from scapy.all import IP, TCP, Raw
        from ja4plus.utils.tls_utils import extract_tls_info
        from ja4plus.fingerprinters.ja4 import generate_ja4, get_raw_fingerprint
    except ImportError:
        return {}
    pkt = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=443, flags="PA") / Raw(data)
    pkt = IP(bytes(pkt))
    info = extract_tls_info(pkt)
    if not info:
        return {"ja4plus": "no ClientHello"}
    return {"ja4": generate_ja4(info), "ja4_r": get_raw_fingerprint(info)}


def main() -> None:
    data = open(sys.argv[1], "rb").read()
    out = {}
    out.update(tshark_fields(data))
    out.update(ja4plus_fields(data))
    json.dump(out, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
