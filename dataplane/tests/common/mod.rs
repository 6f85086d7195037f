//! Packet and SA builders shared by the ESP integration tests.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use dataplane::crypto::{new_aead, Aead, Algorithm, Backend};
use dataplane::esp::{InboundConfig, InboundSa, OutboundConfig, OutboundSa};
use dataplane::wire::{checksum, Spi};

pub const ALGS: [Algorithm; 3] = [Algorithm::Aes128Gcm, Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305];

/// Key material (key || salt) derived from a seed, for tests only.
pub fn keymat(alg: Algorithm, seed: u8) -> Vec<u8> {
    (0..alg.keymat_len()).map(|i| seed.wrapping_mul(31).wrapping_add(i as u8)).collect()
}

pub fn aead(alg: Algorithm, seed: u8) -> Arc<dyn Aead> {
    Arc::from(new_aead(alg, &keymat(alg, seed), Backend::RustCrypto).expect("key"))
}

pub fn outer_addrs(v6: bool) -> (IpAddr, IpAddr) {
    if v6 {
        (IpAddr::V6("2001:db8:1::1".parse().expect("a")), IpAddr::V6("2001:db8:2::2".parse().expect("a")))
    } else {
        (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), IpAddr::V4(Ipv4Addr::new(203, 0, 113, 2)))
    }
}

/// A matching outbound/inbound SA pair over one key.
pub fn sa_pair(alg: Algorithm, cfg: OutboundConfig, window: u32) -> (OutboundSa, InboundSa) {
    let a = aead(alg, 7);
    let esn = cfg.esn;
    let spi = cfg.spi;
    let out = OutboundSa::new(cfg, a.clone()).expect("outbound SA");
    let inb = InboundSa::new(InboundConfig { spi, esn, replay_window: window }, a).expect("inbound SA");
    (out, inb)
}

pub fn default_cfg(outer_v6: bool) -> OutboundConfig {
    let (s, d) = outer_addrs(outer_v6);
    OutboundConfig::new(Spi(0x1000_0001), s, d)
}

/// An IPv4/UDP packet with `payload_len` bytes of payload and the given TOS.
pub fn inner_v4(payload_len: usize, tos: u8, df: bool, fill: u8) -> Vec<u8> {
    let total = 28 + payload_len;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[1] = tos;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[6] = if df { 0x40 } else { 0 };
    p[8] = 63;
    p[9] = 17;
    p[12..16].copy_from_slice(&Ipv4Addr::new(10, 1, 0, 5).octets());
    p[16..20].copy_from_slice(&Ipv4Addr::new(10, 2, 0, 7).octets());
    let c = checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&1234u16.to_be_bytes());
    p[22..24].copy_from_slice(&5678u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = fill.wrapping_add(i as u8);
    }
    p
}

/// An IPv6/UDP packet with `payload_len` bytes of payload and the given traffic class.
pub fn inner_v6(payload_len: usize, tc: u8, fill: u8) -> Vec<u8> {
    let mut p = vec![0u8; 48 + payload_len];
    let w = (6u32 << 28) | (u32::from(tc) << 20) | 0xbeef;
    p[0..4].copy_from_slice(&w.to_be_bytes());
    p[4..6].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 63;
    p[8..24].copy_from_slice(&"fd00:1::5".parse::<Ipv6Addr>().expect("a").octets());
    p[24..40].copy_from_slice(&"fd00:2::7".parse::<Ipv6Addr>().expect("a").octets());
    p[40..42].copy_from_slice(&1234u16.to_be_bytes());
    p[42..44].copy_from_slice(&5678u16.to_be_bytes());
    p[44..46].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    for (i, b) in p[48..].iter_mut().enumerate() {
        *b = fill.wrapping_add(i as u8);
    }
    p
}

pub fn inner(v6: bool, payload_len: usize, tos: u8, fill: u8) -> Vec<u8> {
    if v6 {
        inner_v6(payload_len, tos, fill)
    } else {
        inner_v4(payload_len, tos, true, fill)
    }
}
