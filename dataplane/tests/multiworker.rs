//! Several workers on one set of tables (issue 8 item 3): inbound ESP is
//! decapsulated by the SA's owner only, whichever worker received it (handoff
//! rings); an outbound SA is encrypted by its owner, so its ESP leaves in
//! sequence-number order, and with any-worker encryption its sequence numbers
//! stay unique when two workers encrypt for it at the same time.
#![forbid(unsafe_code)]

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use dataplane::crypto::{new_aead, Algorithm, Backend};
use dataplane::drop::DropReason;
use dataplane::esp::{decap_burst_classified, encap_burst, EspError, OutboundConfig, OutboundSa};
use dataplane::packet::{HeapPacket, Packet};
use dataplane::route::RouteTable;
use dataplane::sa::Spi;
use dataplane::spd::IpPrefix;
use dataplane::stats::Stats;
use dataplane::wire::MacAddr;
use dataplane::worker::{
    connected_routes, install_static, Encrypt, Handoff, InstalledTunnel, Interface, OwnerRule, Ownership, RecordingIo, StaticTunnel, TsSpec,
    TunnelControl, Worker, WorkerConfig,
};
use zeroize::Zeroizing;

const GW_OUT: MacAddr = MacAddr([2, 0, 0, 0, 1, 0]);
const GW_IN: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const PEER: MacAddr = MacAddr([2, 0, 0, 0, 2, 0]);
const HOST: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa2]);
const OUT: usize = 0;
const IN: usize = 1;
const GW_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// Inbound SPIs: owners 0, 1, 0, 1 with two workers (SPI mod 2).
const SPIS: [u32; 4] = [0x1000, 0x1001, 0x2002, 0x2003];

type Ring = Arc<ArrayQueue<HeapPacket>>;
type HeapHandoff = Handoff<HeapPacket, Ring, Ring>;

fn prefix(a: [u8; 4], len: u8) -> IpPrefix {
    IpPrefix::new(IpAddr::V4(Ipv4Addr::from(a)), len).expect("prefix")
}

fn key(i: usize) -> Vec<u8> {
    (0..20).map(|j| (i * 40 + j) as u8).collect()
}

/// Tunnel `i`: we receive on SPIS[i] and send on 0x9000 + i; the peer's
/// 10.1.0.0/16 behind it, our 10.2.0.0/16 (common::inner_v4 is 10.1.0.5 ->
/// 10.2.0.7, which every tunnel allows).
fn tunnel(i: usize) -> StaticTunnel {
    StaticTunnel {
        name: format!("t{i}"),
        algorithm: Algorithm::Aes128Gcm,
        local: IpAddr::V4(GW_IP),
        remote: IpAddr::V4(PEER_IP),
        udp: false,
        spi_in: Spi(SPIS[i]),
        spi_out: Spi(0x9000 + i as u32),
        key_in: Zeroizing::new(key(i)),
        key_out: Zeroizing::new(key(i + 10)),
        local_ts: vec![TsSpec::prefix(prefix([10, 2, 0, 0], 16))],
        remote_ts: vec![TsSpec::prefix(prefix([10, 1, 0, 0], 16))],
        esn: false,
        replay_window: 64,
    }
}

struct Gateway {
    workers: Vec<Worker<HeapPacket>>,
    handoffs: Vec<HeapHandoff>,
    stats: Stats,
    installed: Vec<InstalledTunnel>,
    ctl: TunnelControl,
}

/// `n` workers on one table with 4 tunnels; handoff rings of `ring` packets;
/// owners by the SPI.
fn gateway(n: usize, ring: usize) -> Gateway {
    gateway_with(n, ring, OwnerRule::Spi)
}

