//! Fixtures and measurements for the SA tables (issue 8): SPI lookup at
//! 1..1M SAs against std `HashMap` alternatives, SPD lookup at 1..1000
//! policies per strategy, per-burst cost of the publication schemes, and the
//! control-side cost of a commit. Used by `benches/sa_lookup.rs` (criterion)
//! and `src/bin/sa_table.rs` (one table, quick).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::sa::{InboundSa, PolicyAction, PolicySpec, Reader, SaControl, SaTable, Spi};
use dataplane::spd::{FlowV4, IpPrefix, PortRange, Selector, Spd, Strategy};
use rayon::prelude::*;

/// Stand-in for an SA's immutable data: the size of a real one (keys, AEAD
/// instance pointer, prebuilt header, config) is ~200-300 bytes; we use 256.
#[derive(Debug)]
pub struct BenchSa {
    /// Read by the "touch" lookups so the SA's line is loaded.
    pub tag: u64,
    _pad: [u64; 31],
}

impl BenchSa {
    fn new(tag: u64) -> Self {
        Self { tag, _pad: [0; 31] }
    }
}

/// Table type the benchmarks use.
pub type Tables = SaControl<BenchSa, BenchSa>;

/// Reproducible pseudo-random generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `n` distinct, random-looking, non-reserved SPIs (what IKE allocates).
pub fn spis(n: usize) -> Vec<Spi> {
    // An odd multiplier is a bijection on u32: distinct inputs, distinct SPIs.
    (0..n as u32)
        .map(|i| Spi((i + 1).wrapping_mul(0x9E37_79B1) | 0x8000_0000))
        .collect()
}

/// Resident set size in bytes (Linux `/proc/self/statm`), 0 if unreadable.
pub fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// A table with `n` inbound SAs built in parallel (rayon) and one commit.
pub fn build_inbound(n: usize) -> (Tables, Vec<Spi>) {
    let spis = spis(n);
    let sas: Vec<_> = spis
        .par_iter()
        .map(|s| (*s, Arc::new(BenchSa::new(u64::from(s.0)))))
        .collect();
    let mut ctl = Tables::new(u32::try_from(n + 1024).unwrap_or(u32::MAX));
    let mut tx = ctl.transaction();
    for (spi, sa) in sas {
        if tx.add_inbound(spi, sa).is_err() {
            break;
        }
    }
    let _ = tx.commit();
    (ctl, spis)
}

/// Lookup order: the installed SPIs shuffled (so large tables miss in cache
/// like real traffic over many tunnels would).
pub fn lookup_order(spis: &[Spi], count: usize) -> Vec<Spi> {
    let mut r = Rng(0x1234_5678_9abc_def1);
    (0..count)
        .map(|_| spis[(r.next_u64() % spis.len() as u64) as usize])
        .collect()
}

/// One pass of lookups through the snapshot, touching the SA data.
#[inline]
pub fn lookup_pass(table: &SaTable<BenchSa, BenchSa>, keys: &[Spi]) -> u64 {
    let mut acc = 0u64;
    for k in keys {
        if let Some(sa) = table.inbound(*k) {
            acc = acc.wrapping_add(sa.tag);
        }
    }
    acc
}

/// One pass of lookups through the snapshot, reading only the index entry
/// (the SA id): the cost of the table itself.
#[inline]
pub fn lookup_pass_index(table: &SaTable<BenchSa, BenchSa>, keys: &[Spi]) -> u64 {
    let mut acc = 0u64;
    for k in keys {
        if let Some(sa) = table.inbound(*k) {
            acc = acc.wrapping_add(sa.id().slot() as u64);
        }
    }
    acc
}

/// Multiply hasher (FxHash-style) for the std-HashMap comparison.
#[derive(Debug, Default, Clone, Copy)]
pub struct MulHasher(u64);

impl Hasher for MulHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// std `HashMap` with SipHash (the default) and with the multiply hasher.
pub struct StdMaps {
    /// Default hasher.
    pub sip: HashMap<u32, InboundSa<BenchSa>>,
    /// Multiply hasher.
    pub fx: HashMap<u32, InboundSa<BenchSa>, BuildHasherDefault<MulHasher>>,
}

impl std::fmt::Debug for StdMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdMaps")
            .field("len", &self.sip.len())
            .finish()
    }
}

