//! Sans-IO IKEv2 (RFC 7296) engine: fed datagrams and `now`, it returns
//! [`Action`]s; it owns no socket, clock or randomness (quinn-proto/rustls
//! style). [`Endpoint`] is the entry point; [`ConnectionConfig`] describes a
//! connection; [`Event::Failure`] carries typed negotiation failures.

pub mod action;
pub mod connection;
pub mod crypto;
mod endpoint;
mod exchange;
pub mod failure;
mod ike_sa;
pub mod nat_t;
pub mod wire;

pub use action::{
    Action, ChildSaId, ChildSaInstall, ChildSaRemove, Directions, DownReason, DropReason, Event, IkeSaId, NatState,
    Role, Spi, Stats, UdpEncap,
};
pub use connection::{ConnectionConfig, DpdAction, DEFAULT_NAT_KEEPALIVE, Lifetime, RetransmitPolicy, StartAction};
pub use endpoint::{ChildSaInfo, ConnectionId, CookiePolicy, Endpoint, IkeSaInfo};
pub use failure::{Failure, FailureKind, Sent};
pub use ike_sa::NAT_T_PORT;