fn gateway_with(n: usize, ring: usize, rule: OwnerRule) -> Gateway {
    let interfaces = vec![
        Interface::new(GW_OUT).with_address(IpAddr::V4(GW_IP), 24),
        Interface::new(GW_IN).with_address(IpAddr::V4(Ipv4Addr::new(10, 2, 0, 1)), 16),
    ];
    let routes = RouteTable::build(connected_routes(&interfaces)).expect("routes");
    let static_neighbors =
        vec![(OUT, IpAddr::V4(PEER_IP), PEER), (IN, IpAddr::V4(Ipv4Addr::new(10, 2, 0, 7)), HOST)];
    let config = WorkerConfig { interfaces, routes, static_neighbors };
    let mut ctl = TunnelControl::new(64);
    let tunnels: Vec<StaticTunnel> = (0..SPIS.len()).map(tunnel).collect();
    let installed = install_static(&mut ctl, &tunnels, Backend::Auto).expect("install");
    let stats = Stats::new(n, 2, 64);
    let (handoffs, _) = HeapHandoff::mesh(n, |_, _| {
        let q: Ring = Arc::new(ArrayQueue::new(ring));
        Ok::<_, ()>((Arc::clone(&q), q))
    })
    .expect("mesh");
    let workers = handoffs
        .iter()
        .enumerate()
        .map(|(w, h)| {
            let mut worker = Worker::new(&config, ctl.reader(), stats.core(w).expect("core"));
            worker.set_ownership(h.ownership().with_rule(rule));
            worker
        })
        .collect();
    Gateway { workers, handoffs, stats, installed, ctl }
}

/// What the peer sends on tunnel `t`: ESP frames (seq 1..) whose inner
/// packets carry ids `ids` (first payload byte).
fn peer_frames(t: usize, ids: impl Iterator<Item = u8>) -> Vec<Vec<u8>> {
    let aead = new_aead(Algorithm::Aes128Gcm, &key(t), Backend::Auto).expect("key");
    let sa = OutboundSa::new(OutboundConfig::new(Spi(SPIS[t]), IpAddr::V4(PEER_IP), IpAddr::V4(GW_IP)), Arc::from(aead))
        .expect("sa");
    let state = sa.new_state();
    let mut pkts: Vec<HeapPacket> = ids.map(|id| HeapPacket::from_slice(&common::inner_v4(60, 0, false, id))).collect();
    let mut results = vec![Ok(()); pkts.len()];
    encap_burst(&sa, &state, &mut pkts, &mut results);
    assert!(results.iter().all(Result::is_ok));
    pkts.iter()
        .map(|p| {
            let mut f = [&GW_OUT.0[..], &PEER.0, &[0x08, 0x00]].concat();
            f.extend_from_slice(p.data());
            f
        })
        .collect()
}

/// All tunnels' frames, interleaved as they would arrive; id -> tunnel.
fn traffic(per_tunnel: usize) -> (Vec<Vec<u8>>, BTreeMap<u8, usize>) {
    let mut by_tunnel: Vec<_> = (0..SPIS.len())
        .map(|t| peer_frames(t, (0..per_tunnel).map(move |k| (k * SPIS.len() + t) as u8)).into_iter())
        .collect();
    let mut frames = Vec::new();
    for _ in 0..per_tunnel {
        frames.extend(by_tunnel.iter_mut().filter_map(Iterator::next));
    }
    let owner_of = (0..per_tunnel * SPIS.len()).map(|id| (id as u8, id % SPIS.len())).collect();
    (frames, owner_of)
}

fn heap() -> HeapPacket {
    HeapPacket::with_room(HeapPacket::DEFAULT_HEADROOM, 2048)
}

/// Worker `w` receives `frames` on the outside port in bursts of 32.
fn receive(gw: &mut Gateway, w: usize, frames: &[Vec<u8>], io: &mut RecordingIo<HeapPacket>) {
    for burst in frames.chunks(32) {
        let (worker, h) = (&mut gw.workers[w], &mut gw.handoffs[w]);
        worker.process(OUT, burst.iter().map(|f| HeapPacket::from_slice(f)), &mut h.io(io), 0);
        h.flush(worker.stats());
    }
}

/// Worker `w` decapsulates what was handed to it; returns how many.
fn drain(gw: &mut Gateway, w: usize, io: &mut RecordingIo<HeapPacket>) -> usize {
    let mut n = 0;
    loop {
        let inbox = gw.handoffs[w].receive();
        if inbox.is_empty() {
            return n;
        }
        n += inbox.len();
        gw.workers[w].process_handoff(inbox, io, 0);
    }
}

