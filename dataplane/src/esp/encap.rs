//! Outbound: plaintext IP packet in, ESP tunnel packet out (RFC 4303 §3.3).

use crate::crypto::{AeadOp, TAG_LEN};
use crate::packet::Packet;
use crate::wire::{checksum, put16, EspTrailer, IpProtocol, Ipv6Packet, UdpPacket};
use crate::wire::{ethernet, ipv4, ipv6, udp, Ecn};

use super::sa::{DfMode, DscpMode, EcnMode, OutboundSa, OutboundState, MAX_OUTER};
use super::{aad, EspError, BURST, ESP_HDR_IV};

/// Encapsulate and seal one packet. On error the packet may have been trimmed of
/// bytes beyond the inner IP length but is otherwise unchanged.
pub fn encap<P: Packet>(sa: &OutboundSa, state: &OutboundState, pkt: &mut P) -> Result<(), EspError> {
    encap_one(sa, state, pkt, Framing::IP)
}

/// [`encap`] with `framing`; also [`encap_burst_framed`]'s run of one packet (a
/// burst spread over many SAs, each packet its own run). Out of line and without
/// [`encap_chunk`]'s arrays: inlined there, runs of one paid for the loop's
/// set-up (the SA's fields loaded and kept on the stack for the burst) and for
/// op arrays of four, ~150 instructions a packet with 64 tunnels (`ESP_TUNNELS=64
/// GW=1 perf/esp/insns.sh encap 64`).
#[inline(never)]
fn encap_one<P: Packet>(sa: &OutboundSa, state: &OutboundState, pkt: &mut P, framing: Framing<'_>) -> Result<(), EspError> {
    let seq = state.reserve(1);
    let (aad, aad_len) = aad(sa.spi, seq, sa.esn);
    let op = prepare(sa, state.limit(), pkt, seq, framing, sa.esn.then_some(&aad[..aad_len]))?;
    sa.aead.seal(op);
    finish(sa, pkt);
    Ok(())
}

/// Encapsulate and seal a burst of packets of one SA with one sequence-number
/// reservation per [`BURST`] packets and one AEAD call. `results[i]` tells
/// whether `pkts[i]` is ready to send; only the first `min(pkts.len(),
/// results.len())` packets are processed.
pub fn encap_burst<P: Packet>(
    sa: &OutboundSa,
    state: &OutboundState,
    pkts: &mut [P],
    results: &mut [Result<(), EspError>],
) {
    encap_burst_framed(sa, state, pkts, results, Framing::IP);
}

/// Where the inner packet starts in what [`encap_burst_framed`] is given, and
/// what goes in front of the outer header it makes.
#[derive(Debug, Clone, Copy)]
pub struct Framing<'a> {
    /// Bytes in front of the inner IP packet (a received frame's link header),
    /// replaced by `eth` and the outer header; at most the outer header's length.
    pub l2_in: usize,
    /// An Ethernet header to leave in the [`ethernet::HEADER_LEN`] bytes of
    /// headroom right in front of the outer IP header, so that `prepend` of
    /// that many bytes makes the packet the frame to send, without a copy.
    pub eth: Option<&'a [u8; ethernet::HEADER_LEN]>,
}

impl Framing<'_> {
    /// An IP packet in, an IP packet out.
    pub const IP: Framing<'static> = Framing { l2_in: 0, eth: None };

    /// Bytes in front of the outer IP header.
    fn l2_out(&self) -> usize {
        if self.eth.is_some() {
            ethernet::HEADER_LEN
        } else {
            0
        }
    }
}

