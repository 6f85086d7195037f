//! What handing inbound ESP to the SA's owning worker costs (issue 8 item 3), on
//! one core: a burst of 32 ESP frames (64 B inner packets, AES-128-GCM) for an SA
//! owned by worker 1
//!   - `direct`: received by worker 1, which decapsulates them;
//!   - `handoff`: received by worker 0, staged and sent through the handoff ring,
//!     taken by worker 1 and decapsulated (`Worker::process_handoff`);
//!   - `ring`: the ring alone (stage 32 packets, flush, receive them).
//!
//! The difference `handoff - direct` is the price per handed-off packet: worker
//! 0's classification, the ring, and worker 1's second look at the outer header.
//! The ring here is crossbeam's `ArrayQueue` (heap packets); the gateway uses a
//! DPDK SP/SC rte_ring of mbufs, which costs less per packet (no per-element CAS).
//! With two workers on two cores each side pays its half; on the 2-core
//! development machines the two lcores share CPUs with everything else, so a
//! 2-worker throughput figure would not mean much: this is the per-packet cost.
//!
//!   cargo bench -p perf --bench handoff   (prints a table)
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use cpu_time::ThreadTime;
use crossbeam::queue::ArrayQueue;
use dataplane::crypto::{new_aead, Algorithm, Backend};
use dataplane::esp::{encap_burst, OutboundConfig, OutboundSa};
use dataplane::packet::{HeapPacket, Packet};
use dataplane::route::RouteTable;
use dataplane::sa::Spi;
use dataplane::spd::IpPrefix;
use dataplane::stats::Stats;
use dataplane::wire::MacAddr;
use dataplane::worker::{
    connected_routes, install_static, Handoff, Interface, RecordingIo, StaticTunnel, TsSpec, TunnelControl, Worker,
    WorkerConfig,
};
use zeroize::Zeroizing;

const GW: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0]);
/// Owned by worker 1 of 2.
const SPI: u32 = 0x1001;
const BURST: usize = 32;

type Ring = Arc<ArrayQueue<HeapPacket>>;

fn heap() -> HeapPacket {
    HeapPacket::with_room(HeapPacket::DEFAULT_HEADROOM, 2048)
}

/// A 64-byte IPv4/UDP packet 10.1.0.5 -> 10.2.0.7.
fn inner() -> Vec<u8> {
    let mut p = vec![0u8; 64];
    p[..20].copy_from_slice(&[0x45, 0, 0, 64, 0, 0, 0, 0, 64, 17, 0, 0, 10, 1, 0, 5, 10, 2, 0, 7]);
    let sum = !p[..20].chunks(2).fold(0u32, |s, w| {
        let s = s + u32::from(u16::from_be_bytes([w[0], w[1]]));
        (s & 0xffff) + (s >> 16)
    }) as u16;
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p[20..28].copy_from_slice(&[4, 0, 0, 9, 0, 44, 0, 0]);
    p
}

/// The peer's ESP frames for the SA (replay window off: the bench replays them).
fn frames(key: &[u8]) -> Vec<Vec<u8>> {
    let aead = new_aead(Algorithm::Aes128Gcm, key, Backend::Auto).expect("key");
    let sa = OutboundSa::new(OutboundConfig::new(Spi(SPI), IpAddr::V4(PEER), IpAddr::V4(GW)), Arc::from(aead))
        .expect("sa");
    let state = sa.new_state();
    let mut pkts: Vec<HeapPacket> = (0..BURST).map(|_| HeapPacket::from_slice(&inner())).collect();
    let mut results = vec![Ok(()); BURST];
    encap_burst(&sa, &state, &mut pkts, &mut results);
    pkts.iter().map(|p| [&GW_MAC.0[..], &[2, 0, 0, 0, 2, 0], &[8, 0], p.data()].concat()).collect()
}

struct Bench {
    workers: Vec<Worker<HeapPacket>>,
    handoffs: Vec<Handoff<HeapPacket, Ring, Ring>>,
    frames: Vec<Vec<u8>>,
    _ctl: TunnelControl,
}

