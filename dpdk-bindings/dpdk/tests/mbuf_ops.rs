//! `Mbuf`'s prepend/adj/append/trim/headroom/tailroom/data_len are written in Rust
//! (direct field access, for speed); DPDK's own inline functions (through the C shim)
//! are the reference: the same operations on two mbufs must leave the same lengths,
//! offsets and return values, including the refusals at the buffer's ends.
#![allow(clippy::unwrap_used)]

mod support;

use dpdk::{Mbuf, Mempool};

/// Header fields after an operation: (data_off, data_len, pkt_len).
fn fields(m: &Mbuf) -> (usize, usize, usize) {
    (m.headroom(), m.data_len(), m.pkt_len())
}

/// The reference: DPDK's rte_pktmbuf_* on `m`, through the shim.
fn reference(m: &mut Mbuf, op: u8, n: u16) -> bool {
    let p = m.as_ptr();
    // SAFETY: `m` owns a valid single-segment mbuf; each shim function is DPDK's inline
    // function and changes nothing when it refuses.
    unsafe {
        match op {
            0 => !dpdk_sys::dpdk_shim_pktmbuf_prepend(p, n).is_null(),
            1 => !dpdk_sys::dpdk_shim_pktmbuf_adj(p, n).is_null(),
            2 => !dpdk_sys::dpdk_shim_pktmbuf_append(p, n).is_null(),
            _ => dpdk_sys::dpdk_shim_pktmbuf_trim(p, n) == 0,
        }
    }
}

fn ours(m: &mut Mbuf, op: u8, n: u16) -> bool {
    let n = usize::from(n);
    match op {
        0 => m.prepend(n).is_some(),
        1 => m.adj(n),
        2 => m.append(n).is_some(),
        _ => m.trim(n),
    }
}

/// The next number of a xorshift32 sequence (deterministic steps).
fn xorshift(x: &mut u32) {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
}

#[test]
fn rust_mbuf_ops_match_dpdk_inline_functions() {
    let eal = support::eal("mbufops", &[]);
    let pool = Mempool::new(eal, "mbufops_pool", 1023, 0, None).unwrap();
    let (mut a, mut b) = (pool.alloc().unwrap(), pool.alloc().unwrap());
    let room = a.headroom() + a.tailroom();
    assert_eq!(b.headroom() + b.tailroom(), room);
    // DPDK's own tailroom (the shim) as the reference for ours.
    // SAFETY: a valid mbuf owned by `b`.
    let tail_ref = |m: &Mbuf| usize::from(unsafe { dpdk_sys::dpdk_shim_pktmbuf_tailroom(m.as_ptr()) });
    let mut x: u32 = 0x9e37_79b9;
    let mut refused = [0usize; 4];
    for step in 0..20_000 {
        xorshift(&mut x);
        let op = (x & 3) as u8;
        // Mostly small sizes, sometimes beyond what is left, sometimes 0.
        let n = match (x >> 2) % 8 {
            0 => 0,
            1 => (x >> 8) as u16 % (room as u16 + 64),
            _ => (x >> 8) as u16 % 80,
        };
        let want = reference(&mut b, op, n);
        let got = ours(&mut a, op, n);
        assert_eq!(got, want, "step {step}: op {op} n {n} from {:?}", fields(&b));
        assert_eq!(fields(&a), fields(&b), "step {step}: op {op} n {n}");
        assert_eq!(a.tailroom(), tail_ref(&b), "step {step}: tailroom");
        assert_eq!(a.data().len(), b.data_len());
        if !want {
            refused[usize::from(op)] += 1;
        }
    }
    assert!(refused.iter().all(|&r| r > 0), "every operation must also be refused sometimes: {refused:?}");
}

/// `Mbuf::reshape` (one store of the fields) against DPDK's prepend followed by
/// append or trim to the length, which it replaces on the ESP encap path.
#[test]
fn reshape_matches_prepend_then_append_or_trim() {
    let eal = support::eal("mbufreshape", &[]);
    let pool = Mempool::new(eal, "mbufreshape_pool", 1023, 0, None).unwrap();
    let (mut a, mut b) = (pool.alloc().unwrap(), pool.alloc().unwrap());
    let room = a.headroom() + a.tailroom();
    let mut x: u32 = 0x2545_f491;
    let mut refused = 0;
    for step in 0..20_000 {
        xorshift(&mut x);
        // Sometimes move the window back (adj) so both directions get exercised.
        if x & 7 == 0 {
            let n = (x >> 3) as u16 % 80;
            assert_eq!(ours(&mut a, 1, n), reference(&mut b, 1, n));
            continue;
        }
        let front = (x >> 3) as u16 % 72;
        let len = (x >> 12) as u16 % (room as u16 + 64);
        let want = reference(&mut b, 0, front) && {
            let have = b.data_len() as u16;
            let ok = if len >= have { reference(&mut b, 2, len - have) } else { reference(&mut b, 3, have - len) };
            if !ok {
                assert!(reference(&mut b, 1, front), "undo the prepend");
            }
            ok
        };
        // Every other step through `Packet::reshape_behind` (the ESP encap path's
        // call; no head here, `data_behind` below covers that part).
        let got = if x & 8 == 0 {
            a.reshape(usize::from(front), usize::from(len))
        } else {
            dataplane::packet::Packet::reshape_behind(&mut a, 0, usize::from(front), usize::from(len))
                .is_ok_and(|s| s.len() == usize::from(len))
        };
        assert_eq!(got, want, "step {step}: front {front} len {len} from {:?}", fields(&a));
        assert_eq!(fields(&a), fields(&b), "step {step}: front {front} len {len}");
        refused += usize::from(!want);
        // `data_behind`: the last `head` bytes of the headroom, then the data.
        let head = (x >> 24) as usize % 160;
        let (off, data_len, data) = (a.headroom(), a.data_len(), a.data().as_ptr());
        match a.data_behind(head) {
            Some(s) => {
                assert!(head <= off, "step {step}: head {head} past the headroom {off}");
                assert_eq!(s.len(), head + data_len);
                assert_eq!(s[head..].as_ptr(), data, "step {step}: the data follows the head");
            }
            None => assert!(head > off, "step {step}: head {head} refused with headroom {off}"),
        }
    }
    assert!(refused > 0 && refused < 20_000, "both outcomes must occur: {refused} refused");
}
