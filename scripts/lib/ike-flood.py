#!/usr/bin/env python3
"""Sends a bounded flood of IKE_SA_INIT requests from spoofed source addresses.

Each request is well formed (RFC 7296: header, SA with one proposal
aes128gcm16-prfsha256-x25519, KE with a random Curve25519 value, Ni) and comes from a
random address of a given IPv4 prefix with a random SPI, through a raw socket with our
own IP and UDP headers. Meant for a network namespace the caller created: the
responder's answers go to addresses nobody has.

    ike-flood.py --dst 192.0.2.1 --prefix 192.0.2.128/25 --count 3000 --rate 5000
"""
import argparse
import ipaddress
import os
import random
import socket
import struct
import sys
import time


def transform(ttype, tid, last, attr=b""):
    body = struct.pack("!BBH", ttype, 0, tid) + attr
    return struct.pack("!BBH", 0 if last else 3, 0, 4 + len(body)) + body


def ike_sa_init(spi_i):
    key_len = struct.pack("!HH", 0x800E, 128)
    transforms = (
        transform(1, 20, False, key_len)  # ENCR_AES_GCM_16, 128-bit key
        + transform(2, 5, False)  # PRF_HMAC_SHA2_256
        + transform(4, 31, True)  # Curve25519
    )
    proposal_body = struct.pack("!BBBB", 1, 1, 0, 3) + transforms
    proposal = struct.pack("!BBH", 0, 0, 4 + len(proposal_body)) + proposal_body
    sa = struct.pack("!BBH", 34, 0, 4 + len(proposal)) + proposal  # next: KE
    ke_data = struct.pack("!HH", 31, 0) + os.urandom(32)
    ke = struct.pack("!BBH", 40, 0, 4 + len(ke_data)) + ke_data  # next: Nonce
    nonce = os.urandom(32)
    ni = struct.pack("!BBH", 0, 0, 4 + len(nonce)) + nonce
    payloads = sa + ke + ni
    header = struct.pack(
        "!QQBBBBII", spi_i, 0, 33, 0x20, 34, 0x08, 0, 28 + len(payloads)
    )
    return header + payloads


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def packet(src, dst, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + len(udp), random.getrandbits(16), 0, 64, 17, 0,
        src.packed, dst.packed,
    )
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + udp


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dst", required=True, help="responder IPv4 address")
    ap.add_argument("--port", type=int, default=500)
    ap.add_argument("--prefix", required=True, help="spoofed sources, e.g. 192.0.2.128/25")
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=5000.0, help="requests per second")
    args = ap.parse_args()
    if not 0 < args.count <= 100000:
        sys.exit("--count must be 1..100000")
    dst = ipaddress.IPv4Address(args.dst)
    net = ipaddress.IPv4Network(args.prefix)
    hosts = list(net.hosts())
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    start = time.monotonic()
    sent = 0
    for i in range(args.count):
        src = random.choice(hosts)
        spi = random.getrandbits(64) or 1
        pkt = packet(src, dst, 500, args.port, ike_sa_init(spi))
        try:
            s.sendto(pkt, (str(dst), 0))
            sent += 1
        except OSError:
            pass
        due = start + (i + 1) / args.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print('{"sent": %d, "seconds": %.3f}' % (sent, time.monotonic() - start))


if __name__ == "__main__":
    main()
