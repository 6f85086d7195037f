//! Inbound: ESP tunnel packet in, plaintext inner IP packet out (RFC 4303 §3.4).
//!
//! Order per RFC 4303 §3.4.3: lengths, replay *check*, ICV + decrypt, replay
//! *update*, padding, inner header; the outer header and ESP trailer are stripped
//! by moving the packet window, so nothing is copied.

use arrayvec::ArrayVec;

use crate::crypto::{AeadOp, AuthError, IV_LEN, TAG_LEN};
use crate::packet::Packet;
use crate::wire::esp::{self as esp_wire, NAT_T_PORT};
use crate::wire::{
    ipv4, Ecn, Error as WireError, EspPacket, EspTrailer, IpProtocol, Ipv4Packet, Ipv6Packet, Spi, UdpEncapPayload,
    UdpPacket,
};

use super::sa::{InboundSa, InboundState};
use super::{aad, EspError, BURST, ESP_HDR_IV};

/// Where the ESP packet sits in an outer IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspLocation {
    /// SPI, for the inbound SA lookup.
    pub spi: Spi,
    /// Offset of the ESP header from the outer IP header.
    pub esp_offset: usize,
    /// Bytes from the ESP header to the end of the outer IP packet.
    pub esp_len: usize,
    /// ESP arrived in UDP (RFC 3948).
    pub udp_encap: bool,
    /// ECN of the outer header, combined into the inner one (RFC 6040 §4.2).
    pub outer_ecn: Ecn,
}

/// What an IP packet addressed to the gateway carries, as far as ESP cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundOuter {
    /// ESP, raw or in UDP 4500.
    Esp(EspLocation),
    /// IKE on UDP 4500 after the non-ESP marker; `ike_offset` is the IKE header's
    /// offset from the IP header. Punt to the control plane.
    Ike {
        /// Offset of the IKE header.
        ike_offset: usize,
    },
    /// NAT-keepalive (RFC 3948 §2.3).
    NatKeepalive,
}

fn outer_err(e: WireError) -> EspError {
    match e {
        WireError::Truncated => EspError::Truncated,
        WireError::Malformed | WireError::BadChecksum => EspError::MalformedOuter,
    }
}

/// Find the ESP packet in an outer IPv4/IPv6 packet (raw ESP, or UDP to port 4500).
/// Anything else is [`EspError::NotEsp`].
pub fn parse_outer(d: &[u8]) -> Result<InboundOuter, EspError> {
    parse_outer_with::<true>(d, Checksum::Verify)
}

/// [`parse_outer`] for a header whose IPv4 checksum the caller has already
/// verified on these same bytes (the worker's classify step), so it is not
/// summed again. ESP, raw or in UDP 4500, in an IPv4 header without options or
/// an IPv6 header without extension headers, the common cases, is read at
/// fixed offsets; everything else takes the general parse. Inlined into the
/// worker's classify step, where a call returning the `Result` through memory
/// was 4% of a 64 B decap.
#[inline]
pub fn parse_outer_verified(d: &[u8]) -> Result<InboundOuter, EspError> {
    match esp_v4(d) {
        Some(loc) => Ok(InboundOuter::Esp(loc)),
        None => parse_outer_with::<true>(d, Checksum::Verified),
    }
}

/// ESP in an IPv4 header of 20 bytes that is not a fragment (RFC 791 §3.1: MF
/// clear, offset 0), raw or in UDP 4500 ([`esp_in`]). `None` for anything
/// else, including anything malformed, IKE and NAT-keepalives: the general
/// parse then handles it and says why, so both agree on what they accept.
///
/// strongSwan's kernel-libipsec, and any peer behind a NAT, sends ESP in UDP;
/// through the general parse a 64 B UDP-encapsulated decap ran at ~0.8 of a raw
/// one (`perf/esp/ab.sh` with `ESP_UDP=1`). Read here it gains ~25% there, for
/// ~10 more instructions a packet on raw ESP (`perf/esp/insns.sh decap 64`).
/// Keeping raw ESP's check and reaching the UDP one through a call cost raw
/// nothing but gained UDP half as much; with both checks in line as separate
/// functions the compiler stopped inlining this one (+70).
#[inline]
fn esp_v4(d: &[u8]) -> Option<EspLocation> {
    let h: &[u8; 20] = d.first_chunk()?;
    if h[0] != 0x45 || u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
        return None;
    }
    let l4 = d.get(20..usize::from(u16::from_be_bytes([h[2], h[3]])))?;
    esp_in(h[9], l4, 20, Ecn::from_tos(h[1]))
}

