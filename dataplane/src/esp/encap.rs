//! Outbound: plaintext IP packet in, ESP tunnel packet out (RFC 4303 §3.3).

use crate::crypto::{AeadOp, TAG_LEN};
use crate::packet::Packet;
use crate::wire::{checksum, put16, EspTrailer, IpProtocol, Ipv4Packet, Ipv6Packet, UdpPacket};
use crate::wire::{ethernet, ipv4, ipv6, udp, Ecn};

use super::sa::{DfMode, DscpMode, EcnMode, OutboundSa, OutboundState, MAX_OUTER};
use super::{aad, EspError, BURST, ESP_HDR_IV};

/// Encapsulate and seal one packet. On error the packet may have been trimmed of
/// bytes beyond the inner IP length but is otherwise unchanged.
pub fn encap<P: Packet>(sa: &OutboundSa, state: &OutboundState, pkt: &mut P) -> Result<(), EspError> {
    let seq = state.reserve(1);
    let pt_len = prepare(sa, state.limit(), pkt, seq, Framing::IP)?;
    let (aad, aad_len) = aad(sa.spi, seq, sa.esn);
    let op = seal_op(pkt.data_mut(), sa.template.len, pt_len, seq, &aad[..aad_len])?;
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
/// `reshape` (a truncate, an append and two prepends before) and writes both
/// headers in one pass. The packets start at the outer IP header as with
/// [`encap_burst`]: the Ethernet header is stepped over (`adj`) so the SA counts
/// ESP bytes, and delivery steps back onto it (`prepend`).
pub fn encap_burst_framed<P: Packet>(
    sa: &OutboundSa,
    state: &OutboundState,
    pkts: &mut [P],
    results: &mut [Result<(), EspError>],
    framing: Framing<'_>,
) {
    let n = pkts.len().min(results.len());
    for (pkts, results) in pkts[..n].chunks_mut(BURST).zip(results[..n].chunks_mut(BURST)) {
        encap_chunk(sa, state, pkts, results, framing);
    }
}

fn encap_chunk<P: Packet>(
    sa: &OutboundSa,
    state: &OutboundState,
    pkts: &mut [P],
    results: &mut [Result<(), EspError>],
    framing: Framing<'_>,
) {
    let first = state.reserve(pkts.len());
    let limit = state.limit();
    let hdr = sa.template.len;
    // The AADs live here while the ops borrow them; the AAD is a function of the
    // sequence number alone, so all of them are written before any op exists.
    let mut aads = [[0u8; 12]; BURST];
    let mut aad_len = 0;
    for (i, a) in aads.iter_mut().enumerate().take(pkts.len()) {
        (*a, aad_len) = aad(sa.spi, first + i as u64, sa.esn);
    }
    let mut spare_tags = [[0u8; TAG_LEN]; BURST];
    // A fixed array of ops without allocation: placeholders (never passed to the
    // AEAD) overwritten from the front by the ready packets' ops in one pass. An
    // earlier version mapped an iterator of `Option<AeadOp>` into the array; the
    // 64 B encap profile showed a store-forwarding stall on every op there.
    let mut ops = AeadOp::placeholders(&mut spare_tags);
    let mut count = 0;
    for (i, ((pkt, r), a)) in pkts.iter_mut().zip(results.iter_mut()).zip(aads.iter()).enumerate() {
        let seq = first + i as u64;
        let op = match prepare(sa, limit, pkt, seq, framing) {
            Ok(pt_len) => seal_op(pkt.data_mut(), hdr, pt_len, seq, &a[..aad_len]),
            Err(e) => Err(e),
        };
        match op {
            Ok(op) => {
                *r = Ok(());
                if let Some(slot) = ops.get_mut(count) {
                    *slot = op;
                    count += 1;
                }
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
/// and outer headers and the ESP trailer. Returns the plaintext length (inner +
/// padding + trailer); the packet starts at the outer IP header, `framing.eth`
/// (if any) is in front of it.
#[inline(always)]
fn prepare<P: Packet>(sa: &OutboundSa, limit: u64, pkt: &mut P, seq: u64, framing: Framing<'_>) -> Result<usize, EspError> {
    if seq > limit {
        return Err(EspError::SeqExhausted);
    }
    let d = pkt.data().get(framing.l2_in..).ok_or(EspError::BadInnerHeader)?;
    let (inner_len, tos, inner_df, next_header) = match d.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(d).map_err(|_| EspError::BadInnerHeader)?;
            (usize::from(ip.total_len()), ip.tos(), ip.dont_frag(), IpProtocol::Ipv4)
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
    // `l2 + t.len` bytes of headers; bytes past the inner IP length (Ethernet
    // minimum-frame padding) are not sent, the trailer and ICV take their place.
    let front = (l2 + t.len).checked_sub(framing.l2_in).ok_or(EspError::NoBufferRoom)?;
    pkt.reshape(front, l2 + outer_len).map_err(|_| EspError::NoBufferRoom)?;

    let frame = pkt.data_mut();
    if let (Some(eth), Some(h)) = (framing.eth, frame.first_chunk_mut::<{ ethernet::HEADER_LEN }>()) {
        *h = *eth;
    }
    let buf = &mut frame[l2..];
    copy_header(&mut buf[..t.len], &t.bytes);
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
        Ipv6Packet::new_unchecked(&mut buf[..ip_len]).set_version_tc_flow(tos_out, cfg.flow_label);
        put16(buf, 4, (outer_len - ip_len) as u16);
    } else {
        let df = match cfg.df {
            DfMode::Copy => inner_df,
            DfMode::Set => true,
            DfMode::Clear => false,
        };
        // RFC 6864 §4.1: the ID only has to be unique per (src, dst, proto) within
        // the reassembly lifetime; the low bits of the sequence number are that.
        let ident = seq as u16;
        let flags = if df { 0x4000 } else { 0 };
        let total = outer_len as u16;
        buf[1] = tos_out;
        put16(buf, 2, total);
        put16(buf, 4, ident);
        put16(buf, 6, flags);
        let sum = t.ip_sum + u64::from(tos_out) + u64::from(total) + u64::from(ident) + u64::from(flags);
        put16(buf, 10, !checksum::fold(sum));
    }
    if t.udp {
        // RFC 3948 §2.1: UDP checksum zero over IPv4; IPv6 filled in after sealing.
        let mut u = UdpPacket::new_unchecked(&mut buf[ip_len..ip_len + udp::HEADER_LEN]);
        u.set_len((outer_len - ip_len) as u16);
        u.set_checksum(0);
    }
    let esp = t.esp_off;
    buf[esp + 4..esp + 8].copy_from_slice(&(seq as u32).to_be_bytes());
    // The IV only has to be unique per key for GCM and ChaCha20-Poly1305 (RFC 4106
    // §3.1, RFC 7634 §2): the 64-bit sequence number is, and costs nothing.
    buf[esp + 8..esp + ESP_HDR_IV].copy_from_slice(&seq.to_be_bytes());
    // The ICV's TAG_LEN bytes follow the trailer in `buf`.
    EspTrailer::write_before_icv(&mut buf[t.len + inner_len..], pt_len - inner_len, next_header);
    // The Ethernet header stays in the headroom: the SA's byte counters count the
    // ESP packet, and the frame is one `prepend` away.
    pkt.adj(l2).map_err(|_| EspError::NoBufferRoom)?;
    Ok(pt_len)
}

/// Copy the SA's prebuilt outer header. The four header sizes get fixed-size
/// copies (a few vector moves) instead of a `memcpy` call of variable length,
/// which showed in the 64 B encap profile.
#[inline(always)]
fn copy_header(dst: &mut [u8], src: &[u8; MAX_OUTER]) {
    const V4: usize = ipv4::HEADER_LEN + ESP_HDR_IV;
    const V4_UDP: usize = V4 + udp::HEADER_LEN;
    const V6: usize = ipv6::HEADER_LEN + ESP_HDR_IV;
    const V6_UDP: usize = V6 + udp::HEADER_LEN;
    match dst.len() {
        V4 => dst.copy_from_slice(&src[..V4]),
        V4_UDP => dst.copy_from_slice(&src[..V4_UDP]),
        V6 => dst.copy_from_slice(&src[..V6]),
        V6_UDP => dst.copy_from_slice(&src[..V6_UDP]),
        n => dst.copy_from_slice(&src[..n]),
    }
}

/// The AEAD op over a prepared packet: plaintext after the header, tag after it.
fn seal_op<'a>(buf: &'a mut [u8], hdr: usize, pt_len: usize, seq: u64, aad: &'a [u8]) -> Result<AeadOp<'a>, EspError> {
    let rest = buf.get_mut(hdr..).ok_or(EspError::NoBufferRoom)?;
    let (data, rest) = rest.split_at_mut_checked(pt_len).ok_or(EspError::NoBufferRoom)?;
    let tag = rest.first_chunk_mut::<TAG_LEN>().ok_or(EspError::NoBufferRoom)?;
    Ok(AeadOp { iv: seq.to_be_bytes(), aad, data, tag })
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
