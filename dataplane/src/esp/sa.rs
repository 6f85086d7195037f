//! One direction of an ESP SA as the packet path sees it: immutable parameters
//! (keyed AEAD, prebuilt outer header, SPI, flags) apart from the small mutable
//! runtime state (outbound sequence counter, inbound replay window). The SA table
//! publishes new snapshots of the immutable part; the state sits behind its own
//! `Arc` and survives the swap (DESIGN.md, "SA publication").

use core::net::IpAddr;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, Ordering::Relaxed};
use std::sync::Arc;

use crate::crypto::{Aead, Algorithm};
use crate::wire::{checksum, esp::NAT_T_PORT, ipv4, ipv6, udp, IpProtocol, Ipv4Packet, Ipv6Packet, Spi, UdpPacket};

use super::replay::{ReplayWindow, WindowTooLarge, DEFAULT_WINDOW};

/// Outer DSCP: copied from the inner header (RFC 2983 uniform model) or fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DscpMode {
    /// Copy the inner DSCP.
    #[default]
    Copy,
    /// Always this DSCP (6 bits).
    Fixed(u8),
}

/// ECN on encapsulation (RFC 6040 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EcnMode {
    /// Normal mode: copy the inner ECN field to the outer header.
    #[default]
    Normal,
    /// Compatibility mode: outer Not-ECT (for decapsulators that predate RFC 3168).
    Compatibility,
}

/// Outer IPv4 DF bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DfMode {
    /// Copy DF from an IPv4 inner packet; set it for IPv6 inner packets (which
    /// routers never fragment).
    #[default]
    Copy,
    /// Always set.
    Set,
    /// Always clear (the outer packet may be fragmented on the way).
    Clear,
}

/// Plaintext alignment: RFC 4303 §2.4 needs 4 bytes; padding to the 16-byte AES
/// block lets the GCM backends work on whole blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadAlign {
    /// Minimum padding (RFC 4303 §2.4): what scapy and strongSwan send.
    Four,
    /// Pad to the AES block.
    Sixteen,
}

impl PadAlign {
    /// What is cheapest for `alg`: whole AES blocks for GCM, 4 bytes for ChaCha20
    /// (a stream cipher with no block alignment to gain).
    pub const fn for_algorithm(alg: Algorithm) -> PadAlign {
        match alg {
            Algorithm::Aes128Gcm | Algorithm::Aes256Gcm => PadAlign::Sixteen,
            Algorithm::ChaCha20Poly1305 => PadAlign::Four,
        }
    }

    /// Bytes.
    pub const fn bytes(self) -> usize {
        match self {
            PadAlign::Four => 4,
            PadAlign::Sixteen => 16,
        }
    }
}

/// UDP encapsulation of ESP (RFC 3948).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEncap {
    /// Our port (4500, or the port a NAT mapped).
    pub src_port: u16,
    /// The peer's port (4500, or the port its NAT mapped).
    pub dst_port: u16,
    /// Compute the UDP checksum on an IPv6 outer header. RFC 3948 §2.1 sends zero
    /// over IPv4; IPv6 needs a checksum (RFC 8200 §8.1) unless both ends allow
    /// zero for the tunnel (RFC 6935/6936).
    pub ipv6_checksum: bool,
}

impl Default for UdpEncap {
    fn default() -> Self {
        UdpEncap { src_port: NAT_T_PORT, dst_port: NAT_T_PORT, ipv6_checksum: true }
    }
}

/// The tunnel an outbound SA sends into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundConfig {
    /// The peer's SPI for this SA.
    pub spi: Spi,
    /// Extended sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// Outer source (our address).
    pub src: IpAddr,
    /// Outer destination (the peer).
    pub dst: IpAddr,
    /// ESP in UDP, or raw ESP (IP protocol 50) when `None`.
    pub udp: Option<UdpEncap>,
    /// Outer TTL / hop limit.
    pub ttl: u8,
    /// Outer DSCP.
    pub dscp: DscpMode,
    /// Outer ECN.
    pub ecn: EcnMode,
    /// Outer DF (IPv4 outer only).
    pub df: DfMode,
    /// IPv6 outer flow label.
    pub flow_label: u32,
    /// Plaintext alignment; `None` picks [`PadAlign::for_algorithm`].
    pub pad_align: Option<PadAlign>,
}

