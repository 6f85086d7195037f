#!/usr/bin/python3
"""Independent reference values for controlplane::ikev2::crypto (RFC 7296 §2.13,
§2.14, §2.15, §2.17), computed with Python's hmac/hashlib only. The Rust unit
tests embed this script's output; rerun it to check they agree."""
import hashlib
import hmac


def prf(h, key, data):
    return hmac.new(key, data, h).digest()


def prf_plus(h, key, seed, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = prf(h, key, t + seed + bytes([i]))
        out += t
        i += 1
    return out[:n]


print("PRFPLUS_SHA256_80", prf_plus(hashlib.sha256, b"key", b"seed", 80).hex())
print("PRFPLUS_SHA512_130", prf_plus(hashlib.sha512, b"key", b"seed", 130).hex())

# IKE SA keys (RFC 7296 §2.14), PRF HMAC-SHA2-256, AES-GCM-16-128 (16+4 bytes).
sha256 = hashlib.sha256
ni, nr, gir = b"\x11" * 32, b"\x22" * 32, b"\x33" * 32
spi_i, spi_r = bytes.fromhex("0102030405060708"), bytes.fromhex("1112131415161718")
skeyseed = prf(sha256, ni + nr, gir)
km = prf_plus(sha256, skeyseed, ni + nr + spi_i + spi_r, 3 * 32 + 2 * 20)
print("IKE_KEYS", km.hex())
sk_d, sk_pi = km[:32], km[32 + 40:32 + 40 + 32]
# Child KEYMAT (§2.17), ChaCha20-Poly1305 (32+4 bytes per direction), no PFS.
print("CHILD_KEYS", prf_plus(sha256, sk_d, ni + nr, 72).hex())
# PSK AUTH (§2.15).
maced = prf(sha256, sk_pi, bytes([2, 0, 0, 0]) + b"a")
print("PSK_AUTH", prf(sha256, prf(sha256, b"secret", b"Key Pad for IKEv2"), b"message-one" + nr + maced).hex())
# IKE rekey (§2.18): old PRF keys SKEYSEED, new PRF (SHA-384) expands; Ni/Nr swapped roles.
skeyseed2 = prf(sha256, sk_d, gir + nr + ni)
km2 = prf_plus(hashlib.sha384, skeyseed2, nr + ni + (7).to_bytes(8, "big") + (8).to_bytes(8, "big"), 48)
print("REKEY_SK_D", km2.hex())
# NAT detection (§2.23): SHA-1(SPIi | SPIr | IP | port).
print("NAT_HASH", hashlib.sha1(spi_i + bytes(8) + bytes([198, 51, 100, 1]) + (500).to_bytes(2, "big")).hexdigest())

# Key exchange with python-cryptography (RFC 5903 ECP: public = x | y, shared = x)
# and plain pow() for MODP-2048 (RFC 3526 prime from OpenSSL's modp_2048 group).
try:
    from cryptography.hazmat.primitives.asymmetric import ec
    for name, curve, n in (("ECP256", ec.SECP256R1(), 32), ("ECP384", ec.SECP384R1(), 48)):
        a = ec.derive_private_key(int.from_bytes(b"\x42" * n, "big"), curve)
        b = ec.derive_private_key(int.from_bytes(b"\x17" * n, "big"), curve)
        pub = lambda k: k.public_key().public_numbers().x.to_bytes(n, "big") + k.public_key().public_numbers().y.to_bytes(n, "big")
        print(name + "_PUB_A", pub(a).hex())
        print(name + "_PUB_B", pub(b).hex())
        print(name + "_SHARED", a.exchange(ec.ECDH(), b.public_key()).hex())
except ImportError:
    pass
P = int("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF", 16)
xa = int.from_bytes(b"\x43" * 256, "big")  # top bit clear and odd: our generator keeps it as is
yb = pow(2, int.from_bytes(b"\x17" * 256, "big"), P)
print("MODP_PUB_A", pow(2, xa, P).to_bytes(256, "big").hex())
print("MODP_PUB_B", yb.to_bytes(256, "big").hex())
print("MODP_SHARED", pow(yb, xa, P).to_bytes(256, "big").hex())

# The SK payload (RFC 7296 §3.14 with RFC 5282 / RFC 7634): one Nonce payload
# (16 x 0x01) inside, IV 42, AAD = IKE header + SK generic header.
try:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
    inner = bytes([0, 0, 0, 20]) + b"\x01" * 16 + b"\x00"  # payload + Pad Length 0
    iv = (42).to_bytes(8, "big")
    for name, key, aead in (("SK_AES128", bytes(range(16)), AESGCM), ("SK_CHACHA", bytes(range(32)), ChaCha20Poly1305)):
        sk_len = 4 + 8 + len(inner) + 16
        header = ((1).to_bytes(8, "big") + (2).to_bytes(8, "big") + bytes([46, 0x20, 35, 0x08])
                  + (1).to_bytes(4, "big") + (28 + sk_len).to_bytes(4, "big"))
        aad = header + bytes([40, 0]) + sk_len.to_bytes(2, "big")
        salt = b"\xa0\xa1\xa2\xa3"
        print(name, (aad + iv + aead(key).encrypt(salt + iv, inner, aad)).hex())
except ImportError:
    pass
