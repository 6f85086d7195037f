//! The poll-mode worker: rx burst -> burst processor -> tx bursts, with idle back-off.
//!
//! The per-burst work is a [`BurstProcessor`]; today that is [`Forwarder`] (plain port-pair
//! forwarding), the ESP dataplane replaces it later. Nothing here allocates, locks or logs
//! once the loop runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dpdk::{Burst, Mempool, Ring, RxQueue, TxQueue};

/// Mbufs per rx/tx burst.
pub const BURST: usize = 32;

/// Empty polls before the worker starts pausing, then sleeping (unless busy-polling).
const SPIN_POLLS: u32 = 1024;
const PAUSE_POLLS: u32 = 16 * 1024;
/// Sleep per poll once idle for a long time: short enough that a burst arriving while
/// asleep fits in the rx ring (1024 descriptors at 10 Mpps is ~100 µs).
const IDLE_SLEEP: Duration = Duration::from_micros(50);

/// Per-burst packet processing, swappable: the worker hands it what one port received and
/// the worker transmits whatever it put into the per-port tx bursts.
pub trait BurstProcessor: Send {
    /// `pkts` arrived on port index `rx_port`. Move packets to send into `tx[port]`; what is
    /// left in `pkts` afterwards is dropped (and counted) by the worker.
    fn process(&mut self, rx_port: usize, pkts: &mut Burst<BURST>, tx: &mut [Burst<BURST>]);

    /// Called once per poll, with or without received packets, before that poll's
    /// rx bursts reach [`Self::process`] (a processor may read its clock here for
    /// them): packets the processor originates (IKE from the control plane) go into `tx`.
    /// Returns how many it produced (a busy poll: no idle back-off).
    fn poll(&mut self, _tx: &mut [Burst<BURST>]) -> usize {
        0
    }
}

/// Plain forwarding between port pairs (issue 4 skeleton).
#[derive(Debug, Clone)]
pub struct Forwarder {
    peer: Vec<Option<usize>>,
}

impl Forwarder {
    /// `pairs` of port indexes forward both ways; ports in no pair drop what they receive.
    pub fn new(ports: usize, pairs: &[(usize, usize)]) -> Forwarder {
        let mut peer = vec![None; ports];
        for &(a, b) in pairs {
            if a < ports && b < ports {
                peer[a] = Some(b);
                peer[b] = Some(a);
            }
        }
        Forwarder { peer }
    }
}

impl BurstProcessor for Forwarder {
    #[inline]
    fn process(&mut self, rx_port: usize, pkts: &mut Burst<BURST>, tx: &mut [Burst<BURST>]) {
        let Some(Some(out)) = self.peer.get(rx_port) else { return };
        let Some(txb) = tx.get_mut(*out) else { return };
        if txb.is_empty() {
            // The common case: hand the whole burst over without touching a packet.
            std::mem::swap(pkts, txb);
        } else {
            // What does not fit stays in `pkts` and is dropped (and counted) by the worker.
            txb.take_from(pkts);
        }
    }
}

/// Counters of one port as seen by one worker; one writer (the worker), any reader.
#[derive(Debug, Default)]
#[repr(align(64))] // own cache line: workers never share one
pub struct PortCounters {
    /// Packets received.
    pub rx: AtomicU64,
    /// Packets sent.
    pub tx: AtomicU64,
    /// Packets the tx queue did not take (freed).
    pub tx_dropped: AtomicU64,
    /// Packets the processor did not forward (no peer, or dropped by it).
    pub dropped: AtomicU64,
}

#[inline]
fn bump(c: &AtomicU64, n: usize) {
    // Single writer: load+store is enough and cheaper than an atomic add.
    c.store(c.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed);
}

/// One worker's queues (one rx and one tx queue per port; rx may be absent).
#[derive(Debug)]
pub struct WorkerQueues {
    /// Rx queue per port index.
    pub rx: Vec<Option<RxQueue>>,
    /// Tx queue per port index.
    pub tx: Vec<TxQueue>,
}

/// How a worker polls.
#[derive(Debug, Clone, Copy)]
pub struct PollConfig {
    /// Mbufs per rx burst (1..=BURST).
    pub burst: usize,
    /// No idle back-off.
    pub busy_poll: bool,
}

/// ARP replies and IPv6 neighbour advertisements one worker receives, copied to the
/// others. Each worker keeps its own neighbour table, and which worker's queue a reply
/// lands on is the port's hash (RSS, af_packet fanout), not the asker's choice: without
/// the copy, a worker whose request was answered on another queue never resolves its
/// next hop (RFC 826 / RFC 4861 §7.2.5 learning happens where the reply is processed).
#[derive(Debug)]
pub struct NeighborShare {
    me: usize,
    /// `rings[w][port]`: copies for worker `w` of frames received on `port` (MP/MC: any
    /// worker may send).
    rings: Arc<Vec<Vec<Ring>>>,
    pool: Arc<Mempool>,
}

/// Copies in flight per (worker, port) ring; ARP is rare, extra copies are dropped.
const SHARE_RING: u32 = 256;

impl NeighborShare {
    /// One per worker, for `workers` workers on `ports` ports; `None` for one worker.
    pub fn mesh(eal: &dpdk::Eal, workers: usize, ports: usize, pool: &Arc<Mempool>) -> dpdk::Result<Option<Vec<NeighborShare>>> {
        if workers < 2 {
            return Ok(None);
        }
        let rings = (0..workers)
            .map(|w| (0..ports).map(|p| Ring::new(eal, &format!("ipsecgw_nb_{w}_{p}"), SHARE_RING)).collect())
            .collect::<dpdk::Result<Vec<Vec<Ring>>>>()?;
        let rings = Arc::new(rings);
        Ok(Some((0..workers).map(|me| NeighborShare { me, rings: Arc::clone(&rings), pool: Arc::clone(pool) }).collect()))
    }