impl OutboundConfig {
    /// Raw-ESP tunnel with defaults: TTL 64, DSCP copy, ECN normal, DF copy.
    pub fn new(spi: Spi, src: IpAddr, dst: IpAddr) -> Self {
        OutboundConfig {
            spi,
            esn: false,
            src,
            dst,
            udp: None,
            ttl: 64,
            dscp: DscpMode::Copy,
            ecn: EcnMode::Normal,
            df: DfMode::Copy,
            flow_label: 0,
            pad_align: None,
        }
    }
}

/// An SA could not be built from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaConfigError {
    /// Tunnel source and destination are of different IP families.
    #[error("tunnel source and destination must both be IPv4 or both IPv6")]
    MixedFamilies,
    /// Replay window too large.
    #[error(transparent)]
    Window(#[from] WindowTooLarge),
}

/// Longest prebuilt header: IPv6 + UDP + ESP header + IV.
pub(super) const MAX_OUTER: usize = ipv6::HEADER_LEN + udp::HEADER_LEN + 8 + 8;

/// The outer headers of every packet of an SA, built once (IPv4/IPv6, optional
/// UDP, ESP SPI); per packet only lengths, id, TOS/ECN, checksum, seq and IV change.
#[derive(Clone)]
pub(super) struct Template {
    pub bytes: [u8; MAX_OUTER],
    /// Bytes of outer IP + UDP + ESP header + IV.
    pub len: usize,
    /// Offset of the ESP header (= IP header length + UDP header if any).
    pub esp_off: usize,
    pub ipv6: bool,
    pub udp: bool,
    /// IPv4: one's-complement sum of the header with TOS, length, id, flags and
    /// checksum zero; per packet those are added in.
    pub ip_sum: u64,
}

impl Template {
    fn build(c: &OutboundConfig) -> Result<Template, SaConfigError> {
        let mut bytes = [0u8; MAX_OUTER];
        let proto = if c.udp.is_some() { IpProtocol::Udp } else { IpProtocol::Esp };
        let ip_len = match (c.src, c.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut ip = Ipv4Packet::new_unchecked(&mut bytes[..ipv4::HEADER_LEN]);
                ip.set_version_and_ihl();
                ip.set_ttl(c.ttl);
                ip.set_protocol(proto);
                ip.set_src_addr(s);
                ip.set_dst_addr(d);
                ipv4::HEADER_LEN
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut ip = Ipv6Packet::new_unchecked(&mut bytes[..ipv6::HEADER_LEN]);
                ip.set_version_tc_flow(0, c.flow_label);
                ip.set_next_header(proto);
                ip.set_hop_limit(c.ttl);
                ip.set_src_addr(s);
                ip.set_dst_addr(d);
                ipv6::HEADER_LEN
            }
            _ => return Err(SaConfigError::MixedFamilies),
        };
        let mut esp_off = ip_len;
        if let Some(u) = c.udp {
            UdpPacket::new_unchecked(&mut bytes[ip_len..ip_len + udp::HEADER_LEN]).set_ports(u.src_port, u.dst_port);
            esp_off += udp::HEADER_LEN;
        }
        bytes[esp_off..esp_off + 4].copy_from_slice(&c.spi.0.to_be_bytes());
        let ipv6 = c.src.is_ipv6();
        Ok(Template {
            ip_sum: if ipv6 { 0 } else { checksum::sum(0, &bytes[..ipv4::HEADER_LEN]) },
            bytes,
            len: esp_off + 16,
            esp_off,
            ipv6,
            udp: c.udp.is_some(),
        })
    }
}

