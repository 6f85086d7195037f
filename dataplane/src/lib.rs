//! ESP dataplane: wire views, AEAD backends, encap/decap, replay, SA tables, poll-mode workers.
#![forbid(unsafe_code)]

pub mod crypto;
pub mod drop;
pub mod esp;
pub mod packet;
pub mod sa;
pub mod spd;
pub mod stats;
pub mod wire;