/// ESP in an IPv6 header of 40 bytes whose next header is ESP or UDP (RFC 8200
/// §3: no extension headers, so no fragment either), raw or in UDP 4500
/// ([`esp_in`]); `None` for anything else, as [`esp_v4`]. The worker's IPv6
/// classify step asks it first, and the general parse's IPv6 arm does too
/// (decap's second look), so such a packet is never walked for extension
/// headers: through the general parse twice an IPv6 decap took ~320
/// instructions a 64 B packet more than an IPv4 one (~430 in UDP against
/// IPv4 in UDP; `ESP_V6=0|1 perf/esp/insns.sh decap 64`).
#[inline]
pub(crate) fn esp_v6(d: &[u8]) -> Option<EspLocation> {
    let h: &[u8; 40] = d.first_chunk()?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let l4 = d.get(40..40 + usize::from(u16::from_be_bytes([h[4], h[5]])))?;
    // The traffic class straddles bytes 0 and 1; ECN is its low two bits.
    esp_in(h[6], l4, 40, Ecn::from_tos(h[1] >> 4))
}

/// The ESP of an IP payload `l4` of protocol `proto` after an IP header of
/// `ip_len` bytes: raw (protocol 50), or in UDP to port 4500 (RFC 3948 §2.2)
/// whose payload starts with a non-zero SPI (zero is the non-ESP marker of
/// IKE), with at least an ESP header inside the IP payload (and the UDP length).
#[inline(always)]
fn esp_in(proto: u8, l4: &[u8], ip_len: usize, outer_ecn: Ecn) -> Option<EspLocation> {
    let (esp, esp_offset, udp_encap) = match proto {
        50 => (l4, ip_len, false),
        17 => {
            let u: &[u8; 8] = l4.first_chunk()?;
            if u16::from_be_bytes([u[2], u[3]]) != NAT_T_PORT {
                return None;
            }
            (l4.get(8..usize::from(u16::from_be_bytes([u[4], u[5]])))?, ip_len + 8, true)
        }
        _ => return None,
    };
    if esp.len() < esp_wire::HEADER_LEN {
        return None;
    }
    let spi = u32::from_be_bytes(*esp.first_chunk::<4>()?);
    if udp_encap && spi == 0 {
        return None;
    }
    Some(EspLocation { spi: Spi(spi), esp_offset, esp_len: esp.len(), udp_encap, outer_ecn })
}

/// Whether [`parse_outer_with`] sums the IPv4 header checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checksum {
    Verify,
    /// Someone already did, on these same bytes (the worker's classify step).
    Verified,
}

