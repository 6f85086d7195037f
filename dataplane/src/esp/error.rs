//! Every way ESP processing can refuse a packet, each mapped to a drop reason.

use crate::drop::DropReason;
use crate::wire::{IpProtocol, Spi};

use super::replay::ReplayError;

/// Why encap or decap refused a packet. The packet is left for the caller to free
/// and count with [`EspError::drop_reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    /// Shorter than a header, or than a length field says.
    #[error("truncated packet")]
    Truncated,
    /// Outer IP header invalid.
    #[error("malformed outer header")]
    MalformedOuter,
    /// Outer packet is an IP fragment.
    #[error("outer packet is a fragment")]
    Fragment,
    /// Not ESP (raw or UDP 4500) at all.
    #[error("not an ESP packet")]
    NotEsp,
    /// The SPI is not the one of the SA the packet was given to.
    #[error("SPI {got} does not belong to this SA")]
    BadSpi {
        /// The SPI in the packet.
        got: Spi,
    },
    /// Replay check refused the sequence number.
    #[error("replay check: {0}")]
    Replay(ReplayError),
    /// ICV did not verify.
    #[error("authentication failed")]
    AuthFailed,
    /// Padding bytes wrong, or Pad Length larger than the payload.
    #[error("bad ESP padding")]
    BadPadding,
    /// Next Header is not IPv4 or IPv6 (tunnel mode).
    #[error("unexpected ESP next header {0:?}")]
    BadNextHeader(IpProtocol),
    /// A TFC dummy packet (Next Header 59, RFC 4303 §2.6).
    #[error("ESP dummy packet")]
    DummyPacket,
    /// The inner IP header is invalid or disagrees with Next Header.
    #[error("bad inner IP header")]
    BadInnerHeader,
    /// RFC 6040 §4.2: outer CE but the inner packet is not ECN-capable.
    #[error("outer CE on a Not-ECT inner packet")]
    EcnCeNotEct,
    /// The inner packet is outside the SA's traffic selectors.
    #[error("inner packet does not match the SA policy")]
    PolicyMismatch,
    /// Outbound sequence numbers are used up (no ESN); rekey the SA.
    #[error("sequence numbers exhausted")]
    SeqExhausted,
    /// Not enough headroom or tailroom.
    #[error("not enough buffer room")]
    NoBufferRoom,
    /// The result would not fit the outer IP length field.
    #[error("packet too big to encapsulate")]
    TooBig,
    /// Authenticated, but another worker claimed the inbound SA first.
    #[error("another worker claimed the inbound SA first")]
    ClaimLost,
}

impl EspError {
    /// The counter this failure increments.
    pub const fn drop_reason(self) -> DropReason {
        match self {
            EspError::Truncated => DropReason::Truncated,
            EspError::MalformedOuter => DropReason::MalformedOuter,
            EspError::Fragment => DropReason::Fragment,
            EspError::NotEsp => DropReason::NotForUs,
            EspError::BadSpi { .. } => DropReason::BadSpi,
            EspError::Replay(ReplayError::Duplicate) => DropReason::Replayed,
            EspError::Replay(ReplayError::TooOld | ReplayError::Zero) => DropReason::ReplayTooOld,
            EspError::AuthFailed => DropReason::AuthFailed,
            EspError::BadPadding => DropReason::BadPadding,
            EspError::BadNextHeader(_) => DropReason::BadNextHeader,
            EspError::DummyPacket => DropReason::DummyPacket,
            EspError::BadInnerHeader => DropReason::BadInnerHeader,
            EspError::EcnCeNotEct => DropReason::EcnCeNotEct,
            EspError::PolicyMismatch => DropReason::PolicyMismatch,
            EspError::SeqExhausted => DropReason::SeqExhausted,
            EspError::NoBufferRoom => DropReason::NoBufferRoom,
            EspError::TooBig => DropReason::TooBig,
            EspError::ClaimLost => DropReason::ClaimLost,
        }
    }
}

impl From<ReplayError> for EspError {
    fn from(e: ReplayError) -> Self {
        EspError::Replay(e)
    }
}