/// [`encap_burst`] on packets that carry `framing.l2_in` bytes in front of the
/// inner IP packet, and leave with `framing.eth` in front of the outer one: the
/// worker's encap path turns a received frame into the frame it sends with one
/// window change (`Packet::reshape_behind`: a truncate or an append and a
/// prepend) and writes both headers in one pass. The packets start at the outer
/// IP header as with [`encap_burst`]: the Ethernet header is in the headroom so
/// the SA counts ESP bytes, and delivery steps onto it (`prepend`).
pub fn encap_burst_framed<P: Packet>(
    sa: &OutboundSa,
    state: &OutboundState,
    pkts: &mut [P],
    results: &mut [Result<(), EspError>],
    framing: Framing<'_>,
) {
    let n = pkts.len().min(results.len());
    if let ([pkt], [result]) = (&mut pkts[..n], &mut results[..n]) {
        *result = encap_one(sa, state, pkt, framing);
        return;
    }
    for (pkts, results) in pkts[..n].chunks_mut(BURST).zip(results[..n].chunks_mut(BURST)) {
        // A chunk's ops start as a fixed array of placeholders (below), which
        // costs stores in proportion to its size: a run of a few packets (a burst
        // spread over many SAs) takes a small one. Both the same code.
        if pkts.len() <= SHORT_RUN {
            encap_chunk::<P, SHORT_RUN>(sa, state, pkts, results, framing);
        } else {
            encap_chunk::<P, BURST>(sa, state, pkts, results, framing);
        }
    }
}

/// Runs of at most this many packets take [`encap_chunk`]'s small arrays: a
/// quad of the AEAD's four-packet path.
const SHORT_RUN: usize = 4;

/// Encapsulate and seal `pkts`, at most `N` of them.
fn encap_chunk<P: Packet, const N: usize>(
    sa: &OutboundSa,
    state: &OutboundState,
    pkts: &mut [P],
    results: &mut [Result<(), EspError>],
    framing: Framing<'_>,
) {
    // `encap_burst_framed` gives at most N; more would be left without a result.
    debug_assert!(pkts.len() <= N, "{} packets for {N} slots", pkts.len());
    let first = state.reserve(pkts.len());
    let limit = state.limit();
    // With ESN the AAD (SPI, high and low sequence number halves: RFC 4106 §5)
    // is not in the packet: those AADs live here while the ops borrow them, all
    // written before any op exists. Without ESN each op's AAD is its packet's
    // own SPI and sequence number (`prepare`).
    let mut aads = [[0u8; 12]; N];
    let mut aad_len = 0;
    if sa.esn {
        for (i, a) in aads.iter_mut().enumerate().take(pkts.len()) {
            (*a, aad_len) = aad(sa.spi, first + i as u64, sa.esn);
        }
    }
    let mut spare_tags = [[0u8; TAG_LEN]; N];
    // A fixed array of ops without allocation: placeholders (never passed to the
    // AEAD) overwritten from the front by the ready packets' ops in one pass. An
    // earlier version mapped an iterator of `Option<AeadOp>` into the array; the
    // 64 B encap profile showed a store-forwarding stall on every op there.
    let mut ops = AeadOp::placeholders(&mut spare_tags);
    let mut count = 0;
    for (i, ((pkt, r), a)) in pkts.iter_mut().zip(results.iter_mut()).zip(aads.iter()).enumerate() {
        let seq = first + i as u64;
        match prepare(sa, limit, pkt, seq, framing, sa.esn.then(|| &a[..aad_len])) {
            Ok(op) => {
                // Always a slot: the loop stops after N packets (`aads`). Only a
                // packet with its op is marked ready (the caller may have
                // started every result as `Ok`).
                *r = match ops.get_mut(count) {
                    Some(slot) => {
                        *slot = op;
                        count += 1;
                        Ok(())
                    }
                    None => Err(EspError::NoBufferRoom),
                };
            }
            Err(e) => *r = Err(e),
        }
    }
    sa.aead.seal_burst(&mut ops[..count]);
    if sa.template.ipv6 && sa.template.udp && sa.config.udp.is_some_and(|u| u.ipv6_checksum) {
        for (pkt, r) in pkts.iter_mut().zip(results.iter()) {
            if r.is_ok() {
                finish(sa, pkt);
            }
        }
    }
}

