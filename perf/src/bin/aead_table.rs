//! Print a compact table of AEAD cost per packet for every backend × algorithm ×
//! size × {seal, open} × {per packet, 32-packet burst}, and which backend is
//! fastest per algorithm next to what `Backend::Auto` picks on this CPU.
//!
//!   cargo run --release -p perf --bin aead_table [-- --ms 60 --alg aes128gcm --sizes 64,1400]
//!
//! Each cell is the minimum over repetitions of about 0.3 ms run for `--ms`
//! milliseconds (the minimum, not the mean: the 2-core machine is shared, and a
//! short repetition usually runs inside one scheduler time slice). Cycles are estimated from
//! the clock measured with a dependent multiply chain (3-cycle `imul` latency on
//! current Intel and AMD cores), so they are approximate; ns are measured.
//!
//! With `--slice S` it measures instead as perf/run.sh measures the gateway: 32-packet
//! bursts back to back for `--ms`, timed in on-CPU nanoseconds of the thread, and
//! prints the whole window's ns per packet and that of its best S-second slice (one
//! row per `--op`). On a shared VM the minimum of 0.3 ms repetitions is well below
//! what any 0.25 s stretch gets (20-25% for ipsec-mb at 1392 B on the Xeon of
//! perf/README), so a limit built from it against the gateway's slices compares two
//! different statistics.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use dataplane::crypto::{ipsec_mb_path, Algorithm, Backend};
use perf::aead::{Direction, Fixture, Mode, ALGS, BURST, SIZES};

struct Args {
    budget: Duration,
    algs: Vec<(Algorithm, &'static str)>,
    backends: Vec<Backend>,
    sizes: Vec<usize>,
    offset: usize,
    /// Bursts of buffers taken in turn: 1 keeps the data in L1 (as far as a
    /// burst fits); more put it where a gateway's is, a few mbufs' worth away.
    sets: usize,
    /// `--slice`: measure windows and their best slice instead of the minimum.
    slice: Option<Duration>,
    ops: Vec<Direction>,
}

fn usage(msg: &str) -> ! {
    eprintln!("aead_table: {msg}");
    eprintln!("usage: aead_table [--ms N] [--alg aes128gcm|aes256gcm|chacha20poly1305] [--backend rustcrypto|ring|ipsec-mb|aesni|chacha-avx512|auto] [--sizes 64,512,...] [--offset BYTES] [--sets N] [--slice SECONDS [--op seal|open]]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        budget: Duration::from_millis(60),
        algs: ALGS.to_vec(),
        backends: [Backend::ALL.as_slice(), &[Backend::Auto]].concat(),
        sizes: SIZES.to_vec(),
        offset: 0,
        sets: 1,
        slice: None,
        ops: vec![Direction::Seal, Direction::Open],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--ms" => {
                a.budget = Duration::from_millis(
                    val.parse()
                        .unwrap_or_else(|_| usage("--ms takes milliseconds")),
                )
            }
            "--alg" => a.algs.retain(|(_, n)| *n == val),
            "--backend" => {
                let b: Backend = val.parse().unwrap_or_else(|e| usage(&format!("{e}")));
                a.backends.retain(|x| *x == b);
            }
            "--sizes" => {
                a.sizes = val
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse()
                            .unwrap_or_else(|_| usage("--sizes takes 64,512,..."))
                    })
                    .collect();
            }
            "--offset" => a.offset = val.parse().unwrap_or_else(|_| usage("--offset takes bytes")),
            "--sets" => a.sets = val.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| usage("--sets takes a count of 1 or more")),
            "--slice" => {
                let secs: f64 = val.parse().ok().filter(|s: &f64| *s > 0.0 && s.is_finite()).unwrap_or_else(|| usage("--slice takes seconds (e.g. 0.25)"));
                a.slice = Some(Duration::from_secs_f64(secs));
            }
            "--op" => {
                a.ops = match val.as_str() {
                    "seal" => vec![Direction::Seal],
                    "open" => vec![Direction::Open],
                    _ => usage("--op takes seal or open"),
                }
            }
            other => usage(&format!("unknown flag {other}")),
        }
    }
    if a.algs.is_empty() || a.backends.is_empty() || a.sizes.is_empty() {
        usage("filters left nothing to measure");
    }
    a
}