/// Immutable data of an outbound SA.
#[derive(Clone)]
pub struct OutboundSa {
    pub(super) spi: Spi,
    pub(super) aead: Arc<dyn Aead>,
    pub(super) esn: bool,
    pub(super) config: OutboundConfig,
    pub(super) template: Template,
    pub(super) pad_align: usize,
}

impl OutboundSa {
    /// Build the SA and its header template.
    pub fn new(config: OutboundConfig, aead: Arc<dyn Aead>) -> Result<Self, SaConfigError> {
        let template = Template::build(&config)?;
        let pad_align = config.pad_align.unwrap_or(PadAlign::for_algorithm(aead.algorithm())).bytes();
        Ok(OutboundSa { spi: config.spi, aead, esn: config.esn, template, pad_align, config })
    }

    /// The SPI sent in every packet (chosen by the peer).
    pub fn spi(&self) -> Spi {
        self.spi
    }

    /// The configuration the SA was built from.
    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    /// The keyed AEAD.
    pub fn aead(&self) -> &dyn Aead {
        &*self.aead
    }

    /// Bytes prepended to each packet (outer IP [+ UDP] + ESP header + IV).
    pub fn header_overhead(&self) -> usize {
        self.template.len
    }

    /// Largest number of bytes appended (padding + trailer + ICV).
    pub fn max_trailer_overhead(&self) -> usize {
        self.pad_align - 1 + 2 + crate::crypto::TAG_LEN
    }

    /// A fresh sequence counter for this SA.
    pub fn new_state(&self) -> OutboundState {
        OutboundState::new(self.esn)
    }
}

impl core::fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OutboundSa").field("config", &self.config).field("aead", &self.aead).finish()
    }
}

/// Mutable state of an outbound SA: the next sequence number, and which worker
/// encrypts for the SA when that is one worker. Each burst reserves its numbers
/// with one atomic add, so several cores may send on the SA (see
/// `worker::Encrypt` for why by default one does).
#[derive(Debug)]
#[repr(align(64))]
pub struct OutboundState {
    next: AtomicU64,
    limit: u64,
    /// The worker that encrypts for the SA under the first-receiver rule. It
    /// shares the line the owner writes per burst (`next`): only workers that
    /// hand the SA's packets over read it from afar.
    owner: WorkerClaim,
}

impl OutboundState {
    /// Start at sequence number 1 (RFC 4303 §3.3.3).
    pub fn new(esn: bool) -> Self {
        OutboundState { next: AtomicU64::new(1), limit: if esn { u64::MAX } else { u64::from(u32::MAX) }, owner: WorkerClaim::new() }
    }

    /// Which worker claimed the SA, if one has ([`WorkerClaim`]).
    #[inline]
    pub fn owner(&self) -> &WorkerClaim {
        &self.owner
    }

    /// Reserve `n` consecutive numbers; returns the first. Numbers past the limit
    /// are refused per packet by encap; the counter itself never wraps (a u64
    /// incremented once per packet does not reach 2^64).
    pub fn reserve(&self, n: usize) -> u64 {
        self.next.fetch_add(n as u64, Relaxed)
    }

    /// The number the next packet will get.
    pub fn next_seq(&self) -> u64 {
        self.next.load(Relaxed)
    }

    /// Largest number this SA may send (2^32 - 1 without ESN, RFC 4303 §3.3.3).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Sequence numbers are used up: the control plane must rekey (RFC 4303 §3.3.3
    /// forbids cycling the counter).
    pub fn is_exhausted(&self) -> bool {
        self.next_seq() > self.limit
    }

    /// Start from `next` (tests, and restoring state).
    pub fn with_next(esn: bool, next: u64) -> Self {
        let s = Self::new(esn);
        s.next.store(next, Relaxed);
        s
    }
}

