//! Properties of proposals, selectors and identities over random inputs.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use controlplane::identity::Identity;
use controlplane::proposal::{keywords, select, Proposal, Protocol, SelectError};
use controlplane::selector::{narrow, AddrRange, TrafficSelector};
use proptest::prelude::*;

/// A random proposal string from the supported keywords of each type.
fn proposal_text(protocol: Protocol) -> impl Strategy<Value = String> {
    let encr = proptest::sample::subsequence(vec!["aes256gcm16", "aes128gcm16", "chacha20poly1305"], 1..=3);
    let prf = proptest::sample::subsequence(vec!["prfsha256", "prfsha384", "prfsha512"], 1..=3);
    let ke = proptest::sample::subsequence(vec!["x25519", "ecp256", "ecp384", "modp2048"], 0..=4);
    let esn = proptest::sample::subsequence(vec!["esn", "noesn"], 0..=2);
    (encr, prf, ke, esn, any::<bool>()).prop_map(move |(e, p, mut k, s, shuffle)| {
        let mut words: Vec<&str> = e;
        if protocol == Protocol::Ike {
            words.extend(p);
            if k.is_empty() {
                k.push("x25519");
            }
        } else {
            words.extend(s);
        }
        words.extend(k);
        if shuffle {
            // Types may come in any order; within a type the order is the preference.
            words.reverse();
            words.sort_by_key(|w| w.starts_with("prf"));
        }
        words.join("-")
    })
}

fn v4_selector() -> impl Strategy<Value = TrafficSelector> {
    (any::<u32>(), 0u8..=32, prop_oneof![Just(0u8), Just(6), Just(17)], any::<u16>(), any::<u16>()).prop_map(
        |(addr, len, protocol, a, b)| {
            let mut ts = TrafficSelector::from_range(
                AddrRange::from_prefix(IpAddr::V4(Ipv4Addr::from(addr & 0x0a0f_ffff)), len).unwrap_or(
                    AddrRange::V4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST),
                ),
            );
            ts.protocol = protocol;
            if protocol != 0 {
                ts.start_port = a.min(b);
                ts.end_port = a.max(b);
            }
            ts
        },
    )
}

