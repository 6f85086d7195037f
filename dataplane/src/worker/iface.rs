//! The gateway's own ports as the worker sees them: MAC address, IP addresses
//! (answered for ARP/ND and ICMP echo, and the destination of ESP and IKE), MTU.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::route::Route;
use crate::wire::MacAddr;

/// Default IP MTU of an Ethernet port.
pub const DEFAULT_MTU: u16 = 1500;

/// One port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The port's MAC address (source of every frame sent on it).
    pub mac: MacAddr,
    /// Addresses with prefix lengths; the prefixes are connected routes.
    pub addresses: Vec<(IpAddr, u8)>,
    /// Largest IP packet sent on the port.
    pub mtu: u16,
}

impl Interface {
    /// A port with no address and the default MTU.
    pub fn new(mac: MacAddr) -> Self {
        Interface { mac, addresses: Vec::new(), mtu: DEFAULT_MTU }
    }

    /// Add an address.
    pub fn with_address(mut self, addr: IpAddr, len: u8) -> Self {
        self.addresses.push((addr, len));
        self
    }

    /// Whether `a` is one of this port's IPv4 addresses.
    #[inline]
    pub fn has_v4(&self, a: Ipv4Addr) -> bool {
        self.addresses.iter().any(|(x, _)| *x == IpAddr::V4(a))
    }

    /// Whether `a` is one of this port's IPv6 addresses.
    #[inline]
    pub fn has_v6(&self, a: Ipv6Addr) -> bool {
        self.addresses.iter().any(|(x, _)| *x == IpAddr::V6(a))
    }

    /// First IPv4 address (source of ARP requests and ICMP errors).
    pub fn first_v4(&self) -> Option<Ipv4Addr> {
        self.addresses.iter().find_map(|(a, _)| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
    }

    /// First IPv6 address.
    pub fn first_v6(&self) -> Option<Ipv6Addr> {
        self.addresses.iter().find_map(|(a, _)| match a {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        })
    }
}

/// The connected routes of `ifaces` (one per address prefix), port index = position.
pub fn connected_routes(ifaces: &[Interface]) -> Vec<Route> {
    ifaces
        .iter()
        .enumerate()
        .flat_map(|(port, i)| i.addresses.iter().map(move |&(dst, len)| Route { dst, len, via: None, port }))
        .collect()
}