/// Everything but the AEAD: validate the inner header, make room, write the link
/// and outer headers and the ESP trailer, and return the AEAD op over the packet
/// (plaintext after the header, tag after it). `aad` is the ESN AAD; `None`
/// without ESN, where the AAD is the SPI and sequence number just written in the
/// ESP header. The packet starts at the outer IP header, `framing.eth` (if any)
/// is in the headroom in front of it.
#[inline(always)]
fn prepare<'p, P: Packet>(
    sa: &OutboundSa,
    limit: u64,
    pkt: &'p mut P,
    seq: u64,
    framing: Framing<'_>,
    aad: Option<&'p [u8]>,
) -> Result<AeadOp<'p>, EspError> {
    if seq > limit {
        return Err(EspError::SeqExhausted);
    }
    let d = pkt.data().get(framing.l2_in..).ok_or(EspError::BadInnerHeader)?;
    let (inner_len, tos, inner_df, next_header) = match d.first().map(|b| b >> 4) {
        Some(4) => {
            let (h, total_len) = ipv4::checked_header(d).ok_or(EspError::BadInnerHeader)?;
            (total_len, h[1], h[6] & 0x40 != 0, IpProtocol::Ipv4)
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(d).map_err(|_| EspError::BadInnerHeader)?;
            (ip.total_len(), ip.traffic_class(), true, IpProtocol::Ipv6)
        }
        _ => return Err(EspError::BadInnerHeader),
    };
    let t = &sa.template;
    // RFC 4303 §2.4: inner + padding + 2 trailer bytes must be a multiple of the
    // alignment; pad_align is a power of two.
    let pt_len = (inner_len + 2 + sa.pad_align - 1) & !(sa.pad_align - 1);
    let outer_len = t.len + pt_len + TAG_LEN;
    let ip_len = if t.ipv6 { ipv6::HEADER_LEN } else { ipv4::HEADER_LEN };
    if outer_len - if t.ipv6 { ip_len } else { 0 } > usize::from(u16::MAX) {
        return Err(EspError::TooBig);
    }
    let l2 = framing.l2_out();
    // One window change: the link header in front of the inner packet becomes
    // the `t.len` bytes of the outer header, with `l2` bytes of headroom for the
    // Ethernet header in front; bytes past the inner IP length (Ethernet
    // minimum-frame padding) are not sent, the trailer and ICV take their place.
    // The SA's byte counters count the ESP packet, and the frame is one
    // `prepend` away. Everything below is written through the slice it returns,
    // cut once into its parts (fixed-size pieces need no bounds check per field).
    let front = t.len.checked_sub(framing.l2_in).ok_or(EspError::NoBufferRoom)?;
    let frame = pkt.reshape_behind(l2, front, outer_len).map_err(|_| EspError::NoBufferRoom)?;
    let (eth_room, buf) = frame.split_at_mut_checked(l2).ok_or(EspError::NoBufferRoom)?;
    if let (Some(eth), Some(h)) = (framing.eth, eth_room.first_chunk_mut::<{ ethernet::HEADER_LEN }>()) {
        *h = *eth;
    }
    let (hdr, body) = buf.split_at_mut_checked(t.len).ok_or(EspError::NoBufferRoom)?;
    copy_header(hdr, &t.bytes);
    let cfg = &sa.config;
    let dscp = match cfg.dscp {
        DscpMode::Copy => tos >> 2,
        DscpMode::Fixed(d) => d & 0x3f,
    };
    let ecn = match cfg.ecn {
        // RFC 6040 §4.1: normal mode copies ECN, CE included.
        EcnMode::Normal => tos & 3,
        EcnMode::Compatibility => Ecn::NotEct.bits(),
    };
    let tos_out = (dscp << 2) | ecn;
    if t.ipv6 {
        Ipv6Packet::new_unchecked(&mut hdr[..ip_len]).set_version_tc_flow(tos_out, cfg.flow_label);
        put16(hdr, 4, (outer_len - ip_len) as u16);
    } else if let Some(h) = hdr.first_chunk_mut::<{ ipv4::HEADER_LEN }>() {
        let df = match cfg.df {
            DfMode::Copy => inner_df,
            DfMode::Set => true,
            DfMode::Clear => false,
        };
        // RFC 6864 §4.1: the ID only has to be unique per (src, dst, proto) within
        // the reassembly lifetime; the low bits of the sequence number are that.
        let ident = seq as u16;
        let flags: u16 = if df { 0x4000 } else { 0 };
        let total = outer_len as u16;
        h[1] = tos_out;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&ident.to_be_bytes());
        h[6..8].copy_from_slice(&flags.to_be_bytes());
        let sum = t.ip_sum + u64::from(tos_out) + u64::from(total) + u64::from(ident) + u64::from(flags);
        h[10..12].copy_from_slice(&(!checksum::fold(sum)).to_be_bytes());
    }
    if t.udp {
        // RFC 3948 §2.1: UDP checksum zero over IPv4; IPv6 filled in after sealing.
        let mut u = UdpPacket::new_unchecked(&mut hdr[ip_len..ip_len + udp::HEADER_LEN]);
        u.set_len((outer_len - ip_len) as u16);
        u.set_checksum(0);
    }
    // The header ends with the ESP header's sequence number and the IV. The IV
    // only has to be unique per key for GCM and ChaCha20-Poly1305 (RFC 4106 §3.1,
    // RFC 7634 §2): the 64-bit sequence number is, and costs nothing.
    if let Some(s) = hdr.last_chunk_mut::<{ ESP_HDR_IV - 4 }>() {
        s[..4].copy_from_slice(&(seq as u32).to_be_bytes());
        s[4..].copy_from_slice(&seq.to_be_bytes());
    }
    // The ICV's TAG_LEN bytes follow the trailer in `body`.
    EspTrailer::write_before_icv(body.get_mut(inner_len..).ok_or(EspError::NoBufferRoom)?, pt_len - inner_len, next_header);
    let (data, rest) = body.split_at_mut_checked(pt_len).ok_or(EspError::NoBufferRoom)?;
    let tag = rest.first_chunk_mut::<TAG_LEN>().ok_or(EspError::NoBufferRoom)?;
    // RFC 4106 §5: without ESN the AAD is the SPI and the 32-bit sequence number,
    // the ESP header's first 8 bytes.
    let hdr: &'p [u8] = hdr;
    let aad = match aad {
        Some(a) => a,
        None => hdr.get(t.esp_off..t.esp_off + 8).ok_or(EspError::NoBufferRoom)?,
    };
    Ok(AeadOp { iv: seq.to_be_bytes(), aad, data, tag })
}

