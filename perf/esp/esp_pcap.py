#!/usr/bin/python3
"""Make and check the pcaps of the ESP benchmarks and tests, with scapy as the
independent ESP implementation (ipsecgw's own code is never used here).

  esp_pcap.py plain OUT --size N [--count C] [--imix]        plaintext 10.1.0.x -> 10.2.0.x UDP frames
  esp_pcap.py esp OUT --alg A --key HEX --spi S [--udp] [--v6] [--sas N] --size N [--count C] [--imix]
                                                            the same frames, ESP-sealed by scapy (seq 1..C,
                                                            or per tunnel with --sas)
  esp_pcap.py check-encap PLAIN OUT --alg A --key HEX --spi S [--udp] [--v6] [--sas N]
                                                            OUT (ipsecgw's ESP) opens in scapy to PLAIN's packets
  esp_pcap.py check-decap PLAIN OUT [--sas N]               OUT (ipsecgw's decap) equals PLAIN's packets
With --sas N (esp, check-encap, check-decap) the frames belong to N tunnels in turn:
frame i to SA k = i % N, whose SPI is S + 0x100 k and whose key is HEX with its second
byte increased by k (perf/esp/config.sh's ESP_TUNNELS, esp_key); each SA numbers its own
frames 1, 2, ... A gateway sends each SA's packets in order but may interleave SAs
differently, so the checks pair frames up per SA (by SPI for ESP, by inner destination,
10.2.0.(2 + i % 100), for plaintext). Tunnels select the first FLOWS = 64 flows
(perf/esp/config.sh's ESP_FLOWS), so --sas takes at most that many frames.
Frame sizes are Ethernet frames without FCS. IMIX here is 7:4:1 of 64/576/1400 B
(1400 rather than 1518 so that the encapsulated packet fits a 1500-byte MTU), in a
row (7 x 64, 4 x 576, 1400, repeated), or with --shuffle in a fixed random order.
The outer link is 198.51.100.1 (gw) <-> 198.51.100.2 (peer), like the netns tests, or
with --v6 2001:db8:100::1 <-> 2001:db8:100::2 (scripts/tests/tunnel_ipv6.sh's).
Each check prints one line and exits 1 on any difference.
"""
import argparse
import random
import sys
import warnings

warnings.filterwarnings("ignore")
from scapy.all import IP, UDP, Ether, IPv6, Raw, raw, rdpcap, wrpcap  # noqa: E402
from scapy.layers.ipsec import ESP, SecurityAssociation  # noqa: E402

ALGS = {"aes128gcm": ("AES-GCM", 16), "aes256gcm": ("AES-GCM", 32), "chacha20poly1305": ("CHACHA20-POLY1305", 32)}
GW_MAC, PEER_MAC, HOST_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
GW_OUT, PEER_OUT = "198.51.100.1", "198.51.100.2"
GW_OUT6, PEER_OUT6 = "2001:db8:100::1", "2001:db8:100::2"
IMIX = [64] * 7 + [576] * 4 + [1400]
FLOWS = 64  # perf/esp/config.sh's ESP_FLOWS: the flows its tunnels' selectors cover


def sizes(a):
    if not a.imix:
        return [a.size] * a.count
    out = [IMIX[i % len(IMIX)] for i in range(a.count)]
    if a.shuffle:
        random.Random(1).shuffle(out)  # the same order every time
    return out


def plain_frames(a, dst_mac=GW_MAC):
    out = []
    for i, size in enumerate(sizes(a)):
        p = Ether(src=HOST_MAC, dst=dst_mac) / IP(src=f"10.1.0.{2 + i % 200}", dst=f"10.2.0.{2 + i % 100}", ttl=64, id=i) / UDP(sport=1024 + i % 1000, dport=9)
        pad = size - len(p)
        out.append(p / Raw(bytes((i + j) & 0xFF for j in range(max(pad, 0)))))
    return out


def outer(a, gw_is_src):
    """(IP class, source, destination) of the outer header."""
    gw, peer, cls = (GW_OUT6, PEER_OUT6, IPv6) if a.v6 else (GW_OUT, PEER_OUT, IP)
    return (cls, gw, peer) if gw_is_src else (cls, peer, gw)


