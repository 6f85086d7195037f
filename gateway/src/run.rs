//! `ipsecgw run`: EAL, mempool, ports, one poll-mode worker per worker lcore, signals,
//! counters on exit. Each worker polls its own rx queue and sends on its own tx queue of
//! every port; in ESP mode the workers hand inbound ESP to the SA's owner (handoff.rs).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use dpdk::{Eal, Mempool, Port, PortConfig};
use dataplane::crypto::{ipsec_mb_path, Algorithm, Backend};
use dataplane::worker::{Encrypt, OwnerRule};

use crate::esp::{EspGateway, EspProcessor};
use crate::plan::RunPlan;
use crate::worker::{self, BurstProcessor, Forwarder, NeighborShare, PollConfig, PortCounters, WorkerQueues, BURST};

/// What the workers run: plain forwarding, or the ESP dataplane.
enum Processor {
    Forward(Forwarder),
    Esp(Box<EspProcessor>),
}

impl BurstProcessor for Processor {
    #[inline]
    fn process(&mut self, rx_port: usize, pkts: &mut dpdk::Burst<BURST>, tx: &mut [dpdk::Burst<BURST>]) {
        match self {
            Processor::Forward(f) => f.process(rx_port, pkts, tx),
            Processor::Esp(e) => e.process(rx_port, pkts, tx),
        }
    }

    #[inline]
    fn poll(&mut self, tx: &mut [dpdk::Burst<BURST>]) -> usize {
        match self {
            Processor::Forward(_) => 0,
            Processor::Esp(e) => e.poll(tx),
        }
    }
}

const RX_DESC: u16 = 1024;
const TX_DESC: u16 = 1024;
const MEMPOOL_CACHE: u32 = 256;

/// Mbufs the ports, workers and handoff rings can hold at once; the pool must be larger
/// or rx stalls.
fn mbufs_needed(ports: usize, workers: usize, lcores: usize, rings: usize) -> u32 {
    let descs = ports * workers * (usize::from(RX_DESC) + usize::from(TX_DESC));
    let in_flight = workers * (ports + 1) * BURST;
    let caches = lcores * MEMPOOL_CACHE as usize * 3 / 2; // DPDK caches may hold 1.5x size
    u32::try_from(descs + in_flight + caches + rings).unwrap_or(u32::MAX)
}

fn check_plan(plan: &RunPlan) -> Result<()> {
    if plan.ports.is_empty() {
        bail!("the config has no [[port]]: add one [[port]] (name, dpdk_port) per DPDK port to use");
    }
    for (i, p) in plan.ports.iter().enumerate() {
        if let Some(q) = plan.ports[..i].iter().find(|q| q.dpdk_port == p.dpdk_port || q.name == p.name) {
            bail!("ports {:?} and {:?} use the same name or dpdk_port {}: give each [[port]] its own", q.name, p.name, p.dpdk_port);
        }
    }
    Ok(())
}