/// The general parse. `FAST_V6`: an IPv6 header is offered to [`esp_v6`]
/// first; always, but for the test that compares the fixed-offset readers
/// with the general parse, which needs it without.
#[inline]
fn parse_outer_with<const FAST_V6: bool>(d: &[u8], checksum: Checksum) -> Result<InboundOuter, EspError> {
    let (proto, l4_off, end, ecn) = match d.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(d).map_err(outer_err)?;
            if checksum == Checksum::Verify && !ip.verify_checksum() {
                return Err(EspError::MalformedOuter);
            }
            if ip.is_fragment() {
                return Err(EspError::Fragment);
            }
            (ip.protocol(), ip.header_len(), usize::from(ip.total_len()), ip.ecn())
        }
        Some(6) => {
            // Asked here, not beside `esp_v4` in `parse_outer_verified`: the
            // IPv4 path stays as it was (IPv6 pays the call to this function).
            if FAST_V6 {
                if let Some(loc) = esp_v6(d) {
                    return Ok(InboundOuter::Esp(loc));
                }
            }
            let ip = Ipv6Packet::new_checked(d).map_err(outer_err)?;
            let upper = ip.upper_layer().map_err(outer_err)?;
            if upper.fragment {
                return Err(EspError::Fragment);
            }
            (upper.protocol, upper.offset, ip.total_len(), ip.ecn())
        }
        None => return Err(EspError::Truncated),
        Some(_) => return Err(EspError::MalformedOuter),
    };
    let l4 = &d[l4_off..end];
    match proto {
        IpProtocol::Esp => {
            let esp = EspPacket::new_checked(l4).map_err(outer_err)?;
            Ok(InboundOuter::Esp(EspLocation {
                spi: esp.spi(),
                esp_offset: l4_off,
                esp_len: l4.len(),
                udp_encap: false,
                outer_ecn: ecn,
            }))
        }
        IpProtocol::Udp => {
            let u = UdpPacket::new_checked(l4).map_err(outer_err)?;
            if u.dst_port() != NAT_T_PORT {
                return Err(EspError::NotEsp);
            }
            let off = l4_off + crate::wire::udp::HEADER_LEN;
            // The checksum is not verified: zero over IPv4 (RFC 3948 §2.1), and the
            // ICV covers everything that matters.
            match UdpEncapPayload::classify(u.payload()).map_err(outer_err)? {
                UdpEncapPayload::NatKeepalive => Ok(InboundOuter::NatKeepalive),
                UdpEncapPayload::Ike { offset } => Ok(InboundOuter::Ike { ike_offset: off + offset }),
                UdpEncapPayload::Esp(spi) => Ok(InboundOuter::Esp(EspLocation {
                    spi,
                    esp_offset: off,
                    esp_len: u.payload().len(),
                    udp_encap: true,
                    outer_ecn: ecn,
                })),
            }
        }
        _ => Err(EspError::NotEsp),
    }
}

/// A decapsulated packet: the packet now holds the inner IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapped {
    /// [`IpProtocol::Ipv4`] or [`IpProtocol::Ipv6`].
    pub next_header: IpProtocol,
    /// The full (ESN-reconstructed) sequence number.
    pub seq: u64,
    /// Whether the packet came in UDP.
    pub udp_encap: bool,
}

/// Checked and ready to open.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Offset of the ciphertext (after the ESP header and IV).
    ct_off: usize,
    ct_len: usize,
    seq: u64,
    udp_encap: bool,
    outer_ecn: u8,
}

/// Open one packet. On error the packet contents are unspecified (it may have been
/// decrypted in place) and it should be dropped.
pub fn decap<P: Packet>(sa: &InboundSa, state: &InboundState, pkt: &mut P) -> Result<Decapped, EspError> {
    let l = prepare(sa, state, pkt.data(), Checksum::Verify)?;
    // Only an ESN SA's AAD is built here; otherwise it is the packet's ESP header.
    let esn_aad = sa.config.esn.then(|| aad(sa.config.spi, l.seq, true));
    let auth = {
        let op = open_op(pkt.data_mut(), &l, esn_aad.as_ref().map(|(a, n)| &a[..*n]))?;
        sa.aead.open(op)
    };
    finish(state, None, pkt, &l, auth)
}

/// Open a burst of packets of one SA with one AEAD call per [`BURST`] packets.
/// `results[i]` is the outcome for `pkts[i]`; only the first `min(pkts.len(),
/// results.len())` packets are processed.
pub fn decap_burst<P: Packet>(
    sa: &InboundSa,
    state: &InboundState,
    pkts: &mut [P],
    results: &mut [Result<Decapped, EspError>],
) {
    let n = pkts.len().min(results.len());
    decap_each(sa, state, &mut pkts[..n], Checksum::Verify, None, |i, _, r| {
        if let Some(slot) = results.get_mut(i) {
            *slot = r;
        }
    });
}

