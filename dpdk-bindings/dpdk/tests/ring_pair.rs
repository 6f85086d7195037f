//! Mbufs cross a net_ring pair and come back intact; mbuf edits; rte_ring; lcore launch.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use dpdk::{Burst, Mempool, Port, PortConfig, Ring};

// A net_ring port's tx queue feeds its own rx queue. (ATTACH-ing a second port to the same
// rings is not possible within one process: the ethdev name would collide.) So packets go
// port 0 tx -> port 0 rx -> port 1 tx -> port 1 rx -> port 0 tx -> port 0 rx.
const VDEVS: &[&str] = &["net_ring0", "net_ring1"];

fn packet_len(i: usize) -> usize {
    60 + (i * 97) % 1440
}

#[test]
fn mbufs_cross_two_ring_ports_and_come_back_intact() {
    let eal = support::eal("ringpair", VDEVS);
    assert_eq!(eal.port_count(), 2);
    let pool = Mempool::new(eal, "rp_pool", 4095, 0, None).unwrap();
    let conf = PortConfig { rx_desc: 512, tx_desc: 512, ..PortConfig::default() };
    let mut p0 = Port::configure(eal, 0, &conf, &pool).unwrap();
    let mut p1 = Port::configure(eal, 1, &conf, &pool).unwrap();
    p0.start().unwrap();
    p1.start().unwrap();
    let (mut rx0, mut tx0) = (p0.take_rx_queue(0).unwrap(), p0.take_tx_queue(0).unwrap());
    let (mut rx1, mut tx1) = (p1.take_rx_queue(0).unwrap(), p1.take_tx_queue(0).unwrap());
    assert!(p0.take_rx_queue(0).is_none(), "a queue can be taken once");
    let before = pool.available();

    let mut out: Burst<32> = Burst::new();
    let mut expected = Vec::new();
    for i in 0..32 {
        let mut m = pool.alloc().unwrap();
        let data = m.append(packet_len(i)).unwrap();
        support::fill(i as u64, data);
        expected.push(data.to_vec());
        out.push(m).unwrap();
    }
    assert_eq!(tx0.tx_burst(&mut out), 32);
    assert!(out.is_empty());

    let mut got: Burst<32> = Burst::new();
    assert_eq!(rx0.rx_burst(&mut got), 32);
    assert_eq!(tx1.tx_burst(&mut got), 32);
    assert_eq!(rx1.rx_burst(&mut got), 32);
    for (m, want) in got.as_slice().iter().zip(&expected) {
        assert_eq!(m.data(), &want[..]);
        assert_eq!(m.len(), want.len());
    }
    // And back to port 0, unchanged.
    assert_eq!(tx0.tx_burst(&mut got), 32);
    let mut back: Burst<32> = Burst::new();
    assert_eq!(rx0.rx_burst(&mut back), 32);
    let back_data: Vec<Vec<u8>> = back.drain().map(|m| m.data().to_vec()).collect();
    assert_eq!(back_data, expected);
    assert_eq!(pool.available(), before);

    let s0 = p0.stats().unwrap();
    assert_eq!((s0.tx_packets, s0.rx_packets), (64, 64));
    assert!(p0.xstats().unwrap().iter().any(|(n, _)| n == "rx_good_packets"));
    assert!(p0.link().is_ok());
    assert!(p0.mac().is_ok());
}

#[test]
fn mbuf_edits_follow_headroom_and_tailroom() {
    let eal = support::eal("ringpair", VDEVS);
    let pool = Mempool::new(eal, "edit_pool", 63, 0, None).unwrap();
    let mut m = pool.alloc().unwrap();
    let head = m.headroom();
    assert_eq!(head, dpdk_sys::RTE_PKTMBUF_HEADROOM as usize);
    assert!(m.is_empty());
    m.append(100).unwrap().copy_from_slice(&[7u8; 100]);
    assert_eq!((m.len(), m.data_len()), (100, 100));
    m.prepend(20).unwrap().copy_from_slice(&[1u8; 20]);
    assert_eq!(m.headroom(), head - 20);
    assert_eq!(&m.data()[..21], &[[1u8; 20].as_slice(), &[7]].concat()[..]);
    assert!(m.prepend(head).is_none(), "more than the headroom must fail");
    assert_eq!(m.len(), 120);
    assert!(m.adj(20));
    assert!(m.trim(50));
    assert_eq!(m.data(), &[7u8; 50][..]);
    assert!(!m.trim(51) && !m.adj(51));
    let tail = m.tailroom();
    assert!(m.append(tail + 1).is_none());
    m.data_mut()[0] = 9;
    assert_eq!(m.data()[0], 9);
    m.reset();
    assert!(m.is_empty());
}