def outer_header(a, src, dst, ttl, proto=None):
    """An outer IP header of `a`'s family; `proto` the IPv4 protocol / IPv6 next header (None: scapy's)."""
    kw = {} if proto is None else {"nh" if a.v6 else "proto": proto}
    return IPv6(src=src, dst=dst, hlim=ttl, **kw) if a.v6 else IP(src=src, dst=dst, ttl=ttl, **kw)


def tunnel_spi(a, k):
    return a.spi + 0x100 * k


def tunnel_key(a, k):
    key = bytearray.fromhex(a.key)
    key[1] = (key[1] + k) & 0xFF
    return bytes(key)


def sa(a, gw_is_src, k=0):
    """Tunnel k's SA (k = 0: the one of --spi and --key)."""
    name, _ = ALGS[a.alg]
    _, src, dst = outer(a, gw_is_src)
    return SecurityAssociation(ESP, spi=tunnel_spi(a, k), crypt_algo=name, crypt_key=tunnel_key(a, k),
                               tunnel_header=outer_header(a, src, dst, 64),
                               nat_t_header=UDP(sport=4500, dport=4500) if a.udp else None)


def fix_udp_len(b):
    # scapy 2.5 writes UDP length 8 in NAT-T packets over IPv4 (it freezes the
    # header before appending ESP); RFC 768 wants header + data.
    f = bytearray(b)
    f[24:26] = (len(f) - 20).to_bytes(2, "big")
    return bytes(f)


def after_hop(frame):
    """The bytes of `frame`'s IP packet as a router forwards it: TTL - 1, checksum redone."""
    ip = IP(raw(frame[IP]))
    ip.ttl -= 1
    del ip.chksum
    return raw(IP(raw(ip)))


def check_flows(a, frames):
    """--sas covers the first FLOWS flows only (the tunnels' selectors)."""
    if a.sas > 1 and frames > FLOWS:
        die(f"--sas with {frames} frames: the tunnels select the first {FLOWS} flows only")


def cmd_plain(a):
    wrpcap(a.out, plain_frames(a))


def cmd_esp(a):
    check_flows(a, a.count)
    sas = [sa(a, gw_is_src=False, k=k) for k in range(a.sas)]
    cls = outer(a, False)[0]
    frames = []
    for i, f in enumerate(plain_frames(a, dst_mac=GW_MAC)):
        inner = f[IP]
        inner.ttl = 64
        s, seq = sas[i % a.sas], i // a.sas + 1
        s.outer_seq = seq - 1  # scapy's counter
        e = s.encrypt(IP(raw(inner)), seq_num=seq)
        b = raw(e)
        if a.udp and not a.v6:
            b = fix_udp_len(b)
        frames.append(Ether(src=PEER_MAC, dst=GW_MAC) / cls(b))
    wrpcap(a.out, frames)


def die(msg):
    print(f"esp_pcap: FAIL: {msg}")
    sys.exit(1)


