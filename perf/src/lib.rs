//! Benchmarks and harnesses for ipsecgw.
#![forbid(unsafe_code)]

pub mod aead;
pub mod sa_tables;
pub mod worker_traffic;
