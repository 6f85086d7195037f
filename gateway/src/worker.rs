//! The poll-mode worker: rx burst -> burst processor -> tx bursts, with idle back-off.
//!
//! The per-burst work is a [`BurstProcessor`]; today that is [`Forwarder`] (plain port-pair
//! forwarding), the ESP dataplane replaces it later. Nothing here allocates, locks or logs
//! once the loop runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use dpdk::{Burst, RxQueue, TxQueue};

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

    /// Called once per poll, with or without received packets: packets the
    /// processor originates (IKE from the control plane) go into `tx`.
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
) -> i32 {
    let PollConfig { burst, busy_poll } = poll;
    let burst = burst.clamp(1, BURST);
    let ports = q.tx.len();
    let mut rx: Burst<BURST> = Burst::new();
    let mut tx: Vec<Burst<BURST>> = (0..ports).map(|_| Burst::new()).collect();
    let mut empty: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut got = proc.poll(&mut tx);
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
