//! ESP on an SPI we have no inbound SA for (the decap lookup missed).
//!
//! The packet is dropped and counted as `no_sa`, or as `sa_deleted` when the
//! SPI belonged to an inbound SA removed recently (the snapshot's tombstones).
//! An unknown SPI is also noted, as (outer source address, SPI), for the
//! control plane, which counts per (peer, SPI) and answers with a rate-limited
//! INVALID_SPI notify where it has an IKE SA with the peer (RFC 7296 §3.10.1).
//!
//! The note goes through [`UnknownSpiNotices`], the worker's
//! [`NoteRing`] (in its [`CoreStats`]): the worker never waits, allocates or
//! locks; at most [`NOTICES_PER_SECOND`] notes per second are made, the rest
//! are only counted. This is the miss path only: nothing here runs for ESP
//! that finds its SA.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::note_ring::{Note, NoteRing, DEFAULT_PER_SECOND};
use super::TunnelTable;
use crate::drop::DropReason;
use crate::sa::Spi;
use crate::stats::CoreStats;

/// Notes a worker makes per second at most (the rest are counted only).
pub const NOTICES_PER_SECOND: u64 = DEFAULT_PER_SECOND;

/// ESP seen on an SPI no inbound SA has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownSpi {
    /// The outer source address (the peer, or whoever claims to be).
    pub peer: IpAddr,
    /// The SPI from the ESP header.
    pub spi: u32,
}

/// A worker's ring of [`UnknownSpi`] notes.
pub type UnknownSpiNotices = NoteRing<UnknownSpi>;

const V6: u64 = 1 << 32;

/// The address as two words and `spi | family << 32`.
impl Note for UnknownSpi {
    fn pack(self) -> [u64; 3] {
        let (bits, family) = match self.peer {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 0),
            IpAddr::V6(a) => (u128::from(a), V6),
        };
        [(bits >> 64) as u64, bits as u64, u64::from(self.spi) | family]
    }

    fn unpack([hi, lo, meta]: [u64; 3]) -> Self {
        let bits = (u128::from(hi) << 64) | u128::from(lo);
        let peer = if meta & V6 != 0 { IpAddr::V6(Ipv6Addr::from(bits)) } else { IpAddr::V4(Ipv4Addr::from(bits as u32)) };
        UnknownSpi { peer, spi: meta as u32 }
    }
}

/// The source address of the outer IP header `ip` (already validated by the
/// ESP parser; `None` if it is not IPv4/IPv6 after all).
fn outer_source(ip: &[u8]) -> Option<IpAddr> {
    match ip.first()? >> 4 {
        4 => {
            let a: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(a)))
        }
        6 => {
            let a: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

/// The decap lookup found no SA for `spi` in the packet whose outer IP header
/// starts `ip`: count the drop by what the SPI was and note an unknown one.
#[cold]
#[inline(never)]
pub(super) fn missed(table: &TunnelTable, stats: &CoreStats, ip: &[u8], spi: Spi, now_ms: u64) {
    if table.was_deleted(spi) {
        stats.drop(DropReason::SaDeleted);
        return;
    }
    stats.drop(DropReason::NoSa);
    if let Some(peer) = outer_source(ip) {
        stats.unknown_spi().note(UnknownSpi { peer, spi: spi.0 }, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u32) -> UnknownSpi {
        UnknownSpi { peer: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), spi: 0x1000 + i }
    }

    #[test]
    fn both_families_survive_the_slot() {
        let ring = UnknownSpiNotices::default();
        let v6 = UnknownSpi { peer: "2001:db8::1".parse().expect("v6"), spi: u32::MAX };
        ring.note(v6, 0);
        ring.note(n(0), 0);
        let mut got = Vec::new();
        ring.drain(|x| got.push(x));
        assert_eq!(got, [v6, n(0)]);
    }

    #[test]
    fn outer_source_of_both_families() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[12..16].copy_from_slice(&[203, 0, 113, 9]);
        assert_eq!(outer_source(&v4), Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))));
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[23] = 1;
        assert_eq!(outer_source(&v6), Some(IpAddr::V6(Ipv6Addr::from(1u128))));
        assert_eq!(outer_source(&[0x45, 0]), None);
        assert_eq!(outer_source(&[]), None);
    }
}