def cmd_check_encap(a):
    plain, out = rdpcap(a.plain), rdpcap(a.out)
    check_flows(a, len(plain))
    if len(out) != len(plain):
        die(f"{len(out)} ESP frames out for {len(plain)} plaintext frames in")
    sas = {tunnel_spi(a, k): (k, sa(a, gw_is_src=True, k=k)) for k in range(a.sas)}
    cls, src, dst = outer(a, True)
    last = {}  # SPI -> the sequence number it last sent
    for n, o in enumerate(out):
        if cls not in o:
            die(f"frame {n}: no {cls.__name__} outer header: {o.summary()}")
        ip = o[cls]
        if (ip.src, ip.dst) != (src, dst):
            die(f"frame {n}: outer {ip.src} -> {ip.dst}")
        proto = ip.nh if a.v6 else ip.proto
        if proto != (17 if a.udp else 50):
            die(f"frame {n}: outer protocol {proto}, udp={a.udp}")
        b = raw(ip)
        esp = ESP(raw(ip[UDP].payload)) if a.udp else ip[ESP]
        if esp.spi not in sas:
            die(f"frame {n}: SPI {esp.spi:#x} is none of the {a.sas} tunnels'")
        k, s = sas[esp.spi]
        # Each SA sends in order, from 1; its seq-th packet is plaintext frame k + (seq - 1) N.
        if esp.seq != last.get(esp.spi, 0) + 1:
            die(f"frame {n}: SPI {esp.spi:#x} sequence number {esp.seq} after {last.get(esp.spi, 0)}")
        last[esp.spi] = esp.seq
        i = k + (esp.seq - 1) * a.sas
        if i >= len(plain):
            die(f"frame {n}: SPI {esp.spi:#x} sequence number {esp.seq}: more packets than were sent to it")
        p = plain[i]
        if a.udp:
            # scapy's decrypt expects what its encrypt makes: drop the UDP header.
            ttl = ip.hlim if a.v6 else ip.ttl
            b = raw(outer_header(a, ip.src, ip.dst, ttl, proto=50) / Raw(raw(ip[UDP].payload)))
        try:
            inner = s.decrypt(cls(b))
        except Exception as e:  # noqa: BLE001 - scapy raises plain exceptions on ICV failure
            die(f"frame {n} (SPI {esp.spi:#x} seq {esp.seq}): scapy cannot open it: {e}")
        want = after_hop(p)
        if raw(inner) != want:
            die(f"frame {n} (SPI {esp.spi:#x} seq {esp.seq}, plaintext frame {i}): inner differs:\n  got  {raw(inner).hex()}\n  want {want.hex()}")
    print(f"esp_pcap: {len(out)} ESP frames open in scapy to the {len(plain)} plaintext packets (TTL - 1)")


def cmd_check_decap(a):
    plain, out = rdpcap(a.plain), rdpcap(a.out)
    check_flows(a, len(plain))
    if len(out) != len(plain):
        die(f"{len(out)} plaintext frames out for {len(plain)} ESP frames in")
    # Each tunnel's packets, in the order it received them.
    queues = [[i for i in range(len(plain)) if i % a.sas == k] for k in range(a.sas)]
    for n, o in enumerate(out):
        if IP not in o:
            die(f"frame {n}: not IPv4: {o.summary()}")
        k = (int(o[IP].dst.split(".")[3]) - 2) % a.sas
        if not queues[k]:
            die(f"frame {n}: one frame too many for tunnel {k}: {o.summary()}")
        i = queues[k].pop(0)
        want = after_hop(plain[i])
        if raw(o[IP]) != want:
            die(f"frame {n} (sealed as frame {i}): decrypted packet differs:\n  got  {raw(o[IP]).hex()}\n  want {want.hex()}")
    print(f"esp_pcap: {len(out)} decrypted frames equal the packets scapy sealed (TTL - 1)")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    def tunnels(p):
        p.add_argument("--sas", type=int, default=1, help="tunnels taking the frames in turn")

    def sa_args(p):
        p.add_argument("--alg", required=True, choices=ALGS)
        p.add_argument("--key", required=True)
        p.add_argument("--spi", type=lambda v: int(v, 0), required=True)
        p.add_argument("--udp", action="store_true")
        p.add_argument("--v6", action="store_true", help="IPv6 outer header")
        tunnels(p)

    for name in ("plain", "esp"):
        p = sub.add_parser(name)
        p.add_argument("out")
        p.add_argument("--size", type=int, default=64)
        p.add_argument("--count", type=int, default=64)
        p.add_argument("--imix", action="store_true")
        p.add_argument("--shuffle", action="store_true", help="IMIX sizes in a (fixed) random order, not 7+4+1 in a row")
        if name == "esp":
            sa_args(p)
    p = sub.add_parser("check-encap")
    p.add_argument("plain")
    p.add_argument("out")
    sa_args(p)
    p = sub.add_parser("check-decap")
    p.add_argument("plain")
    p.add_argument("out")
    tunnels(p)
    a = ap.parse_args()
    if getattr(a, "sas", 1) < 1:
        die("--sas must be at least 1")
    {"plain": cmd_plain, "esp": cmd_esp, "check-encap": cmd_check_encap, "check-decap": cmd_check_decap}[a.cmd](a)


if __name__ == "__main__":
    main()
