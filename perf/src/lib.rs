//! Benchmarks and harnesses for ipsecgw.
#![forbid(unsafe_code)]

pub mod aead;
