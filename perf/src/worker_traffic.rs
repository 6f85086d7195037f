//! The one-tunnel ESP gateway of perf/run.sh as a `dataplane::worker::Worker`
//! on heap packets, with the same traffic, for offline measurements of the
//! worker's own code (perf/esp/insns.sh counts its instructions per packet).
//!
//! The gateway is configured as perf/esp/config.sh configures `ipsecgw run`
//! (same ports, addresses, MACs, SPIs, keys, selectors, route and neighbours),
//! the plaintext frames are perf/esp/esp_pcap.py's `plain` frames (64 flows
//! 10.1.0.x -> 10.2.0.x UDP), and the ESP frames for decap are made by a peer:
//! a second worker configured as the other end of the tunnel, encapsulating
//! those plaintext frames with the library's own encap. The same peer checks
//! the gateway's ESP output by decapsulating it. The outer header is IPv4 and
//! raw ESP as in perf/run.sh, or (an [`Outer`]) ESP in UDP 4500 and/or IPv6.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use dataplane::crypto::{Algorithm, Backend};
use dataplane::packet::{HeapPacket, Packet};
use dataplane::route::{Route, RouteTable};
use dataplane::sa::Spi;
use dataplane::spd::IpPrefix;
use dataplane::stats::Stats;
use dataplane::wire::{ethernet, EtherType, Ipv4Packet, MacAddr, UdpPacket};
use dataplane::worker::{
    connected_routes, install_static, Interface, RecordingIo, StaticTunnel, TsSpec, TunnelControl, Worker, WorkerConfig,
};
use zeroize::Zeroizing;

use crate::aead::ALGS;

/// Frames per burst (the gateway's rx burst).
pub use crate::aead::BURST;
/// Distinct flows (frames) in the traffic, as perf/run.sh's pcaps (`--count 64`).
pub const FLOWS: usize = 64;

/// perf/esp/esp_pcap.py: the gateway's MAC (both ports), the peer's, the inner host's.
const GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const HOST_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 3]);
const GW_OUT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PEER_OUT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The same over IPv6 (scripts/tests/tunnel_ipv6.sh's outer link).
const GW_OUT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);
const PEER_OUT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 2);
/// The inner next hop of decapsulated traffic (config.sh's route via 10.9.0.254).
const INNER_HOP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 254);
/// config.sh's ESP_SPI_IN / ESP_SPI_OUT (the gateway's view).
const SPI_IN: u32 = 0x1001;
const SPI_OUT: u32 = 0x2002;

/// Which way the gateway's traffic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Plaintext in on "inside" (port 0), ESP out on "outside" (port 1).
    Encap,
    /// ESP in on "outside" (port 0), plaintext out on "inside" (port 1).
    Decap,
}

impl FromStr for Dir {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "encap" => Ok(Dir::Encap),
            "decap" => Ok(Dir::Decap),
            _ => Err(format!("direction {s:?}: use encap or decap")),
        }
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dir::Encap => "encap",
            Dir::Decap => "decap",
        })
    }
}

/// The tunnel's outer header: IPv4 or IPv6, raw ESP or ESP in UDP 4500
/// (RFC 3948). perf/run.sh's is IPv4 and raw ESP (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outer {
    /// IPv6 (2001:db8:100::1 <-> ::2) instead of IPv4 (198.51.100.1 <-> .2).
    pub v6: bool,
    /// ESP in UDP 4500 instead of raw ESP.
    pub udp: bool,
}

impl Outer {
    /// From perf/esp/config.sh's switches: `ESP_V6=1`, `ESP_UDP=1`.
    pub fn from_env() -> Outer {
        let on = |name| std::env::var(name).is_ok_and(|v| v == "1");
        Outer { v6: on("ESP_V6"), udp: on("ESP_UDP") }
    }

    /// (the gateway's outer address, the peer's).
    fn addresses(self) -> (IpAddr, IpAddr) {
        if self.v6 {
            (IpAddr::V6(GW_OUT6), IpAddr::V6(PEER_OUT6))
        } else {
            (IpAddr::V4(GW_OUT), IpAddr::V4(PEER_OUT))
        }
    }
}

impl fmt::Display for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.v6 { "IPv6" } else { "IPv4" })?;
        f.write_str(if self.udp { " UDP 4500" } else { " raw ESP" })
    }
}

/// How the 64 flows map to SAs: perf/run.sh's one tunnel for 10.1.0.0/16 <->
/// 10.2.0.0/16 (the default), or config.sh's `ESP_TUNNELS=N`: N tunnels, flow j
/// (to 10.2.0.(2 + j)) tunnel j % N's by a /32 selector, tunnel k with SPIs
/// `SPI_IN/OUT + 0x100 k` and keys whose second byte is 1 + k.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tunnels(pub Option<usize>);