/// Ids of the decapsulated packets a worker sent to the inside host.
fn ids(io: &RecordingIo<HeapPacket>) -> Vec<u8> {
    io.sent
        .iter()
        .map(|(port, f)| {
            assert_eq!(*port, IN, "decapsulated packets go inside");
            assert_eq!(&f.data()[..6], &HOST.0);
            f.data()[14 + 28]
        })
        .collect()
}

#[test]
fn the_first_receiver_owns_an_sa_and_later_arrivals_elsewhere_are_handed_to_it() {
    let mut gw = gateway_with(2, 1024, OwnerRule::FirstReceiver);
    let (frames, tunnel_of) = traffic(40);
    // As a port's flow hash would: tunnels 0 and 1 arrive at worker 0, 2 and 3 at
    // worker 1 (`traffic` interleaves the tunnels in turn).
    let of = |w: usize| frames.iter().enumerate().filter(|(i, _)| (i % SPIS.len()) / 2 == w).map(|(_, f)| f.clone()).collect::<Vec<_>>();
    let mut io = [RecordingIo::new(heap), RecordingIo::new(heap)];
    let [io0, io1] = &mut io;
    receive(&mut gw, 0, &of(0), io0);
    receive(&mut gw, 1, &of(1), io1);
    assert_eq!((drain(&mut gw, 0, io0), drain(&mut gw, 1, io1)), (0, 0), "each SA is decapsulated where it arrived");
    for (w, io) in io.iter().enumerate() {
        let got = ids(io);
        assert_eq!(got.len(), 80, "worker {w}");
        assert!(got.iter().all(|id| tunnel_of[id] / 2 == w), "worker {w} decapsulated only what it received: {got:?}");
    }
    for w in 0..2 {
        assert_eq!(gw.handoffs[w].counters().expect("counters").sent.load(Relaxed), 0, "worker {w} handed nothing over");
    }
    assert_eq!(gw.stats.snapshot().nonzero_drops().count(), 0);

    // The claims stick: tunnel 0's frames now reaching worker 1 go to worker 0,
    // whose replay window knows them all.
    let mut again = [RecordingIo::new(heap), RecordingIo::new(heap)];
    let [a0, a1] = &mut again;
    let tunnel0: Vec<Vec<u8>> = frames.iter().step_by(SPIS.len()).cloned().collect();
    receive(&mut gw, 1, &tunnel0, a1);
    assert_eq!(drain(&mut gw, 0, a0), 40, "handed to the owner");
    assert!(a0.sent.is_empty() && a1.sent.is_empty(), "replays are not forwarded");
    assert_eq!(gw.stats.snapshot().drop_count(DropReason::Replayed), 40);
}

#[test]
fn packets_handed_over_for_an_sa_replaced_meanwhile_are_not_decrypted_by_the_old_owner() {
    let mut gw = gateway_with(2, 1024, OwnerRule::FirstReceiver);
    let (frames, _) = traffic(40);
    let tunnel0: Vec<Vec<u8>> = frames.iter().step_by(SPIS.len()).cloned().collect();
    let mut io = [RecordingIo::new(heap), RecordingIo::new(heap)];
    let [io0, io1] = &mut io;
    receive(&mut gw, 0, &tunnel0[..20], io0);
    assert_eq!(io0.sent.len(), 20, "worker 0 claimed tunnel 0 and decrypted");
    receive(&mut gw, 1, &tunnel0[20..30], io1);
    assert!(io1.sent.is_empty(), "worker 1 handed 10 over");

    // Before worker 0 drains its ring, the SA is replaced by one with fresh
    // state (same SPI), which worker 1 claims with the next frames.
    let (fresh, _) = tunnel(0).build(Backend::Auto).expect("build");
    let mut tx = gw.ctl.transaction();
    tx.replace_inbound(Spi(SPIS[0]), Arc::clone(&fresh)).expect("replace");
    tx.commit().expect("commit");
    receive(&mut gw, 1, &tunnel0[30..], io1);
    assert_eq!((io1.sent.len(), fresh.state.claimed_by()), (10, Some(1)), "worker 1 owns the new SA");

    let mut late = RecordingIo::new(heap);
    assert_eq!(drain(&mut gw, 0, &mut late), 10);
    assert!(late.sent.is_empty(), "the old owner does not decrypt on the new SA's replay window");
    assert_eq!(gw.stats.snapshot().drop_count(DropReason::HandoffStale), 10);
}