fn setup() -> Bench {
    let key: Vec<u8> = (0..20).collect();
    let interfaces = vec![
        Interface::new(GW_MAC).with_address(IpAddr::V4(GW), 24),
        Interface::new(MacAddr([2, 0, 0, 0, 1, 1])).with_address(IpAddr::V4(Ipv4Addr::new(10, 2, 0, 1)), 16),
    ];
    let routes = RouteTable::build(connected_routes(&interfaces)).expect("routes");
    let static_neighbors = vec![(1, IpAddr::V4(Ipv4Addr::new(10, 2, 0, 7)), MacAddr([2, 0, 0, 0, 0, 0xa2]))];
    let config = WorkerConfig { interfaces, routes, static_neighbors };
    let prefix = |a: [u8; 4]| TsSpec::prefix(IpPrefix::new(IpAddr::V4(Ipv4Addr::from(a)), 16).expect("prefix"));
    let tunnel = StaticTunnel {
        name: "bench".into(),
        algorithm: Algorithm::Aes128Gcm,
        local: IpAddr::V4(GW),
        remote: IpAddr::V4(PEER),
        udp: false,
        spi_in: Spi(SPI),
        spi_out: Spi(0x2002),
        key_in: Zeroizing::new(key.clone()),
        key_out: Zeroizing::new(key.clone()),
        local_ts: vec![prefix([10, 2, 0, 0])],
        remote_ts: vec![prefix([10, 1, 0, 0])],
        esn: false,
        replay_window: 0,
    };
    let mut ctl = TunnelControl::new(16);
    install_static(&mut ctl, &[tunnel], Backend::Auto).expect("install");
    let stats = Stats::new(2, 2, 16);
    let (handoffs, _) = Handoff::mesh(2, |_, _| {
        let q: Ring = Arc::new(ArrayQueue::new(1024));
        Ok::<_, ()>((Arc::clone(&q), q))
    })
    .expect("mesh");
    let workers = handoffs
        .iter()
        .enumerate()
        .map(|(w, h): (usize, &Handoff<HeapPacket, Ring, Ring>)| {
            let mut worker = Worker::new(&config, ctl.reader(), stats.core(w).expect("core"));
            worker.set_ownership(h.ownership());
            worker
        })
        .collect();
    Bench { workers, handoffs, frames: frames(&key), _ctl: ctl }
}

/// CPU time of this thread per packet of `work(input)` (freeing the packets
/// included), `input` made by `setup` outside the timed part: median over rounds of the mean per burst. Thread CPU
/// time, not wall time: the 2-core development machines run builds alongside.
fn per_packet<T>(mut setup: impl FnMut() -> T, mut work: impl FnMut(T)) -> f64 {
    const ROUNDS: usize = 15;
    const BURSTS: usize = 2000;
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let mut spent = Duration::ZERO;
            for _ in 0..BURSTS {
                let input = setup();
                let t = ThreadTime::now();
                work(input);
                spent += t.elapsed();
            }
            spent.as_nanos() as f64 / (BURSTS * BURST) as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn main() {
    let mut b = setup();
    let mut io = RecordingIo::new(heap);
    let burst = |frames: &[Vec<u8>]| frames.iter().map(|f| HeapPacket::from_slice(f)).collect::<Vec<_>>();
    let Bench { workers, handoffs, frames, .. } = &mut b;
    let frames: &[Vec<u8>] = frames;
    let (w0, w1) = workers.split_at_mut(1);
    let (h0, h1) = handoffs.split_at_mut(1);
    let (w0, w1, h0, h1) = (&mut w0[0], &mut w1[0], &mut h0[0], &mut h1[0]);
    let direct = per_packet(
        || burst(frames),
        |pkts| {
            w1.process(0, pkts, &mut io, 0);
            assert_eq!(io.sent.len(), BURST, "decapsulated");
            io.sent.clear();
        },
    );
    let handoff = per_packet(
        || burst(frames),
        |pkts| {
            w0.process(0, pkts, &mut h0.io(&mut io), 0);
            h0.flush(w0.stats());
            let inbox = h1.receive();
            w1.process_handoff(inbox, &mut io, 0);
            assert_eq!(io.sent.len(), BURST, "decapsulated by the owner");
            io.sent.clear();
        },
    );
    let ring = per_packet(
        || (0..BURST).map(|_| heap()).collect::<Vec<_>>(),
        |pkts| {
            for p in pkts {
                let _ = h0.stage(1, p, w0.stats());
            }
            h0.flush(w0.stats());
            assert_eq!(black_box(h1.receive().count()), BURST);
        },
    );
    println!("| {BURST} ESP frames (64 B inner, AES-128-GCM), one core | ns/packet (thread CPU time) |");
    println!("|---|---:|");
    println!("| direct: received by the owner, decapsulated | {direct:.1} |");
    println!("| handoff: received by worker 0, ring, decapsulated by worker 1 | {handoff:.1} |");
    println!("| handoff cost (handoff - direct) | {:.1} |", handoff - direct);
    println!("| ring alone (stage, flush, receive; heap ArrayQueue) | {ring:.1} |");
}