impl Tunnels {
    /// From perf/esp/config.sh's `ESP_TUNNELS` (unset or empty: the one tunnel).
    pub fn from_env() -> Result<Tunnels, String> {
        match std::env::var("ESP_TUNNELS") {
            Ok(v) if !v.is_empty() => match v.parse() {
                Ok(n) if (1..=FLOWS).contains(&n) => Ok(Tunnels(Some(n))),
                _ => Err(format!("ESP_TUNNELS={v}: 1 to {FLOWS}")),
            },
            _ => Ok(Tunnels(None)),
        }
    }
}

impl fmt::Display for Tunnels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("one tunnel"),
            Some(n) => write!(f, "{n} tunnels taking the flows in turn"),
        }
    }
}

/// Algorithm by perf/run.sh's name (the names of [`ALGS`]).
pub fn algorithm(name: &str) -> Result<Algorithm, String> {
    ALGS.iter()
        .find(|(_, n)| *n == name)
        .map(|&(alg, _)| alg)
        .ok_or_else(|| format!("algorithm {name:?}: use aes128gcm, aes256gcm or chacha20poly1305"))
}

/// config.sh's `esp_key ALG N K`: key || salt, first byte 0x40 + N (0: the
/// gateway's inbound key, 1: its outbound key), second 1 + K (tunnel K), then 2, 3...
fn esp_key(alg: Algorithm, n: u8, k: usize) -> Zeroizing<Vec<u8>> {
    let byte = |i: usize| match i {
        0 => 0x40 + n,
        1 => (1 + k) as u8,
        _ => i as u8,
    };
    Zeroizing::new((0..alg.keymat_len()).map(byte).collect())
}

fn prefix(a: [u8; 4], len: u8) -> IpPrefix {
    // Constant, valid prefixes only.
    IpPrefix::new(IpAddr::V4(Ipv4Addr::from(a)), len).unwrap_or_else(|e| panic!("prefix {a:?}/{len}: {e}"))
}

/// esp_pcap.py's `plain` frames: Ethernet (host -> gateway) / IPv4 10.1.0.{2 + i % 200}
/// -> 10.2.0.{2 + i % 100}, TTL 64, ID i / UDP 1024 + i -> 9, payload bytes (i + j) & 0xff,
/// `size` bytes without FCS (at least the 42 bytes of headers).
pub fn plain_frames(size: usize, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let total = size.max(42);
            let mut f = vec![0u8; total];
            f[..14].copy_from_slice(&ethernet::header(GW_MAC, HOST_MAC, EtherType::Ipv4));
            let (src, dst) = (Ipv4Addr::new(10, 1, 0, 2 + (i % 200) as u8), Ipv4Addr::new(10, 2, 0, 2 + (i % 100) as u8));
            for (j, b) in f[42..].iter_mut().enumerate() {
                *b = (i + j) as u8;
            }
            let mut udp = UdpPacket::new_unchecked(&mut f[34..]);
            udp.set_ports(1024 + (i % 1000) as u16, 9);
            udp.set_len((total - 34) as u16);
            udp.fill_checksum_v4(src, dst);
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            ip.set_version_and_ihl();
            ip.set_total_len((total - 14) as u16);
            ip.set_ident(i as u16);
            ip.set_unfragmented(false);
            ip.set_ttl(64);
            ip.set_protocol(17.into());
            ip.set_src_addr(src);
            ip.set_dst_addr(dst);
            ip.fill_checksum();
            f
        })
        .collect()
}

/// One end of the tunnel: a worker with its tables and counters.
pub struct Site {
    /// The worker under test (or the peer's).
    pub worker: Worker<HeapPacket>,
    /// Its counters (drops must stay zero).
    pub stats: Stats,
    _ctl: TunnelControl,
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Site").finish_non_exhaustive()
    }
}

impl Site {
    /// The gateway `ipsecgw run` is in perf/run.sh for `dir` (config.sh's `esp_config`).
    pub fn gateway(dir: Dir, alg: Algorithm, outer: Outer, tunnels: Tunnels, replay_window: u32) -> Site {
        Site::new(true, dir, alg, outer, tunnels, replay_window)
    }

