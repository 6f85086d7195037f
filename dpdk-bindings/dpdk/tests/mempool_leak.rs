//! No mempool leak after 1M packets through rx/tx (including tx-full drops) and a ring.
#![allow(clippy::unwrap_used)]

mod support;

use dpdk::{Burst, Mempool, Port, PortConfig, Ring};

#[test]
fn a_million_packets_leave_the_pool_full() {
    // One net_ring port: what it sends comes back on its own rx queue.
    let eal = support::eal("leak", &["net_ring0"]);
    let pool = Mempool::new(eal, "leak_pool", 8191, 0, None).unwrap();
    let conf = PortConfig { rx_desc: 512, tx_desc: 512, ..PortConfig::default() };
    let mut port = Port::configure(eal, 0, &conf, &pool).unwrap();
    port.start().unwrap();
    let (mut rx, mut tx) = (port.take_rx_queue(0).unwrap(), port.take_tx_queue(0).unwrap());
    let ring = Ring::new(eal, "leak_ring", 512).unwrap();
    let before = pool.available();
    assert_eq!(before, pool.size());

    let (mut sent, mut dropped, mut received, mut round) = (0usize, 0usize, 0usize, 0usize);
    let mut burst: Burst<32> = Burst::new();
    while sent + dropped < 1_000_000 {
        assert_eq!(pool.alloc_bulk(&mut burst), 32);
        for m in burst.as_mut_slice() {
            m.append(64).unwrap().fill(round as u8);
        }
        // Three bursts out per burst in: the rings fill up and tx must free what it cannot send.
        let (s, d) = tx.tx_burst_or_free(&mut burst);
        sent += s;
        dropped += d;
        if round % 3 == 0 {
            received += rx.rx_burst(&mut burst);
            // Half of what comes back takes a detour through an rte_ring.
            ring.enqueue_burst(&mut burst);
            burst.clear();
            if round % 2 == 0 {
                ring.dequeue_burst(&mut burst);
                burst.clear();
            }
        }
        round += 1;
    }
    while rx.rx_burst(&mut burst) > 0 {
        received += burst.len();
        burst.clear();
    }
    assert!(dropped > 0, "the test must exercise the tx-full path");
    assert_eq!(received, sent);
    assert!(!ring.is_empty(), "the ring keeps some mbufs until it is dropped");
    drop(ring);
    assert_eq!(pool.available(), before, "mbufs leaked");
    let stats = port.stats().unwrap();
    assert_eq!(stats.rx_packets as usize, received);
}
