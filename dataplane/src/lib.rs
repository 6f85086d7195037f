//! ESP dataplane: wire views, AEAD backends, encap/decap, replay, SA tables, poll-mode workers.
#![forbid(unsafe_code)]

pub mod crypto;
pub mod drop;
pub mod esp;
pub mod neighbor;
pub mod neighbor_view;
pub mod packet;
pub mod route;
pub mod sa;
pub mod spd;
pub mod stats;
pub mod wire;
pub mod worker;