    /// The other end of the gateway's tunnel for `dir`: for decap it
    /// encapsulates the plaintext frames (inside port 0, ESP out on port 1),
    /// for encap it decapsulates the gateway's output (outside port 1,
    /// plaintext out on port 0 via 10.9.0.254).
    pub fn peer(dir: Dir, alg: Algorithm, outer: Outer, tunnels: Tunnels) -> Site {
        Site::new(false, dir, alg, outer, tunnels, 0)
    }

    /// The gateway (`gw`) or its peer. The end that seals (the gateway for
    /// encap, the peer for decap) has the plaintext hosts 10.1.0.0/24 on its
    /// inside port; the end that opens sends 10.2.0.0/16 via 10.9.0.254.
    fn new(gw: bool, dir: Dir, alg: Algorithm, outer: Outer, tunnels: Tunnels, replay_window: u32) -> Site {
        let seals = gw == (dir == Dir::Encap);
        // config.sh: the receiving port is 0 on the gateway; the peer keeps ESP on port 1.
        let outside_port = if gw && dir == Dir::Decap { 0 } else { 1 };
        let (gw_ip, peer_ip) = outer.addresses();
        let (own, own_mac, other, other_mac) =
            if gw { (gw_ip, GW_MAC, peer_ip, PEER_MAC) } else { (peer_ip, PEER_MAC, gw_ip, GW_MAC) };
        let inside_addr = if seals { Ipv4Addr::new(10, 1, 0, 1) } else { Ipv4Addr::new(10, 9, 0, 1) };
        // The inside port takes esp_pcap.py's plaintext frames (sent to the gateway's MAC) as they are.
        let inside = Interface::new(GW_MAC).with_address(IpAddr::V4(inside_addr), 24);
        let outside = Interface::new(own_mac).with_address(own, if own.is_ipv6() { 64 } else { 24 });
        let interfaces = if outside_port == 0 { vec![outside, inside] } else { vec![inside, outside] };
        let mut routes = connected_routes(&interfaces);
        if !seals {
            routes.push(Route { dst: IpAddr::V4(Ipv4Addr::new(10, 2, 0, 0)), len: 16, via: Some(IpAddr::V4(INNER_HOP)), port: 1 - outside_port });
        }
        let routes = RouteTable::build(routes).unwrap_or_else(|e| panic!("routes: {e}"));
        // `--neighbor` flags, each resolved on the port whose route covers it (as ipsecgw does).
        let static_neighbors = [(other, other_mac), (IpAddr::V4(INNER_HOP), HOST_MAC)]
            .iter()
            .filter_map(|&(ip, mac)| routes.lookup(ip).map(|hop| (hop.port, ip, mac)))
            .collect();
        let config = WorkerConfig { interfaces, routes, static_neighbors };
        // Room for an inbound and an outbound SA per tunnel, at most one per flow.
        let mut ctl = TunnelControl::new(2 * FLOWS as u32);
        let all = static_tunnels(gw, seals, alg, outer, tunnels, replay_window);
        install_static(&mut ctl, &all, Backend::Auto).unwrap_or_else(|e| panic!("install: {e}"));
        let stats = Stats::new(1, 2, 2 * FLOWS);
        let core = stats.core(0).unwrap_or_else(|| panic!("no counters for worker 0"));
        Site { worker: Worker::new(&config, ctl.reader(), core), stats, _ctl: ctl }
    }

    /// Frames in, frames out (all ports), one burst of `BURST` at a time.
    pub fn pass(&mut self, rx_port: usize, frames: &[Vec<u8>]) -> Vec<(usize, HeapPacket)> {
        let mut io = RecordingIo::new(heap);
        for burst in frames.chunks(BURST) {
            self.worker.process(rx_port, burst.iter().map(|f| HeapPacket::from_slice(f)), &mut io, 0);
        }
        io.sent
    }

    /// Drop reasons counted so far, as "reason=n" (empty: none).
    pub fn drops(&self) -> Vec<String> {
        self.stats.snapshot().nonzero_drops().map(|(r, n)| format!("{r}={n}")).collect()
    }
}