/// Runs the gateway until SIGINT/SIGTERM.
pub fn run(plan: RunPlan, cli_eal_args: &[String], busy_poll: bool, control: &crate::cli::ControlArgs) -> Result<()> {
    check_plan(&plan)?;
    let mut args = plan.eal_args.clone();
    args.extend(cli_eal_args.iter().cloned());
    let eal = Eal::init(&args).map_err(|e| anyhow!("{e}"))?;

    if let Some(d) = eal.failed_devices().first() {
        bail!(
            "device {} failed to start: {}: fix its --vdev arguments (files must exist and be readable, output directories writable, interfaces exist)",
            d.name,
            d.reason
        );
    }
    let available = eal.port_count();
    if available == 0 {
        let said = eal.init_log().lines().rev().find(|l| l.contains("rror") || l.contains("fail")).map(str::trim);
        let why = said.map(|s| format!(" (EAL said: {s})")).unwrap_or_default();
        bail!(
            "no DPDK ports{why}: add --vdev=net_af_packet0,iface=IFACE (or net_pcap, net_ring...) to [dpdk].eal_args or after `--`, or bind a NIC to vfio-pci"
        );
    }
    for p in &plan.ports {
        if p.dpdk_port >= available {
            bail!(
                "port {:?} uses dpdk_port {} but DPDK has {available} port(s) (0..={}): fix dpdk_port or add the missing --vdev",
                p.name,
                p.dpdk_port,
                available - 1
            );
        }
    }

    let lcores = eal.worker_lcores();
    let workers = lcores.len().max(1); // no worker lcore: the main lcore polls
    // ESP with several workers: inbound SAs have an owner, the others hand ESP to it.
    let rings = if plan.esp.is_some() {
        crate::handoff::ring_mbufs(workers) + NeighborShare::ring_mbufs(workers, plan.ports.len())
    } else {
        0
    };
    let queues = u16::try_from(workers).unwrap_or(u16::MAX);
    for p in &plan.ports {
        let info = Port::info_of(&eal, p.dpdk_port).map_err(|e| anyhow!("port {:?}: {e}", p.name))?;
        info.check_queues(p.dpdk_port, queues, queues).map_err(|e| anyhow!("port {:?}: {e}", p.name))?;
    }
    let nports = plan.ports.len();
    let needed = mbufs_needed(nports, workers, eal.lcore_count() as usize, rings);
    let mbufs = plan.mbufs;
    if mbufs < needed {
        bail!(
            "mempool too small: [dpdk].mbufs = {mbufs}, but {nports} port(s) x {workers} queue(s) x ({RX_DESC}+{TX_DESC}) descriptors plus bursts, caches and {rings} in handoff rings need {needed}: raise [dpdk].mbufs to at least {needed}"
        );
    }
    let pool = Arc::new(Mempool::new(&eal, "ipsecgw_mbufs", mbufs, MEMPOOL_CACHE, None).map_err(|e| anyhow!("{e}"))?);

    let conf = PortConfig { rx_queues: queues, tx_queues: queues, rx_desc: RX_DESC, tx_desc: TX_DESC, ..PortConfig::default() };
    let mut ports = Vec::with_capacity(nports);
    for p in &plan.ports {
        let mut port = Port::configure(&eal, p.dpdk_port, &conf, &pool).map_err(|e| anyhow!("port {:?}: {e}", p.name))?;
        port.start().map_err(|e| anyhow!("port {:?}: {e}", p.name))?;
        let mac = port.mac().map(|m| fmt_mac(&m)).unwrap_or_else(|_| "?".into());
        let link = port.link().map(|l| if l.up { "up" } else { "down" }).unwrap_or("?");
        eprintln!("ipsecgw: port {:?} = dpdk port {} ({}, {mac}, link {link})", p.name, p.dpdk_port, port.info().name);
        ports.push(port);
    }

    let counters: Arc<Vec<Vec<PortCounters>>> =
        Arc::new((0..workers).map(|_| (0..nports).map(|_| PortCounters::default()).collect()).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let workers_stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| anyhow!("installing a signal handler: {e}"))?;
    }
    let forwarder = Forwarder::new(nports, &plan.pairs);
    let mut esp = match &plan.esp {
        Some(esp) => {
            let macs = ports.iter().map(|p| p.mac().unwrap_or([0; 6])).collect::<Vec<_>>();
            Some(EspGateway::new(esp, &macs, workers)?)
        }
        None => None,
    };
    // The IKE manager on the punt path (tunnel.rs), with the control socket: with
    // [[connection]]s, and with static SAs only too, so `ipsecgw show` works on a
    // static-SA gateway and IKE requests get an answer (no connection matches).
    let mut ike = match esp.as_mut() {
        Some(e) => {
            let ctl = e.take_control().ok_or_else(|| anyhow!("internal: SA tables already taken"))?;
            let names = plan.ports.iter().map(|p| p.name.clone()).collect();
            let view = crate::cli::dataplane_view(e, &ports, names);
            let monitors = crate::monitor::MonitorPlan::new(&plan.monitors, &probe_ports(&plan, &ports));
            let (ike, link) = crate::tunnel::IkeRuntime::start(plan.connections.clone(), ctl, control, Arc::new(view), monitors)?;
            e.attach_ike(link);
            crate::tunnel::report_unknown_spis(e.stats(), &ike, Arc::clone(&stop))?;
            crate::tunnel::report_traps(e.stats(), &ike, Arc::clone(&stop))?;
            println!("ipsecgw: IKE manager on the punt path, {} connection(s)", plan.connections.len());
            Some(ike)
        }
        None => None,
    };
    let (mut handoffs, handoff_stats) = match (&esp, crate::handoff::mesh(&eal, workers)?) {
        (Some(_), Some((ends, stats))) => (ends.into_iter().map(Some).collect(), Some(stats)),
        _ => (Vec::new(), None),
    };
    let mut processor = |w: usize| -> Result<Processor> {
        Ok(match &esp {
            Some(e) => {
                let handoff = handoffs.get_mut(w).and_then(Option::take);
                Processor::Esp(Box::new(e.processor(w, Arc::clone(&pool), handoff)?))
            }
            None => Processor::Forward(forwarder.clone()),
        })
    };
    if usize::from(plan.burst) > BURST {
        eprintln!("ipsecgw: [dpdk].burst = {} is capped at {BURST} (the worker's burst array)", plan.burst);
    }
    let poll = PollConfig { burst: usize::from(plan.burst), busy_poll };
    let mut worker_queues = Vec::with_capacity(workers);
    for w in 0..queues {
        let mut q = WorkerQueues { rx: Vec::with_capacity(nports), tx: Vec::with_capacity(nports) };
        for port in ports.iter_mut() {
            q.rx.push(port.take_rx_queue(w));
            q.tx.push(port.take_tx_queue(w).ok_or_else(|| anyhow!("internal: tx queue {w} missing"))?);
        }
        worker_queues.push(q);
    }
    let pairs: Vec<String> =
        plan.pairs.iter().map(|&(a, b)| format!("{}<->{}", plan.ports[a].name, plan.ports[b].name)).collect();
    let on = if lcores.is_empty() { "the main lcore (no worker lcores)".to_string() } else { format!("{workers} worker lcore(s)") };
    match (&plan.esp, &esp) {
        (Some(p), Some(_)) => println!(
            "ipsecgw: ESP worker with {} static SA(s) on {on}{}{}; Ctrl-C to stop",
            p.tunnels.len(),
            owners_note(workers, p.owner_rule, p.encrypt),
            if busy_poll { ", busy-polling" } else { "" }
        ),
        _ => println!(
            "ipsecgw: forwarding {} on {on}{}; Ctrl-C to stop",
            if pairs.is_empty() { "nothing (no [forward] pairs)".to_string() } else { pairs.join(", ") },
            if busy_poll { ", busy-polling" } else { "" }
        ),
    }
    if esp.is_some() {
        println!("ipsecgw: {}", auto_backends());
    }
    let _ = std::io::stdout().flush();

    if lcores.is_empty() {
        let q = worker_queues.pop().ok_or_else(|| anyhow!("internal: no worker queues"))?;
        let proc = processor(0)?;
        // The worker polls on this thread, so the signal is waited for on another one:
        // the worker keeps polling, and sends the IKE DELETEs, until they are out.
        std::thread::scope(|s| {
            s.spawn(|| delete_then_stop(&stop, ike.as_mut(), &workers_stop));
            worker::run(q, proc, &counters[0], &workers_stop, poll, None);
        });
    } else {
        let procs = (0..workers).map(&mut processor).collect::<Result<Vec<_>>>()?;
        // ESP with several workers: neighbour replies are copied to every worker (worker.rs);
        // plain forwarding keeps no neighbour table (it would forward the copies).
        let shares = match &esp {
            Some(_) => NeighborShare::mesh(&eal, workers, nports, &pool).map_err(|e| anyhow!("{e}"))?,
            None => None,
        };
        let mut shares = shares.unwrap_or_default().into_iter().map(Some).collect::<Vec<_>>();
        let mut launched = Vec::with_capacity(workers);
        for (w, ((lcore, q), proc)) in lcores.iter().zip(worker_queues).zip(procs).enumerate() {
            // Workers stop after the IKE manager has sent its DELETEs through them.
            let (counters, flag) = (counters.clone(), workers_stop.clone());
            let share = shares.get_mut(w).and_then(Option::take);
            let job = eal.launch(*lcore, move || worker::run(q, proc, &counters[w], &flag, poll, share));
            match job {
                Ok(j) => launched.push(j),
                Err(e) => {
                    workers_stop.store(true, Ordering::SeqCst);
                    bail!("{e}");
                }
            }
        }
        delete_then_stop(&stop, ike.as_mut(), &workers_stop);
        for j in launched {
            j.join();
        }
    }
    print_counters(&plan, &ports, &counters);
    if workers > 1 {
        print_worker_counters(&plan, &counters);
    }
    if let Some(s) = &handoff_stats {
        print!("{}", crate::handoff::report(s));
    }
    if let Some(ike) = ike {
        print!("{}", ike.stop());
    }
    if let Some(e) = &esp {
        print!("{}", e.report());
    }
    Ok(())
}