/// [`decap_burst`] for packets whose outer header [`parse_outer`] has already
/// accepted (the worker classifies every packet before batching it): the
/// header is parsed again for its offsets, but its IPv4 checksum is not summed
/// a second time. Any other packet must go through [`decap_burst`].
///
/// With `claimant`, a packet that authenticates claims the SA for that worker
/// ([`InboundState::claim`]) before its replay window update, and is refused
/// ([`EspError::ClaimLost`]) if another worker had claimed it: the several-worker
/// first-receiver rule (`worker::OwnerRule::FirstReceiver`).
///
/// Each packet is handed to `each(pkt, outcome)` in packet order as soon as it
/// is finished (its replay window update done), instead of through a results
/// array: the worker delivers it there and then, and what it does not read of
/// the [`Decapped`] is never written (a results array of them, and the pass
/// over it, were ~40 instructions a packet at 64 B under callgrind).
#[inline]
pub fn decap_burst_classified<P: Packet>(
    sa: &InboundSa,
    state: &InboundState,
    claimant: Option<u32>,
    pkts: &mut [P],
    mut each: impl FnMut(&mut P, Result<Decapped, EspError>),
) {
    decap_each(sa, state, pkts, Checksum::Verified, claimant, |_, pkt, r| each(pkt, r));
}

/// `each(i, pkts[i], outcome)` for every packet, in order, [`BURST`] at a time.
#[inline]
fn decap_each<P: Packet>(
    sa: &InboundSa,
    state: &InboundState,
    pkts: &mut [P],
    checksum: Checksum,
    claimant: Option<u32>,
    mut each: impl FnMut(usize, &mut P, Result<Decapped, EspError>),
) {
    // With ESN the AADs are not in the packets: `decap_chunk` keeps them for
    // at most ESN_CHUNK packets (the AEAD's widest pass).
    let chunk = if sa.config.esn { ESN_CHUNK } else { BURST };
    for (c, pkts) in pkts.chunks_mut(chunk).enumerate() {
        decap_chunk(sa, state, pkts, checksum, claimant, |i, pkt, r| each(c * chunk + i, pkt, r));
    }
}

/// Packets an ESN SA's chunk holds (their AADs live in the chunk): the AEAD's
/// four-packet pass.
const ESN_CHUNK: usize = 4;

#[inline]
fn decap_chunk<P: Packet>(
    sa: &InboundSa,
    state: &InboundState,
    pkts: &mut [P],
    checksum: Checksum,
    claimant: Option<u32>,
    mut each: impl FnMut(usize, &mut P, Result<Decapped, EspError>),
) {
    // `decap_each` gives at most BURST; more would get no `each` call.
    debug_assert!(pkts.len() <= BURST, "{} packets for {BURST} slots", pkts.len());
    // Per packet: its layout, or why it was refused before the AEAD.
    let mut prepared = ArrayVec::<Result<Layout, EspError>, BURST>::new();
    // The AADs (SPI and both sequence number halves) the ops of ESN packets point
    // to. Without ESN the AAD is the packet's ESP header, SPI and sequence number
    // (RFC 4106 §5): a burst's worth of AADs here cost a 384-byte clear per run,
    // and a run is one packet when a burst is spread over many SAs.
    let mut aads = [[0u8; 12]; ESN_CHUNK];
    let mut esn_aads = aads.iter_mut();
    // The AEAD's verdicts, in op order (the packets refused before it have no op).
    let mut auth = [Err(AuthError); BURST];
    {
        // Only the ready packets' ops are written: a run of one packet (a burst
        // spread over many SAs) no longer clears a whole burst's worth of
        // placeholder ops and tags (2 KB of stores), which it did when the ops
        // were a fixed array overwritten from the front.
        let mut ops = ArrayVec::<AeadOp<'_>, BURST>::new();
        // One pass: checks, AAD and op per packet.
        for pkt in pkts.iter_mut() {
            // One look at the packet's window for the checks and the op.
            let d = pkt.data_mut();
            let p = prepare(sa, state, d, checksum).and_then(|l| {
                let esn_aad = match sa.config.esn {
                    // Always a slot: ESN chunks have at most ESN_CHUNK packets.
                    true => {
                        let slot = esn_aads.next().ok_or(EspError::Truncated)?;
                        let (aad, len) = aad(sa.config.spi, l.seq, true);
                        *slot = aad;
                        Some(&slot[..len])
                    }
                    false => None,
                };
                match open_op(d, &l, esn_aad)? {
                    op if !ops.is_full() => {
                        ops.push(op);
                        Ok(l)
                    }
                    // Not reachable: a chunk has at most BURST packets.
                    _ => Err(EspError::Truncated),
                }
            });
            // As many packets as slots: never full. A refusal is pushed out of
            // line: one push for both, the compiler put the `Result` together
            // byte by byte from the two paths (27 instructions a packet more
            // in `flush_decap` at 64 B, GW=1 `perf/esp/insns.sh`).
            match p {
                Ok(l) => {
                    let _ = prepared.try_push(Ok(l));
                }
                Err(e) => push_refused(&mut prepared, e),
            }
        }
        let count = ops.len();
        sa.aead.open_burst(&mut ops, &mut auth[..count]);
    }
    // Replay updates happen in packet order, after authentication.
    let mut verdicts = auth.iter();
    for (i, (pkt, p)) in pkts.iter_mut().zip(prepared.iter()).enumerate() {
        let r = match p {
            Ok(l) => finish(state, claimant, pkt, l, verdicts.next().copied().unwrap_or(Err(AuthError))),
            Err(e) => Err(*e),
        };
        each(i, pkt, r);
    }
}

