#!/usr/bin/env python3
"""Builds one known-answer file from a strongSwan exchange (see kat-capture.sh).

  kat-extract.py --name NAME --psk TEXT --pcap FILE --ilog LOG --rlog LOG --out FILE

Inputs: a pcap of the IKE (and ESP-in-UDP) datagrams on the link, and both charons'
logs at `ike=4 chd=4`. The file is written only if every value checks out independently:
  - g^ir, SKEYSEED and SK_* are identical in both logs;
  - SKEYSEED and SK_* re-derived here (RFC 7296 2.14) from g^ir, the nonces and SPIs of
    the captured IKE_SA_INIT equal what charon logged;
  - both IKE_AUTH messages open with those keys (RFC 7296 3.14, RFC 5282), and both
    PSK AUTH payloads recompute (RFC 7296 2.15) from the captured messages and IDs;
  - the child keys re-derive from SK_d and the nonces (RFC 7296 2.17), and the captured
    ESP packets (RFC 4303, RFC 4106) decrypt with them in the direction claimed.
"""
import argparse
import hashlib
import hmac
import re
import struct
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PRF = {"prfsha256": hashlib.sha256, "prfsha384": hashlib.sha384, "prfsha512": hashlib.sha512}
# name -> (hash, key length, ICV length): RFC 4868
INTEG = {"sha256": (hashlib.sha256, 32, 16), "sha384": (hashlib.sha384, 48, 24),
         "sha512": (hashlib.sha512, 64, 32), "none": (None, 0, 0)}
# name -> key length including the 4-byte salt for GCM (RFC 5282 7.1, RFC 4106 8.1)
ENCR = {"aes128": 16, "aes256": 32, "aes128gcm16": 20, "aes256gcm16": 36}
SW_NAMES = {
    "AES_CBC_128": "aes128", "AES_CBC_256": "aes256",
    "AES_GCM_16_128": "aes128gcm16", "AES_GCM_16_256": "aes256gcm16",
    "HMAC_SHA2_256_128": "sha256", "HMAC_SHA2_384_192": "sha384", "HMAC_SHA2_512_256": "sha512",
    "PRF_HMAC_SHA2_256": "prfsha256", "PRF_HMAC_SHA2_384": "prfsha384",
    "PRF_HMAC_SHA2_512": "prfsha512",
    "CURVE_25519": "x25519", "ECP_256": "ecp256", "ECP_384": "ecp384",
}
KEYS = ["prf", "encr", "integ", "dh", "spi_i", "spi_r", "ni", "nr", "g_ir", "skeyseed",
        "sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr", "psk", "id_i", "id_r",
        "init_req", "init_resp", "auth_req", "auth_resp", "esp", "child_i_to_r",
        "child_r_to_i", "child_spi_i", "child_spi_r"]


class Bad(Exception):
    pass


def prf(name, key, data):
    return hmac.new(key, data, PRF[name]).digest()


