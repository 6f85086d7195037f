//! FFI to intel-ipsec-mb (libipsec-mb) for AES-GCM and ChaCha20-Poly1305 bursts.
