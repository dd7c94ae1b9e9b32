#!/usr/bin/env python3
"""Handover probes for scripts/handover.sh: a tunnel-packet sniffer, a timestamped trigger,
the wait for the first tunnel packet on a new path, and the per-scenario summary.

  handover-probe.py sniff --out FILE [--ifaces IF,IF] [--timeout S]
  handover-probe.py trigger --out FILE -- CMD [ARG...]
  handover-probe.py deladdr --out FILE --dev IF --cidr ADDR/LEN
  handover-probe.py wait --events FILE --after NS [--timeout S] [--avoid IF,IF]
  handover-probe.py current --events FILE
  handover-probe.py settle --events FILE [--quiet-ms MS] [--timeout S]
  handover-probe.py gaps --events FILE --after NS [--before NS]
  handover-probe.py stream --status FILE
  handover-probe.py summary --samples FILE --scenario NAME [--goal KEY=VALUE...]

Every time is CLOCK_MONOTONIC in nanoseconds (time.monotonic_ns()), which all network
namespaces of one host share, so the trigger's clock and the sniffer's compare directly.

sniff: an AF_PACKET socket (all interfaces of the namespace it runs in) sees every frame
the gateway receives. A tunnel packet is IP protocol 50 (ESP), or UDP to or from port 4500
whose first four payload bytes are not zero (RFC 3948 2.2: zero is the non-ESP marker of
IKE; a one-byte NAT keepalive is not ESP either). Its path is the pair (interface, source
address, destination address). The sniffer writes one line `NS IFACE SRC DST PREV_NS` each
time a tunnel packet arrives on a pair other than the previous tunnel packet's (PREV_NS: the
time of that previous packet, 0 if none), so the file holds every path change and every
pair ever used, with the time of its first packet, and stays small under a steady stream.
The time is taken right after the packet is read.

gaps: for a rotation that has no trigger of its own, each path change's gap between the
last tunnel packet on the old pair and the first on the new one.

trigger: writes the monotonic time to FILE, then replaces itself with CMD (exec), so the
time is taken as close before the command as a script can get.

deladdr: removes an address itself, over rtnetlink (RTM_DELADDR), with the message built
and the socket open beforehand: the time is taken right before the one sendmsg(2) that
removes the address (an exec of ip(8) would add its start-up, several milliseconds on a
busy machine, to every break-before-make figure). Run it inside the namespace.

wait: the path before the trigger is the pair of the last line at or before --after; the
handover is the first later line on another pair (not one of --avoid's interfaces, where
moving to is a failure of its own, reported as such). Prints one JSON object; exit 0 when
the handover was seen within --timeout, 1 otherwise.

Every loop is bounded in time (--timeout) and the sniffer in packets per line written.
"""

import argparse
import json
import math
import os
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
NAT_T_PORT = 4500