def prf_plus(name, key, seed, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = prf(name, key, t + seed + bytes([i]))
        out += t
        i += 1
    return out[:n]


# ---- charon log ------------------------------------------------------------------------
HEAD = re.compile(r"^\S+ (\d+)\[(\w+)\] (.+?) => (\d+) bytes @ 0x[0-9a-f]+$")
ROW = re.compile(r"^\S+ (\d+)\[(\w+)\] +(\d+): (.*)$")


def log_dumps(path):
    """(label, bytes) for every %B dump, in order. Rows are matched to their heading by
    thread number, since threads interleave; the hex area is 16 x 3 characters wide."""
    dumps, open_ = [], {}
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = HEAD.match(line)
            if m:
                entry = [m.group(3), int(m.group(4)), bytearray()]
                dumps.append(entry)
                open_[m.group(1)] = entry
                continue
            m = ROW.match(line)
            if m and m.group(1) in open_:
                entry = open_[m.group(1)]
                if int(m.group(3)) != len(entry[2]):
                    raise Bad(f"{path}: dump '{entry[0]}' row offset {m.group(3)} "
                              f"after {len(entry[2])} bytes")
                entry[2] += bytes.fromhex(m.group(4)[:48].replace(" ", ""))
    for label, n, data in dumps:
        if len(data) != n:
            raise Bad(f"{path}: dump '{label}' has {len(data)} bytes, header says {n}")
    return [(label, bytes(data)) for label, _, data in dumps]


def first(dumps, label):
    for lab, data in dumps:
        if lab == label:
            return data
    return None


def log_text(path):
    with open(path, errors="replace") as f:
        return f.read()


# ---- pcap ------------------------------------------------------------------------------
def udp_datagrams(path):
    """(src ip, sport, dst ip, dport, payload) of every IPv4 UDP packet (Ethernet or
    Linux cooked capture)."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        e = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        e = ">"
    else:
        raise Bad(f"{path}: not a classic pcap file")
    linktype = struct.unpack(e + "I", data[20:24])[0]
    l2 = {1: 14, 113: 16}.get(linktype)
    if l2 is None:
        raise Bad(f"{path}: link type {linktype}")
    off, out = 24, []
    while off + 16 <= len(data):
        incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = pkt[l2:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        udp = ip[ihl:total]
        sport, dport, ulen = struct.unpack(">HHH", udp[:6])
        out.append((ip[12:16], sport, ip[16:20], dport, udp[8:ulen]))
    return out


def payloads(first_type, body):
    """[(type, body)] of a payload chain."""
    out, nxt, off = [], first_type, 0
    while nxt != 0:
        if off + 4 > len(body):
            raise Bad("truncated payload chain")
        n, _, ln = struct.unpack(">BBH", body[off:off + 4])
        if ln < 4 or off + ln > len(body):
            raise Bad("bad payload length")
        out.append((nxt, body[off + 4:off + ln]))
        nxt, off = n, off + ln
    return out


def body_of(chain, ty):
    for t, b in chain:
        if t == ty:
            return b
    raise Bad(f"no payload of type {ty}")


def open_sk(msg, encr, integ, sk_e, sk_a):
    """Opens the SK payload of a whole IKE message: (first inner type, plaintext)."""
    if msg[16] != 46:
        raise Bad("first payload is not SK")
    first_inner = msg[28]
    sk_len = struct.unpack(">H", msg[30:32])[0]
    if 28 + sk_len != len(msg):
        raise Bad("SK is not the whole rest of the message")
    body = msg[32:]
    if encr.endswith("gcm16"):
        iv, ct = body[:8], body[8:]
        pt = AESGCM(sk_e[:-4]).decrypt(sk_e[-4:] + iv, ct, msg[:32])  # RFC 5282 5.1
    else:
        h, _, icv_len = INTEG[integ]
        want = hmac.new(sk_a, msg[:-icv_len], h).digest()[:icv_len]
        if not hmac.compare_digest(want, msg[-icv_len:]):
            raise Bad("IKE ICV mismatch")
        iv, ct = body[:16], body[16:-icv_len]
        dec = Cipher(algorithms.AES(sk_e), modes.CBC(iv)).decryptor()
        pt = dec.update(ct) + dec.finalize()
    pad = pt[-1]
    return first_inner, pt[:-1 - pad]


def esp_open(pkt, encr, key):
    """Inner packet of an ESP packet (SPI onward), RFC 4106 (GCM with a 4-byte salt)."""
    if not encr.endswith("gcm16"):
        raise Bad("only AES-GCM ESP is handled")
    iv, ct = pkt[8:16], pkt[16:]
    pt = AESGCM(key[:-4]).decrypt(key[-4:] + iv, ct, pkt[:8])
    pad_len, next_header = pt[-2], pt[-1]
    return next_header, pt[:-2 - pad_len]


def main():
    ap = argparse.ArgumentParser()
    for a in ("--name", "--psk", "--pcap", "--ilog", "--rlog", "--out"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    ilog, rlog = log_text(args.ilog), log_text(args.rlog)
    idump, rdump = log_dumps(args.ilog), log_dumps(args.rlog)

    # The suite as the initiator's charon selected it.
    m = re.search(r"selected proposal: IKE:(\S+)", ilog)
    if not m:
        raise Bad("no 'selected proposal: IKE:' in the initiator's log")
    algs = [SW_NAMES.get(x, x) for x in m.group(1).split("/")]
    encr = next(a for a in algs if a in ENCR)
    integ = next((a for a in algs if a in INTEG), "none")
    prfn = next(a for a in algs if a in PRF)
    dh = next(a for a in algs if a in ("x25519", "ecp256", "ecp384"))
    suite = "-".join([encr] + ([integ] if integ != "none" else []) + [prfn, dh])
    if args.name.removeprefix("default-") != suite:
        raise Bad(f"charon selected {suite}, the case is named {args.name}")
    m = re.search(r"selected proposal: ESP:(\S+)", ilog)
    if not m:
        raise Bad("no 'selected proposal: ESP:' in the initiator's log")
    esp = SW_NAMES.get(m.group(1).split("/")[0], m.group(1))
    if esp not in ("aes128gcm16", "aes256gcm16"):
        raise Bad(f"ESP {m.group(1)}: only AES-GCM child SAs are written")

    # Logged secrets, identical on both ends.
    logged = {}
    for key, label in [("g_ir", "shared Diffie Hellman secret"), ("skeyseed", "SKEYSEED"),
                       ("sk_d", "Sk_d secret"), ("sk_ai", "Sk_ai secret"),
                       ("sk_ar", "Sk_ar secret"), ("sk_ei", "Sk_ei secret"),
                       ("sk_er", "Sk_er secret"), ("sk_pi", "Sk_pi secret"),
                       ("sk_pr", "Sk_pr secret"),
                       ("child_i_to_r", "encryption initiator key"),
                       ("child_r_to_i", "encryption responder key")]:
        a, b = first(idump, label), first(rdump, label)
        if integ == "none" and key in ("sk_ai", "sk_ar"):
            if a is not None or b is not None:
                raise Bad(f"{label} logged for an AEAD suite")
            logged[key] = b""
            continue
        if a is None or b is None:
            raise Bad(f"'{label}' missing in a log")
        if a != b:
            raise Bad(f"'{label}' differs between initiator and responder")
        logged[key] = a

    # The captured IKE datagrams: non-ESP marker removed on 4500, ESP kept apart.
    ike, esp_pkts = [], []
    for src, sport, dst, dport, data in udp_datagrams(args.pcap):
        if 4500 in (sport, dport):
            if data == b"\xff":
                continue  # NAT-keepalive
            if data[:4] == b"\0\0\0\0":
                data = data[4:]
            else:
                esp_pkts.append((src, dst, data))
                continue
        if len(data) >= 28:
            ike.append(data)

    def pick(exch, resp, msgid):
        got = [d for d in ike if d[18] == exch and bool(d[19] & 0x20) == resp
               and struct.unpack(">I", d[20:24])[0] == msgid]
        if not got:
            raise Bad(f"no exchange {exch} {'response' if resp else 'request'} {msgid}")
        return got[-1]  # after any COOKIE / INVALID_KE round, the last one counts

    init_resp = pick(34, True, 0)
    spi_i, spi_r = init_resp[:8], init_resp[8:16]
    init_req = [d for d in ike if d[18] == 34 and not d[19] & 0x20 and d[:8] == spi_i][-1]
    auth_req, auth_resp = pick(35, False, 1), pick(35, True, 1)
    for d in (auth_req, auth_resp):
        if d[:16] != spi_i + spi_r:
            raise Bad("IKE_AUTH SPIs differ from IKE_SA_INIT's")
    ni = body_of(payloads(init_req[16], init_req[28:]), 40)
    nr = body_of(payloads(init_resp[16], init_resp[28:]), 40)

    # RFC 7296 2.14, recomputed.
    skeyseed = prf(prfn, ni + nr, logged["g_ir"])
    if skeyseed != logged["skeyseed"]:
        raise Bad("SKEYSEED does not recompute from g^ir and the captured nonces")
    p = len(PRF[prfn]().digest())
    a = INTEG[integ][1]
    e = ENCR[encr]
    km = prf_plus(prfn, skeyseed, ni + nr + spi_i + spi_r, 3 * p + 2 * a + 2 * e)
    names = [("sk_d", p), ("sk_ai", a), ("sk_ar", a), ("sk_ei", e), ("sk_er", e),
             ("sk_pi", p), ("sk_pr", p)]
    off = 0
    for n, ln in names:
        if km[off:off + ln] != logged[n]:
            raise Bad(f"{n} does not recompute (prf+ of SKEYSEED)")
        off += ln

    # IKE_AUTH opened, IDs taken from it, PSK AUTH recomputed (RFC 7296 2.15).
    psk = args.psk.encode()
    ids = {}
    for msg, ke, ka, signed, nonce, skp, idty, who in [
            (auth_req, logged["sk_ei"], logged["sk_ai"], init_req, nr, logged["sk_pi"], 35, "i"),
            (auth_resp, logged["sk_er"], logged["sk_ar"], init_resp, ni, logged["sk_pr"], 36, "r")]:
        fi, pt = open_sk(msg, encr, integ, ke, ka)
        chain = payloads(fi, pt)
        idb = body_of(chain, idty)
        auth = body_of(chain, 39)
        if auth[0] != 2:
            raise Bad("AUTH method is not Shared Key MIC")
        want = prf(prfn, prf(prfn, psk, b"Key Pad for IKEv2"), signed + nonce + prf(prfn, skp, idb))
        if auth[4:] != want:
            raise Bad(f"AUTH of {who} does not recompute")
        ids[who] = idb

    # Child SA: KEYMAT = prf+(SK_d, Ni | Nr), initiator-to-responder keys first (2.17).
    ce = ENCR[esp]
    keymat = prf_plus(prfn, logged["sk_d"], ni + nr, 2 * ce)
    if keymat[:ce] != logged["child_i_to_r"] or keymat[ce:] != logged["child_r_to_i"]:
        raise Bad("child keys do not recompute from SK_d")
    # "established with SPIs <inbound>_i <outbound>_o": the SPI each end chose for inbound.
    mi = re.search(r"CHILD_SA \S+ established with SPIs ([0-9a-f]{8})_i ([0-9a-f]{8})_o", ilog)
    mr = re.search(r"CHILD_SA \S+ established with SPIs ([0-9a-f]{8})_i ([0-9a-f]{8})_o", rlog)
    if not mi or not mr or mi.group(1) != mr.group(2) or mi.group(2) != mr.group(1):
        raise Bad("child SPIs missing or inconsistent between the logs")
    child_spi_i, child_spi_r = mi.group(1), mi.group(2)

    # ESP in both directions decrypts with the key claimed for that direction.
    seen = {"i_to_r": None, "r_to_i": None}
    for src, dst, pkt in esp_pkts:
        spi = pkt[:4].hex()
        if spi == child_spi_r:
            direction, key = "i_to_r", logged["child_i_to_r"]
        elif spi == child_spi_i:
            direction, key = "r_to_i", logged["child_r_to_i"]
        else:
            continue
        nh, inner = esp_open(pkt, esp, key)
        if nh != 4 or inner[0] >> 4 != 4:
            raise Bad("ESP plaintext is not IPv4")
        if seen[direction] is None:
            seen[direction] = pkt
    for d, pkt in seen.items():
        if pkt is None:
            raise Bad(f"no ESP packet {d} captured")

    out = {
        "prf": prfn, "encr": encr, "integ": integ, "dh": dh,
        "spi_i": spi_i.hex(), "spi_r": spi_r.hex(), "ni": ni.hex(), "nr": nr.hex(),
        "g_ir": logged["g_ir"].hex(), "skeyseed": skeyseed.hex(),
        **{n: logged[n].hex() for n, _ in names},
        "psk": psk.hex(), "id_i": ids["i"].hex(), "id_r": ids["r"].hex(),
        "init_req": init_req.hex(), "init_resp": init_resp.hex(),
        "auth_req": auth_req.hex(), "auth_resp": auth_resp.hex(),
        "esp": esp, "child_i_to_r": logged["child_i_to_r"].hex(),
        "child_r_to_i": logged["child_r_to_i"].hex(),
        "child_spi_i": child_spi_i, "child_spi_r": child_spi_r,
        "esp_packet_i_to_r": seen["i_to_r"].hex(), "esp_packet_r_to_i": seen["r_to_i"].hex(),
    }
    # Completeness: every key, SPI lengths, key lengths.
    for k in KEYS:
        if k not in out:
            raise Bad(f"key {k} missing")
    if len(out["spi_i"]) != 16 or len(out["spi_r"]) != 16:
        raise Bad("IKE SPI length")
    if len(out["child_spi_i"]) != 8 or len(out["child_spi_r"]) != 8:
        raise Bad("child SPI length")
    sw = re.search(r"selected proposal: IKE:(\S+)", ilog).group(1)
    swe = re.search(r"selected proposal: ESP:(\S+)", ilog).group(1)
    ver = re.search(r"strongSwan (\S+),", ilog)
    with open(args.out, "w") as f:
        f.write(f"# Captured from strongSwan {ver.group(1) if ver else '?'} charon <-> charon "
                f"(PSK, kernel-libipsec) by scripts/lib/kat-capture.sh ({args.name}).\n")
        f.write(f"# IKE: {sw}; ESP: {swe}.\n")
        f.write("# Checked by kat-extract.py: both logs agree; SKEYSEED, SK_* and the child keys\n"
                "# re-derive; both IKE_AUTH open and their PSK AUTH recompute; one ESP packet\n"
                "# each way (SPI onward, no UDP header) decrypts with the key of its direction.\n"
                "# child_i_to_r protects initiator->responder ESP (SPI child_spi_r), child_r_to_i\n"
                "# the other way (SPI child_spi_i); each is key||salt.\n")
        for k, v in out.items():
            f.write(f"{k} = {v}\n")
    print(f"{args.name}: wrote {args.out} (IKE {sw}, ESP {swe}, SPIs {out['spi_i']}/{out['spi_r']})")


if __name__ == "__main__":
    try:
        main()
    except (Bad, StopIteration, ValueError, IndexError, struct.error) as e:
        print(f"kat-extract: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # cryptography's InvalidTag among others
        print(f"kat-extract: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