#[test]
fn only_esp_that_authenticates_claims_an_sa_and_a_lost_claim_leaves_the_replay_window_alone() {
    let mut gw = gateway_with(2, 1024, OwnerRule::FirstReceiver);
    let (frames, _) = traffic(40);
    let tunnel0: Vec<Vec<u8>> = frames.iter().step_by(SPIS.len()).cloned().collect();
    // Forged first: tunnel 0's SPI (it is on the wire) and fresh sequence
    // numbers, but not its key (one ICV bit flipped), at the worker the real
    // frames will not reach.
    let forged: Vec<Vec<u8>> = tunnel0[..10]
        .iter()
        .map(|f| {
            let mut f = f.clone();
            if let Some(b) = f.last_mut() {
                *b ^= 1;
            }
            f
        })
        .collect();
    let mut io = [RecordingIo::new(heap), RecordingIo::new(heap)];
    let [io0, io1] = &mut io;
    receive(&mut gw, 1, &forged, io1);
    assert!(io1.sent.is_empty());
    assert_eq!(gw.stats.snapshot().drop_count(DropReason::AuthFailed), 10);
    receive(&mut gw, 0, &tunnel0[..20], io0);
    assert_eq!(
        (io0.sent.len(), drain(&mut gw, 1, io1)),
        (20, 0),
        "worker 0 decrypted tunnel 0 itself: the forgeries claimed nothing"
    );
    receive(&mut gw, 1, &tunnel0[20..], io1);
    assert_eq!(drain(&mut gw, 0, io0), 20, "worker 1 hands tunnel 0 to the worker that claimed it");
    assert_eq!((io0.sent.len(), io1.sent.len()), (40, 0));
    assert_eq!(gw.stats.snapshot().nonzero_drops().count(), 1, "only the forgeries were dropped");

    // Two workers opening a new SA's first packet at once: worker 0 claims it
    // between worker 1's check and worker 1's claim. Worker 1's copy is refused
    // without a replay window update, so worker 0's copy still opens.
    let (fresh, _) = tunnel(0).build(Backend::Auto).expect("build");
    let open = |claimant: Option<u32>| {
        let mut pkt = [HeapPacket::from_slice(&tunnel0[0][14..])];
        let mut got = Vec::new();
        decap_burst_classified(&fresh.sa, &fresh.state, claimant, &mut pkt, |_, r| got.push(r.map(|_| ())));
        got
    };
    assert_eq!(fresh.state.claim(0), 0);
    assert_eq!(open(Some(1)), [Err(EspError::ClaimLost)]);
    assert_eq!(EspError::ClaimLost.drop_reason(), DropReason::ClaimLost);
    assert_eq!(open(Some(0)), [Ok(())]);
    assert!(matches!(open(Some(0))[..], [Err(EspError::Replay(_))]), "the window did take worker 0's");
}

