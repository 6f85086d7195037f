//! Sans-IO IKEv2 (RFC 7296) engine: fed datagrams and `now`, it returns
//! actions; it owns no socket, clock or randomness.

pub mod wire;
pub mod crypto;
