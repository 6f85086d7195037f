//! Publication under concurrency: worker threads loop over "bursts" while the
//! control thread publishes over 1,000 updates, including make-before-break
//! rekeys of the active SA pair. Checks: no lookup ever misses an SA that must
//! exist, outbound never loses its policy, snapshots and SA data are all freed
//! (Drop counters) and never on a worker thread.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use dataplane::sa::{Decision, PolicyAction, PolicySpec, Rekey, SaControl, SaError, Spi};
use dataplane::spd::{FlowV4, IpPrefix, Selector};

thread_local! {
    static ON_WORKER: Cell<bool> = const { Cell::new(false) };
}

#[derive(Debug, Default)]
struct Drops {
    created: AtomicUsize,
    dropped: AtomicUsize,
    dropped_on_worker: AtomicUsize,
}

/// Stand-in for esp's SA data; counts its drops and where they happen.
#[derive(Debug)]
struct TestSa {
    /// Rekey number of the pair this SA belongs to (monotonic).
    epoch: u64,
    drops: Arc<Drops>,
}

impl TestSa {
    fn new(epoch: u64, drops: &Arc<Drops>) -> Arc<Self> {
        drops.created.fetch_add(1, Ordering::SeqCst);
        Arc::new(Self {
            epoch,
            drops: Arc::clone(drops),
        })
    }
}

