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
