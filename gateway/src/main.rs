//! The ipsecgw binary.
#![forbid(unsafe_code)]

fn main() {}