/// Minimum over many short repetitions of `f` (each taking about `rep`), run
/// until `budget` is spent. Short repetitions usually fit inside one scheduler
/// time slice, so on a shared, loaded machine the minimum is the uncontended cost.
fn min_time(budget: Duration, rep: Duration, mut f: impl FnMut(u32)) -> (f64, u32) {
    let time = |f: &mut dyn FnMut(u32), n: u32| {
        let start = Instant::now();
        f(n);
        start.elapsed()
    };
    let mut iters = 1u32;
    while time(&mut f, iters) < rep && iters < (1 << 24) {
        iters *= 2;
    }
    let start = Instant::now();
    let mut best = f64::MAX;
    let mut reps = 0;
    while reps < 5 || start.elapsed() < budget {
        best = best.min(time(&mut f, iters).as_nanos() as f64 / f64::from(iters));
        reps += 1;
    }
    (best, reps)
}

/// Core clock in GHz from a chain of dependent 64-bit multiplies (3 cycles each).
fn estimate_ghz(budget: Duration) -> f64 {
    let (ns_per_mul, _) = min_time(budget, Duration::from_micros(200), |n| {
        let mut x = black_box(0x9e37_79b9_7f4a_7c15u64);
        for _ in 0..n {
            // Repeated squaring: a serial chain LLVM cannot shorten (multiplying by
            // a constant could be folded into fewer multiplies); imul latency does
            // not depend on the value.
            x = x.wrapping_mul(x);
        }
        black_box(x);
    });
    3.0 / ns_per_mul
}

/// One burst per call, the fixtures' bursts in turn.
fn bursts_in_turn(fx: &mut [Fixture], dir: Direction, mode: Mode) -> impl FnMut() + '_ {
    let mut next = 0;
    move || {
        if let Some(f) = fx.get_mut(next) {
            f.run(dir, mode);
        }
        next = (next + 1) % fx.len().max(1);
    }
}

/// Minimum nanoseconds per packet for one cell (runs of one burst each, the
/// fixtures' bursts in turn).
fn ns_per_packet(fx: &mut [Fixture], dir: Direction, mode: Mode, budget: Duration) -> f64 {
    let sets = fx.len() as u32;
    let mut burst = bursts_in_turn(fx, dir, mode);
    let mut run = |n: u32| (0..n).for_each(|_| burst());
    run(3 * sets);
    let (ns_per_run, _) = min_time(budget, Duration::from_micros(300), run);
    ns_per_run / BURST as f64
}

/// `args.sets` keyed fixtures of one cell and the backend's label (`auto=…` names
/// what Auto built); `None` if the backend cannot key this algorithm.
fn fixtures(args: &Args, alg: Algorithm, backend: Backend, size: usize) -> Option<(Vec<Fixture>, String)> {
    let fx = (0..args.sets).map(|_| Fixture::at_offset(alg, backend, size, args.offset)).collect::<Result<Vec<_>, _>>().ok()?;
    let label = if backend == Backend::Auto {
        format!("auto={}", fx.first().map_or("?", Fixture::backend))
    } else {
        backend.to_string()
    };
    Some((fx, label))
}

/// Stop with a BUG line if any open of the cell's fixtures failed authentication.
fn exit_on_failures(fx: &[Fixture], alg_name: &str, backend: Backend, size: usize) {
    let failures: u64 = fx.iter().map(|f| f.failures).sum();
    if failures != 0 {
        eprintln!("BUG: {alg_name} {backend} {size} B: {failures} opens failed authentication");
        std::process::exit(1);
    }
}

/// Nanoseconds this thread has run on a CPU (the first field of
/// /proc/thread-self/schedstat, as perf/forward/telemetry_rate.py reads the
/// gateway's), or `None` where the kernel does not keep it.
fn oncpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// ns per call of `f` per on-CPU second (wall-clock ns where schedstat is missing):
/// over `budget` after a warm-up, and in the best of its `slice`-long stretches.
fn sliced(budget: Duration, slice: Duration, mut f: impl FnMut()) -> (f64, f64) {
    let base = Instant::now();
    let on_cpu = oncpu_ns().is_some();
    let clock = || if on_cpu { oncpu_ns().unwrap_or(0) } else { base.elapsed().as_nanos() as u64 };
    let warm = Instant::now();
    let mut calls_per_ms = 0u64;
    while warm.elapsed() < Duration::from_millis(200) {
        f();
        calls_per_ms += 1;
    }
    // Read the clock about every millisecond (a read costs a few microseconds).
    let every = (calls_per_ms / 200).max(1);
    let (start, c0) = (Instant::now(), clock());
    let (mut slice_start, mut slice_c0, mut slice_calls, mut calls) = (start, c0, 0u64, 0u64);
    let mut best = f64::MAX;
    while start.elapsed() < budget {
        for _ in 0..every {
            f();
        }
        calls += every;
        slice_calls += every;
        if slice_start.elapsed() >= slice {
            let c = clock();
            if c > slice_c0 {
                best = best.min((c - slice_c0) as f64 / slice_calls as f64);
            }
            (slice_start, slice_c0, slice_calls) = (Instant::now(), c, 0);
        }
    }
    let window = clock().saturating_sub(c0) as f64 / calls.max(1) as f64;
    (window, best.min(window))
}