/// What an inbound SA needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundConfig {
    /// Our SPI for this SA.
    pub spi: Spi,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Replay window in packets; 0 disables replay protection (benchmarks only).
    pub replay_window: u32,
}

impl InboundConfig {
    /// Defaults: no ESN, a [`DEFAULT_WINDOW`]-packet window.
    pub fn new(spi: Spi) -> Self {
        InboundConfig { spi, esn: false, replay_window: DEFAULT_WINDOW }
    }
}

/// Immutable data of an inbound SA.
#[derive(Clone)]
pub struct InboundSa {
    pub(super) config: InboundConfig,
    pub(super) aead: Arc<dyn Aead>,
}

impl InboundSa {
    /// Build the SA.
    pub fn new(config: InboundConfig, aead: Arc<dyn Aead>) -> Result<Self, SaConfigError> {
        if config.replay_window > super::replay::MAX_WINDOW {
            return Err(WindowTooLarge(config.replay_window).into());
        }
        Ok(InboundSa { config, aead })
    }

    /// Our SPI.
    pub fn spi(&self) -> Spi {
        self.config.spi
    }

    /// The configuration.
    pub fn config(&self) -> &InboundConfig {
        &self.config
    }

    /// The keyed AEAD.
    pub fn aead(&self) -> &dyn Aead {
        &*self.aead
    }

    /// A fresh replay window for this SA.
    pub fn new_state(&self) -> Result<InboundState, SaConfigError> {
        Ok(InboundState {
            replay: ReplayWindow::new(self.config.replay_window, self.config.esn)?,
            owner: WorkerClaim::new(),
        })
    }
}

impl core::fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InboundSa").field("config", &self.config).field("aead", &self.aead).finish()
    }
}

/// Mutable state of an inbound SA: the replay window, written by the one core that
/// owns the SA, and which core that is when ownership goes to the first receiver.
#[derive(Debug)]
#[repr(align(64))]
pub struct InboundState {
    /// The anti-replay window.
    pub replay: ReplayWindow,
    /// The worker that claimed the SA ([`InboundState::claim`]). Written once,
    /// then only read. It shares the cache line the owner
    /// writes per packet (`replay`'s top), so only workers that hand the SA's
    /// packets over read that line from afar, and they were going to pass the
    /// packet to its owner anyway.
    owner: WorkerClaim,
}

impl InboundState {
    /// The SA's owner: the worker that claimed it first, `me` if nobody had
    /// ([`WorkerClaim::claim`]).
    #[inline]
    pub fn claim(&self, me: u32) -> u32 {
        self.owner.claim(me)
    }

    /// The worker that claimed the SA, if one has.
    pub fn claimed_by(&self) -> Option<u32> {
        self.owner.claimed_by()
    }
}

/// Which worker an SA belongs to, once one has claimed it: written once, then
/// only read.
#[derive(Debug)]
pub struct WorkerClaim(AtomicU32);

impl WorkerClaim {
    const UNCLAIMED: u32 = u32::MAX;

    /// Nobody's yet.
    pub const fn new() -> Self {
        WorkerClaim(AtomicU32::new(Self::UNCLAIMED))
    }

    /// The owner: the worker that claimed first, `me` if nobody had. The claim
    /// is one compare-and-swap; when two workers race, exactly one wins and
    /// both get its index.
    #[inline]
    pub fn claim(&self, me: u32) -> u32 {
        match self.0.load(Ordering::Acquire) {
            Self::UNCLAIMED => match self.0.compare_exchange(Self::UNCLAIMED, me, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => me,
                Err(winner) => winner,
            },
            owner => owner,
        }
    }

    /// The worker that claimed, if one has.
    #[inline]
    pub fn claimed_by(&self) -> Option<u32> {
        Some(self.0.load(Ordering::Acquire)).filter(|&w| w != Self::UNCLAIMED)
    }
}

impl Default for WorkerClaim {
    fn default() -> Self {
        Self::new()
    }
}
