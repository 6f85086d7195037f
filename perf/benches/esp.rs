//! ESP encap/decap per packet next to the raw AEAD call on the same bytes
//! (issue 5 goal: encap/decap <= 1.15 x raw AEAD at 1400 B, <= 1.5 x at 64 B).
//!
//! Sizes are inner IP packet sizes; "raw" seals/opens exactly the plaintext the
//! ESP path seals (inner + padding + trailer) with the same AAD length. After
//! criterion has run, a table of medians and ratios is printed (and written to
//! `$CARGO_TARGET_DIR/criterion/esp-table.md`).
//!
//! Time is the benchmark thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not wall
//! time: the development machines have 2 cores shared with builds, and a
//! preempted iteration would otherwise be charged to whichever bench ran.
//!
//!   cargo bench -p perf --bench esp            # everything
//!   cargo bench -p perf --bench esp -- aes128  # a filter
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion};
use cpu_time::ThreadTime;
use dataplane::crypto::{new_aead, Aead, AeadOp, Algorithm, Backend, TAG_LEN};
use dataplane::esp::{
    decap, encap, InboundConfig, InboundSa, OutboundConfig, OutboundSa, OutboundState, UdpEncap,
};
use dataplane::packet::{HeapPacket, Packet};
use dataplane::wire::Spi;

const SIZES: [usize; 3] = [64, 512, 1400];
const ALGS: [(Algorithm, &str); 3] = [
    (Algorithm::Aes128Gcm, "aes128gcm"),
    (Algorithm::Aes256Gcm, "aes256gcm"),
    (Algorithm::ChaCha20Poly1305, "chacha20poly1305"),
];
const HEADROOM: usize = 128;

fn inner(len: usize) -> Vec<u8> {
    let mut p = vec![0x5au8; len];
    p[0] = 0x45;
    p[1] = 0;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p
}

struct Setup {
    aead: Arc<dyn Aead>,
    out: OutboundSa,
    inb: InboundSa,
    inner: Vec<u8>,
    /// Plaintext length the ESP path seals for this inner size.
    pt_len: usize,
}

fn setup(alg: Algorithm, backend: Backend, size: usize) -> Option<Setup> {
    let keymat: Vec<u8> = (0..alg.keymat_len() as u8).collect();
    let aead: Arc<dyn Aead> = Arc::from(new_aead(alg, &keymat, backend).ok()?);
    let mut cfg = OutboundConfig::new(
        Spi(0x1000_0001),
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 2)),
    );
    // strongSwan's peer always speaks ESP-in-UDP: bench the path it uses.
    cfg.udp = Some(UdpEncap::default());
    let out = OutboundSa::new(cfg, aead.clone()).ok()?;
    // The default 1024-packet replay window: every decap input has a new number.
    let inb = InboundSa::new(InboundConfig::new(Spi(0x1000_0001)), aead.clone()).ok()?;
    let inner = inner(size);
    let mut p = HeapPacket::from_slice_with_room(&inner, HEADROOM, 288);
    encap(&out, &out.new_state(), &mut p).ok()?;
    let pt_len = p.len() - out.header_overhead() - TAG_LEN;
    // Check correctness before timing: the sealed packet opens to the input.
    let mut q = p.clone();
    decap(&inb, &inb.new_state().ok()?, &mut q).ok()?;
    if q.data() != &inner[..] {
        return None;
    }
    Some(Setup { aead, out, inb, inner, pt_len })
}

