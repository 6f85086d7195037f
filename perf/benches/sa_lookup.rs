//! SA tables (issue 8): inbound SPI lookup at 1/1k/100k/1M SAs, SPD lookup at
//! 1/10/100/1000 policies per strategy, and the worker-side cost per burst of
//! the publication schemes. Throughput is per lookup (criterion "elements").
//! The bytes per SA, std HashMap comparison and control-side commit costs are
//! printed by `cargo run --release -p perf --bin sa_table`.
//!
//!   cargo bench -p perf --bench sa_lookup
//!   cargo bench -p perf --bench sa_lookup -- spd   # a filter
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use dataplane::spd::Strategy;
use perf::sa_tables::{build_inbound, flows, lookup_order, lookup_pass, spd, spd_pass};

fn spi_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("spi_lookup");
    g.measurement_time(Duration::from_secs(3));
    for n in [1usize, 1_000, 100_000, 1_000_000] {
        let (ctl, spis) = build_inbound(n);
        let snap = ctl.current();
        let keys = lookup_order(&spis, 4096);
        g.throughput(Throughput::Elements(keys.len() as u64));
        g.bench_function(format!("{n}_sas"), |b| {
            b.iter(|| lookup_pass(&snap, black_box(&keys)))
        });
    }
    g.finish();
}

fn spd_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("spd_lookup");
    g.measurement_time(Duration::from_secs(2));
    for n in [1usize, 10, 100, 1000] {
        let fl = flows(n, 1024);
        g.throughput(Throughput::Elements(fl.len() as u64));
        for (strategy, name) in [
            (Strategy::Linear, "linear"),
            (Strategy::TupleSpace, "tuple_space"),
            (Strategy::Auto, "auto"),
        ] {
            let s = spd(n, 0, strategy);
            g.bench_function(format!("{n}_policies_{name}"), |b| {
                b.iter(|| spd_pass(&s, black_box(&fl)))
            });
        }
    }
    g.finish();
}

/// Steady state (nothing published meanwhile): cost per burst of getting the
/// snapshot and passing a quiescent point, plus one lookup. The bin also runs
/// each scheme with a publisher thread beside it.
fn publication(c: &mut Criterion) {
    let (ctl, spis) = build_inbound(1024);
    let key = spis[7];
    let mut g = c.benchmark_group("publication_per_burst");
    g.measurement_time(Duration::from_secs(2));

    let mut reader = ctl.reader();
    g.bench_function("qsbr", |b| {
        b.iter(|| reader.load().inbound(black_box(key)).map(|s| s.tag))
    });
    drop(reader);

    let swap = arc_swap::ArcSwap::new(ctl.current());
    g.bench_function("arc_swap", |b| {
        b.iter(|| swap.load().inbound(black_box(key)).map(|s| s.tag))
    });

    // Deref of an epoch `Shared` needs `unsafe` (forbidden here): time the
    // pin + pointer load, look up through an Arc we hold.
    let table = ctl.current();
    let atomic = crossbeam_epoch::Atomic::new(0u64);
    g.bench_function("crossbeam_epoch", |b| {
        b.iter(|| {
            let guard = crossbeam_epoch::pin();
            let p = atomic.load(std::sync::atomic::Ordering::Acquire, &guard);
            black_box(p.as_raw());
            table.inbound(black_box(key)).map(|s| s.tag)
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    spi_lookup(&mut c);
    spd_lookup(&mut c);
    publication(&mut c);
    c.final_summary();
}
