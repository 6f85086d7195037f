//! IKEv2 wire format (RFC 7296 §3): a zero-copy view of the fixed header, owned
//! representations of every payload the engine uses, payload-chain walking with
//! length checks, and emitters. Parsing never panics: every length is checked
//! before it is used, and every failure is a [`WireError`].

mod header;
mod numbers;
mod payload;
mod sa;
mod ts;

pub use header::{peek_any_version, Flags, Header, HeaderRepr, HEADER_LEN};
pub use numbers::{ExchangeType, NotifyType, PayloadType, ProtocolId};
pub use payload::{
    emit_payloads, parse_payloads, AuthPayload, DeletePayload, IdPayload, KePayload,
    NotifyPayload, Payload, SkPayload, GENERIC_HEADER_LEN,
};
pub use sa::{Attribute, ProposalRepr, TransformRepr, TransformType, ATTR_KEY_LENGTH};
pub use ts::{TsRepr, TS_IPV4_ADDR_RANGE, TS_IPV6_ADDR_RANGE};

/// Why a message could not be parsed. Each variant maps to what RFC 7296 says
/// to do with such a message (mostly: drop it; see [`WireError::notify`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message is {got} bytes, shorter than the {need}-byte {what}")]
    Truncated { what: &'static str, need: usize, got: usize },
    #[error("IKE header length field says {claimed} bytes but the datagram has {actual}")]
    LengthMismatch { claimed: usize, actual: usize },
    #[error("{what} length field {claimed} is invalid ({detail})")]
    BadLength { what: &'static str, claimed: usize, detail: &'static str },
    #[error("peer uses IKE major version {0} (this gateway speaks IKEv2 only)")]
    MajorVersion(u8),
    #[error("unknown payload type {0} marked critical")]
    UnsupportedCritical(u8),
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: &'static str },
}

impl WireError {
    /// The error notification RFC 7296 asks a responder to return for this
    /// defect, if any (§2.5 version, §2.5 critical bit, §3.10.1 INVALID_SYNTAX).
    pub fn notify(&self) -> Option<NotifyType> {
        match self {
            WireError::MajorVersion(_) => Some(NotifyType::INVALID_MAJOR_VERSION),
            WireError::UnsupportedCritical(_) => Some(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD),
            WireError::Malformed { .. } | WireError::BadLength { .. } => {
                Some(NotifyType::INVALID_SYNTAX)
            }
            WireError::Truncated { .. } | WireError::LengthMismatch { .. } => None,
        }
    }
}

/// Bounds-checked reader over a byte slice; every parser here goes through it
/// so a length lie becomes an error, never an index panic.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated { what: self.what, need: n, got: self.buf.len() });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let r = self.buf;
        self.buf = &[];
        r
    }
}

/// Appends a 16-bit length at `at` once the structure that starts there is
/// complete. Lengths that do not fit are a bug in the caller, reported as an error.
pub(crate) fn patch_len16(out: &mut [u8], at: usize, what: &'static str) -> Result<(), WireError> {
    let len = out.len().saturating_sub(at);
    let v = u16::try_from(len)
        .map_err(|_| WireError::BadLength { what, claimed: len, detail: "over 65535 bytes" })?;
    if let Some(slot) = out.get_mut(at + 2..at + 4) {
        slot.copy_from_slice(&v.to_be_bytes());
    }
    Ok(())
}