#[test]
fn burst_retain_drain_and_drop_return_every_mbuf() {
    let eal = support::eal("ringpair", VDEVS);
    let pool = Mempool::new(eal, "burst_pool", 255, 0, None).unwrap();
    let full = pool.available();
    let mut b: Burst<16> = Burst::new();
    assert_eq!(pool.alloc_bulk(&mut b), 16);
    assert!(b.is_full());
    assert!(b.push(pool.alloc().unwrap()).is_err());
    let mut n = 0;
    b.retain(|_| {
        n += 1;
        n % 2 == 0
    });
    assert_eq!(b.len(), 8);
    // take_from keeps order and leaves what does not fit.
    let order: Vec<_> = b.as_slice().iter().map(|m| m.as_ptr()).collect();
    let mut small: Burst<4> = Burst::new();
    small.push(pool.alloc().unwrap()).unwrap();
    assert_eq!(small.take_from(&mut b), 3);
    assert_eq!(small.as_slice()[1..].iter().map(|m| m.as_ptr()).collect::<Vec<_>>(), order[..3]);
    assert_eq!(b.as_slice().iter().map(|m| m.as_ptr()).collect::<Vec<_>>(), order[3..]);
    drop(small);
    let mut it = b.drain();
    let first = it.next().unwrap();
    drop(it);
    assert!(b.is_empty());
    drop(first);
    assert_eq!(pool.alloc_bulk(&mut b), 16);
    drop(b);
    assert_eq!(pool.available(), full);
}

#[test]
fn rte_ring_moves_bursts_between_lcores() {
    let eal = support::eal("ringpair", VDEVS);
    let pool = Arc::new(Mempool::new(eal, "ring_pool", 1023, 0, None).unwrap());
    let ring = Arc::new(Ring::new(eal, "punt", 256).unwrap());
    let _busy = support::lcores();
    let workers = eal.worker_lcores();
    assert!(!workers.is_empty(), "the test EAL maps lcore 1 as a worker");
    let received = Arc::new(AtomicU32::new(0));
    let (p, r, got) = (pool.clone(), ring.clone(), received.clone());
    // The worker produces 1000 numbered packets into the ring.
    let job = eal
        .launch(workers[0], move || {
            let mut b: Burst<8> = Burst::new();
            let mut next = 0u32;
            while next < 1000 {
                while !b.is_full() && next < 1000 {
                    let mut m = p.alloc().unwrap();
                    m.append(4).unwrap().copy_from_slice(&next.to_be_bytes());
                    b.push(m).unwrap();
                    next += 1;
                }
                r.enqueue_burst(&mut b);
            }
            while !b.is_empty() {
                r.enqueue_burst(&mut b);
            }
            got.fetch_add(1, Ordering::SeqCst);
            7
        })
        .unwrap();
    let mut seen = Vec::new();
    let mut b: Burst<32> = Burst::new();
    while seen.len() < 1000 {
        ring.dequeue_burst(&mut b);
        seen.extend(b.drain().map(|m| u32::from_be_bytes(m.data().try_into().unwrap())));
    }
    assert_eq!(job.join(), 7);
    assert_eq!(received.load(Ordering::SeqCst), 1);
    assert_eq!(seen, (0..1000).collect::<Vec<_>>(), "single producer keeps order");
    assert!(ring.is_empty());
    assert_eq!(pool.available(), pool.size());
}

