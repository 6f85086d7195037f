//! Static routes: longest-prefix match over a small table (connected prefixes of
//! the ports plus the configured `[[route]]`s).
//!
//! Gateways route to a handful of prefixes (the outer peers and the inner
//! subnets), so the table is a list sorted by prefix length, longest first, and a
//! lookup is a linear scan that stops at the first match (RFC 1812 §5.2.4.3: the
//! most specific route wins). Built once; the worker only reads it.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where a packet goes: out of `port`, to the neighbour `next_hop` (the
/// destination itself on a connected prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Port index.
    pub port: usize,
    /// Address to resolve to a MAC address.
    pub next_hop: IpAddr,
}

/// An IPv4 route of a [`RouteTable`], as [`RouteTable::route_v4`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteV4 {
    index: usize,
    /// Through a gateway: the next hop is the same for every destination of the
    /// route (on a connected prefix it is the destination itself).
    pub gateway: bool,
    net: u32,
    mask: u32,
    /// No route before it in the table (as specific or more) overlaps its prefix.
    alone: bool,
}

impl RouteV4 {
    /// Whether `dst` takes this route for certain, known without the table's
    /// scan: `dst` is in the route's prefix and no more specific route overlaps
    /// that prefix. `false` says nothing: ask [`RouteTable::route_v4`]. A caller
    /// that remembers the last route (the decap next-hop memo) skips the scan
    /// for every packet it covers (the scan was ~30 instructions a 64 B packet).
    #[inline]
    pub fn covers(&self, dst: Ipv4Addr) -> bool {
        self.alone && u32::from(dst) & self.mask == self.net
    }
}

/// One route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (host bits are ignored).
    pub dst: IpAddr,
    /// Prefix length.
    pub len: u8,
    /// Gateway; `None` for a connected prefix (the destination is on the link).
    pub via: Option<IpAddr>,
    /// Port index.
    pub port: usize,
}

/// A route was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Prefix length beyond the address size.
    #[error("prefix length /{len} is too long for {dst}")]
    PrefixLength {
        /// Destination.
        dst: IpAddr,
        /// Length given.
        len: u8,
    },
    /// Gateway of another family than the destination.
    #[error("route to {dst}/{len} via {via}: the gateway must be of the same address family")]
    MixedFamily {
        /// Destination.
        dst: IpAddr,
        /// Length.
        len: u8,
        /// Gateway.
        via: IpAddr,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry<W> {
    net: W,
    mask: W,
    len: u8,
    via: Option<IpAddr>,
    port: usize,
    /// No entry before this one overlaps its prefix ([`RouteV4::covers`]). Kept
    /// for IPv4 entries only (nothing asks of an IPv6 route); `false` on IPv6 ones.
    alone: bool,
}

/// Set every entry's `alone` (after a sort): an entry before it, whose prefix is
/// as long or longer, overlaps it when its network lies inside this prefix.
fn mark_alone(v: &mut [Entry<u32>]) {
    for i in 0..v.len() {
        let (before, rest) = v.split_at_mut(i);
        if let Some(e) = rest.first_mut() {
            e.alone = !before.iter().any(|b| b.net & e.mask == e.net);
        }
    }
}

/// The routing table.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    v4: Vec<Entry<u32>>,
    v6: Vec<Entry<u128>>,
}