/// [`decap_chunk`]'s record of a packet refused before the AEAD.
#[cold]
#[inline(never)]
fn push_refused(prepared: &mut ArrayVec<Result<Layout, EspError>, BURST>, e: EspError) {
    let _ = prepared.try_push(Err(e));
}

/// Lengths, SPI and replay check, before any crypto.
#[inline]
fn prepare(sa: &InboundSa, state: &InboundState, d: &[u8], checksum: Checksum) -> Result<Layout, EspError> {
    let outer = match checksum {
        Checksum::Verify => parse_outer(d),
        Checksum::Verified => parse_outer_verified(d),
    };
    let InboundOuter::Esp(loc) = outer? else {
        return Err(EspError::NotEsp);
    };
    if loc.spi != sa.config.spi {
        return Err(EspError::BadSpi { got: loc.spi });
    }
    // Header, IV, at least the 2 trailer bytes, ICV.
    let ct_len = loc
        .esp_len
        .checked_sub(ESP_HDR_IV + TAG_LEN)
        .filter(|&n| n >= esp_wire::TRAILER_LEN)
        .ok_or(EspError::Truncated)?;
    // The ESP header as one 8-byte chunk: one bounds check instead of one per
    // byte of the sequence number (~8 instructions a packet).
    let hdr = d.get(loc.esp_offset..).and_then(|e| e.first_chunk::<{ esp_wire::HEADER_LEN }>()).ok_or(EspError::Truncated)?;
    let seq = state.replay.check(u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]))?;
    Ok(Layout { ct_off: loc.esp_offset + ESP_HDR_IV, ct_len, seq, udp_encap: loc.udp_encap, outer_ecn: loc.outer_ecn.bits() })
}

/// The AEAD op over the packet `buf`; `esn_aad` is the AAD of an ESN SA, else
/// the AAD is the ESP header's SPI and sequence number.
fn open_op<'a>(buf: &'a mut [u8], l: &Layout, esn_aad: Option<&'a [u8]>) -> Result<AeadOp<'a>, EspError> {
    let (head, rest) = buf.split_at_mut_checked(l.ct_off).ok_or(EspError::Truncated)?;
    let head: &'a [u8] = head;
    // The IV ends where the ciphertext starts, after the ESP header.
    let (hdr, iv) = head.split_last_chunk::<IV_LEN>().ok_or(EspError::Truncated)?;
    let iv = *iv;
    let aad = match esn_aad {
        Some(a) => a,
        None => hdr.last_chunk::<{ esp_wire::HEADER_LEN }>().ok_or(EspError::Truncated)?,
    };
    let (data, rest) = rest.split_at_mut_checked(l.ct_len).ok_or(EspError::Truncated)?;
    let tag = rest.first_chunk_mut::<TAG_LEN>().ok_or(EspError::Truncated)?;
    Ok(AeadOp { iv, aad, data, tag })
}

