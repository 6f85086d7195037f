#!/usr/bin/python3
"""Pcaps and checks of scripts/tests/esp_multiworker.sh, with scapy as the
independent ESP implementation.

The gateway under test is 198.51.100.1 (MAC 02:00:00:00:00:01), the peer
198.51.100.2; two static SA pairs:
  tunnel a: 10.2.0.0/24 (ours) <-> 10.1.0.0/24 (peer's), SPI in 0x1000, out 0x2000
  tunnel b: 10.2.1.0/24 (ours) <-> 10.1.1.0/24 (peer's), SPI in 0x1001, out 0x2001
With two workers and sa_owner = "spi", worker 0 owns SPI 0x1000 and worker 1 SPI 0x1001
(SPI mod 2); with "first-receiver", worker 0 (which receives all ESP) owns both.

  pcaps.py make DIR COUNT      DIR/esp.pcap: COUNT ESP frames per tunnel (scapy-sealed,
                               interleaved); DIR/plain0.pcap, DIR/plain1.pcap: COUNT
                               plaintext frames per tunnel, split over the two files
  pcaps.py check DIR COUNT ESP_OUT... -- PLAIN_OUT... [--ordered]
                               the ESP the gateway sent opens in scapy to exactly the
                               plaintext frames (TTL - 1), each once, with sequence numbers
                               1..COUNT per SA; the plaintext it sent is exactly the inner
                               packets of DIR/esp.pcap (TTL - 1), each once. ESP_OUT are
                               the workers' tx queues: with --ordered each SA's ESP left
                               on one of them, in sequence-number order.
"""
import sys
import warnings
from collections import Counter

warnings.filterwarnings("ignore")
from scapy.all import IP, UDP, Ether, Raw, raw, rdpcap, wrpcap  # noqa: E402
from scapy.layers.ipsec import ESP, SecurityAssociation  # noqa: E402

GW_MAC, PEER_MAC, HOST_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
GW, PEER = "198.51.100.1", "198.51.100.2"
# name: (spi_in, spi_out, key_in (gateway opens), key_out (gateway seals), our net, peer's net)
TUNNELS = {
    "a": (0x1000, 0x2000, "40" + "01" * 19, "41" + "01" * 19, "10.2.0", "10.1.0"),
    "b": (0x1001, 0x2001, "50" + "02" * 19, "51" + "02" * 19, "10.2.1", "10.1.1"),
}


def sa(spi, key, src, dst):
    return SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=bytes.fromhex(key),
                               tunnel_header=IP(src=src, dst=dst, ttl=64))


def inner(src, dst, i):
    return IP(src=src, dst=dst, ttl=64, id=i) / UDP(sport=1024 + i, dport=9) / Raw(b"mw%06d" % i + bytes(40))


def make(d, count):
    esp, plain = [], [[], []]
    for i in range(count):
        for n, (name, (spi_in, _, key_in, _, ours, peers)) in enumerate(TUNNELS.items()):
            s = sa(spi_in, key_in, PEER, GW)
            s.outer_seq = i
            e = s.encrypt(inner(f"{peers}.{2 + i % 200}", f"{ours}.{2 + i % 200}", i), seq_num=i + 1)
            esp.append(Ether(src=PEER_MAC, dst=GW_MAC) / IP(raw(e)))
            p = Ether(src=HOST_MAC, dst=GW_MAC) / inner(f"{ours}.{2 + i % 200}", f"{peers}.{2 + i % 200}", i)
            plain[(i + n) % 2].append(p)
    wrpcap(f"{d}/esp.pcap", esp)
    for q in (0, 1):
        wrpcap(f"{d}/plain{q}.pcap", plain[q])


def forwarded(pkt):
    """What a frame's IP packet looks like after the gateway forwarded it."""
    ip = IP(raw(pkt[IP]))
    ip.ttl -= 1
    del ip.chksum
    return raw(IP(raw(ip)))