def parse_tunnel(frame):
    """(src, dst) of an ESP or ESP-in-UDP packet in an Ethernet frame, else None."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    off = 14
    if ethertype == 0x8100 and len(frame) >= 18:
        ethertype = struct.unpack_from("!H", frame, 16)[0]
        off = 18
    if ethertype == 0x0800:
        if len(frame) < off + 20:
            return None
        ihl = (frame[off] & 0x0F) * 4
        proto = frame[off + 9]
        frag = struct.unpack_from("!H", frame, off + 6)[0] & 0x1FFF
        src = socket.inet_ntop(socket.AF_INET, frame[off + 12:off + 16])
        dst = socket.inet_ntop(socket.AF_INET, frame[off + 16:off + 20])
        if frag != 0 or ihl < 20:
            return None
        l4 = off + ihl
    elif ethertype == 0x86DD:
        if len(frame) < off + 40:
            return None
        proto = frame[off + 6]
        src = socket.inet_ntop(socket.AF_INET6, frame[off + 8:off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, frame[off + 24:off + 40])
        l4 = off + 40
    else:
        return None
    if proto == 50:
        return src, dst
    if proto != 17 or len(frame) < l4 + 8 + 4:
        return None
    sport, dport = struct.unpack_from("!HH", frame, l4)
    if NAT_T_PORT not in (sport, dport):
        return None
    if frame[l4 + 8:l4 + 12] == b"\0\0\0\0":
        return None
    return src, dst


def sniff(args):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.settimeout(0.2)
    wanted = set(filter(None, args.ifaces.split(","))) if args.ifaces else None
    deadline = time.monotonic() + args.timeout
    last = None
    prev = 0
    out = open(args.out, "a", buffering=1)
    out.write(f"# ready {time.monotonic_ns()}\n")
    while time.monotonic() < deadline:
        try:
            frame, addr = sock.recvfrom(2048)
        except socket.timeout:
            continue
        now = time.monotonic_ns()
        if addr[2] == PACKET_OUTGOING:
            continue
        ifname = addr[0]
        if wanted is not None and ifname not in wanted:
            continue
        pair = parse_tunnel(frame)
        if pair is None:
            continue
        key = (ifname,) + pair
        if key != last:
            last = key
            out.write(f"{now} {ifname} {pair[0]} {pair[1]} {prev}\n")
        prev = now
    out.close()
    return 0


def trigger(args):
    cmd = args.command
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        print("trigger: no command", file=sys.stderr)
        return 2
    t = time.monotonic_ns()
    with open(args.out, "w") as f:
        f.write(f"{t}\n")
    os.execvp(cmd[0], cmd)
    return 127  # not reached


def deladdr(args):
    import ipaddress
    iface = ipaddress.ip_interface(args.cidr)
    v6 = iface.version == 6
    family = socket.AF_INET6 if v6 else socket.AF_INET
    index = socket.if_nametoindex(args.dev)
    addr = iface.ip.packed
    # struct ifaddrmsg: family, prefixlen, flags, scope, index; then IFA_LOCAL (2) and
    # IFA_ADDRESS (1) attributes (rtnetlink(7)).
    body = struct.pack("=BBBBI", family, iface.network.prefixlen, 0, 0, index)
    for ty in ((1,) if v6 else (2, 1)):
        body += struct.pack("=HH", 4 + len(addr), ty) + addr
    RTM_DELADDR, NLM_F_REQUEST, NLM_F_ACK = 21, 1, 4
    msg = struct.pack("=IHHII", 16 + len(body), RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, 1, 0) + body
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
    sock.bind((0, 0))
    t = time.monotonic_ns()
    sock.send(msg)
    reply = sock.recv(4096)
    with open(args.out, "w") as f:
        f.write(f"{t}\n")
    # NLMSG_ERROR (2) with error 0 is the ack.
    if len(reply) >= 20:
        ty = struct.unpack_from("=H", reply, 4)[0]
        err = struct.unpack_from("=i", reply, 16)[0]
        if ty == 2 and err != 0:
            print(f"deladdr: {args.cidr} dev {args.dev}: {os.strerror(-err)}", file=sys.stderr)
            return 1
    return 0


def read_events(path, offset=0):
    """(events, new offset): complete `NS IFACE SRC DST` lines from offset on."""
    events = []
    try:
        with open(path) as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return events, offset
    end = data.rfind("\n")
    if end < 0:
        return events, offset
    for line in data[:end].split("\n"):
        parts = line.split()
        if len(parts) >= 4 and not line.startswith("#"):
            try:
                events.append((int(parts[0]), parts[1], parts[2], parts[3]))
            except ValueError:
                continue
    return events, offset + len(data[:end + 1].encode())


def pair_text(e):
    return f"{e[1]} {e[2]}->{e[3]}" if e else None


def wait(args):
    after = args.after
    avoid = set(filter(None, (args.avoid or "").split(",")))
    deadline = time.monotonic() + args.timeout
    events, off = read_events(args.events)
    old = None
    for e in events:
        if e[0] <= after:
            old = e
    result = {"old": pair_text(old)}
    if old is None:
        result["error"] = "no tunnel packet reached the gateway before the trigger"
        print(json.dumps(result))
        return 1
    pos = 0
    limit_ns = after + int(args.timeout * 1e9)
    while True:
        while pos < len(events):
            e = events[pos]
            pos += 1
            if e[0] <= after or e[1:] == old[1:]:
                continue
            if e[0] > limit_ns:
                break
            if e[1] in avoid:
                result.update(error=f"moved to a forbidden pair {pair_text(e)}",
                              forbidden=pair_text(e),
                              latency_ms=round((e[0] - after) / 1e6, 3))
                print(json.dumps(result))
                return 1
            result.update(new=pair_text(e), latency_ms=round((e[0] - after) / 1e6, 3))
            print(json.dumps(result))
            return 0
        # The sniffer writes a line within a moment of its packet: one more read after
        # the deadline catches a line for a packet that came just before it.
        if time.monotonic() >= deadline + 0.2:
            break
        time.sleep(0.005)
        more, off = read_events(args.events, off)
        events.extend(more)
    result["error"] = f"no handover within {args.timeout:g} s"
    print(json.dumps(result))
    return 1


def current(args):
    events, _ = read_events(args.events)
    if events:
        e = events[-1]
        print(f"{e[0]} {e[1]} {e[2]} {e[3]}")
        return 0
    return 1


def settle(args):
    """Waits until no path change for --quiet-ms (bounded by --timeout)."""
    deadline = time.monotonic() + args.timeout
    while True:
        events, _ = read_events(args.events)
        now = time.monotonic_ns()
        last = events[-1][0] if events else 0
        if now - last >= args.quiet_ms * 1e6:
            return 0
        if time.monotonic() >= deadline:
            return 1
        time.sleep(0.05)


def gaps(args):
    """Path changes after --after: one JSON line each with the gap between the last
    tunnel packet on the old pair and the first on the new one (a rotation's cost)."""
    try:
        with open(args.events) as f:
            lines = f.read().splitlines()
    except OSError:
        return 1
    old = None
    for line in lines:
        parts = line.split()
        if line.startswith("#") or len(parts) < 5:
            continue
        t, prev = int(parts[0]), int(parts[4])
        if t > args.after and old is not None and prev > 0 and (args.before == 0 or t <= args.before):
            print(json.dumps({"old": old, "new": f"{parts[1]} {parts[2]}->{parts[3]}",
                              "latency_ms": round((t - prev) / 1e6, 3)}))
        old = f"{parts[1]} {parts[2]}->{parts[3]}"
    return 0


def stream(args):
    """`RECEIVED HIGHEST` of a udpstream.py receiver's status file."""
    try:
        with open(args.status) as f:
            s = json.load(f)
        print(s.get("received", 0), s.get("highest", -1))
        return 0
    except (OSError, ValueError):
        print("0 -1")
        return 1


def percentile(sorted_values, p):
    """Nearest rank: the smallest value with at least p% of the samples at or below it."""
    if not sorted_values:
        return None
    k = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[k - 1]


def fmt(v):
    return "-" if v is None else f"{v:.1f}"


def summary(args):
    samples = []
    with open(args.samples) as f:
        for line in f:
            line = line.strip()
            if line:
                s = json.loads(line)
                if s.get("scenario") == args.scenario:
                    samples.append(s)
    goals = {}
    for g in args.goal or []:
        k, _, v = g.partition("=")
        if v != "":
            goals[k] = float(v)
    lat = sorted(s["latency_ms"] for s in samples if s.get("latency_ms") is not None
                 and not s.get("error"))
    lost = [s["lost"] for s in samples if isinstance(s.get("lost"), int)]
    errors = [s for s in samples if s.get("error")]
    med = None
    if lat:
        mid = len(lat) // 2
        med = lat[mid] if len(lat) % 2 else (lat[mid - 1] + lat[mid]) / 2
    p99 = percentile(lat, 99)
    mx = lat[-1] if lat else None
    total_lost = sum(lost)
    max_lost = max(lost) if lost else None
    reasons = []
    want = args.reps
    if errors:
        first = errors[0]
        reasons.append(f"{len(errors)} of {len(samples)} reps failed, first (rep {first.get('rep')}): {first['error']}")
    if len(samples) < want and not errors:
        reasons.append(f"only {len(samples)} of {want} reps ran")
    checks = [("median_ms", med, "median"), ("p99_ms", p99, "p99"), ("max_ms", mx, "max"),
              ("lost_per_rep", max_lost, "lost per rep"), ("lost_total", total_lost, "lost in total")]
    goal_text = []
    for key, value, label in checks:
        if key not in goals:
            continue
        limit = goals[key]
        unit = " ms" if key.endswith("_ms") else ""
        goal_text.append(f"{label} <= {limit:g}{unit}")
        if value is None:
            if not errors:
                reasons.append(f"no {label} to check against {limit:g}{unit}")
        elif value > limit:
            reasons.append(f"goal missed: {label} {fmt(value) if unit else value}{unit} > {limit:g}{unit}")
    verdict = "FAIL" if reasons else "PASS"
    line = (f"{args.scenario}: median {fmt(med)} ms, p99 {fmt(p99)} ms, max {fmt(mx)} ms, "
            f"lost {total_lost} (max {'-' if max_lost is None else max_lost} per rep) "
            f"({len(lat)} of {len(samples)} reps measured) {verdict}")
    if goal_text:
        line += " [goals: " + ", ".join(goal_text) + "]"
    if args.note:
        line += f" [{args.note}]"
    if reasons:
        line += ": " + "; ".join(reasons)
    print(line)
    if args.json_out:
        with open(args.json_out, "a") as f:
            f.write(json.dumps({"scenario": args.scenario, "verdict": verdict,
                                "median_ms": med, "p99_ms": p99, "max_ms": mx,
                                "lost_total": total_lost, "lost_max_per_rep": max_lost,
                                "reps": len(samples), "measured": len(lat), "goals": goals,
                                "reasons": reasons, "note": args.note}) + "\n")
    return 0 if verdict == "PASS" else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sniff")
    s.add_argument("--out", required=True)
    s.add_argument("--ifaces")
    s.add_argument("--timeout", type=float, default=3600.0)
    da = sub.add_parser("deladdr")
    da.add_argument("--out", required=True)
    da.add_argument("--dev", required=True)
    da.add_argument("--cidr", required=True)
    t = sub.add_parser("trigger")
    t.add_argument("--out", required=True)
    t.add_argument("command", nargs=argparse.REMAINDER)
    w = sub.add_parser("wait")
    w.add_argument("--events", required=True)
    w.add_argument("--after", type=int, required=True)
    w.add_argument("--timeout", type=float, default=3.0)
    w.add_argument("--avoid")
    c = sub.add_parser("current")
    c.add_argument("--events", required=True)
    st = sub.add_parser("settle")
    st.add_argument("--events", required=True)
    st.add_argument("--quiet-ms", type=float, default=700.0)
    st.add_argument("--timeout", type=float, default=4.0)
    gp = sub.add_parser("gaps")
    gp.add_argument("--events", required=True)
    gp.add_argument("--after", type=int, required=True)
    gp.add_argument("--before", type=int, default=0)
    sr = sub.add_parser("stream")
    sr.add_argument("--status", required=True)
    sm = sub.add_parser("summary")
    sm.add_argument("--samples", required=True)
    sm.add_argument("--scenario", required=True)
    sm.add_argument("--reps", type=int, default=0)
    sm.add_argument("--goal", action="append")
    sm.add_argument("--note")
    sm.add_argument("--json-out")
    args = p.parse_args()
    return {"sniff": sniff, "trigger": trigger, "deladdr": deladdr, "wait": wait, "current": current,
            "settle": settle, "gaps": gaps, "stream": stream, "summary": summary}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