/// The tunnels of config.sh from the gateway's side (`gw`) or the peer's; the
/// end that `seals` has the plaintext hosts 10.1.0.0/16 on its side.
fn static_tunnels(gw: bool, seals: bool, alg: Algorithm, outer: Outer, tunnels: Tunnels, replay_window: u32) -> Vec<StaticTunnel> {
    let (gw_ip, peer_ip) = outer.addresses();
    let hosts = vec![TsSpec::prefix(prefix([10, 1, 0, 0], 16))];
    // Tunnel k's side of the 10.2.0.0/16 end: all of it, or its flows' /32s.
    let servers = |k: usize| match tunnels.0 {
        None => vec![TsSpec::prefix(prefix([10, 2, 0, 0], 16))],
        Some(n) => (k..FLOWS).step_by(n).map(|j| TsSpec::prefix(prefix([10, 2, 0, (2 + j) as u8], 32))).collect(),
    };
    (0..tunnels.0.unwrap_or(1))
        .map(|k| {
            let shift = 0x100 * k as u32;
            let (own, other) = if seals { (hosts.clone(), servers(k)) } else { (servers(k), hosts.clone()) };
            StaticTunnel {
                name: if tunnels.0.is_some() { format!("bench{k}") } else { "bench".into() },
                algorithm: alg,
                local: if gw { gw_ip } else { peer_ip },
                remote: if gw { peer_ip } else { gw_ip },
                udp: outer.udp,
                spi_in: Spi(shift + if gw { SPI_IN } else { SPI_OUT }),
                spi_out: Spi(shift + if gw { SPI_OUT } else { SPI_IN }),
                key_in: esp_key(alg, if gw { 0 } else { 1 }, k),
                key_out: esp_key(alg, if gw { 1 } else { 0 }, k),
                local_ts: own,
                remote_ts: other,
                esn: false,
                replay_window,
            }
        })
        .collect()
}

/// An empty heap packet with the gateway's usual room.
pub fn heap() -> HeapPacket {
    HeapPacket::with_room(HeapPacket::DEFAULT_HEADROOM, 2048)
}

/// perf/run.sh's timing run as a worker and its input: the gateway, the
/// frames it receives (one copy per flow), the port they arrive on and the
/// port the results leave by.
#[derive(Debug)]
pub struct Traffic {
    /// Direction.
    pub dir: Dir,
    /// Algorithm.
    pub alg: Algorithm,
    /// The tunnel's outer header.
    pub outer: Outer,
    /// Which SAs the flows take.
    pub tunnels: Tunnels,
    /// The worker under test.
    pub gateway: Site,
    /// What it receives, one frame per flow.
    pub input: Vec<Vec<u8>>,
    /// The plaintext frames (the encap input, the decap input before the peer sealed it).
    pub plain: Vec<Vec<u8>>,
    /// Port the input arrives on.
    pub rx_port: usize,
    /// Port the output must leave by.
    pub tx_port: usize,
}

impl Traffic {
    /// `size`: the plaintext frame size (as perf/run.sh's SIZE). The gateway's
    /// replay window is 0, as in perf/run.sh, so the same ESP frames can be
    /// received again and again.
    pub fn new(dir: Dir, alg: Algorithm, outer: Outer, tunnels: Tunnels, size: usize) -> Result<Traffic, String> {
        let plain = plain_frames(size, FLOWS);
        let input = match dir {
            Dir::Encap => plain.clone(),
            Dir::Decap => {
                let mut peer = Site::peer(dir, alg, outer, tunnels);
                let esp = peer.pass(0, &plain);
                if esp.len() != plain.len() || esp.iter().any(|(port, _)| *port != 1) || !peer.drops().is_empty() {
                    return Err(format!(
                        "the peer sealed {} of {} frames (drops: {:?})",
                        esp.len(),
                        plain.len(),
                        peer.drops()
                    ));
                }
                esp.into_iter().map(|(_, p)| p.data().to_vec()).collect()
            }
        };
        // config.sh puts the receiving side on port 0 in both directions.
        let gateway = Site::gateway(dir, alg, outer, tunnels, 0);
        Ok(Traffic { dir, alg, outer, tunnels, gateway, input, plain, rx_port: 0, tx_port: 1 })
    }

    /// `n` bursts of fresh copies of the input, flow after flow, made before
    /// the measured part so that it does only the gateway's work.
    pub fn bursts(&self, n: usize) -> Vec<Vec<HeapPacket>> {
        (0..n)
            .map(|b| {
                (0..BURST).map(|k| HeapPacket::from_slice(&self.input[(b * BURST + k) % self.input.len()])).collect()
            })
            .collect()
    }