def die(msg):
    print(f"esp_multiworker: FAIL: {msg}")
    sys.exit(1)


def read(files):
    return [p for f in files for p in rdpcap(f)]


def check(d, count, esp_out, plain_out, ordered):
    # Outbound: the plaintext both workers received, encrypted and opened by scapy.
    want = Counter(forwarded(p) for q in (0, 1) for p in rdpcap(f"{d}/plain{q}.pcap"))
    by_spi = {t[1]: (name, sa(t[1], t[3], GW, PEER)) for name, t in TUNNELS.items()}
    got = Counter()
    # Each worker sends on its own tx queue (one pcap each): the sequence numbers
    # of each SA's ESP per queue, in the order they left.
    queues = {name: {} for name in TUNNELS}
    frames = [(q, f) for q, path in enumerate(esp_out) for f in rdpcap(path)]
    for i, (q, f) in enumerate(frames):
        if ESP not in f or (f[IP].src, f[IP].dst) != (GW, PEER):
            die(f"ESP out frame {i} is not ESP {GW} -> {PEER}: {f.summary()}")
        spi = f[ESP].spi
        if spi not in by_spi:
            die(f"ESP out frame {i}: unknown SPI {spi:#x}")
        name, s = by_spi[spi]
        queues[name].setdefault(q, []).append(f[ESP].seq)
        try:
            got[raw(s.decrypt(IP(raw(f[IP]))))] += 1
        except Exception as e:  # noqa: BLE001 - scapy raises plain exceptions on ICV failure
            die(f"ESP out frame {i} (SPI {spi:#x}) does not open in scapy: {e}")
    if got != want:
        die(f"encrypted packets differ from the plaintext sent: {sum((want - got).values())} missing, "
            f"{sum((got - want).values())} unexpected")
    seqs = {name: [n for s in by_q.values() for n in s] for name, by_q in queues.items()}
    for name, s in seqs.items():
        if sorted(s) != list(range(1, count + 1)):
            die(f"tunnel {name}: sequence numbers are not 1..{count} each once: {sorted(s)[:10]}...")
    if ordered:
        # [dpdk].encrypt = "owner": one worker encrypts each SA, so its ESP leaves
        # on one queue, in sequence-number order.
        for name, by_q in queues.items():
            if len(by_q) != 1:
                die(f"tunnel {name}: ESP left on {len(by_q)} workers' queues, want one (its owner)")
            (q, s), = by_q.items()
            if s != sorted(s):
                late = next(i for i in range(1, len(s)) if s[i] < s[i - 1])
                die(f"tunnel {name}: ESP out of order on queue {q}: {s[late - 1]} then {s[late]}")
    # Inbound: every packet scapy sealed, decrypted once (and forwarded: TTL - 1).
    want = Counter()
    for f in rdpcap(f"{d}/esp.pcap"):
        t = next(t for t in TUNNELS.values() if t[0] == f[ESP].spi)
        want[forwarded(sa(t[0], t[2], PEER, GW).decrypt(IP(raw(f[IP]))))] += 1
    decapped = Counter(raw(IP(raw(f[IP]))) for f in read(plain_out))
    if decapped != want:
        die(f"decrypted packets differ from what scapy sealed: {sum((want - decapped).values())} missing, "
            f"{sum((decapped - want).values())} unexpected or duplicated")
    print(f"esp_multiworker: {sum(len(v) for v in seqs.values())} ESP frames open in scapy to the plaintext "
          f"(seq 1..{count} per SA{', each SA from one worker, in order' if ordered else ''}), "
          f"{sum(decapped.values())} decrypted frames equal scapy's, each once")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "check" and "--" in sys.argv:
        args = [a for a in sys.argv if a != "--ordered"]
        sep = args.index("--")
        check(args[2], int(args[3]), args[4:sep], args[sep + 1:], "--ordered" in sys.argv)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
