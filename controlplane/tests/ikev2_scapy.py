#!/usr/bin/python3
"""scapy's IKEv2 layer (an implementation we did not write) against ours.

  build DIR  - writes DIR/scapy_init.bin: an IKE_SA_INIT request built by scapy
               (AES-GCM-16-128, PRF-HMAC-SHA2-256, ECP-256 with a real key from
               python-cryptography, 32-byte nonce)
  parse DIR  - prints one summary line per DIR/*.bin, as scapy parses it; the
               Rust test (ikev2_scapy.rs) prints the same summary from our parser
               and compares them.
"""
import os
import sys

from scapy.contrib.ikev2 import (IKEv2, IKEv2_payload_KE, IKEv2_payload_Nonce, IKEv2_payload_Notify,
                                 IKEv2_payload_Proposal, IKEv2_payload_SA, IKEv2_payload_Transform)

NAMES = {33: "SA", 34: "KE", 35: "IDi", 36: "IDr", 39: "AUTH", 40: "Nonce", 41: "N", 42: "D",
         43: "V", 44: "TSi", 45: "TSr", 46: "SK"}


def transforms(prop):
    out = []
    t = prop.trans
    while t is not None and isinstance(t, IKEv2_payload_Transform):
        # scapy keeps the whole TV attribute (0x800e | length) in key_length.
        kl = (t.key_length & 0xffff) if t.length > 8 else None
        out.append("%d:%d%s" % (t.transform_type, t.transform_id, "" if kl is None else ":%d" % kl))
        t = t.payload if isinstance(t.payload, IKEv2_payload_Transform) else None
    return out


def proposals(sa):
    out = []
    p = sa.prop
    while p is not None and isinstance(p, IKEv2_payload_Proposal):
        out.append("%d/%d/%d[%s]" % (p.proposal, p.proto, p.SPIsize, ",".join(transforms(p))))
        p = p.payload if isinstance(p.payload, IKEv2_payload_Proposal) else None
    return out


def summary(data):
    pkt = IKEv2(data)
    parts = ["exch=%d" % pkt.exch_type, "flags=%d" % pkt.flags, "mid=%d" % pkt.id,
             "spi_i=%s" % pkt.init_SPI.hex(), "spi_r=%s" % pkt.resp_SPI.hex(), "len=%d" % pkt.length]
    kinds, extra = [], []
    nxt = pkt.next_payload
    layer = pkt.payload
    while nxt != 0 and layer is not None and len(layer) > 0:
        kinds.append(NAMES.get(nxt, str(nxt)))
        if isinstance(layer, IKEv2_payload_SA):
            extra.append("sa=" + ";".join(proposals(layer)))
        elif isinstance(layer, IKEv2_payload_KE):
            extra.append("ke=%d/%d" % (layer.group, len(layer.load)))
        elif isinstance(layer, IKEv2_payload_Nonce):
            extra.append("nonce=%d" % len(layer.load))
        elif isinstance(layer, IKEv2_payload_Notify):
            extra.append("n=%d/%d" % (layer.type, len(layer.load)))
        if nxt == 46:  # SK is last; its next-payload names the inner first payload
            extra.append("sk=%d" % (layer.length - 4))
            break
        nxt = layer.next_payload
        # Each payload parses its successor as its own payload; an SA payload
        # keeps proposals in its `prop` field, so its payload is the next one.
        layer = layer.payload
    return " ".join(parts + ["payloads=" + ",".join(kinds)] + extra)


def build(d):
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    nums = key.public_key().public_numbers()
    ke = nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")
    # scapy 2.5 does not fill in next-payload fields or the key-length
    # attribute header by itself, so they are spelled out.
    trans = (IKEv2_payload_Transform(next_payload=3, transform_type=1, transform_id=20, length=12,
                                     key_length=0x800E0000 | 128)
             / IKEv2_payload_Transform(next_payload=3, transform_type=2, transform_id=5)
             / IKEv2_payload_Transform(next_payload=0, transform_type=4, transform_id=19))
    prop = IKEv2_payload_Proposal(proposal=1, proto=1, trans_nb=3, trans=trans)
    pkt = (IKEv2(init_SPI=bytes.fromhex("0123456789abcdef"), resp_SPI=bytes(8), next_payload=33, exch_type=34,
                 flags=0x08, id=0)
           / IKEv2_payload_SA(next_payload=34, prop=prop)
           / IKEv2_payload_KE(next_payload=40, group=19, load=ke)
           / IKEv2_payload_Nonce(next_payload=0, load=os.urandom(32)))
    with open(os.path.join(d, "scapy_init.bin"), "wb") as f:
        f.write(bytes(pkt))


def main():
    mode, d = sys.argv[1], sys.argv[2]
    if mode == "build":
        build(d)
    else:
        for name in sorted(os.listdir(d)):
            if name.endswith(".bin"):
                with open(os.path.join(d, name), "rb") as f:
                    print(name, summary(f.read()))


if __name__ == "__main__":
    main()