/// Thread CPU time as a criterion measurement; values are nanoseconds like WallTime's.
struct ThreadCpu;

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpu {
    type Intermediate = ThreadTime;
    type Value = Duration;

    fn start(&self) -> ThreadTime {
        ThreadTime::now()
    }
    fn end(&self, i: ThreadTime) -> Duration {
        i.elapsed()
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    for backend in Backend::ALL {
        for (alg, alg_name) in ALGS {
            if !backend.is_available(alg) {
                continue;
            }
            for size in SIZES {
                let Some(s) = setup(alg, backend, size) else {
                    eprintln!("esp bench: {alg_name}/{backend}/{size}: seal/open self-check failed, skipped");
                    continue;
                };
                let mut g = c.benchmark_group(format!("esp/{alg_name}/{backend}/{size}"));
                g.throughput(criterion::Throughput::Bytes(size as u64));

                let aad = [0u8; 8];
                let mut buf = vec![0u8; s.pt_len];
                let mut tag = [0u8; TAG_LEN];
                g.bench_function("raw_seal", |b| {
                    b.iter(|| {
                        s.aead.seal(AeadOp { iv: [1; 8], aad: &aad, data: &mut buf, tag: &mut tag });
                        black_box(&tag);
                    })
                });

                let state = OutboundState::new(true);
                let mut p = HeapPacket::from_slice_with_room(&s.inner, HEADROOM, 288);
                let hdr = s.inner[..40.min(size)].to_vec();
                g.bench_function("encap", |b| {
                    b.iter(|| {
                        // Put the window back and restore the inner header the last
                        // seal encrypted; the payload bytes do not matter for timing.
                        let _ = p.set_window(HEADROOM, size);
                        p.data_mut()[..hdr.len()].copy_from_slice(&hdr);
                        let r = encap(&s.out, &state, &mut p);
                        black_box(r)
                    })
                });

                // Opening destroys its input, so inputs are made in untimed batches
                // of 256: small enough to stay in L2 like a burst just received.
                let batch = BatchSize::NumIterations(256);
                let raw_input = {
                    let mut b = vec![0u8; s.pt_len];
                    let mut t = [0u8; TAG_LEN];
                    s.aead.seal(AeadOp { iv: [1; 8], aad: &aad, data: &mut b, tag: &mut t });
                    (b, t)
                };
                g.bench_function("raw_open", |b| {
                    b.iter_batched_ref(
                        || raw_input.clone(),
                        |(data, t)| black_box(s.aead.open(AeadOp { iv: [1; 8], aad: &aad, data, tag: t })),
                        batch,
                    )
                });
                let istate = s.inb.new_state().expect("default window");
                let sender = s.out.new_state();
                g.bench_function("decap", |b| {
                    b.iter_batched_ref(
                        || {
                            let mut p = HeapPacket::from_slice_with_room(&s.inner, HEADROOM, 288);
                            let _ = encap(&s.out, &sender, &mut p);
                            p
                        },
                        |p| black_box(decap(&s.inb, &istate, p)),
                        batch,
                    )
                });
                g.finish();
            }
        }
    }
}

/// Median in ns from criterion's estimates.json of one benchmark.
fn median_ns(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("median")?.get("point_estimate")?.as_f64()
}

fn print_table() {
    let root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("criterion");
    let mut out = String::from(
        "| algorithm | backend | size B | raw seal ns | encap ns | encap/raw | raw open ns | decap ns | decap/raw |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut rows = 0;
    for backend in Backend::ALL {
        for (_, alg_name) in ALGS {
            for size in SIZES {
                let group = root.join(format!("esp_{alg_name}_{backend}_{size}"));
                let m = |f: &str| median_ns(&group.join(f));
                let (Some(rs), Some(en), Some(ro), Some(de)) = (m("raw_seal"), m("encap"), m("raw_open"), m("decap"))
                else {
                    continue;
                };
                rows += 1;
                out += &format!(
                    "| {alg_name} | {backend} | {size} | {rs:.0} | {en:.0} | {:.2} | {ro:.0} | {de:.0} | {:.2} |\n",
                    en / rs,
                    de / ro
                );
            }
        }
    }
    if rows > 0 {
        println!("\n{out}");
        let _ = std::fs::write(root.join("esp-table.md"), &out);
    }
}

fn main() {
    let mut c = Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
    print_table();
}