proptest! {
    #[test]
    fn proposal_display_round_trips(ike in proposal_text(Protocol::Ike), esp in proposal_text(Protocol::Esp)) {
        for (protocol, text) in [(Protocol::Ike, ike), (Protocol::Esp, esp)] {
            let p = Proposal::parse_supported(protocol, &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let again = Proposal::parse(protocol, &p.to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&again, &p);
        }
    }

    #[test]
    fn a_proposal_always_selects_itself(text in proposal_text(Protocol::Ike)) {
        let p = Proposal::parse(Protocol::Ike, &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let s = select(std::slice::from_ref(&p), std::slice::from_ref(&p), None)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Our first preference of each type wins.
        prop_assert_eq!(s.chosen.encr, p.encr[0]);
        prop_assert_eq!(s.chosen.prf, p.prf.first().copied());
        prop_assert_eq!(s.chosen.ke, p.ke.first().copied());
    }

    #[test]
    fn selection_is_consistent_with_the_transforms(a in proposal_text(Protocol::Esp), b in proposal_text(Protocol::Esp)) {
        let (a, b) = (Proposal::parse(Protocol::Esp, &a).unwrap_or_else(|_| Proposal::new(Protocol::Esp)),
                      Proposal::parse(Protocol::Esp, &b).unwrap_or_else(|_| Proposal::new(Protocol::Esp)));
        match select(std::slice::from_ref(&a), std::slice::from_ref(&b), None) {
            Ok(s) => {
                prop_assert!(a.encr.contains(&s.chosen.encr) && b.encr.contains(&s.chosen.encr));
                let esn = s.chosen.esn.ok_or_else(|| TestCaseError::fail("ESP without ESN"))?;
                prop_assert!(a.esn.contains(&esn) && b.esn.contains(&esn));
                match s.chosen.ke {
                    Some(g) => prop_assert!(a.ke.contains(&g) && b.ke.contains(&g)),
                    None => prop_assert!(a.ke.is_empty() && b.ke.is_empty()),
                }
            }
            Err(SelectError::Mismatch(m)) => {
                // Each named difference really is one: no common transform of that type.
                for ty in m.mismatched_types() {
                    let (x, y) = (m.offered.transforms_of(ty), m.configured.transforms_of(ty));
                    prop_assert!(!x.iter().any(|t| y.contains(t)), "{:?} vs {:?}", x, y);
                }
                prop_assert!(!m.differences.is_empty());
            }
            Err(e) => prop_assert!(false, "unexpected {}", e),
        }
    }

    #[test]
    fn intersection_is_symmetric_and_inside_both(a in v4_selector(), b in v4_selector(), addr in any::<u32>(), port in any::<u16>(), proto in prop_oneof![Just(6u8), Just(17)]) {
        prop_assert_eq!(a.intersect(&b), b.intersect(&a));
        let ip = IpAddr::V4(Ipv4Addr::from(addr & 0x0a0f_ffff));
        let both = a.matches(ip, proto, port) && b.matches(ip, proto, port);
        let inter = a.intersect(&b).is_some_and(|i| i.matches(ip, proto, port));
        prop_assert_eq!(both, inter);
        if let Some(i) = a.intersect(&b) {
            prop_assert!(a.contains(&i) && b.contains(&i));
        }
    }

    #[test]
    fn narrowing_stays_inside_what_both_sides_allow(p in proptest::collection::vec(v4_selector(), 1..4), a in proptest::collection::vec(v4_selector(), 1..4)) {
        for n in narrow(&p, &a) {
            prop_assert!(p.iter().any(|x| x.contains(&n)) && a.iter().any(|x| x.contains(&n)));
        }
    }

    #[test]
    fn selector_display_round_trips(ts in v4_selector(), v6 in any::<u128>(), len in 0u8..=128) {
        let back: TrafficSelector = ts.to_string().parse().map_err(|e: controlplane::selector::SelectorParseError| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, ts);
        let v6 = TrafficSelector::from_range(AddrRange::from_prefix(IpAddr::V6(Ipv6Addr::from(v6)), len).ok_or_else(|| TestCaseError::fail("prefix"))?);
        let back: TrafficSelector = v6.to_string().parse().map_err(|e: controlplane::selector::SelectorParseError| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, v6);
    }

    #[test]
    fn identity_display_round_trips(name in "[a-z0-9.@:=-]{1,20}", key in proptest::collection::vec(any::<u8>(), 1..8)) {
        for id in [Identity::Fqdn(name.clone()), Identity::Rfc822(name.clone()), Identity::KeyId(key.clone())] {
            let back: Identity = id.to_string().parse().map_err(|e: controlplane::identity::IdentityError| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, id);
        }
        // Anything that parses formats back to something that parses to the same.
        if let Ok(id) = name.parse::<Identity>() {
            let again: Identity = id.to_string().parse().map_err(|e: controlplane::identity::IdentityError| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again, id);
        }
    }

    #[test]
    fn parsing_never_panics(text in "[a-z0-9%@#:./\\[\\]-]{0,40}") {
        let _ = Proposal::parse(Protocol::Ike, &text);
        let _ = Proposal::parse(Protocol::Esp, &text);
        let _ = text.parse::<TrafficSelector>();
        let _ = text.parse::<Identity>();
        let _ = controlplane::config::Config::parse(&text, std::path::Path::new("fuzz.toml"));
    }
}

fn example_texts() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    ["gateway-forward.toml", "static-sa.toml", "strongswan-peer.toml"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .collect()
}

proptest! {
    /// Damaged real configs (a line dropped, a character replaced) never panic the
    /// loader, and every diagnostic points inside the file.
    #[test]
    fn damaged_examples_give_located_errors(which in 0usize..3, line in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), c in "[ -~]", drop_line in any::<bool>()) {
        let texts = example_texts();
        prop_assume!(which < texts.len());
        let text = &texts[which];
        let damaged = if drop_line {
            let lines: Vec<&str> = text.lines().collect();
            let gone = line.index(lines.len());
            lines.iter().enumerate().filter(|(i, _)| *i != gone).map(|(_, l)| *l).collect::<Vec<_>>().join("\n")
        } else {
            let mut chars: Vec<char> = text.chars().collect();
            let at = pos.index(chars.len());
            chars[at] = c.chars().next().unwrap_or('x');
            chars.into_iter().collect()
        };
        let line_count = damaged.lines().count() + 1;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/damaged.toml");
        if let Err(e) = controlplane::config::Config::parse(&damaged, &dir) {
            for err in &e.errors {
                prop_assert!(err.location.line >= 1 && err.location.line <= line_count, "{}", err);
                prop_assert!(err.location.column >= 1, "{}", err);
            }
        }
    }
}

#[test]
fn every_keyword_is_reachable_by_the_parser() {
    for kw in keywords() {
        let ok = [Protocol::Esp, Protocol::Ike].iter().any(|p| {
            Proposal::parse(*p, kw).is_ok()
                || Proposal::parse(*p, &format!("aes128-sha256-{kw}")).is_ok()
                || Proposal::parse(*p, &format!("aes128gcm16-prfsha256-x25519-{kw}")).is_ok()
                || Proposal::parse(*p, &format!("aes128gcm16-{kw}")).is_ok()
        });
        assert!(ok, "{kw}");
    }
}