/// After the AEAD: the claim (with `claimant`), replay update, trailer, inner
/// header, strip. Always inlined: on the gateway's mbufs it stayed a call per
/// packet (7% of a 64 B decap's samples, with its own spills).
#[inline(always)]
fn finish<P: Packet>(
    state: &InboundState,
    claimant: Option<u32>,
    pkt: &mut P,
    l: &Layout,
    auth: Result<(), AuthError>,
) -> Result<Decapped, EspError> {
    auth.map_err(|_| EspError::AuthFailed)?;
    if let Some(me) = claimant {
        if state.claim(me) != me {
            return Err(EspError::ClaimLost);
        }
    }
    state.replay.update(l.seq)?;
    let d = pkt.data();
    let total = d.len();
    let pt = d.get(l.ct_off..l.ct_off + l.ct_len).ok_or(EspError::Truncated)?;
    let trailer = EspTrailer::parse(pt).map_err(|_| EspError::BadPadding)?;
    let inner = &pt[..pt.len() - trailer.len()];
    // The Next Header byte as it is (the trailer's last): `IpProtocol::from` is a
    // jump table and an indirect branch, per packet, for the one value we expect.
    let next = pt.last().copied().unwrap_or(0);
    // Tunnel mode carries whole IP packets (RFC 4303 §3.1.2); the inner length
    // field, not the ESP payload, gives its size (TFC padding may follow, §2.7).
    let (next_header, (inner_len, inner_ecn)) = match next {
        4 => {
            let (h, total_len) = ipv4::checked_header(inner).ok_or(EspError::BadInnerHeader)?;
            (IpProtocol::Ipv4, (total_len, Ecn::from_tos(h[1])))
        }
        41 => {
            let ip = Ipv6Packet::new_checked(inner).map_err(|_| EspError::BadInnerHeader)?;
            (IpProtocol::Ipv6, (ip.total_len(), ip.ecn()))
        }
        59 => return Err(EspError::DummyPacket),
        other => return Err(EspError::BadNextHeader(IpProtocol::from(other))),
    };
    let new_ecn = decap_ecn(Ecn::from_tos(l.outer_ecn), inner_ecn)?;
    pkt.adj(l.ct_off).map_err(|_| EspError::Truncated)?;
    // What follows the inner packet: TFC padding, the trailer and the ICV, so
    // never nothing (`pt` lies inside the packet and `inner_len` inside `pt`).
    pkt.trim(total - l.ct_off - inner_len).map_err(|_| EspError::Truncated)?;
    if new_ecn != inner_ecn {
        let d = pkt.data_mut();
        if next_header == IpProtocol::Ipv4 {
            Ipv4Packet::new_unchecked(d).set_ecn_update_checksum(new_ecn);
        } else {
            Ipv6Packet::new_unchecked(d).set_ecn(new_ecn);
        }
    }
    Ok(Decapped { next_header, seq: l.seq, udp_encap: l.udp_encap })
}

