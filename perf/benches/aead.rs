//! Raw AEAD cost: every backend × algorithm × {64, 512, 1400, 9000} B × {seal, open}
//! × {per packet, per 32-packet burst}. Throughput is bytes of one 32-packet burst
//! per iteration. For a compact table use `cargo run --release -p perf --bin aead_table`.
//!
//!   cargo bench -p perf --bench aead                    # everything (~4 min)
//!   cargo bench -p perf --bench aead -- aes128gcm/ipsec  # a filter
#![forbid(unsafe_code)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::crypto::Backend;
use perf::aead::{Direction, Fixture, Mode, ALGS, BURST, SIZES};

fn aead(c: &mut Criterion) {
    for (alg, alg_name) in ALGS {
        for backend in Backend::ALL.into_iter().filter(|b| b.is_available(alg)) {
            let mut group = c.benchmark_group(format!("{alg_name}/{backend}"));
            for size in SIZES {
                group.throughput(Throughput::Bytes((size * BURST) as u64));
                for (dir, dir_name) in [(Direction::Seal, "seal"), (Direction::Open, "open")] {
                    for (mode, mode_name) in
                        [(Mode::PerPacket, "per-packet"), (Mode::Burst, "burst32")]
                    {
                        let Ok(mut fx) = Fixture::new(alg, backend, size) else {
                            continue;
                        };
                        group.bench_function(format!("{dir_name}/{mode_name}/{size}"), |b| {
                            b.iter(|| fx.run(dir, mode));
                        });
                        assert_eq!(
                            fx.failures, 0,
                            "{alg_name} {backend} {size}: opens failed authentication"
                        );
                    }
                }
            }
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    // Short runs: 144 cells on a shared 2-core machine.
    config = Criterion::default().warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(20);
    targets = aead
}
criterion_main!(benches);