/// The `--slice` table: per op, the window's and the best slice's ns per packet.
fn slice_table(args: &Args, slice: Duration) {
    println!(
        "AEAD cost per packet — {} — ipsec-mb arch {} — ns/pkt per on-CPU second{}, {BURST}-packet bursts for {} ms: the window and its best {} s slice",
        cpu_model(),
        ipsec_mb_path(),
        if oncpu_ns().is_some() { "" } else { " (wall clock: no schedstat)" },
        args.budget.as_millis(),
        slice.as_secs_f64()
    );
    println!();
    println!("| alg | bytes | backend | op | window | best slice |");
    println!("|---|---:|---|---|---:|---:|");
    for &(alg, alg_name) in &args.algs {
        for &size in &args.sizes {
            for &backend in args.backends.iter().filter(|b| b.is_available(alg)) {
                let Some((mut fx, label)) = fixtures(args, alg, backend, size) else {
                    continue;
                };
                for &dir in &args.ops {
                    let (window, best) = sliced(args.budget, slice, bursts_in_turn(&mut fx, dir, Mode::Burst));
                    let op = if dir == Direction::Seal { "seal" } else { "open" };
                    let per_pkt = |ns: f64| ns / BURST as f64;
                    println!("| {alg_name} | {size} | {label} | {op} | {:.1} | {:.1} |", per_pkt(window), per_pkt(best));
                }
                exit_on_failures(&fx, alg_name, backend, size);
            }
        }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// One measured row.
struct Row {
    backend: Backend,
    /// seal/1, seal/32, open/1, open/32 in ns per packet.
    ns: [f64; 4],
}

fn main() {
    let args = parse_args();
    if let Some(slice) = args.slice {
        return slice_table(&args, slice);
    }
    let ghz = estimate_ghz(Duration::from_millis(300));
    let arch = ipsec_mb_path();
    println!(
        "AEAD cost per packet — {} — ipsec-mb arch {arch} — est. {ghz:.2} GHz",
        cpu_model()
    );
    println!("ns/pkt, minimum of ~0.3 ms repetitions; /1 = one call per packet, /32 = one call per {BURST}-packet burst; cyc = ns × GHz; Gbps from /32");
    println!();
    println!("| alg | bytes | backend | seal/1 | seal/32 | open/1 | open/32 | cyc seal/1 | cyc open/1 | Gbps seal | Gbps open |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut winners = Vec::new();
    for &(alg, alg_name) in &args.algs {
        for &size in &args.sizes {
            let mut rows = Vec::new();
            for &backend in args.backends.iter().filter(|b| b.is_available(alg)) {
                let Some((mut fx, label)) = fixtures(&args, alg, backend, size) else {
                    continue;
                };
                let mut ns = [0.0; 4];
                for (k, (dir, mode)) in [
                    (Direction::Seal, Mode::PerPacket),
                    (Direction::Seal, Mode::Burst),
                    (Direction::Open, Mode::PerPacket),
                    (Direction::Open, Mode::Burst),
                ]
                .into_iter()
                .enumerate()
                {
                    ns[k] = ns_per_packet(&mut fx, dir, mode, args.budget);
                }
                exit_on_failures(&fx, alg_name, backend, size);
                let gbps = |n: f64| size as f64 * 8.0 / n;
                println!(
                    "| {alg_name} | {size} | {label} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} |",
                    ns[0], ns[1], ns[2], ns[3], ns[0] * ghz, ns[2] * ghz, gbps(ns[1]), gbps(ns[3])
                );
                rows.push(Row { backend, ns });
            }
            // Fastest = lowest seal/32 + open/32 (a gateway does both).
            if let Some(best) = rows
                .iter()
                .filter(|r| r.backend != Backend::Auto)
                .min_by(|a, b| (a.ns[1] + a.ns[3]).total_cmp(&(b.ns[1] + b.ns[3])))
            {
                winners.push((alg, alg_name, size, best.backend));
            }
        }
    }
    println!();
    println!("| alg | bytes | fastest (seal/32 + open/32) | Backend::Auto picks |");
    println!("|---|---:|---|---|");
    for (alg, alg_name, size, best) in winners {
        println!(
            "| {alg_name} | {size} | {best} | {} |",
            Backend::auto_choice(alg)
        );
    }
}
