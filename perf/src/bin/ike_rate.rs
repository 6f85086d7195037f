//! IKE SAs (each with its first Child SA) established per second (issue 6):
//!
//! - **in memory**: two `Endpoint`s in one thread, messages handed over
//!   directly (no I/O): the cost of IKE_SA_INIT + IKE_AUTH on both ends;
//! - **loopback UDP**: two manager threads (`controlplane::manager`) on
//!   127.0.0.1 / 127.0.0.2 with kernel UDP sockets, SAs counted by a sink;
//!   `sequential` waits for each setup before the next, `burst` asks for all
//!   of them at once.
//!
//! Rates per wall second and per CPU second (thread or process CPU time), since
//! other sessions share these 2-core machines.
//!
//! `cargo run --release -p perf --bin ike_rate [CPU_SECONDS=2]`
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use controlplane::identity::Identity;
use controlplane::ikev2::{Action, ChildSaInstall, ChildSaRemove, ConnectionConfig, Endpoint, Event};
use controlplane::manager::{Manager, ManagerHandle, OsEntropy, SaSink, SinkError, UdpTransport};
use controlplane::proposal::{Proposal, Protocol};
use controlplane::selector::TrafficSelector;

const SUITES: [(&str, &str); 4] = [
    ("aes128gcm16-prfsha256-ecp256", "aes128gcm16"),
    ("aes256gcm16-prfsha384-x25519", "aes256gcm16"),
    ("aes256gcm16-prfsha384-ecp384", "aes256gcm16"),
    ("aes256gcm16-prfsha256-modp2048", "aes256gcm16"),
];

fn conn(name: &str, local: &str, remote: &str, lts: &str, rts: &str, ike: &str, esp: &str) -> ConnectionConfig {
    let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
    let id = |s: &str| -> Identity { s.parse().expect("identity") };
    let mut c = ConnectionConfig::new(
        name,
        SocketAddr::new(ip(local), 500),
        Some(SocketAddr::new(ip(remote), 500)),
        id(local),
        id(remote),
        b"ike rate benchmark",
        vec![Proposal::parse_supported(Protocol::Ike, ike).expect("ike proposal")],
        vec![Proposal::parse_supported(Protocol::Esp, esp).expect("esp proposal")],
        vec![TrafficSelector::from_cidr(lts).expect("ts")],
        vec![TrafficSelector::from_cidr(rts).expect("ts")],
    );
    // Every setup is a new IKE SA with the same IDs: INITIAL_CONTACT would make
    // the responder delete all earlier ones (RFC 7296 §2.4), which is not what
    // a gateway with many peers does.
    c.initial_contact = false;
    c
}

/// utime + stime of a /proc stat file in seconds (fields 14 and 15, in
/// USER_HZ = 100 ticks on Linux): 10 ms resolution, so runs last seconds.
fn cpu_secs(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).expect("/proc stat");
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // rest starts at field 3: utime is field 14 -> index 11.
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

/// (rate per wall second, rate per CPU second)
fn memory_rate(ike: &str, esp: &str, min_cpu: f64, max: usize) -> (f64, f64) {
    let mut a = Endpoint::new(Box::new(OsEntropy));
    let mut b = Endpoint::new(Box::new(OsEntropy));
    let now = Instant::now();
    let (ida, _) = a.add_connection(conn("a", "198.51.100.1", "198.51.100.2", "10.1.0.0/24", "10.2.0.0/24", ike, esp), now);
    let _ = b.add_connection(conn("b", "198.51.100.2", "198.51.100.1", "10.2.0.0/24", "10.1.0.0/24", ike, esp), now);
    let (wall, cpu0) = (Instant::now(), cpu_secs("/proc/thread-self/stat"));
    let mut children = 0;
    let mut n = 0;
    // At least `min_cpu` seconds of CPU (the clock has 10 ms ticks), at most `max` setups.
    while n < max && (n % 10 != 0 || cpu_secs("/proc/thread-self/stat") - cpu0 < min_cpu) {
        n += 1;
        let mut wire: VecDeque<(bool, SocketAddr, SocketAddr, Vec<u8>)> = VecDeque::new();
        let mut take = |to_b: bool, acts: Vec<Action>, wire: &mut VecDeque<_>| {
            for act in acts {
                match act {
                    Action::Send { from, to, bytes } => wire.push_back((!to_b, from, to, bytes)),
                    Action::Event(Event::ChildSaUp { .. }) => children += 1,
                    Action::Event(Event::Failure(f)) => panic!("benchmark setup failed: {f}"),
                    _ => {}
                }
            }
        };
        take(false, a.initiate(ida, now), &mut wire);
        while let Some((to_b, from, to, bytes)) = wire.pop_front() {
            let acts = if to_b { b.handle_datagram(to, from, &bytes, now) } else { a.handle_datagram(to, from, &bytes, now) };
            take(to_b, acts, &mut wire);
        }
    }
    let (wall, cpu) = (wall.elapsed(), cpu_secs("/proc/thread-self/stat") - cpu0);
    assert_eq!(children, 2 * n, "every setup brings a Child SA up on both ends");
    (n as f64 / wall.as_secs_f64(), n as f64 / cpu)
}

