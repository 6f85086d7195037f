//! Stand-ins when the library is not built in: same API, nothing available.

use crate::{AeadBuffer, Arch, Error, SALT_LEN};

/// Always `Err(Error::Unavailable)` in this build.
pub fn arch() -> Result<Arch, Error> {
    Err(Error::Unavailable)
}

/// No library version in this build.
pub fn version() -> Option<&'static str> {
    None
}

/// Always `Err(Error::Unavailable)` in this build.
pub fn warm_up() -> Result<(), Error> {
    Err(Error::Unavailable)
}

/// Uninhabited: no key can be made without the library.
#[derive(Debug)]
pub enum NoKey {}

/// AES-GCM key stand-in.
pub type GcmKey = NoKey;
/// ChaCha20-Poly1305 key stand-in.
pub type ChaChaPolyKey = NoKey;

impl NoKey {
    /// Always `Err(Error::Unavailable)` in this build.
    pub fn new(_key: &[u8], _salt: [u8; SALT_LEN]) -> Result<Self, Error> {
        Err(Error::Unavailable)
    }

    /// Unreachable: no value exists.
    pub fn seal_burst<B: AeadBuffer>(&self, _ops: &mut [B]) {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn open_burst<B: AeadBuffer>(&self, _ops: &mut [B], _verdict: impl FnMut(usize, bool)) {
        match *self {}
    }
}
