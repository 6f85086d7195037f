//! IKEv2 control plane: sans-IO RFC 7296 engine, configuration, manager thread, control socket.
#![forbid(unsafe_code)]
pub mod ikev2;
pub mod config;
pub mod proposal;
pub mod identity;
pub mod selector;
pub mod manager;
pub mod diagnosis;
pub mod api;
pub mod metrics;
pub mod monitor;