#[test]
fn esp_received_by_worker_0_is_decapsulated_once_by_each_sas_owner() {
    let mut gw = gateway(2, 1024);
    let (frames, tunnel_of) = traffic(40);
    let mut io = [RecordingIo::new(heap), RecordingIo::new(heap)];
    let [io0, io1] = &mut io;
    receive(&mut gw, 0, &frames, io0);
    assert_eq!(drain(&mut gw, 0, io0), 0, "nothing is handed to the receiver");
    let handed = drain(&mut gw, 1, io1);
    assert_eq!(handed, 80, "the two SAs worker 1 owns, 40 packets each");

    // Exactly once, on the owner: worker w decapsulated the tunnels whose SPI is w mod 2.
    for (w, io) in io.iter().enumerate() {
        let got = ids(io);
        assert_eq!(got.len(), 80, "worker {w}");
        for id in &got {
            assert_eq!(Ownership::new(w, 2).map(|o| o.owner(Spi(SPIS[tunnel_of[id]]))), Some(w), "id {id} on worker {w}");
        }
    }
    let mut all: Vec<u8> = io.iter().flat_map(ids).collect();
    all.sort_unstable();
    assert_eq!(all, tunnel_of.keys().copied().collect::<Vec<_>>(), "every packet, none twice");
    for t in &gw.installed {
        assert_eq!(gw.stats.sa(t.inbound).packets, 40, "{}", t.name);
    }
    assert_eq!(gw.stats.snapshot().nonzero_drops().count(), 0, "{:?}", gw.stats.snapshot().nonzero_drops().collect::<Vec<_>>());
    let c0 = gw.handoffs[0].counters().expect("counters");
    assert_eq!((c0.sent.load(Relaxed), c0.ring_full.load(Relaxed)), (80, 0));
    assert_eq!(gw.handoffs[1].counters().expect("counters").received.load(Relaxed), 80);

    // Replay windows are the owners': the same frames again, now received by
    // worker 1, are all replays, each detected once by its owner.
    let mut again = [RecordingIo::new(heap), RecordingIo::new(heap)];
    let [a0, a1] = &mut again;
    receive(&mut gw, 1, &frames, a1);
    assert_eq!(drain(&mut gw, 0, a0), 80);
    assert!(a0.sent.is_empty() && a1.sent.is_empty(), "replays are not forwarded");
    let snap = gw.stats.snapshot();
    assert_eq!(snap.drop_count(DropReason::Replayed), 160);
    assert_eq!(snap.nonzero_drops().count(), 1);
}

#[test]
fn a_full_handoff_ring_drops_and_counts_without_blocking() {
    let mut gw = gateway(2, 8);
    let (frames, _) = traffic(40);
    let mut io = RecordingIo::new(heap);
    receive(&mut gw, 0, &frames, &mut io);
    // 5 bursts of 32 frames, 16 of each burst for worker 1; its ring holds 8
    // and nobody drains it: 8 make it, the other 72 are dropped.
    let snap = gw.stats.snapshot();
    assert_eq!(snap.drop_count(DropReason::HandoffRingFull), 72);
    assert_eq!(io.sent.len(), 80, "worker 0's own SAs are not held up");
    let mut io1 = RecordingIo::new(heap);
    assert_eq!(drain(&mut gw, 1, &mut io1), 8);
    assert_eq!(io1.sent.len(), 8);
}

/// One worker thread: receive `mine`, hand off and decapsulate, then keep
/// draining the handoff ring until it has decapsulated `owned` packets.
fn worker_thread(w: &mut Worker<HeapPacket>, h: &mut HeapHandoff, mine: &[Vec<u8>], owned: usize) -> Vec<u8> {
    let mut io = RecordingIo::new(heap);
    for burst in mine.chunks(32) {
        w.process(OUT, burst.iter().map(|f| HeapPacket::from_slice(f)), &mut h.io(&mut io), 0);
        h.flush(w.stats());
        let inbox = h.receive();
        w.process_handoff(inbox, &mut io, 0);
    }
    // Bounded: the other worker's handoffs are all in the ring once it has
    // finished its own frames (the ring holds every packet of the test).
    for _ in 0..10_000_000 {
        if io.sent.len() >= owned {
            break;
        }
        let inbox = h.receive();
        if inbox.is_empty() {
            std::thread::yield_now();
        }
        w.process_handoff(inbox, &mut io, 0);
    }
    ids(&io)
}

#[test]
fn two_threads_receive_and_own_concurrently_without_loss() {
    let mut gw = gateway(2, 4096);
    let (frames, tunnel_of) = traffic(60);
    let total = frames.len();
    // Both workers receive half of the frames each (in arrival order), and
    // each owns two of the SAs: handoffs cross in both directions at once.
    let (first, second) = frames.split_at(total / 2);
    let Gateway { workers, handoffs, stats, .. } = &mut gw;
    let sent: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter_mut()
            .zip(handoffs.iter_mut())
            .zip([first, second])
            .map(|((w, h), mine)| s.spawn(move || worker_thread(w, h, mine, total / 2)))
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    for (w, got) in sent.iter().enumerate() {
        assert_eq!(got.len(), total / 2, "worker {w} decapsulated its two SAs' packets");
        assert!(got.iter().all(|id| SPIS[tunnel_of[id]] % 2 == w as u32), "worker {w} decapsulated only its SAs");
    }
    let mut all: Vec<u8> = sent.concat();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), total, "every packet, none twice");
    assert_eq!(stats.snapshot().nonzero_drops().count(), 0);
}