    /// Check the gateway's output of `bursts` bursts: every frame came out on
    /// the tx port with the right link header, no drop was counted, and the
    /// first and last bursts carry the plaintext they should (for encap
    /// after the peer opened them): IP header with TTL one lower per hop,
    /// checksum aside, and every byte after it.
    pub fn check(&self, sent: &[(usize, HeapPacket)], bursts: usize) -> Result<(), String> {
        let want = bursts * BURST;
        if sent.len() != want {
            return Err(format!("{} frames out for {want} in (drops: {:?})", sent.len(), self.gateway.drops()));
        }
        if let Some((port, _)) = sent.iter().find(|(port, _)| *port != self.tx_port) {
            return Err(format!("a frame left by port {port}, not {}", self.tx_port));
        }
        if !self.gateway.drops().is_empty() {
            return Err(format!("drops counted: {:?}", self.gateway.drops()));
        }
        let (dst, src, ethertype) = match self.dir {
            Dir::Encap if self.outer.v6 => (PEER_MAC, GW_MAC, EtherType::Ipv6),
            Dir::Encap => (PEER_MAC, GW_MAC, EtherType::Ipv4),
            Dir::Decap => (HOST_MAC, GW_MAC, EtherType::Ipv4),
        };
        let link = ethernet::header(dst, src, ethertype);
        if let Some(i) = sent.iter().position(|(_, p)| p.data().get(..14) != Some(&link[..])) {
            return Err(format!("frame {i}: Ethernet header {:02x?}, want {link:02x?}", &sent[i].1.data()[..14.min(sent[i].1.len())]));
        }
        // Input frame i is flow i % FLOWS. Output frames are matched to flows by
        // their IPv4 ID (plain_frames' flow index): with several SAs the worker
        // sends a burst's frames grouped by SA, so the order changes within a
        // burst, and each checked burst must hold the same flows as it went in.
        let spots: Vec<usize> = (0..BURST).chain(want.saturating_sub(BURST)..want).collect();
        let frames: Vec<Vec<u8>> = spots.iter().map(|&i| sent[i].1.data().to_vec()).collect();
        let opened = match self.dir {
            Dir::Decap => frames,
            Dir::Encap => {
                let mut peer = Site::peer(self.dir, self.alg, self.outer, self.tunnels);
                let out = peer.pass(1, &frames);
                if out.len() != frames.len() {
                    return Err(format!("the peer opened {} of {} ESP frames (drops: {:?})", out.len(), frames.len(), peer.drops()));
                }
                out.into_iter().map(|(_, p)| p.data().to_vec()).collect()
            }
        };
        let flow_of = |f: &[u8]| f.get(18..20).map(|id| usize::from(u16::from_be_bytes([id[0], id[1]])));
        for (went_in, came_out) in spots.chunks(BURST).zip(opened.chunks(BURST)) {
            let mut want: Vec<usize> = went_in.iter().map(|i| i % FLOWS).collect();
            let mut got: Vec<Option<usize>> = came_out.iter().map(|f| flow_of(f)).collect();
            want.sort_unstable();
            got.sort_unstable();
            if got.iter().copied().ne(want.iter().map(|&f| Some(f))) {
                return Err(format!("the burst of input frames {went_in:?} came out as flows {got:?}"));
            }
        }
        for (&i, got) in spots.iter().zip(&opened) {
            let flow = flow_of(got).unwrap_or(usize::MAX);
            let Some(plain) = self.plain.get(flow) else {
                return Err(format!("output frame {i}: IPv4 ID {flow} is no flow's"));
            };
            let masked = |f: &[u8]| -> Vec<u8> {
                let mut m = f.get(14..).unwrap_or_default().to_vec();
                if m.len() >= 12 {
                    m[8] = 0; // TTL
                    m[10..12].fill(0); // header checksum
                }
                m
            };
            // Two hops in both directions: gateway and peer.
            let ttl_ok = got.get(22) == Some(&62);
            if masked(got) != masked(plain) || !ttl_ok {
                return Err(format!(
                    "output frame {i} (flow {flow}) differs from its plaintext:\n  got  {:02x?}\n  want {:02x?} (TTL 62)",
                    got.get(14..).unwrap_or_default(),
                    &plain[14..]
                ));
            }
            let ip = Ipv4Packet::new_checked(&got[14..]).map_err(|e| format!("output frame {i}: {e}"))?;
            if !ip.verify_checksum() {
                return Err(format!("output frame {i}: bad IPv4 header checksum"));
            }
        }
        Ok(())
    }
}

/// The measured part: each burst as the gateway's poll loop hands it over
/// (quiescent point, then the burst), everything the worker sends recorded
/// in `io` (which has room for all of it, so recording is a move).
/// perf/esp/insns.sh counts instructions from entry to exit of this function
/// (callgrind `--toggle-collect`), so it must stay a call of its own.
#[inline(never)]
pub fn measured_bursts(worker: &mut Worker<HeapPacket>, rx_port: usize, bursts: &mut [Vec<HeapPacket>], io: &mut RecordingIo<HeapPacket>) {
    for burst in bursts {
        worker.quiesce();
        worker.process(rx_port, burst.drain(..), io, 0);
    }
}