fn mask4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Build from routes; on equal prefixes the first one given wins.
    pub fn build(routes: impl IntoIterator<Item = Route>) -> Result<Self, RouteError> {
        let mut t = Self::new();
        for r in routes {
            t.add(r)?;
        }
        Ok(t)
    }

    /// Add one route (control side only: it re-sorts the table).
    pub fn add(&mut self, r: Route) -> Result<(), RouteError> {
        if r.via.is_some_and(|v| v.is_ipv4() != r.dst.is_ipv4()) {
            return Err(RouteError::MixedFamily { dst: r.dst, len: r.len, via: r.via.unwrap_or(r.dst) });
        }
        match r.dst {
            IpAddr::V4(a) => {
                if r.len > 32 {
                    return Err(RouteError::PrefixLength { dst: r.dst, len: r.len });
                }
                let mask = mask4(r.len);
                self.v4.push(Entry { net: u32::from(a) & mask, mask, len: r.len, via: r.via, port: r.port, alone: false });
                // Stable: among equal lengths, earlier routes stay first.
                self.v4.sort_by_key(|e| core::cmp::Reverse(e.len));
                mark_alone(&mut self.v4);
            }
            IpAddr::V6(a) => {
                if r.len > 128 {
                    return Err(RouteError::PrefixLength { dst: r.dst, len: r.len });
                }
                let mask = mask6(r.len);
                self.v6.push(Entry { net: u128::from(a) & mask, mask, len: r.len, via: r.via, port: r.port, alone: false });
                self.v6.sort_by_key(|e| core::cmp::Reverse(e.len));
            }
        }
        Ok(())
    }

    /// Longest-prefix match for an IPv4 destination.
    #[inline]
    pub fn lookup_v4(&self, dst: Ipv4Addr) -> Option<NextHop> {
        self.route_v4(dst).and_then(|r| self.next_hop_v4(r, dst))
    }

    /// The route [`Self::lookup_v4`] takes for `dst`, without building its next
    /// hop: a key for callers that remember the next hop of the last route.
    #[inline]
    pub fn route_v4(&self, dst: Ipv4Addr) -> Option<RouteV4> {
        let d = u32::from(dst);
        let (index, e) = self.v4.iter().enumerate().find(|(_, e)| d & e.mask == e.net)?;
        Some(RouteV4 { index, gateway: e.via.is_some(), net: e.net, mask: e.mask, alone: e.alone })
    }

    /// The next hop of route `r` (from [`Self::route_v4`] on this table) for `dst`.
    #[inline]
    pub fn next_hop_v4(&self, r: RouteV4, dst: Ipv4Addr) -> Option<NextHop> {
        let e = self.v4.get(r.index)?;
        Some(NextHop { port: e.port, next_hop: e.via.unwrap_or(IpAddr::V4(dst)) })
    }

    /// Longest-prefix match for an IPv6 destination.
    #[inline]
    pub fn lookup_v6(&self, dst: Ipv6Addr) -> Option<NextHop> {
        let d = u128::from(dst);
        let e = self.v6.iter().find(|e| d & e.mask == e.net)?;
        Some(NextHop { port: e.port, next_hop: e.via.unwrap_or(IpAddr::V6(dst)) })
    }

    /// Longest-prefix match for either family.
    #[inline]
    pub fn lookup(&self, dst: IpAddr) -> Option<NextHop> {
        match dst {
            IpAddr::V4(a) => self.lookup_v4(a),
            IpAddr::V6(a) => self.lookup_v6(a),
        }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every route (network address, longest prefixes first per family), for
    /// `ipsecgw show routes`.
    pub fn routes(&self) -> impl Iterator<Item = Route> + '_ {
        let v4 = self.v4.iter().map(|e| Route { dst: IpAddr::V4(Ipv4Addr::from(e.net)), len: e.len, via: e.via, port: e.port });
        let v6 = self.v6.iter().map(|e| Route { dst: IpAddr::V6(Ipv6Addr::from(e.net)), len: e.len, via: e.via, port: e.port });
        v4.chain(v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(dst: &str, len: u8, via: Option<&str>, port: usize) -> Route {
        Route { dst: dst.parse().expect("addr"), len, via: via.map(|v| v.parse().expect("addr")), port }
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        let t = RouteTable::build([
            r("0.0.0.0", 0, Some("198.51.100.254"), 0),
            r("10.2.0.0", 16, Some("10.9.0.1"), 1),
            r("10.2.3.0", 24, None, 2),
            r("2001:db8::", 32, None, 1),
        ])
        .expect("valid");
        let hop = |a: &str| t.lookup(a.parse().expect("addr"));
        assert_eq!(hop("10.2.3.4"), Some(NextHop { port: 2, next_hop: "10.2.3.4".parse().expect("a") }));
        assert_eq!(hop("10.2.4.4"), Some(NextHop { port: 1, next_hop: "10.9.0.1".parse().expect("a") }));
        assert_eq!(hop("203.0.113.9"), Some(NextHop { port: 0, next_hop: "198.51.100.254".parse().expect("a") }));
        assert_eq!(hop("2001:db8::1").map(|h| h.port), Some(1));
        assert_eq!(hop("2001:db9::1"), None, "no IPv6 default route");
    }

    /// `route_v4` + `next_hop_v4` is `lookup_v4`, and a gateway route's next
    /// hop does not depend on the destination (what a next-hop memo relies on).
    #[test]
    fn route_v4_then_next_hop_is_lookup_v4() {
        let t = RouteTable::build([
            r("0.0.0.0", 0, Some("198.51.100.254"), 0),
            r("10.2.0.0", 16, Some("10.9.0.1"), 1),
            r("10.2.3.0", 24, None, 2),
        ])
        .expect("valid");
        for a in ["10.2.3.4", "10.2.3.5", "10.2.4.4", "10.2.9.9", "203.0.113.9", "0.0.0.0"] {
            let dst: Ipv4Addr = a.parse().expect("addr");
            let r = t.route_v4(dst).expect("a default route");
            assert_eq!(t.next_hop_v4(r, dst), t.lookup_v4(dst), "{a}");
            assert_eq!(r.gateway, !a.starts_with("10.2.3."), "{a}");
        }
        let (a, b) = (Ipv4Addr::new(10, 2, 4, 4), Ipv4Addr::new(10, 2, 9, 9));
        assert_eq!(t.route_v4(a), t.route_v4(b));
        assert_ne!(t.route_v4(Ipv4Addr::new(10, 2, 3, 4)), t.route_v4(a));
        assert_eq!(RouteTable::new().route_v4(a), None);
    }

    /// `covers` is only ever true for the route `route_v4` takes: over tables
    /// with nested, equal and disjoint prefixes, every destination of a grid.
    #[test]
    fn covers_only_the_route_lookup_takes() {
        let tables = [
            vec![r("0.0.0.0", 0, Some("198.51.100.254"), 0), r("10.2.0.0", 16, Some("10.9.0.1"), 1), r("10.2.3.0", 24, None, 2)],
            vec![r("10.0.0.0", 8, Some("10.9.0.1"), 1), r("198.51.100.0", 24, None, 0), r("10.0.0.0", 8, Some("10.9.0.2"), 2)],
            vec![r("10.2.3.128", 25, None, 2), r("10.2.3.0", 24, Some("10.9.0.1"), 1), r("10.2.0.0", 16, Some("10.9.0.3"), 0)],
        ];
        for routes in tables {
            let t = RouteTable::build(routes.clone()).expect("valid");
            let all: Vec<RouteV4> = routes.iter().filter_map(|r| match r.dst {
                IpAddr::V4(a) => t.route_v4(a),
                IpAddr::V6(_) => None,
            }).collect();
            let mut covered = 0;
            for a in [0u32, 0x0a00_0001, 0x0a02_0001, 0x0a02_0301, 0x0a02_0381, 0x0a02_03ff, 0x0a02_0401, 0x0aff_ffff, 0xc633_6401, 0xcb00_7109] {
                let dst = Ipv4Addr::from(a);
                for r in &all {
                    if r.covers(dst) {
                        covered += 1;
                        assert_eq!(t.route_v4(dst), Some(*r), "{routes:?} {dst}");
                    }
                }
            }
            assert!(covered > 0, "{routes:?}");
        }
        // A prefix with a more specific route inside it covers nothing.
        let t = RouteTable::build([r("10.2.0.0", 16, Some("10.9.0.1"), 1), r("10.2.3.0", 24, None, 2)]).expect("valid");
        let wide = t.route_v4(Ipv4Addr::new(10, 2, 4, 4)).expect("route");
        assert!(!wide.covers(Ipv4Addr::new(10, 2, 4, 4)));
        assert!(t.route_v4(Ipv4Addr::new(10, 2, 3, 4)).expect("route").covers(Ipv4Addr::new(10, 2, 3, 4)));
    }

    #[test]
    fn bad_routes_are_refused() {
        assert!(matches!(RouteTable::build([r("10.0.0.0", 33, None, 0)]), Err(RouteError::PrefixLength { .. })));
        assert!(matches!(RouteTable::build([r("10.0.0.0", 8, Some("::1"), 0)]), Err(RouteError::MixedFamily { .. })));
    }

    #[test]
    fn first_of_equal_prefixes_wins() {
        let t = RouteTable::build([r("10.0.0.0", 8, None, 3), r("10.0.0.0", 8, None, 4)]).expect("valid");
        assert_eq!(t.lookup_v4(Ipv4Addr::new(10, 1, 1, 1)).map(|h| h.port), Some(3));
    }
}