/// Plaintext 10.2.0.7 -> 10.1.0.5 from the inside host (the first tunnel's
/// policy, outbound SPI 0x9000), `id` in its first payload byte.
fn plain_frame(id: u8) -> Vec<u8> {
    let mut inner = common::inner_v4(40, 0, false, id);
    inner[12..16].copy_from_slice(&[10, 2, 0, 7]);
    inner[16..20].copy_from_slice(&[10, 1, 0, 5]);
    inner[10..12].copy_from_slice(&[0, 0]);
    let c = dataplane::wire::checksum::checksum(&inner[..20]);
    inner[10..12].copy_from_slice(&c.to_be_bytes());
    [&GW_IN.0[..], &HOST.0, &[0x08, 0x00], &inner].concat()
}

/// The ESP sequence numbers of the first tunnel's frames a worker sent, in
/// the order it sent them.
fn sent_seqs(io: &mut RecordingIo<HeapPacket>) -> Vec<u32> {
    io.sent
        .drain(..)
        .map(|(port, f)| {
            assert_eq!(port, OUT);
            let d = f.data();
            // Ethernet 14 + IPv4 20, then ESP: SPI, sequence number (RFC 4303 §2).
            assert_eq!(d[34..38], 0x9000u32.to_be_bytes(), "first tunnel's SPI");
            u32::from_be_bytes([d[38], d[39], d[40], d[41]])
        })
        .collect()
}