/// Each port's MAC and addresses, for the tunnel monitor (monitor.rs).
fn probe_ports(plan: &RunPlan, ports: &[Port]) -> Vec<(dataplane::wire::MacAddr, Vec<std::net::IpAddr>)> {
    let esp_ports = plan.esp.as_ref().map(|e| e.ports.as_slice()).unwrap_or_default();
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let cfg = esp_ports.get(i);
            let mac = cfg.and_then(|c| c.mac).unwrap_or_else(|| p.mac().unwrap_or([0; 6]));
            (dataplane::wire::MacAddr(mac), cfg.map(|c| c.addresses.iter().map(|&(a, _)| a).collect()).unwrap_or_default())
        })
        .collect()
}

/// Waits for SIGINT/SIGTERM (`stop`), has the IKE manager delete its IKE SAs while the
/// workers still run and send the DELETEs (RFC 7296 §1.4.1), then stops the workers.
fn delete_then_stop(stop: &AtomicBool, ike: Option<&mut crate::tunnel::IkeRuntime>, workers_stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(ike) = ike {
        ike.delete_all();
    }
    workers_stop.store(true, Ordering::SeqCst);
}

fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// What each worker received and sent per port (several workers).
fn print_worker_counters(plan: &RunPlan, counters: &[Vec<PortCounters>]) {
    for (w, ports) in counters.iter().enumerate() {
        let line: Vec<String> = plan
            .ports
            .iter()
            .zip(ports)
            .map(|(p, c)| format!("{} rx {} tx {}", p.name, c.rx.load(Ordering::Relaxed), c.tx.load(Ordering::Relaxed)))
            .collect();
        println!("worker {w}: {}", line.join(", "));
    }
}