/// Counts installs; nothing else.
#[derive(Debug, Clone, Default)]
struct CountingSink(Arc<AtomicUsize>);

impl SaSink for CountingSink {
    fn install(&mut self, _: &ChildSaInstall, _: Instant) -> Result<(), SinkError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn remove(&mut self, _: &ChildSaRemove, _: Instant) -> Result<(), SinkError> {
        Ok(())
    }
}

fn spawn(c: ConnectionConfig, ports: (u16, u16)) -> (ManagerHandle, Arc<AtomicUsize>) {
    let t = UdpTransport::bind_ports(&[c.local.ip()], ports.0, ports.1).expect("bind loopback UDP");
    let sink = CountingSink::default();
    let count = Arc::clone(&sink.0);
    (Manager::spawn(vec![c], Box::new(t), Box::new(sink)).expect("spawn manager"), count)
}

fn wait(counts: &[&AtomicUsize], target: usize) {
    let end = Instant::now() + Duration::from_secs(120);
    while counts.iter().any(|c| c.load(Ordering::Relaxed) < target) {
        assert!(Instant::now() < end, "setups stalled at {:?} of {target}", counts.iter().map(|c| c.load(Ordering::Relaxed)).collect::<Vec<_>>());
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// (sequential per wall s, burst per wall s, burst per process CPU s)
fn udp_rate(ike: &str, esp: &str, n: usize, ports: (u16, u16)) -> (f64, f64, f64) {
    let (a, ca) = spawn(conn("a", "127.0.0.1", "127.0.0.2", "10.1.0.0/24", "10.2.0.0/24", ike, esp), ports);
    let (b, cb) = spawn(conn("b", "127.0.0.2", "127.0.0.1", "10.2.0.0/24", "10.1.0.0/24", ike, esp), ports);
    // Sequential: one setup in flight.
    let start = Instant::now();
    for i in 1..=n {
        a.initiate("a").expect("initiate");
        wait(&[&ca, &cb], i);
    }
    let seq = n as f64 / start.elapsed().as_secs_f64();
    // Burst: all requested at once (no cookies: the threshold is off by default).
    let (wall, cpu) = (Instant::now(), cpu_secs("/proc/self/stat"));
    for _ in 0..n {
        a.initiate("a").expect("initiate");
    }
    wait(&[&ca, &cb], 2 * n);
    let (wall, cpu) = (wall.elapsed(), cpu_secs("/proc/self/stat") - cpu);
    a.shutdown(false);
    b.shutdown(false);
    (seq, n as f64 / wall.as_secs_f64(), n as f64 / cpu)
}

fn main() {
    let secs: f64 = std::env::args().nth(1).map_or(2.0, |a| a.parse().expect("seconds"));
    println!("IKE SAs with one Child SA each, established per second (about {secs} s of CPU per measurement)");
    println!();
    println!("| IKE proposal | in memory /s (wall) | in memory /s (CPU) | UDP sequential /s | UDP burst /s (wall) | UDP burst /s (CPU) | UDP burst / memory (CPU) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, (ike, esp)) in SUITES.iter().enumerate() {
        let (mw, mc) = memory_rate(ike, esp, secs, 100_000);
        let ports = (42500 + 2 * i as u16, 46500 + 2 * i as u16);
        // As many UDP setups as take about `secs` of CPU at the in-memory rate.
        let n_udp = ((mc * secs) as usize).clamp(10, 3000);
        let (us, uw, uc) = udp_rate(ike, esp, n_udp, ports);
        println!("| {ike} | {mw:.0} | {mc:.0} | {us:.0} | {uw:.0} | {uc:.0} | {:.2} |", uc / mc);
    }
    println!();
    println!("CPU: in memory = the one thread's CPU time (both ends); UDP = whole process CPU time (both managers, their UDP threads, the benchmark's polling).");
}