/// The same SAs in std maps.
pub fn std_maps(table: &SaTable<BenchSa, BenchSa>) -> StdMaps {
    let mut sip = HashMap::new();
    let mut fx = HashMap::default();
    for (spi, sa) in table.inbound_iter() {
        sip.insert(spi.0, sa.clone());
        fx.insert(spi.0, sa.clone());
    }
    StdMaps { sip, fx }
}

/// One pass over a std map, reading the index entry only (like
/// [`lookup_pass_index`]).
#[inline]
pub fn std_pass<S: std::hash::BuildHasher>(
    map: &HashMap<u32, InboundSa<BenchSa>, S>,
    keys: &[Spi],
) -> u64 {
    let mut acc = 0u64;
    for k in keys {
        if let Some(sa) = map.get(&k.0) {
            acc = acc.wrapping_add(sa.id().slot() as u64);
        }
    }
    acc
}

/// `n` policies: distinct /24 → /24 subnet pairs (the IKEv2 common case);
/// every `ranged`-th one (0 = none) has a destination port range, which tuple
/// space cannot hash. A final ANY → BYPASS catches the rest.
pub fn policies(n: usize, ranged: usize) -> Vec<(Selector, u32)> {
    let mut v: Vec<(Selector, u32)> = (0..n)
        .map(|i| {
            let (hi, lo) = ((i >> 8) as u8, i as u8);
            let mut sel = Selector::subnets(
                IpPrefix::V4(Ipv4Addr::new(10, hi, lo, 0), 24),
                IpPrefix::V4(Ipv4Addr::new(172, 16 + hi, lo, 0), 24),
            );
            if ranged != 0 && i % ranged == 0 {
                sel.dst_ports = PortRange::new(1000, 2000).unwrap_or(PortRange::ANY);
            }
            (sel, i as u32)
        })
        .collect();
    if n > 1 {
        v.pop();
        v.push((
            Selector::subnets(IpPrefix::ANY_V4, IpPrefix::ANY_V4),
            u32::MAX,
        ));
    }
    v
}

/// Flows spread uniformly over the policies.
pub fn flows(n: usize, count: usize) -> Vec<FlowV4> {
    let mut r = Rng(0xfeed_f00d_1234_5678);
    (0..count)
        .map(|_| {
            let i = (r.next_u64() % n as u64) as usize;
            let (hi, lo) = ((i >> 8) as u8, i as u8);
            FlowV4::v4(
                Ipv4Addr::new(10, hi, lo, (r.next_u64() % 250) as u8 + 1),
                Ipv4Addr::new(172, 16 + hi, lo, (r.next_u64() % 250) as u8 + 1),
                17,
                40000,
                1500,
            )
        })
        .collect()
}

/// One pass of SPD lookups.
#[inline]
pub fn spd_pass(spd: &Spd<u32>, flows: &[FlowV4]) -> u64 {
    let mut acc = 0u64;
    for f in flows {
        if let Some(a) = spd.lookup_v4(f) {
            acc = acc.wrapping_add(u64::from(*a));
        }
    }
    acc
}

/// Compile `n` policies with `strategy`.
pub fn spd(n: usize, ranged: usize, strategy: Strategy) -> Spd<u32> {
    Spd::build(policies(n, ranged), strategy).unwrap_or_else(|_| Spd::empty())
}

/// Best of `runs` timings of `f` (each doing `per_run` operations), in ns/op.
/// The best, not the median: the 2-core machine is shared, and interference
/// only ever adds time.
pub fn best_ns(runs: usize, per_run: usize, mut f: impl FnMut() -> u64) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed().as_nanos() as f64 / per_run as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// The three publication schemes compared, worker side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Our QSBR: one generation load per burst, `Arc` refresh on change.
    Qsbr,
    /// `ArcSwap::load()` per burst (guard dropped at burst end).
    ArcSwap,
    /// `crossbeam_epoch::pin()` + `Atomic::load` per burst.
    Epoch,
}

/// Run `step` every `every` on a thread until `stop` (no thread for `None`).
fn publisher(
    every: Option<Duration>,
    stop: &Arc<AtomicBool>,
    mut step: impl FnMut() + Send + 'static,
) -> Option<std::thread::JoinHandle<()>> {
    let stop = Arc::clone(stop);
    every.map(|every| {
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                step();
                std::thread::sleep(every);
            }
        })
    })
}

