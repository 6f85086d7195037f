//! A keyed per-packet cipher plus the ESP salt: the part every one-packet-at-a-time
//! backend shares (nonce construction, burst loops, fail-closed seal, Debug).

use zeroize::Zeroizing;

use super::{AeadOp, Algorithm, AuthError, IV_LEN, SALT_LEN, TAG_LEN};

/// Bytes of the AEAD nonce: salt || explicit IV.
pub(super) const NONCE_LEN: usize = SALT_LEN + IV_LEN;

/// `cipher` is the backend's keyed object (it wipes itself on drop where the
/// backend allows); the salt is wiped here.
pub(super) struct Keyed<K> {
    pub(super) cipher: K,
    salt: Zeroizing<[u8; SALT_LEN]>,
    pub(super) alg: Algorithm,
    name: &'static str,
}

impl<K> Keyed<K> {
    pub(super) fn new(cipher: K, salt: [u8; SALT_LEN], alg: Algorithm, name: &'static str) -> Self {
        Keyed {
            cipher,
            salt: Zeroizing::new(salt),
            alg,
            name,
        }
    }

    /// RFC 4106 §4 / RFC 7634 §2: nonce = salt || explicit IV.
    pub(super) fn nonce(&self, iv: &[u8; IV_LEN]) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        n[..SALT_LEN].copy_from_slice(&self.salt[..]);
        n[SALT_LEN..].copy_from_slice(iv);
        n
    }

    /// Seal each op with `seal(cipher, nonce, aad, data) -> tag`. A backend error
    /// (only for inputs beyond the AEAD's length limit, never a packet) fails
    /// closed: data and tag are zeroed so nothing readable leaves.
    pub(super) fn seal_each<E>(
        &self,
        ops: &mut [AeadOp<'_>],
        mut seal: impl FnMut(&K, [u8; NONCE_LEN], &[u8], &mut [u8]) -> Result<[u8; TAG_LEN], E>,
    ) {
        for op in ops.iter_mut() {
            match seal(&self.cipher, self.nonce(&op.iv), op.aad, op.data) {
                Ok(tag) => *op.tag = tag,
                Err(_) => {
                    op.data.fill(0);
                    op.tag.fill(0);
                }
            }
        }
    }

    /// Open each op with `open(cipher, nonce, aad, data, tag) -> authentic?`.
    pub(super) fn open_each(
        &self,
        ops: &mut [AeadOp<'_>],
        results: &mut [Result<(), AuthError>],
        mut open: impl FnMut(&K, [u8; NONCE_LEN], &[u8], &mut [u8], &[u8; TAG_LEN]) -> bool,
    ) {
        for (op, result) in ops.iter_mut().zip(results.iter_mut()) {
            let ok = open(&self.cipher, self.nonce(&op.iv), op.aad, op.data, op.tag);
            *result = AuthError::unless(ok);
        }
    }
}

impl<K> core::fmt::Debug for Keyed<K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Aead")
            .field("backend", &self.name)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}
