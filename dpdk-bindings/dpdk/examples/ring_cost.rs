//! Cost per mbuf of the handoff ring between ESP workers, on one core: a burst
//! of 32 mbufs into a ring and back out, with the SP/SC ring the gateway uses
//! (`Ring::spsc`, slot slices) and with the default MP/MC ring (`Ring::new`,
//! bursts). Prints a table (TSC cycles and ns per mbuf, median of 9 rounds).
//!
//!   cargo run --release -p dpdk --example ring_cost
//!
//! One core only: the ring's cross-core cost (the cache lines of the mbuf
//! pointers and ring heads moving between cores) is not in these figures.
#![allow(clippy::unwrap_used)]

use dpdk::{tsc_cycles, tsc_hz, Burst, Eal, Mbuf, Mempool, Ring};

const BURST: usize = 32;
const ROUNDS: usize = 9;
const ITERS: usize = 200_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Cycles per mbuf of `f` (one burst in and out per call).
fn measure(mut f: impl FnMut()) -> f64 {
    for _ in 0..ITERS / 10 {
        f();
    }
    median(
        (0..ROUNDS)
            .map(|_| {
                let t = tsc_cycles();
                for _ in 0..ITERS {
                    f();
                }
                (tsc_cycles() - t) as f64 / (ITERS * BURST) as f64
            })
            .collect(),
    )
}

fn main() {
    let args: Vec<String> = ["--no-huge", "-m", "256", "--no-pci", "--log-level", "error", "-l", "0"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--file-prefix=ringcost-{}", std::process::id())])
        .collect();
    let eal = Eal::init(&args).unwrap();
    let pool = Mempool::new(&eal, "ringcost", 1023, 0, None).unwrap();

    let (mut tx, mut rx) = Ring::spsc(&eal, "cost_spsc", 1024).unwrap();
    let mut slots: [Option<Mbuf>; BURST] = std::array::from_fn(|_| pool.alloc());
    let spsc = measure(|| {
        assert_eq!(tx.enqueue_slots(&mut slots), BURST);
        assert_eq!(rx.dequeue_slots(&mut slots), BURST);
    });
    drop(slots);

    let mpmc_ring = Ring::new(&eal, "cost_mpmc", 1024).unwrap();
    let mut burst: Burst<BURST> = Burst::new();
    pool.alloc_bulk(&mut burst);
    let mpmc = measure(|| {
        assert_eq!(mpmc_ring.enqueue_burst(&mut burst), BURST);
        assert_eq!(mpmc_ring.dequeue_burst(&mut burst), BURST);
    });
    drop(burst);

    let ns = |c: f64| c * 1e9 / tsc_hz() as f64;
    println!("| ring (burst {BURST}, one core) | cycles/mbuf | ns/mbuf |");
    println!("|---|---:|---:|");
    println!("| SP/SC `Ring::spsc`, slot slices (handoff) | {spsc:.1} | {:.2} |", ns(spsc));
    println!("| MP/MC `Ring::new`, bursts | {mpmc:.1} | {:.2} |", ns(mpmc));
    let _ = std::fs::remove_dir_all(eal.runtime_dir());
}
