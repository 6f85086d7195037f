#!/usr/bin/python3
"""Input pcaps and output checks for the ipsec-secgw baseline (perf/secgw/run.sh).

usage:
  pcap.py gen DIR SIZE ALG KEYHEX OUT.pcap
  pcap.py check DIR SIZE ALG KEYHEX IN.pcap OUT.pcap
  pcap.py wait RUNTIME_DIR PORT COUNT TIMEOUT_S

SIZE is the plaintext Ethernet frame length without FCS (the inner packet of the ESP
frames), or "imix": 7:4:1 frames of 64, 570 and 1400 B interleaved (simple IMIX with 1400
as the large frame, so the ESP frame stays within ipsec-secgw's 1500-byte MTU). `gen`
prints the number of packets. Outbound input: N plaintext Ethernet/IPv4/UDP frames 10.1.0.1 -> 10.2.0.1 with
distinct UDP source ports. Inbound input: the same frames sealed by scapy into tunnel-mode
ESP (RFC 4303 over RFC 4106 / RFC 7634) from 198.51.100.2 to 198.51.100.1 with sequence
numbers 1..N. `check` decrypts (outbound) or parses (inbound) what ipsec-secgw wrote and
compares each inner IPv4 packet with the plaintext it was made from (TTL and header
checksum aside); exits non-zero and says why on any mismatch. `wait` polls DPDK telemetry
until PORT has sent COUNT packets (the finite check run is then complete).
"""
import os
import sys
import time

from scapy.all import Ether, IP, UDP, Raw, rdpcap, wrpcap
from scapy.layers.ipsec import ESP, SecurityAssociation

N = 64
IMIX = [64, 570, 64, 1400, 64, 570, 64, 64, 570, 64, 570, 64]  # 7 x 64, 4 x 570, 1 x 1400
SPI = 7  # the SPI of both directions' SA in run.sh's config
LOCAL, REMOTE = "198.51.100.1", "198.51.100.2"  # gateway, peer (tunnel endpoints)
SCAPY_ALG = {"aes128gcm": "AES-GCM", "aes256gcm": "AES-GCM", "chacha20poly1305": "CHACHA20-POLY1305"}


def frame_sizes(size):
    if size == "imix":
        return IMIX * 5
    return [int(size)] * N


def plaintexts(size):
    pkts = []
    for i, length in enumerate(frame_sizes(size)):
        p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.1.0.1", dst="10.2.0.1", ttl=64) / UDP(sport=1024 + i, dport=9)
        pad = length - len(p)
        if pad < 0:
            sys.exit(f"frame size {length} below the {len(p)}-byte header")
        pkts.append(Ether(bytes(p / Raw(bytes((i + j) & 0xFF for j in range(pad))))))
    return pkts


def sa(alg, keyhex, src, dst):
    # ipsec-secgw keys are key || 4-byte salt, as in RFC 4106 section 8.1 / RFC 7634 section 2.
    return SecurityAssociation(ESP, spi=SPI, crypt_algo=SCAPY_ALG[alg], crypt_key=bytes.fromhex(keyhex),
                               tunnel_header=IP(src=src, dst=dst))


def inner_key(ip):
    """Inner packet bytes with TTL and checksum zeroed: a forwarder may decrement the TTL."""
    ip = ip.copy()
    ip.ttl, ip.chksum = 0, 0
    return bytes(ip)


def gen(direction, size, alg, keyhex, out):
    pkts = plaintexts(size)
    if direction == "inbound":
        peer = sa(alg, keyhex, REMOTE, LOCAL)
        pkts = [Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:04") / peer.encrypt(p[IP], seq_num=i + 1)
                for i, p in enumerate(pkts)]
    wrpcap(out, pkts)
    print(len(pkts))


def check(direction, size, alg, keyhex, inp, out):
    want = [inner_key(p[IP]) for p in plaintexts(size)]
    got = rdpcap(out)
    if len(got) != len(want):
        sys.exit(f"check: {len(got)} packets out, {len(want)} expected ({inp} -> {out})")
    peer = sa(alg, keyhex, LOCAL, REMOTE)
    for i, frame in enumerate(got):
        outer = frame[IP]
        if direction == "outbound":
            if outer.proto != 50 or outer.src != LOCAL or outer.dst != REMOTE:
                sys.exit(f"check: packet {i} is not ESP {LOCAL} -> {REMOTE}: {outer.summary()}")
            if outer[ESP].spi != SPI or outer[ESP].seq != i + 1:
                sys.exit(f"check: packet {i} has SPI {outer[ESP].spi} seq {outer[ESP].seq}, expected {SPI} / {i + 1}")
            inner = peer.decrypt(outer)  # raises on a bad ICV
        else:
            inner = outer
        got_bytes = inner_key(inner)
        if got_bytes != want[i]:
            at = next((j for j, (a, b) in enumerate(zip(got_bytes, want[i])) if a != b), min(len(got_bytes), len(want[i])))
            sys.exit(f"check: packet {i} inner packet differs at byte {at} ({len(got_bytes)} B, {len(want[i])} B expected)")
    print(f"check: {len(got)} {direction} packets of {size} B verified by scapy ({alg})")


def wait(rundir, port, count, timeout):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "forward"))
    from telemetry_rate import opackets  # perf/forward/telemetry_rate.py

    sock = os.path.join(rundir, "dpdk_telemetry.v2")
    deadline = time.monotonic() + timeout
    sent = 0
    while time.monotonic() < deadline:
        try:
            sent = opackets(sock, port)
        except (OSError, ValueError, KeyError):
            sent = 0  # not up yet
        if sent >= count:
            return
        time.sleep(0.1)
    sys.exit(f"wait: port {port} sent {sent} of {count} packets in {timeout} s")


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "wait":
        wait(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    elif len(sys.argv) == 7 and sys.argv[1] == "gen":
        gen(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6])
    elif len(sys.argv) == 8 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