/// RFC 6040 §4.2, Figure 4: the inner ECN after decapsulation.
fn decap_ecn(outer: Ecn, inner: Ecn) -> Result<Ecn, EspError> {
    match (inner, outer) {
        (Ecn::NotEct, Ecn::Ce) => Err(EspError::EcnCeNotEct),
        (Ecn::NotEct, _) => Ok(Ecn::NotEct),
        (_, Ecn::Ce) => Ok(Ecn::Ce),
        (Ecn::Ect0, Ecn::Ect1) => Ok(Ecn::Ect1),
        (inner, _) => Ok(inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed-offset readers accept a subset of what the general parse
    /// accepts and then agree with it, over every single-byte change of the
    /// headers (IP, UDP, ESP) of a raw-ESP and of a UDP-encapsulated packet,
    /// IPv4 and IPv6, and every truncation.
    #[test]
    fn fixed_offset_esp_agrees_with_the_general_parse() {
        let ip4 = |proto: u8| [0x45, 0x02, 0, 60, 0, 1, 0x40, 0, 64, proto, 0, 0, 198, 51, 100, 2, 198, 51, 100, 1];
        // Version 6, traffic class 0x02 (ECT(0)), payload length 40.
        let ip6 = |proto: u8| {
            let mut h = [0u8; 40];
            h[..8].copy_from_slice(&[0x60, 0x20, 0, 0, 0, 40, proto, 64]);
            h[8..24].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            h[24..40].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            h
        };
        // After the IP header: raw ESP (SPI 0x1001, seq 7), or UDP 4500 with SPI
        // 0x21 (a change of its last byte to 0 makes the non-ESP marker, IKE).
        let raw_esp = [0, 0, 0x10, 0x01, 0, 0, 0, 7];
        let udp_esp = [0x11, 0x94, 0x11, 0x94, 0, 40, 0, 0, 0, 0, 0, 0x21, 0, 0, 0, 7];
        let packet = |ip: &[u8], l4: &[u8]| {
            let mut p = ip.to_vec();
            p.extend_from_slice(l4);
            p.resize(ip.len() + 40, 0);
            p
        };
        let loc = |ip_len: usize, udp: bool| {
            let (spi, hdr) = if udp { (0x21, 8) } else { (0x1001, 0) };
            EspLocation { spi: Spi(spi), esp_offset: ip_len + hdr, esp_len: 40 - hdr, udp_encap: udp, outer_ecn: Ecn::Ect0 }
        };
        // The general parse without the fixed-offset IPv6 reader in its IPv6 arm.
        let general = |d: &[u8]| parse_outer_with::<false>(d, Checksum::Verified);
        let v4: fn(&[u8]) -> Option<EspLocation> = esp_v4;
        let v6: fn(&[u8]) -> Option<EspLocation> = esp_v6;
        let cases = [
            (packet(&ip4(50), &raw_esp), 28, v4, loc(20, false)),
            (packet(&ip4(17), &udp_esp), 36, v4, loc(20, true)),
            (packet(&ip6(50), &raw_esp), 48, v6, loc(40, false)),
            (packet(&ip6(17), &udp_esp), 56, v6, loc(40, true)),
        ];
        for (pkt, headers, fast_reader, want) in cases {
            assert_eq!(fast_reader(&pkt), Some(want));
            assert_eq!(parse_outer_verified(&pkt), Ok(InboundOuter::Esp(want)));
            let mut fast = 0;
            for i in 0..headers {
                for v in 0..=255u8 {
                    let mut p = pkt.clone();
                    p[i] = v;
                    if let Some(loc) = fast_reader(&p) {
                        fast += 1;
                        assert_eq!(general(&p), Ok(InboundOuter::Esp(loc)), "byte {i} = {v:#x}");
                    }
                    assert_eq!(parse_outer_verified(&p), general(&p), "byte {i} = {v:#x}");
                }
            }
            // Most changes (addresses, TTL, source port, SPI, sequence) keep the fast path.
            assert!(fast > 20 * 256, "{fast}");
            for n in 0..pkt.len() {
                assert_eq!(parse_outer_verified(&pkt[..n]), general(&pkt[..n]), "len {n}");
            }
        }
    }

    #[test]
    fn rfc6040_decap_table() {
        use Ecn::*;
        // Rows: inner; columns: outer Not-ECT, ECT(0), ECT(1), CE (RFC 6040 Figure 4).
        let table = [
            (NotEct, [Ok(NotEct), Ok(NotEct), Ok(NotEct), Err(EspError::EcnCeNotEct)]),
            (Ect0, [Ok(Ect0), Ok(Ect0), Ok(Ect1), Ok(Ce)]),
            (Ect1, [Ok(Ect1), Ok(Ect1), Ok(Ect1), Ok(Ce)]),
            (Ce, [Ok(Ce), Ok(Ce), Ok(Ce), Ok(Ce)]),
        ];
        for (inner, row) in table {
            for (outer, want) in [NotEct, Ect0, Ect1, Ce].into_iter().zip(row) {
                assert_eq!(decap_ecn(outer, inner), want, "inner {inner:?} outer {outer:?}");
            }
        }
    }
}
