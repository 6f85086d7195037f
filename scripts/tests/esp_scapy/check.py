#!/usr/bin/python3
"""Cross-check ipsecgw's ESP against scapy's independent implementation.

For every algorithm x inner IPv4/IPv6 x outer IPv4/IPv6 x raw ESP / UDP 4500 x
ESN on/off, a few packet sizes and ECN/DSCP values:
  1. we seal (esp_scapy_tool), scapy decrypts and must get the inner packet back;
  2. scapy seals with the same IV, sequence number and tunnel header our SA
     template produces, and the bytes must equal ours (4-byte padding, as scapy);
  3. scapy-sealed packets open with our decap to the same inner packet, and a
     tampered copy is refused as auth_failed;
  4. with 16-byte padding and a real IPv6 UDP checksum, scapy still decrypts and
     the checksum is the one scapy computes.
Usage: check.py PATH_TO_esp_scapy_tool
"""
import random
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore")
from scapy.all import IP, IPv6, UDP, Raw, raw  # noqa: E402
from scapy.layers.ipsec import ESP, SecurityAssociation  # noqa: E402

TOOL = sys.argv[1]
rng = random.Random(4303)

ALGS = {"aes128gcm": ("AES-GCM", 16), "aes256gcm": ("AES-GCM", 32), "chacha20poly1305": ("CHACHA20-POLY1305", 32)}
OUTER = {4: ("198.51.100.1", "203.0.113.2"), 6: ("2001:db8:1::1", "2001:db8:2::2")}
SPI = 0x1000_0001
TTL = 64


def inner_packet(v, size, tos):
    pl = bytes(rng.getrandbits(8) for _ in range(size))
    if v == 4:
        return IP(src="10.1.0.5", dst="10.2.0.7", tos=tos, ttl=63, id=rng.randrange(65536), flags="DF" if rng.random() < 0.5 else 0) / UDP(sport=1234, dport=5678) / Raw(pl)
    return IPv6(src="fd00:1::5", dst="fd00:2::7", tc=tos, fl=rng.randrange(1 << 20), hlim=63) / UDP(sport=1234, dport=5678) / Raw(pl)


def tunnel_header(outer_v, inner, seq):
    """The outer header our SA template produces: DSCP+ECN copied (RFC 6040 normal
    mode), DF copied (set for IPv6 inner), IPv4 id = low 16 bits of seq, TTL 64."""
    src, dst = OUTER[outer_v]
    if inner.version == 4:
        tos, df = inner.tos, bool(inner.flags.DF)
    else:
        tos, df = inner.tc, True
    if outer_v == 4:
        return IP(src=src, dst=dst, tos=tos, ttl=TTL, id=seq & 0xFFFF, flags="DF" if df else 0)
    return IPv6(src=src, dst=dst, tc=tos, fl=0, hlim=TTL)


def scapy_sa(alg, keymat, outer_v, inner, seq, udp, esn):
    name, klen = ALGS[alg]
    return SecurityAssociation(
        ESP, spi=SPI, crypt_algo=name, crypt_key=keymat,
        tunnel_header=tunnel_header(outer_v, inner, seq),
        nat_t_header=UDP(sport=4500, dport=4500) if udp else None,
        esn_en=esn, esn=(seq >> 32))


def scapy_bytes(c, pkt):
    b = raw(pkt)
    if c["udp"] and c["outer_v"] == 4:
        # scapy 2.5 freezes the IPv4 header (raw()) before appending ESP, so its
        # UDP length says 8; RFC 768 wants header + data. Put the right value in
        # (computed here from the packet length, not taken from ours).
        fixed = bytearray(b)
        fixed[24:26] = (len(fixed) - 20).to_bytes(2, "big")
        b = bytes(fixed)
    return b


def parse_outer(outer_v, data):
    return IP(data) if outer_v == 4 else IPv6(data)


cases = []
for alg, (_, klen) in ALGS.items():
    for inner_v in (4, 6):
        for outer_v in (4, 6):
            for udp in (False, True):
                for esn in (False, True):
                    for size in (0, 1, 3, 100, 1357):
                        keymat = bytes(rng.getrandbits(8) for _ in range(klen + 4))
                        seq = rng.choice([1, 2, 77, 0xFFFFFFFF]) + ((rng.randrange(1, 5) << 32) if esn else 0)
                        tos = rng.choice([0, 0xB8, 0xB9, 0x02, 0x03, 0x29])
                        cases.append(dict(alg=alg, keymat=keymat, inner_v=inner_v, outer_v=outer_v, udp=udp, esn=esn,
                                          seq=seq, inner=inner_packet(inner_v, size, tos)))


def seal_req(c, pad=4, csum6=0):
    src, dst = OUTER[c["outer_v"]]
    return (f"seal alg={c['alg']} key={c['keymat'].hex()} spi={SPI:08x} seq={c['seq']} esn={int(c['esn'])} "
            f"src={src} dst={dst} udp={'4500:4500' if c['udp'] else 'none'} csum6={csum6} pad={pad} ttl={TTL} "
            f"inner={raw(c['inner']).hex()}")


def open_req(c, pkt):
    return (f"open alg={c['alg']} key={c['keymat'].hex()} spi={SPI:08x} esn={int(c['esn'])} top={c['seq'] - 1} "
            f"pkt={pkt.hex()}")