/// Copy the SA's prebuilt outer header (36 to [`MAX_OUTER`] bytes) as two
/// overlapping fixed 32-byte copies, a few vector moves. A `match` on the four
/// header sizes with a fixed-size copy each was merged back by the compiler into
/// one `memcpy` call of variable length (seen in `perf annotate` of the 64 B
/// encap profile: a call, its register spills and glibc's size dispatch).
#[inline(always)]
fn copy_header(dst: &mut [u8], src: &[u8; MAX_OUTER]) {
    const HALF: usize = 32;
    let n = dst.len();
    match (dst.first_chunk_mut::<HALF>(), src.first_chunk::<HALF>()) {
        (Some(d), Some(s)) if n <= MAX_OUTER => {
            *d = *s;
            // n >= HALF: the second copy ends where the header does.
            if let (Some(d), Some(s)) = (dst.last_chunk_mut::<HALF>(), src[..n].last_chunk::<HALF>()) {
                *d = *s;
            }
        }
        _ => dst.copy_from_slice(&src[..n]),
    }
}

/// After sealing: the IPv6 UDP checksum covers the ciphertext.
fn finish<P: Packet>(sa: &OutboundSa, pkt: &mut P) {
    let t = &sa.template;
    if !(t.ipv6 && t.udp) {
        return;
    }
    let Some(u) = sa.config.udp else { return };
    if !u.ipv6_checksum {
        return;
    }
    let (core::net::IpAddr::V6(src), core::net::IpAddr::V6(dst)) = (sa.config.src, sa.config.dst) else {
        return;
    };
    if let Some(seg) = pkt.data_mut().get_mut(ipv6::HEADER_LEN..) {
        UdpPacket::new_unchecked(seg).fill_checksum_v6(src, dst);
    }
}