fn print_counters(plan: &RunPlan, ports: &[Port], counters: &[Vec<PortCounters>]) {
    println!(
        "{:<12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "port", "rx_pkts", "tx_pkts", "rx_missed", "rx_errors", "tx_errors", "fwd_dropped", "tx_dropped"
    );
    for (i, (p, port)) in plan.ports.iter().zip(ports).enumerate() {
        let s = port.stats().unwrap_or_default();
        let sum = |f: fn(&PortCounters) -> u64| counters.iter().map(|w| f(&w[i])).sum::<u64>();
        println!(
            "{:<12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>12} {:>12}",
            p.name,
            s.rx_packets,
            s.tx_packets,
            s.rx_missed,
            s.rx_errors,
            s.tx_errors,
            sum(|c| c.dropped.load(Ordering::Relaxed)),
            sum(|c| c.tx_dropped.load(Ordering::Relaxed)),
        );
    }
}

/// What `Backend::Auto` uses for each algorithm on this CPU, for the start-up
/// output: the same configuration runs different AEAD code on different CPUs, so
/// figures from two machines are only comparable with this line beside them.
fn auto_backends() -> String {
    let each: Vec<String> = Algorithm::ALL.iter().map(|&a| format!("{} {}", a.name(), Backend::auto_choice(a))).collect();
    format!("AEAD backends (auto; intel-ipsec-mb path {}): {}", ipsec_mb_path(), each.join("; "))
}

/// The start-up line's note on SA owners with several workers (`[dpdk].sa_owner`,
/// `[dpdk].encrypt`); empty with one.
fn owners_note(workers: usize, rule: OwnerRule, encrypt: Encrypt) -> String {
    let owner = match rule {
        OwnerRule::FirstReceiver => "its first receiver",
        OwnerRule::Spi => "SPI mod workers",
    };
    match (workers > 1, encrypt) {
        (false, _) => String::new(),
        (true, Encrypt::Owner) => format!(" (SA owner: {owner}, both ways; handoff rings)"),
        (true, Encrypt::AnyWorker) => format!(" (inbound SA owner: {owner}, handoff rings; outbound SAs: any worker, out of order)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_note_names_both_directions() {
        assert_eq!(owners_note(1, OwnerRule::Spi, Encrypt::AnyWorker), "");
        assert_eq!(owners_note(2, OwnerRule::FirstReceiver, Encrypt::Owner), " (SA owner: its first receiver, both ways; handoff rings)");
        assert_eq!(owners_note(2, OwnerRule::Spi, Encrypt::Owner), " (SA owner: SPI mod workers, both ways; handoff rings)");
        assert_eq!(
            owners_note(3, OwnerRule::FirstReceiver, Encrypt::AnyWorker),
            " (inbound SA owner: its first receiver, handoff rings; outbound SAs: any worker, out of order)"
        );
        assert_eq!(
            owners_note(2, OwnerRule::Spi, Encrypt::AnyWorker),
            " (inbound SA owner: SPI mod workers, handoff rings; outbound SAs: any worker, out of order)"
        );
    }
}