def run_tool(lines):
    p = subprocess.run([TOOL], input="\n".join(lines) + "\n", capture_output=True, text=True, check=False)
    out = p.stdout.splitlines()
    if p.returncode != 0 or len(out) != len(lines):
        sys.exit(f"esp_scapy_tool failed (rc {p.returncode}): {p.stderr}")
    return out


failures = []
checked = dict(ours_open_in_scapy=0, byte_equal=0, scapy_open_in_ours=0, tamper_refused=0, pad16_and_csum6=0)

# 1 + 2: we seal; scapy opens; scapy seals the same inputs; bytes equal.
ours = run_tool([seal_req(c) for c in cases])
scapy_pkts = []
for c, line in zip(cases, ours):
    tag = f"{c['alg']} in{c['inner_v']} out{c['outer_v']} udp={c['udp']} esn={c['esn']} len={len(c['inner'])} seq={c['seq']:#x}"
    kind, _, data = line.partition(" ")
    if kind != "ok":
        failures.append(f"{tag}: our seal failed: {line}")
        scapy_pkts.append(None)
        continue
    ours_bytes = bytes.fromhex(data)
    sa = scapy_sa(c["alg"], c["keymat"], c["outer_v"], c["inner"], c["seq"], c["udp"], c["esn"])
    try:
        dec = sa.decrypt(parse_outer(c["outer_v"], ours_bytes))
        if raw(dec) != raw(c["inner"]):
            failures.append(f"{tag}: scapy decrypted our packet to different bytes")
        else:
            checked["ours_open_in_scapy"] += 1
    except Exception as e:  # scapy raises on ICV failure
        failures.append(f"{tag}: scapy could not decrypt ours: {e!r}")
    theirs = sa.encrypt(c["inner"].copy(), seq_num=c["seq"] & 0xFFFFFFFF, iv=(c["seq"]).to_bytes(8, "big"))
    theirs_bytes = scapy_bytes(c, theirs)
    if theirs_bytes != ours_bytes:
        failures.append(f"{tag}: bytes differ\n  ours   {ours_bytes.hex()}\n  scapy  {theirs_bytes.hex()}")
    else:
        checked["byte_equal"] += 1
    scapy_pkts.append(theirs_bytes)

# 3: scapy seals with random IVs; we open; a tampered copy is refused.
reqs, meta = [], []
for c in cases:
    sa = scapy_sa(c["alg"], c["keymat"], c["outer_v"], c["inner"], c["seq"], c["udp"], c["esn"])
    pkt = scapy_bytes(c, sa.encrypt(c["inner"].copy(), seq_num=c["seq"] & 0xFFFFFFFF))
    reqs.append(open_req(c, pkt))
    meta.append((c, False))
    bad = bytearray(pkt)
    bad[-1 - rng.randrange(16 + 8)] ^= 1 << rng.randrange(8)  # ICV or the end of the ciphertext
    reqs.append(open_req(c, bytes(bad)))
    meta.append((c, True))
for (c, tampered), line in zip(meta, run_tool(reqs)):
    tag = f"{c['alg']} in{c['inner_v']} out{c['outer_v']} udp={c['udp']} esn={c['esn']} len={len(c['inner'])}"
    if tampered:
        if line != "err auth_failed":
            failures.append(f"{tag}: tampered scapy packet gave {line}")
        else:
            checked["tamper_refused"] += 1
        continue
    want = f"ok {4 if c['inner_v'] == 4 else 41} {raw(c['inner']).hex()}"
    if line != want:
        failures.append(f"{tag}: opening scapy's packet gave {line[:80]}")
    else:
        checked["scapy_open_in_ours"] += 1

# 4: 16-byte padding and a computed IPv6 UDP checksum: scapy still decrypts, checksum matches scapy's.
sub = [c for c in cases if c["alg"] != "chacha20poly1305"][::3]
for c, line in zip(sub, run_tool([seal_req(c, pad=16, csum6=1) for c in sub])):
    tag = f"pad16 {c['alg']} out{c['outer_v']} udp={c['udp']}"
    kind, _, data = line.partition(" ")
    pkt = parse_outer(c["outer_v"], bytes.fromhex(data)) if kind == "ok" else None
    if pkt is None:
        failures.append(f"{tag}: our seal failed: {line}")
        continue
    if c["udp"] and c["outer_v"] == 6:
        ck = pkt[UDP].chksum
        clone = pkt.copy()
        del clone[UDP].chksum
        if ck == 0 or IPv6(raw(clone))[UDP].chksum != ck:
            failures.append(f"{tag}: IPv6 UDP checksum {ck:#x} is not scapy's")
    sa = scapy_sa(c["alg"], c["keymat"], c["outer_v"], c["inner"], c["seq"], c["udp"], c["esn"])
    try:
        if raw(sa.decrypt(pkt)) != raw(c["inner"]):
            failures.append(f"{tag}: decrypted to different bytes")
        else:
            checked["pad16_and_csum6"] += 1
    except Exception as e:
        failures.append(f"{tag}: scapy could not decrypt: {e!r}")

print(f"esp_scapy: {len(cases)} cases; " + ", ".join(f"{k}={v}" for k, v in checked.items()))
if failures:
    print(f"esp_scapy: {len(failures)} FAILURES", file=sys.stderr)
    for f in failures[:20]:
        print("  " + f, file=sys.stderr)
    sys.exit(1)
print("esp_scapy: all passed")