#[test]
fn an_outbound_sa_is_encrypted_by_its_owner_only_and_leaves_in_order() {
    // SPI rule: 0x9000 belongs to worker 0. Both workers receive the SA's
    // plaintext at once; worker 1 hands its share over.
    let mut gw = gateway(2, 4096);
    const BURSTS: usize = 100;
    let n = BURSTS * 32;
    let Gateway { workers, handoffs, stats, .. } = &mut gw;
    let sent: Vec<Vec<u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter_mut()
            .zip(handoffs.iter_mut())
            .enumerate()
            .map(|(me, (w, h))| {
                s.spawn(move || {
                    let mut io = RecordingIo::new(heap);
                    let mut seqs = Vec::new();
                    let frame = plain_frame(me as u8);
                    for _ in 0..BURSTS {
                        w.process(IN, (0..32).map(|_| HeapPacket::from_slice(&frame)), &mut h.io(&mut io), 0);
                        h.flush(w.stats());
                        let inbox = h.receive();
                        w.process_handoff(inbox, &mut io, 0);
                        seqs.extend(sent_seqs(&mut io));
                    }
                    // Bounded: worker 1's handoffs are all in the ring once it is done.
                    for _ in 0..10_000_000 {
                        if me == 1 || seqs.len() >= 2 * n {
                            break;
                        }
                        let inbox = h.receive();
                        if inbox.is_empty() {
                            std::thread::yield_now();
                        }
                        w.process_handoff(inbox, &mut io, 0);
                        seqs.extend(sent_seqs(&mut io));
                    }
                    seqs
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    assert!(sent[1].is_empty(), "worker 1 encrypted nothing for worker 0's SA");
    assert_eq!(sent[0], (1..=2 * n as u32).collect::<Vec<_>>(), "every packet, in sequence-number order");
    assert_eq!(stats.snapshot().nonzero_drops().count(), 0);
}

/// Worker `w` receives 8 plaintext frames of the first tunnel on the inside port.
fn plain_burst(gw: &mut Gateway, w: usize, io: &mut RecordingIo<HeapPacket>) {
    let (worker, h) = (&mut gw.workers[w], &mut gw.handoffs[w]);
    worker.process(IN, (0..8).map(|i| HeapPacket::from_slice(&plain_frame(i))), &mut h.io(io), 0);
    h.flush(worker.stats());
}

#[test]
fn the_first_sender_owns_an_outbound_sa_and_the_others_hand_it_their_plaintext() {
    let mut gw = gateway_with(2, 1024, OwnerRule::FirstReceiver);
    let mut io = [RecordingIo::new(heap), RecordingIo::new(heap)];
    // Worker 1 sends first and claims the SA; worker 0's plaintext goes to it.
    plain_burst(&mut gw, 1, &mut io[1]);
    plain_burst(&mut gw, 0, &mut io[0]);
    assert!(io[0].sent.is_empty());
    let mut reader = gw.ctl.reader();
    let flow = dataplane::spd::FlowV4::v4(Ipv4Addr::new(10, 2, 0, 7), Ipv4Addr::new(10, 1, 0, 5), 17, 0, 0);
    let dataplane::sa::Decision::Protect(sa) = reader.load().outbound_v4(&flow) else { panic!("the first tunnel's policy") };
    assert_eq!(sa.state.owner().claimed_by(), Some(1));
    let [_, io1] = &mut io;
    let inbox = gw.handoffs[1].receive();
    assert_eq!(inbox.len(), 8);
    gw.workers[1].process_handoff(inbox, io1, 0);
    assert_eq!(sent_seqs(io1), (1..=16).collect::<Vec<_>>());
    let c = gw.handoffs[0].counters().expect("counters");
    assert_eq!((c.sent.load(Relaxed), c.plain.load(Relaxed)), (8, 8));
    assert_eq!(gw.stats.snapshot().nonzero_drops().count(), 0);
}

#[test]
fn plaintext_handed_over_before_a_rekey_is_encrypted_on_the_new_sa() {
    let mut gw = gateway_with(2, 1024, OwnerRule::FirstReceiver);
    let mut io = [RecordingIo::new(heap), RecordingIo::new(heap)];
    let [io0, io1] = &mut io;
    // Worker 0 claims the SA; worker 1 hands it 8 packets.
    plain_burst(&mut gw, 0, io0);
    assert_eq!(sent_seqs(io0), (1..=8).collect::<Vec<_>>());
    plain_burst(&mut gw, 1, io1);
    assert!(io1.sent.is_empty());
    // Before worker 0 drains its ring the outbound SA is replaced (a rekey), and
    // worker 1 claims the new one with its next packets.
    let (_, fresh) = tunnel(0).build(Backend::Auto).expect("build");
    let mut tx = gw.ctl.transaction();
    tx.replace_outbound(gw.installed[0].outbound, Arc::clone(&fresh)).expect("replace");
    tx.commit().expect("commit");
    plain_burst(&mut gw, 1, io1);
    assert_eq!((sent_seqs(io1), fresh.state.owner().claimed_by()), ((1..=8).collect::<Vec<_>>(), Some(1)));
    // The 8 handed over before are encrypted on the new SA, not lost.
    assert_eq!(drain(&mut gw, 0, io0), 8);
    assert_eq!(sent_seqs(io0), (9..=16).collect::<Vec<_>>());
    assert_eq!(gw.stats.snapshot().nonzero_drops().count(), 0);
}

#[test]
fn two_workers_encrypting_for_one_sa_never_reuse_a_sequence_number_under_any_worker_encryption() {
    let mut gw = gateway(2, 64);
    for w in &mut gw.workers {
        w.set_ownership(w.ownership().with_encrypt(Encrypt::AnyWorker));
    }
    let frame = plain_frame(0);
    const BURSTS: usize = 200;
    let seqs: Vec<Vec<u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = gw
            .workers
            .iter_mut()
            .map(|w| {
                let frame = &frame;
                s.spawn(move || {
                    let mut io = RecordingIo::new(heap);
                    let mut seqs = Vec::with_capacity(BURSTS * 32);
                    for _ in 0..BURSTS {
                        w.process(IN, (0..32).map(|_| HeapPacket::from_slice(frame)), &mut io, 0);
                        seqs.extend(sent_seqs(&mut io));
                    }
                    seqs
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    let n = BURSTS * 32;
    assert!(seqs.iter().all(|s| s.len() == n), "every packet encrypted");
    let mut all: Vec<u32> = seqs.concat();
    all.sort_unstable();
    assert_eq!(all, (1..=2 * n as u32).collect::<Vec<_>>(), "1..=N, each once");
}