impl Drop for TestSa {
    fn drop(&mut self) {
        self.drops.dropped.fetch_add(1, Ordering::SeqCst);
        if ON_WORKER.with(Cell::get) {
            self.drops.dropped_on_worker.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn prefix(a: [u8; 4], len: u8) -> IpPrefix {
    IpPrefix::V4(Ipv4Addr::from(a), len)
}

#[derive(Debug, Default)]
struct WorkerReport {
    bursts: u64,
    lookups: u64,
    misses: u64,
    no_policy: u64,
    epoch_went_back: u64,
}

#[test]
fn thousand_updates_with_rekeys_never_miss_and_free_everything() {
    const WORKERS: usize = 2;
    let drops = Arc::new(Drops::default());
    let mut ctl = SaControl::<TestSa, TestSa>::new(4096);

    // The tunnel: inbound SPI 0x1000, outbound SA, one policy 10.1/16 -> 10.2/16.
    let first_spi = rekey_spi(0).0;
    let mut tx = ctl.transaction();
    tx.add_inbound(Spi(first_spi), TestSa::new(0, &drops))
        .expect("add");
    let out = tx.add_outbound(TestSa::new(0, &drops)).expect("add");
    let policy = tx
        .add_policy(PolicySpec {
            priority: 10,
            selector: Selector::subnets(prefix([10, 1, 0, 0], 16), prefix([10, 2, 0, 0], 16)),
            action: PolicyAction::Protect(out),
        })
        .expect("policy");
    tx.add_policy(PolicySpec {
        priority: 100,
        selector: Selector::subnets(IpPrefix::ANY_V4, IpPrefix::ANY_V4),
        action: PolicyAction::Bypass,
    })
    .expect("policy");
    tx.commit().expect("commit");

    // What the simulated peer sends with now, and the SPI it may still have in
    // flight (0 = none). `current` is published before the peer uses it;
    // `previous` is cleared before the SA is removed.
    let peer_spi = Arc::new(AtomicU32::new(first_spi));
    let peer_prev = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let total_bursts = Arc::new(AtomicU64::new(0));

    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let mut reader = ctl.reader();
            let (peer_spi, peer_prev, stop, total_bursts) = (
                Arc::clone(&peer_spi),
                Arc::clone(&peer_prev),
                Arc::clone(&stop),
                Arc::clone(&total_bursts),
            );
            thread::spawn(move || {
                ON_WORKER.with(|w| w.set(true));
                let mut r = WorkerReport::default();
                let mut last_epoch = 0;
                let flow = FlowV4::v4(
                    Ipv4Addr::new(10, 1, 3, 4),
                    Ipv4Addr::new(10, 2, 5, 6),
                    17,
                    4000,
                    5000,
                );
                while !stop.load(Ordering::Acquire) {
                    let current = peer_spi.load(Ordering::Acquire);
                    let prev_before = peer_prev.load(Ordering::Acquire);
                    let table = reader.load();
                    let previous = peer_prev.load(Ordering::Acquire);
                    // If this thread was descheduled between the reads, `current`
                    // may have been rekeyed away and its grace period ended: a
                    // packet that late is rightly dropped, so only demand it while
                    // it is still the current or the in-flight SPI.
                    let still = peer_spi.load(Ordering::Acquire);
                    let must_find_current = current == still || current == previous;
                    // Likewise the in-flight SPI read after the table: it may have
                    // become in flight (installed, then replaced) after the table was
                    // taken; demand it only if it was in flight on both sides.
                    let previous = if prev_before == previous { previous } else { 0 };
                    for _ in 0..32 {
                        r.lookups += 1;
                        if must_find_current && table.inbound(Spi(current)).is_none() {
                            r.misses += 1;
                        }
                        if previous != 0 && table.inbound(Spi(previous)).is_none() {
                            r.misses += 1;
                        }
                        match table.outbound_v4(&flow) {
                            Decision::Protect(sa) => {
                                // Make-before-break: once outbound uses the new
                                // pair, its inbound SA must already be there.
                                if table.inbound(rekey_spi(sa.epoch)).is_none() {
                                    r.misses += 1;
                                }
                                if sa.epoch < last_epoch {
                                    r.epoch_went_back += 1;
                                }
                                last_epoch = sa.epoch;
                            }
                            _ => r.no_policy += 1,
                        }
                    }
                    r.bursts += 1;
                    total_bursts.fetch_add(1, Ordering::Relaxed);
                }
                drop(reader);
                r
            })
        })
        .collect();

    // Control thread: a virtual clock for grace periods.
    let start = Instant::now();
    let mut now = start;
    let tick = Duration::from_millis(10);
    let grace = tick * 3;
    let mut epoch = 0u64;
    let mut current_spi = first_spi;
    let mut next_spi = 0x10_0000u32;
    let mut extra: Vec<Spi> = Vec::new();
    let mut rekeys = 0;
    let mut i = 0u64;
    while ctl.generation() < 1_100 {
        i += 1;
        now += tick;
        if i.is_multiple_of(4) {
            epoch += 1;
            let new_spi = rekey_spi(epoch).0;
            let old_spi = current_spi;
            ctl.rekey(
                Rekey {
                    old_spi: Spi(old_spi),
                    new_spi: Spi(new_spi),
                    new_inbound: TestSa::new(epoch, &drops),
                    new_outbound: TestSa::new(epoch, &drops),
                    policies: vec![policy],
                    grace,
                },
                now,
            )
            .expect("rekey");
            // The peer switches once it has the new SA; the old SPI stays in
            // flight until the grace period ends.
            peer_prev.store(old_spi, Ordering::SeqCst);
            peer_spi.store(new_spi, Ordering::SeqCst);
            current_spi = new_spi;
            rekeys += 1;
        } else if i % 4 == 1 && !extra.is_empty() {
            // Unrelated churn: remove one extra SA.
            let spi = extra.swap_remove((i as usize / 4) % extra.len());
            let mut tx = ctl.transaction();
            tx.remove_inbound(spi).expect("remove");
            tx.commit().expect("commit");
        } else {
            let spi = Spi(next_spi);
            next_spi += 1;
            let mut tx = ctl.transaction();
            tx.add_inbound(spi, TestSa::new(epoch, &drops))
                .expect("add");
            tx.commit().expect("commit");
            extra.push(spi);
        }
        // Grace over: the peer has nothing in flight on the old SPI any more.
        if i % 4 == 3 {
            peer_prev.store(0, Ordering::SeqCst);
        }
        if peer_prev.load(Ordering::SeqCst) == 0 {
            ctl.expire(now).expect("expire");
        }
        // A failed transaction publishes nothing and changes nothing.
        let before = ctl.generation();
        let mut tx = ctl.transaction();
        tx.add_inbound(Spi(0x7777_0000), TestSa::new(epoch, &drops))
            .expect("add");
        assert_eq!(
            tx.add_inbound(Spi(current_spi), TestSa::new(epoch, &drops))
                .err(),
            Some(SaError::DuplicateSpi(Spi(current_spi)))
        );
        drop(tx);
        assert_eq!(ctl.generation(), before);
        assert!(ctl.inbound(Spi(0x7777_0000)).is_none(), "rolled back");
        if i.is_multiple_of(16) {
            // Let the workers run a little so updates interleave with bursts.
            thread::yield_now();
        }
    }
    let published = ctl.generation();
    // Let every worker see the final state before stopping.
    let seen = total_bursts.load(Ordering::Relaxed);
    // (A worker that died would stop counting: stop waiting then, join reports it.)
    while total_bursts.load(Ordering::Relaxed) < seen + 100
        && !workers.iter().any(|w| w.is_finished())
    {
        thread::yield_now();
    }
    stop.store(true, Ordering::Release);
    let reports: Vec<WorkerReport> = workers
        .into_iter()
        .map(|w| w.join().expect("worker thread"))
        .collect();

    for r in &reports {
        assert!(r.bursts > 0 && r.lookups > 0, "{r:?}");
        assert_eq!(r.misses, 0, "an SA that must exist was missing: {r:?}");
        assert_eq!(r.no_policy, 0, "{r:?}");
        assert_eq!(
            r.epoch_went_back, 0,
            "a worker saw an older snapshot: {r:?}"
        );
    }
    assert!(published >= 1_000);
    assert!(rekeys >= 150, "{rekeys} rekeys");
    eprintln!("published {published} snapshots, {rekeys} rekeys, reports {reports:?}");

    // Remove the remaining old inbound SAs, then everything.
    now += grace * 2;
    ctl.expire(now).expect("expire");
    let snapshot = ctl.current();
    let spis: Vec<Spi> = snapshot.inbound_iter().map(|(spi, _)| spi).collect();
    drop(snapshot);
    assert_eq!(
        spis.len(),
        1 + extra.len(),
        "only the live tunnel and the extras are left"
    );
    let out = current_outbound(&ctl);
    let mut tx = ctl.transaction();
    for spi in spis {
        tx.remove_inbound(spi).expect("remove");
    }
    assert_eq!(
        tx.remove_outbound(out).map(|()| "removed"),
        Ok("removed"),
        "removal is checked at commit"
    );
    tx.remove_policy(policy).expect("remove policy");
    tx.commit().expect("commit");
    ctl.reclaim();
    let stats = ctl.stats();
    assert_eq!(
        stats.publisher.pending, 0,
        "workers are gone: nothing may stay retired"
    );
    assert_eq!(stats.publisher.reclaimed, stats.publisher.published);
    assert_eq!(
        drops.dropped.load(Ordering::SeqCst),
        drops.created.load(Ordering::SeqCst),
        "every SA ever created was freed"
    );
    assert_eq!(
        drops.dropped_on_worker.load(Ordering::SeqCst),
        0,
        "no free on a worker"
    );
    drop(ctl);
}

/// SPI of the inbound SA of rekey number `epoch` (churn SAs use 0x10_0000 up).
fn rekey_spi(epoch: u64) -> Spi {
    Spi(0x1000 + epoch as u32)
}

fn current_outbound(ctl: &SaControl<TestSa, TestSa>) -> dataplane::sa::SaId {
    let snap = ctl.current();
    let flow = FlowV4::v4(
        Ipv4Addr::new(10, 1, 0, 1),
        Ipv4Addr::new(10, 2, 0, 1),
        6,
        1,
        2,
    );
    match snap.outbound_v4(&flow) {
        Decision::Protect(sa) => sa.id(),
        other => panic!("expected PROTECT, got {other:?}"),
    }
}

#[test]
fn removing_an_outbound_sa_in_use_is_refused_and_rolled_back() {
    let drops = Arc::new(Drops::default());
    let mut ctl = SaControl::<TestSa, TestSa>::new(8);
    let mut tx = ctl.transaction();
    let out = tx.add_outbound(TestSa::new(0, &drops)).expect("add");
    tx.add_policy(PolicySpec {
        priority: 1,
        selector: Selector::subnets(IpPrefix::ANY_V4, IpPrefix::ANY_V4),
        action: PolicyAction::Protect(out),
    })
    .expect("policy");
    let generation = tx.commit().expect("commit");

    let mut tx = ctl.transaction();
    tx.remove_outbound(out).expect("staged");
    let err = tx.commit().err();
    assert!(
        matches!(err, Some(SaError::DanglingPolicy { sa, .. }) if sa == out),
        "{err:?}"
    );
    assert_eq!(ctl.generation(), generation, "nothing published");
    assert!(ctl.outbound(out).is_some(), "rolled back");

    let mut tx = ctl.transaction();
    assert_eq!(
        tx.add_inbound(Spi(255), TestSa::new(0, &drops)).err(),
        Some(SaError::ReservedSpi(Spi(255)))
    );
    drop(tx);
    // Capacity 8: one slot used, seven left.
    let mut tx = ctl.transaction();
    for spi in 0..7 {
        tx.add_inbound(Spi(0x1000 + spi), TestSa::new(0, &drops))
            .expect("room");
    }
    assert_eq!(
        tx.add_inbound(Spi(0x2000), TestSa::new(0, &drops)).err(),
        Some(SaError::TableFull { capacity: 8 })
    );
    tx.commit().expect("commit");
    assert_eq!(ctl.current().inbound_len(), 7);
    drop(ctl);
    assert_eq!(
        drops.dropped.load(Ordering::SeqCst),
        drops.created.load(Ordering::SeqCst)
    );
}