/// The same edit sequence on an Mbuf and on the dataplane's HeapPacket gives the same bytes
/// and the same failures (the dataplane is tested on HeapPacket and runs on Mbuf).
#[test]
fn mbuf_behaves_like_heap_packet() {
    use dataplane::packet::{HeapPacket, Packet};
    let eal = support::eal("ringpair", VDEVS);
    let pool = Mempool::new(eal, "pkt_pool", 63, 0, None).unwrap();
    let mut m = pool.alloc().unwrap();
    let tail = m.tailroom();
    let mut h = HeapPacket::with_room(Packet::headroom(&m), tail);
    fn edit<P: Packet>(p: &mut P) -> Vec<Result<(), dataplane::packet::NoRoom>> {
        let mut r = vec![p.append(100)];
        support::fill(3, p.data_mut());
        r.push(p.prepend(28));
        p.data_mut()[..28].fill(0xaa);
        r.push(p.adj(8));
        r.push(p.trim(30));
        r.push(p.prepend(1 << 12));
        r.push(p.append(1 << 12));
        r.push(p.trim(1000));
        r.push(p.truncate(50));
        r
    }
    assert_eq!(edit(&mut m), edit(&mut h));
    assert_eq!(Packet::data(&m), Packet::data(&h));
    assert_eq!((Packet::headroom(&m), Packet::tailroom(&m)), (h.headroom(), h.tailroom()));
}

#[test]
fn a_closure_runs_on_each_worker_lcore() {
    let eal = support::eal("ringpair", VDEVS);
    let _busy = support::lcores();
    let workers = eal.worker_lcores();
    let handles = eal
        .launch_on_workers(|lcore| {
            // Runs on an EAL thread: the lcore id is visible there.
            let here = dpdk::LcoreId::current().map_or(-1, |l| l.0 as i32);
            if here == lcore.0 as i32 { 100 + here } else { -1 }
        })
        .unwrap();
    let got: Vec<i32> = handles.into_iter().map(|h| h.join()).collect();
    let want: Vec<i32> = workers.iter().map(|l| 100 + l.0 as i32).collect();
    assert_eq!(got, want);
    // The test thread is no worker: either not an EAL thread, or the one that ran init.
    let here = dpdk::LcoreId::current();
    assert!(here.is_none() || here == Some(eal.main_lcore()), "{here:?}");
}

/// An SP/SC ring's two ends on two lcores: slots in, slots out, in order, nothing leaked;
/// a full ring takes what fits and leaves the rest in the slots.
#[test]
fn spsc_ring_moves_slots_between_lcores() {
    let eal = support::eal("ringpair", VDEVS);
    let pool = Arc::new(Mempool::new(eal, "spsc_pool", 1023, 0, None).unwrap());
    let (mut tx, mut rx) = Ring::spsc(eal, "spsc", 64).unwrap();
    let _busy = support::lcores();
    let workers = eal.worker_lcores();
    let p = pool.clone();
    let job = eal
        .launch(workers[0], move || {
            let mut slots: [Option<dpdk::Mbuf>; 32] = std::array::from_fn(|_| None);
            let mut next = 0u32;
            while next < 1000 {
                for s in slots.iter_mut().filter(|s| s.is_none()) {
                    if next == 1000 {
                        break;
                    }
                    let mut m = p.alloc().unwrap();
                    m.append(4).unwrap().copy_from_slice(&next.to_be_bytes());
                    *s = Some(m);
                    next += 1;
                }
                let n = tx.enqueue_slots(&mut slots);
                // What the ring refused stays, in order, behind the None it left.
                slots.rotate_left(n);
            }
            while slots[0].is_some() {
                let n = tx.enqueue_slots(&mut slots);
                slots.rotate_left(n);
            }
            0
        })
        .unwrap();
    let mut seen = Vec::new();
    let mut slots: [Option<dpdk::Mbuf>; 32] = std::array::from_fn(|_| None);
    while seen.len() < 1000 {
        let n = rx.dequeue_slots(&mut slots);
        seen.extend(slots[..n].iter_mut().map(|s| u32::from_be_bytes(s.take().unwrap().data().try_into().unwrap())));
    }
    assert_eq!(job.join(), 0);
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    assert!(rx.is_empty());
    assert_eq!(pool.available(), pool.size());

    // Full: 64 fit, the other 16 stay in the slots (and are freed when dropped).
    let mut many: Vec<Option<dpdk::Mbuf>> = (0..80).map(|_| pool.alloc()).collect();
    assert_eq!(tx_len_after(&mut many, eal), 64);
    assert_eq!(many.iter().filter(|s| s.is_some()).count(), 16);
    assert!(many[..64].iter().all(Option::is_none));
}

fn tx_len_after(slots: &mut [Option<dpdk::Mbuf>], eal: &dpdk::Eal) -> usize {
    let (mut tx, rx) = Ring::spsc(eal, "spsc_full", 64).unwrap();
    let n = tx.enqueue_slots(slots);
    assert_eq!(rx.len(), n);
    n
}