    /// Mbufs the rings can hold (for the mempool size).
    pub fn ring_mbufs(workers: usize, ports: usize) -> usize {
        if workers < 2 {
            0
        } else {
            workers * ports * SHARE_RING as usize
        }
    }

    /// ARP reply (RFC 826 op 2) or neighbour advertisement (ICMPv6 type 136 right after
    /// the IPv6 header), untagged.
    fn is_reply(d: &[u8]) -> bool {
        match d.get(12..14) {
            Some([0x08, 0x06]) => d.get(20..22) == Some(&[0, 2]),
            Some([0x86, 0xdd]) => d.get(20) == Some(&58) && d.get(54) == Some(&136),
            _ => false,
        }
    }

    /// Copy the neighbour replies of a received burst to the other workers.
    fn share(&self, port: usize, rx: &Burst<BURST>) {
        for m in rx.as_slice().iter().filter(|m| Self::is_reply(m.data())) {
            for (w, rings) in self.rings.iter().enumerate() {
                let Some(ring) = rings.get(port).filter(|_| w != self.me) else { continue };
                let Some(mut copy) = self.pool.alloc() else { return };
                let Some(buf) = copy.append(m.data().len()) else { continue };
                buf.copy_from_slice(m.data());
                let mut one: Burst<1> = Burst::new();
                if one.push(copy).is_ok() {
                    ring.enqueue_burst(&mut one); // a full ring frees the copy
                }
            }
        }
    }

    /// Copies other workers received on `port`, into `into`.
    fn receive(&self, port: usize, into: &mut Burst<BURST>) -> usize {
        self.rings.get(self.me).and_then(|r| r.get(port)).map_or(0, |r| r.dequeue_burst(into))
    }
}

/// Transmits what the processor put in the tx bursts.
fn flush(q: &mut WorkerQueues, tx: &mut [Burst<BURST>], counters: &[PortCounters]) {
    for (j, b) in tx.iter_mut().enumerate() {
        if !b.is_empty() {
            let (sent, dropped) = q.tx[j].tx_burst_or_free(b);
            bump(&counters[j].tx, sent);
            if dropped > 0 {
                bump(&counters[j].tx_dropped, dropped);
            }
        }
    }
}

/// Polls until `stop` is set. Returns 0 (the lcore's exit code).
pub fn run<P: BurstProcessor>(
    mut q: WorkerQueues,
    mut proc: P,
    counters: &[PortCounters],
    stop: &AtomicBool,
    poll: PollConfig,
    share: Option<NeighborShare>,
) -> i32 {
    let PollConfig { burst, busy_poll } = poll;
    let burst = burst.clamp(1, BURST);
    let ports = q.tx.len();
    let mut rx: Burst<BURST> = Burst::new();
    let mut tx: Vec<Burst<BURST>> = (0..ports).map(|_| Burst::new()).collect();
    let mut empty: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut got = proc.poll(&mut tx);
        if let Some(s) = &share {
            // Other workers' copies of neighbour replies: learned here too (not counted
            // as received, the original was).
            for i in 0..ports {
                if s.receive(i, &mut rx) > 0 {
                    got += rx.len();
                    proc.process(i, &mut rx, &mut tx);
                    rx.clear();
                }
            }
        }
        if got > 0 {
            flush(&mut q, &mut tx, counters);
        }
        for i in 0..ports {
            let Some(rxq) = q.rx[i].as_mut() else { continue };
            let n = rxq.rx_burst_max(&mut rx, burst);
            if n == 0 {
                continue;
            }
            got += n;
            bump(&counters[i].rx, n);
            if let Some(s) = &share {
                s.share(i, &rx);
            }
            proc.process(i, &mut rx, &mut tx);
            if !rx.is_empty() {
                bump(&counters[i].dropped, rx.len());
                rx.clear();
            }
            flush(&mut q, &mut tx, counters);
        }
        if got > 0 || busy_poll {
            empty = 0;
            continue;
        }
        empty = empty.saturating_add(1);
        if empty > PAUSE_POLLS {
            std::thread::sleep(IDLE_SLEEP);
        } else if empty > SPIN_POLLS {
            dpdk::pause();
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::NeighborShare;

    #[test]
    fn neighbor_replies_are_recognised_and_nothing_else() {
        // Ethernet + ARP (RFC 826): op at bytes 20..22.
        let mut arp = vec![0xffu8; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
        arp.resize(42, 0);
        assert!(NeighborShare::is_reply(&arp));
        arp[21] = 1; // request
        assert!(!NeighborShare::is_reply(&arp));
        // Ethernet + IPv6 (next header 58 at byte 20) + ICMPv6 type at byte 54.
        let mut nd = vec![0u8; 86];
        nd[12..14].copy_from_slice(&[0x86, 0xdd]);
        nd[20] = 58;
        nd[54] = 136; // neighbour advertisement (RFC 4861 §4.4)
        assert!(NeighborShare::is_reply(&nd));
        nd[54] = 135; // solicitation
        assert!(!NeighborShare::is_reply(&nd));
        assert!(!NeighborShare::is_reply(&[0u8; 10]), "short frames are not replies");
        let mut ipv4 = vec![0u8; 60];
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert!(!NeighborShare::is_reply(&ipv4));
    }
}
