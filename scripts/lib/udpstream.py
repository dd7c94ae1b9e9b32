#!/usr/bin/env python3
"""A bounded, sequence-numbered UDP stream for the end-to-end scripts.

  udpstream.py send --dst IP:PORT [--src IP] --count N --rate PPS [--size BYTES] [--run ID]
  udpstream.py recv --bind IP:PORT --count N [--run ID] [--status FILE]
                    [--timeout S] [--idle S]

Each datagram carries a magic, a run id, a sequence number and the send time, so the
receiver counts unique packets, duplicates, reordering and the longest arrival gap (the
visible cost of a path change). The receiver writes its running count to --status every
50 ms (atomically, by rename) and creates it right after binding, so a script can wait for
it to be ready and watch the count grow. Both sides print one JSON object when done.
Every loop is bounded: the sender by --count, the receiver by --timeout (total) and --idle
(time since the last packet, once one has arrived).
"""

import argparse
import json
import os
import socket
import struct
import sys
import time

MAGIC = b"MKSTRM01"
HEADER = struct.Struct("!8sIIQ")  # magic, run id, sequence number, send time (ns)


def addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def send(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if args.src:
        sock.bind((args.src, 0))
    size = max(args.size, HEADER.size)
    pad = bytes(size - HEADER.size)
    interval = 1.0 / args.rate
    start = time.monotonic()
    errors = 0
    for seq in range(args.count):
        due = start + seq * interval
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        payload = HEADER.pack(MAGIC, args.run, seq, time.time_ns()) + pad
        try:
            sock.sendto(payload, args.dst)
        except OSError:
            # A transient ENOBUFS or an unreachable route while the tunnel moves is part
            # of what is measured, not a reason to stop.
            errors += 1
    elapsed = time.monotonic() - start
    print(json.dumps({"sent": args.count - errors, "send_errors": errors,
                      "seconds": round(elapsed, 3)}))
    return 0


def write_status(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def recv(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(args.bind)
    seen = bytearray(args.count)
    received = dups = reordered = foreign = 0
    highest = -1
    first_at = last_at = None
    max_gap = 0.0
    max_gap_after_seq = -1
    start = time.monotonic()
    next_status = start
    status = {"received": 0, "highest": -1, "ready": True}
    if args.status:
        write_status(args.status, status)
    while True:
        now = time.monotonic()
        if now - start >= args.timeout:
            break
        if last_at is not None and now - last_at >= args.idle:
            break
        if received >= args.count:
            break
        if args.status and now >= next_status:
            status["received"] = received
            status["highest"] = highest
            write_status(args.status, status)
            next_status = now + 0.05
        sock.settimeout(0.05)
        try:
            data = sock.recv(65535)
        except socket.timeout:
            continue
        now = time.monotonic()
        if len(data) < HEADER.size:
            foreign += 1
            continue
        magic, run, seq, _sent_ns = HEADER.unpack_from(data)
        if magic != MAGIC or run != args.run or seq >= args.count:
            foreign += 1
            continue
        if seen[seq]:
            dups += 1
            continue
        seen[seq] = 1
        received += 1
        if seq < highest:
            reordered += 1
        else:
            highest = seq
        if first_at is None:
            first_at = now
        else:
            gap = now - last_at
            if gap > max_gap:
                max_gap = gap
                max_gap_after_seq = seq
        last_at = now
    result = {
        "received": received,
        "lost": args.count - received,
        "loss_pct": round(100.0 * (args.count - received) / args.count, 3),
        "duplicates": dups,
        "reordered": reordered,
        "foreign": foreign,
        "max_gap_ms": round(max_gap * 1000.0, 3),
        "max_gap_before_seq": max_gap_after_seq,
        "seconds": round((last_at - first_at) if first_at is not None else 0.0, 3),
    }
    if args.status:
        status.update(result)
        status["highest"] = highest
        status["done"] = True
        write_status(args.status, status)
    print(json.dumps(result))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--dst", type=addr, required=True)
    s.add_argument("--src")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--rate", type=float, required=True)
    s.add_argument("--size", type=int, default=200)
    s.add_argument("--run", type=int, default=1)
    r = sub.add_parser("recv")
    r.add_argument("--bind", type=addr, required=True)
    r.add_argument("--count", type=int, required=True)
    r.add_argument("--run", type=int, default=1)
    r.add_argument("--status")
    r.add_argument("--timeout", type=float, default=30.0)
    r.add_argument("--idle", type=float, default=2.0)
    args = p.parse_args()
    if args.count <= 0 or (args.cmd == "send" and args.rate <= 0):
        p.error("--count and --rate must be positive")
    return send(args) if args.cmd == "send" else recv(args)


if __name__ == "__main__":
    sys.exit(main())