/// Median ns per call of `burst` over `bursts` calls.
fn time_bursts(bursts: usize, mut burst: impl FnMut() -> u64) -> f64 {
    best_ns(7, bursts, || {
        (0..bursts).map(|_| burst()).fold(0, u64::wrapping_add)
    })
}

/// Worker-side cost of one "burst" (load the snapshot, look one SPI up,
/// quiescent point) with a publisher thread swapping every `publish_every`
/// (None = never). Returns ns per burst.
pub fn publication_cost(scheme: Scheme, bursts: usize, publish_every: Option<Duration>) -> f64 {
    let (mut ctl, spis) = build_inbound(1024);
    let key = spis[7];
    let stop = Arc::new(AtomicBool::new(false));
    let (ns, thread) = match scheme {
        Scheme::Qsbr => {
            let mut reader: Reader<SaTable<BenchSa, BenchSa>> = ctl.reader();
            let thread = publisher(publish_every, &stop, move || {
                let mut tx = ctl.transaction();
                let _ = tx.replace_inbound(key, Arc::new(BenchSa::new(1)));
                let _ = tx.commit();
            });
            let ns = time_bursts(bursts, || reader.load().inbound(key).map_or(0, |s| s.tag));
            (ns, thread)
        }
        Scheme::ArcSwap => {
            let swap = Arc::new(arc_swap::ArcSwap::new(ctl.current()));
            let shared = Arc::clone(&swap);
            let thread = publisher(publish_every, &stop, move || {
                let mut tx = ctl.transaction();
                let _ = tx.replace_inbound(key, Arc::new(BenchSa::new(1)));
                let _ = tx.commit();
                shared.store(ctl.current());
                ctl.reclaim();
            });
            let ns = time_bursts(bursts, || swap.load().inbound(key).map_or(0, |s| s.tag));
            (ns, thread)
        }
        Scheme::Epoch => {
            // Dereferencing a crossbeam-epoch `Shared` needs `unsafe`, which
            // this workspace forbids outside dpdk-bindings; the pointer load
            // and the pin/unpin (the scheme's cost) are measured, and the
            // lookup goes through an `Arc` we hold.
            let table = ctl.current();
            let atomic = Arc::new(crossbeam_epoch::Atomic::new(0u64));
            let shared = Arc::clone(&atomic);
            let mut n = 0u64;
            let thread = publisher(publish_every, &stop, move || {
                n += 1;
                let guard = crossbeam_epoch::pin();
                // The old value is leaked (freeing it needs the `unsafe`
                // defer_destroy): a few bytes per publish, in a benchmark.
                shared.swap(crossbeam_epoch::Owned::new(n), Ordering::AcqRel, &guard);
            });
            let ns = time_bursts(bursts, || {
                let guard = crossbeam_epoch::pin();
                let p = atomic.load(Ordering::Acquire, &guard);
                (black_box(p.as_raw()) as u64 & 1) + table.inbound(key).map_or(0, |s| s.tag)
            });
            (ns, thread)
        }
    };
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = thread {
        let _ = t.join();
    }
    ns
}

/// Control-side cost of committing one new inbound SA into a table of `n`,
/// and of one rekey (install + switch, two publications). Returns (add µs,
/// rekey µs), best of 21.
pub fn commit_cost(n: usize) -> (f64, f64) {
    let (mut ctl, _) = build_inbound(n);
    let mut tx = ctl.transaction();
    let out = tx.add_outbound(Arc::new(BenchSa::new(0)));
    let policy = out.and_then(|out| {
        tx.add_policy(PolicySpec {
            priority: 1,
            selector: Selector::subnets(IpPrefix::ANY_V4, IpPrefix::ANY_V4),
            action: PolicyAction::Protect(out),
        })
    });
    let _ = tx.commit();
    let mut next = 0x100u32;
    let add = best_ns(21, 1, || {
        next += 1;
        let mut tx = ctl.transaction();
        let _ = tx.add_inbound(Spi(next), Arc::new(BenchSa::new(0)));
        let _ = tx.commit();
        ctl.reclaim() as u64
    }) / 1e3;
    let rekey = match policy {
        Ok(policy) => {
            best_ns(21, 1, || {
                next += 1;
                let _ = ctl.install_inbound(Spi(next), Arc::new(BenchSa::new(0)));
                let _ = ctl.switch_outbound(&[policy], Arc::new(BenchSa::new(0)));
                ctl.reclaim() as u64
            }) / 1e3
        }
        Err(_) => f64::NAN,
    };
    (add, rekey)
}
