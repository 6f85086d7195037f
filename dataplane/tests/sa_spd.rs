//! SPD: random policy sets, the compiled lookup (linear, tuple space, auto)
//! must return the first policy, in order, whose selector matches — the
//! reference being a plain scan with `Selector::matches` (RFC 4301 §4.4.1);
//! a `SelectorSet` of the same selectors must say whether any matches.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::spd::{Flow, FlowV4, FlowV6, IpPrefix, PortRange, Selector, SelectorSet, Spd, Strategy};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Addresses from a small space so prefixes overlap and flows hit policies.
fn addr4(r: &mut Rng) -> Ipv4Addr {
    Ipv4Addr::new(10, r.below(3) as u8, r.below(4) as u8, r.below(4) as u8)
}

fn addr6(r: &mut Rng) -> Ipv6Addr {
    Ipv6Addr::new(
        0x2001,
        0xdb8,
        r.below(3) as u16,
        0,
        0,
        0,
        0,
        r.below(4) as u16,
    )
}

fn ports(r: &mut Rng) -> PortRange {
    match r.below(4) {
        0 | 1 => PortRange::ANY,
        2 => PortRange::single(r.below(4) as u16 * 100),
        _ => {
            let a = r.below(4) as u16 * 100;
            PortRange::new(a, a + r.below(250) as u16).expect("ordered")
        }
    }
}

fn selector(r: &mut Rng, v6: bool) -> Selector {
    let (src, dst) = if v6 {
        let l = [0u8, 32, 48, 64, 127, 128];
        (
            IpPrefix::new(IpAddr::V6(addr6(r)), l[r.below(6) as usize]),
            IpPrefix::new(IpAddr::V6(addr6(r)), l[r.below(6) as usize]),
        )
    } else {
        let l = [0u8, 8, 16, 24, 30, 32];
        (
            IpPrefix::new(IpAddr::V4(addr4(r)), l[r.below(6) as usize]),
            IpPrefix::new(IpAddr::V4(addr4(r)), l[r.below(6) as usize]),
        )
    };
    Selector {
        src: src.expect("valid length"),
        dst: dst.expect("valid length"),
        proto: [None, None, Some(6), Some(17)][r.below(4) as usize],
        src_ports: ports(r),
        dst_ports: ports(r),
    }
}

fn flow(r: &mut Rng, v6: bool) -> Flow {
    let proto = [1u8, 6, 17][r.below(3) as usize];
    let sp = [0u16, 100, 200, 300, 150, 65535][r.below(6) as usize];
    let dp = [0u16, 100, 200, 300, 250, 65535][r.below(6) as usize];
    if v6 {
        Flow::V6(FlowV6::v6(addr6(r), addr6(r), proto, sp, dp))
    } else {
        Flow::V4(FlowV4::v4(addr4(r), addr4(r), proto, sp, dp))
    }
}

#[test]
fn compiled_lookup_equals_first_match_scan() {
    let mut r = Rng(0x5eed_1234_abcd_0001);
    let mut hits = 0;
    let mut portless_rounds = 0;
    for round in 0..300 {
        let n = [1usize, 5, 12, 13, 40, 200][round % 6];
        let sels: Vec<Selector> = (0..n)
            .map(|_| {
                let v6 = r.below(3) == 0;
                selector(&mut r, v6)
            })
            .collect();
        let spds: Vec<(Strategy, Spd<usize>)> =
            [Strategy::Linear, Strategy::TupleSpace, Strategy::Auto]
                .into_iter()
                .map(|s| {
                    (
                        s,
                        Spd::build(sels.iter().copied().zip(0..), s).expect("valid"),
                    )
                })
                .collect();
        let set = SelectorSet::new(&sels);
        // Whether an IPv4 selector restricts ports, as the SPD and the set say.
        let ports = sels.iter().any(|s| matches!(s.src, IpPrefix::V4(..)) && (s.src_ports != PortRange::ANY || s.dst_ports != PortRange::ANY));
        for (strategy, spd) in &spds {
            assert_eq!(spd.ports_matter_v4(), ports, "round {round} {strategy:?}");
        }
        assert_eq!(set.ports_matter_v4(), ports, "round {round} set");
        portless_rounds += usize::from(!ports);
        for _ in 0..200 {
            let v6 = r.below(3) == 0;
            let f = flow(&mut r, v6);
            let want = sels.iter().position(|s| s.matches(&f));
            hits += usize::from(want.is_some());
            for (strategy, spd) in &spds {
                assert_eq!(spd.position(&f), want, "round {round} {strategy:?} {f:?}");
                assert_eq!(spd.lookup(&f).copied(), want);
            }
            assert_eq!(set.matches(&f), want.is_some(), "round {round} set {f:?}");
            if let Flow::V4(f4) = f {
                assert_eq!(set.matches_v4(&f4), want.is_some(), "round {round} set {f:?}");
                // Without a port selector the worker looks up IPv4 flows with
                // ports 0, without reading them: the same answers.
                if !ports {
                    let portless = FlowV4 { src_port: 0, dst_port: 0, ..f4 };
                    for (strategy, spd) in &spds {
                        assert_eq!(spd.lookup_v4(&portless).copied(), want, "round {round} {strategy:?} {f:?} without ports");
                    }
                    assert_eq!(set.matches_v4(&portless), want.is_some(), "round {round} set {f:?} without ports");
                }
            }
        }
    }
    // The generator must actually exercise matches, not only misses.
    assert!(hits > 10_000, "{hits} hits");
    assert!(portless_rounds > 10, "{portless_rounds} rounds without a port selector");
}

/// An inbound SA's selectors are not validated as an SPD's are: a set with
/// selectors of mixed families (which match nothing) among many others still
/// answers as the scan does.
#[test]
fn selector_set_skips_mixed_families() {
    let mut r = Rng(0x5eed_1234_abcd_0002);
    let v4 = IpPrefix::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8).expect("prefix");
    let v6 = IpPrefix::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)), 32).expect("prefix");
    for n in [0usize, 1, 30] {
        let mut sels: Vec<Selector> = (0..n).map(|i| selector(&mut r, i % 2 == 0)).collect();
        sels.push(Selector::subnets(v4, v6));
        sels.insert(0, Selector::subnets(v6, v4));
        let set = SelectorSet::new(&sels);
        for _ in 0..500 {
            let v6 = r.below(2) == 0;
            let f = flow(&mut r, v6);
            assert_eq!(set.matches(&f), sels.iter().any(|s| s.matches(&f)), "{n} {f:?}");
        }
    }
}
