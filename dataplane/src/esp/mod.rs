//! ESP tunnel mode (RFC 4303): outbound encap and inbound decap for every
//! combination of IPv4/IPv6 inner and outer headers, raw (IP protocol 50) or
//! UDP-encapsulated (RFC 3948, port 4500).
//!
//! Packets enter and leave at the IP header: the worker strips and adds the
//! Ethernet header. Both directions come as burst functions over the packets of
//! one SA (one AEAD call per burst, so multi-buffer backends can pipeline) and as
//! single-packet functions. Failures are typed ([`EspError`]) and map to a
//! [`crate::drop::DropReason`]; nothing here allocates or panics on packet
//! contents.

pub mod decap;
pub mod encap;
pub mod error;
pub mod replay;
pub mod sa;

pub use decap::{decap, decap_burst, decap_burst_classified, parse_outer, Decapped, EspLocation, InboundOuter};
pub use encap::{encap, encap_burst, encap_burst_framed, Framing};
pub use error::EspError;
pub use replay::{ReplayError, ReplayWindow};
pub use sa::{
    DfMode, DscpMode, EcnMode, InboundConfig, InboundSa, InboundState, OutboundConfig, OutboundSa, OutboundState, WorkerClaim,
    PadAlign, SaConfigError, UdpEncap,
};

/// Packets handed to the AEAD in one call; larger slices are processed in chunks.
pub const BURST: usize = 32;

/// ESP header + explicit IV.
const ESP_HDR_IV: usize = crate::wire::esp::HEADER_LEN + crate::crypto::IV_LEN;

/// The AAD of RFC 4106 §5 / RFC 7634 §2.1: SPI || seq (8 bytes), or
/// SPI || seq-high || seq-low (12 bytes) with ESN. Returns the buffer and length.
#[inline]
fn aad(spi: crate::wire::Spi, seq: u64, esn: bool) -> ([u8; 12], usize) {
    let mut a = [0u8; 12];
    a[..4].copy_from_slice(&spi.0.to_be_bytes());
    if esn {
        a[4..12].copy_from_slice(&seq.to_be_bytes());
        (a, 12)
    } else {
        a[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        (a, 8)
    }
}
