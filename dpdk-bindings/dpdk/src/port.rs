//! Ethernet ports: configure, queues, start/stop, MAC, link, stats, xstats.

use std::ffi::{c_char, CStr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::eal::LIVE_OBJECTS;
use crate::error::{Error, ErrorKind};
use crate::{Burst, Eal, Mempool, Result};

/// How to set up a port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// Number of rx queues (one per worker lcore that polls this port).
    pub rx_queues: u16,
    /// Number of tx queues (one per lcore that transmits on this port).
    pub tx_queues: u16,
    /// Rx descriptors per queue (clamped to the driver's limits).
    pub rx_desc: u16,
    /// Tx descriptors per queue (clamped to the driver's limits).
    pub tx_desc: u16,
    /// Spread flows over rx queues by RSS (when more than one rx queue).
    pub rss: bool,
    /// Accept every destination MAC.
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig { rx_queues: 1, tx_queues: 1, rx_desc: 1024, tx_desc: 1024, rss: true, promiscuous: true }
    }
}

/// What the driver says about a port.
#[derive(Debug, Clone)]
pub struct PortInfo {
    /// DPDK device name (e.g. `net_af_packet0`).
    pub name: String,
    /// Driver name (e.g. `net_af_packet`).
    pub driver: String,
    /// Maximum rx queues.
    pub max_rx_queues: u16,
    /// Maximum tx queues.
    pub max_tx_queues: u16,
    /// RSS hash functions the device supports.
    pub rss_offloads: u64,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic port counters (rte_eth_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets dropped by the device because rx queues were full.
    pub rx_missed: u64,
    /// Erroneous received packets.
    pub rx_errors: u64,
    /// Failed transmissions.
    pub tx_errors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Stops and closes the device when the last handle (port or queue) goes away, so a queue
/// can never poll a closed device.
#[derive(Debug)]
struct PortGuard {
    id: u16,
}

impl Drop for PortGuard {
    fn drop(&mut self) {
        // SAFETY: the port id is valid; no queue handle exists any more (they hold this
        // guard), so no lcore polls the device while it is stopped and closed.
        unsafe {
            dpdk_sys::rte_eth_dev_stop(self.id);
            dpdk_sys::rte_eth_dev_close(self.id);
        }
        LIVE_OBJECTS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A configured Ethernet port. Queues are taken out once ([`Port::take_rx_queue`]) so each
/// is polled by exactly one thread.
#[derive(Debug)]
pub struct Port {
    guard: Arc<PortGuard>,
    info: PortInfo,
    rx: Vec<Option<RxQueue>>,
    tx: Vec<Option<TxQueue>>,
}

/// One rx queue of a port; `rx_burst` needs `&mut self` because DPDK queues are not
/// thread-safe.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
    _guard: Arc<PortGuard>,
}

/// One tx queue of a port.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
    _guard: Arc<PortGuard>,
}

impl PortInfo {
    /// Whether the driver supports `rx` rx and `tx` tx queues on port `id`; the error says
    /// what to change.
    pub fn check_queues(&self, id: u16, rx: u16, tx: u16) -> Result<()> {
        for (what, asked, max) in [("rx", rx, self.max_rx_queues), ("tx", tx, self.max_tx_queues)] {
            if asked == 0 || asked > max {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("port {id} ({})", self.name),
                    format!("{asked} {what} queues asked, driver {} supports 1..={max}", self.driver),
                    "use fewer worker lcores (-l), or give the device more queues (e.g. qpairs=N for net_af_packet)",
                ));
            }
        }
        Ok(())
    }
}

/// `RTE_ETH_RSS_ESP` (rte_ethdev.h, a function-like macro bindgen cannot export):
/// hash ESP on its SPI, so the packets of one inbound SA reach one rx queue and
/// the ESP workers rarely hand them to the SA's owner.
const RSS_ESP: u64 = 1 << 27;

fn port_info(id: u16) -> Result<PortInfo> {
    let mut info = dpdk_sys::rte_eth_dev_info::default();
    // SAFETY: `info` is a writable rte_eth_dev_info; an invalid id returns -ENODEV.
    let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut info) };
    if ret != 0 {
        return Err(Error::from_errno(format!("port {id}"), ret, "list the ports the --vdev arguments create"));
    }
    let driver = if info.driver_name.is_null() {
        String::new()
    } else {
        // SAFETY: driver_name points at the driver's static name string.
        unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
    };
    let mut name = [0 as c_char; 64];
    // SAFETY: `name` has room for RTE_ETH_NAME_MAX_LEN (64) bytes incl. NUL.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id, name.as_mut_ptr()) };
    let name = if ret == 0 {
        // SAFETY: on success, `name` holds a NUL-terminated string.
        unsafe { CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned()
    } else {
        format!("port{id}")
    };
    Ok(PortInfo {
        name,
        driver,
        max_rx_queues: info.max_rx_queues,
        max_tx_queues: info.max_tx_queues,
        rss_offloads: info.flow_type_rss_offloads,
    })
}

impl Port {
    /// Driver information for port `id` without configuring it.
    pub fn info_of(_eal: &Eal, id: u16) -> Result<PortInfo> {
        port_info(id)
    }

    /// Configures port `id` with `conf`, its rx queues filled from `pool`. The port is
    /// not started; call [`Port::start`].
    pub fn configure(eal: &Eal, id: u16, conf: &PortConfig, pool: &Mempool) -> Result<Port> {
        let count = eal.port_count();
        // SAFETY: plain validity check of a port id.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(Error::new(
                ErrorKind::NoSuchPort,
                format!("port {id}"),
                format!("no such DPDK port ({count} ports exist)"),
                "add a --vdev (or bind a NIC) for it, or use a port id below the port count",
            ));
        }
        let info = port_info(id)?;
        let ctx = format!("port {id} ({})", info.name);
        info.check_queues(id, conf.rx_queues, conf.tx_queues)?;
        let mut econf = dpdk_sys::rte_eth_conf::default();
        if conf.rss && conf.rx_queues > 1 {
            // SAFETY: returns a constant.
            let wanted = unsafe { dpdk_sys::dpdk_shim_rss_hf_default() } | RSS_ESP;
            let hf = wanted & info.rss_offloads;
            if hf != 0 {
                econf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
                econf.rx_adv_conf.rss_conf.rss_hf = hf;
            }
        }
        // SAFETY: econf is a valid, fully initialised configuration.
        let ret = unsafe { dpdk_sys::rte_eth_dev_configure(id, conf.rx_queues, conf.tx_queues, &econf) };
        if ret != 0 {
            return Err(Error::from_errno(format!("configuring {ctx}"), ret, ""));
        }
        let guard = Arc::new(PortGuard { id });
        LIVE_OBJECTS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: plain lookup.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { dpdk_sys::SOCKET_ID_ANY } else { socket } as u32;
        for q in 0..conf.rx_queues {
            // SAFETY: the port is configured with rx_queues queues; NULL rxconf = driver
            // defaults; the mempool outlives the port (a pool with mbufs out is never freed).
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(id, q, conf.rx_desc, socket, std::ptr::null(), pool.as_ptr())
            };
            if ret != 0 {
                let hint = if ret.abs() == libc::ENOMEM {
                    format!(
                        "mempool {:?} ({} mbufs, {} free) cannot fill {} rx descriptors: raise [dpdk].mbufs (and -m with --no-huge)",
                        pool.name(),
                        pool.size(),
                        pool.available(),
                        conf.rx_desc
                    )
                } else {
                    String::new()
                };
                return Err(Error::from_errno(format!("setting up rx queue {q} of {ctx}"), ret, hint));
            }
        }
        for q in 0..conf.tx_queues {
            // SAFETY: as above for tx; NULL txconf = driver defaults.
            let ret = unsafe { dpdk_sys::rte_eth_tx_queue_setup(id, q, conf.tx_desc, socket, std::ptr::null()) };
            if ret != 0 {
                return Err(Error::from_errno(format!("setting up tx queue {q} of {ctx}"), ret, ""));
            }
        }
        let rx = (0..conf.rx_queues)
            .map(|queue| Some(RxQueue { port: id, queue, _guard: guard.clone() }))
            .collect();
        let tx = (0..conf.tx_queues)
            .map(|queue| Some(TxQueue { port: id, queue, _guard: guard.clone() }))
            .collect();
        let mut port = Port { guard, info, rx, tx };
        port.set_promiscuous(conf.promiscuous)?;
        Ok(port)
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.guard.id
    }

    /// Driver information.
    pub fn info(&self) -> &PortInfo {
        &self.info
    }

    /// Starts the device. (Control operations take `&mut self`: DPDK's ethdev control
    /// functions are not thread-safe for one port.)
    pub fn start(&mut self) -> Result<()> {
        // SAFETY: the port is configured with all its queues set up.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(self.id()) };
        if ret != 0 {
            let hint = match self.info.driver.as_str() {
                "net_af_packet" => "check that the interface exists and is up, and that we run as root (CAP_NET_RAW)",
                "net_pcap" => "check the pcap file paths and the interface names",
                _ => "",
            };
            return Err(Error::from_errno(format!("starting port {} ({})", self.id(), self.info.name), ret, hint));
        }
        Ok(())
    }

    /// Stops the device (queues stay valid and return no packets while stopped).
    pub fn stop(&mut self) -> Result<()> {
        // SAFETY: valid port id; stopping a stopped port is harmless.
        let ret = unsafe { dpdk_sys::rte_eth_dev_stop(self.id()) };
        if ret != 0 {
            return Err(Error::from_errno(format!("stopping port {}", self.id()), ret, ""));
        }
        Ok(())
    }

    /// Takes rx queue `q` (once).
    pub fn take_rx_queue(&mut self, q: u16) -> Option<RxQueue> {
        self.rx.get_mut(usize::from(q))?.take()
    }

    /// Takes tx queue `q` (once).
    pub fn take_tx_queue(&mut self, q: u16) -> Option<TxQueue> {
        self.tx.get_mut(usize::from(q))?.take()
    }

    /// Enables or disables promiscuous mode.
    pub fn set_promiscuous(&mut self, on: bool) -> Result<()> {
        // SAFETY: valid port id.
        let ret = unsafe {
            if on {
                dpdk_sys::rte_eth_promiscuous_enable(self.id())
            } else {
                dpdk_sys::rte_eth_promiscuous_disable(self.id())
            }
        };
        // Some vdevs (net_ring, net_null) do not implement it; that is not an error for us.
        if ret != 0 && ret.abs() != libc::ENOTSUP {
            return Err(Error::from_errno(format!("setting promiscuous mode on port {}", self.id()), ret, ""));
        }
        Ok(())
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: `addr` is a writable rte_ether_addr.
        let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(self.id(), &mut addr) };
        if ret != 0 {
            return Err(Error::from_errno(format!("reading the MAC of port {}", self.id()), ret, ""));
        }
        Ok(addr.addr_bytes)
    }

    /// Current link state (does not wait).
    pub fn link(&self) -> Result<Link> {
        let (mut speed, mut up, mut fd) = (0u32, 0i32, 0i32);
        // SAFETY: three writable out-parameters.
        let ret = unsafe { dpdk_sys::dpdk_shim_eth_link(self.id(), &mut speed, &mut up, &mut fd) };
        if ret != 0 {
            return Err(Error::from_errno(format!("reading the link of port {}", self.id()), ret, ""));
        }
        Ok(Link { up: up != 0, speed_mbps: speed, full_duplex: fd != 0 })
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats> {
        port_stats(self.id())
    }

    /// Resets the basic counters.
    pub fn reset_stats(&mut self) -> Result<()> {
        // SAFETY: valid port id.
        let ret = unsafe { dpdk_sys::rte_eth_stats_reset(self.id()) };
        if ret != 0 {
            return Err(Error::from_errno(format!("resetting counters of port {}", self.id()), ret, ""));
        }
        Ok(())
    }

    /// Extended counters by name.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        port_xstats(self.id())
    }
}

/// Extended counters of port `id` by name (any thread: DPDK telemetry reads them
/// the same way while the port runs).
pub(crate) fn port_xstats(id: u16) -> Result<Vec<(String, u64)>> {
    {
        let err = |ret: i32| Error::from_errno(format!("reading xstats of port {id}"), ret, "");
        // SAFETY: NULL/0 asks for the number of xstats.
        let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(id, std::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(err(n));
        }
        let n = n as usize;
        let mut names = vec![dpdk_sys::rte_eth_xstat_name { name: [0; 64] }; n];
        let mut values = vec![dpdk_sys::rte_eth_xstat::default(); n];
        // SAFETY: both arrays have room for n entries.
        let got_names = unsafe { dpdk_sys::rte_eth_xstats_get_names(id, names.as_mut_ptr(), n as u32) };
        // SAFETY: as above.
        let got_values = unsafe { dpdk_sys::rte_eth_xstats_get(id, values.as_mut_ptr(), n as u32) };
        if got_names < 0 {
            return Err(err(got_names));
        }
        if got_values < 0 {
            return Err(err(got_values));
        }
        let m = n.min(got_names as usize).min(got_values as usize);
        Ok(values[..m]
            .iter()
            .filter_map(|v| {
                let name = names.get(usize::try_from(v.id).ok()?)?;
                // SAFETY: DPDK writes NUL-terminated names into the 64-byte arrays.
                let s = unsafe { CStr::from_ptr(name.name.as_ptr()) }.to_string_lossy().into_owned();
                Some((s, v.value))
            })
            .collect())
    }
}

pub(crate) fn port_stats(id: u16) -> Result<PortStats> {
    let mut s = dpdk_sys::rte_eth_stats::default();
    // SAFETY: `s` is a writable rte_eth_stats.
    let ret = unsafe { dpdk_sys::rte_eth_stats_get(id, &mut s) };
    if ret != 0 {
        return Err(Error::from_errno(format!("reading counters of port {id}"), ret, ""));
    }
    Ok(PortStats {
        rx_packets: s.ipackets,
        tx_packets: s.opackets,
        rx_bytes: s.ibytes,
        tx_bytes: s.obytes,
        rx_missed: s.imissed,
        rx_errors: s.ierrors,
        tx_errors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    })
}

impl RxQueue {
    /// Port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives into the free slots of `burst`; returns how many arrived.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        self.rx_burst_max(burst, N)
    }

    /// Receives at most `max` mbufs into the free slots of `burst`.
    #[inline]
    pub fn rx_burst_max<const N: usize>(&mut self, burst: &mut Burst<N>, max: usize) -> usize {
        let (slots, room) = burst.spare();
        let room = room.min(max);
        if room == 0 {
            return 0;
        }
        let room = room.min(usize::from(u16::MAX)) as u16;
        // SAFETY: `slots` has `room` writable pointer slots; &mut self makes this the only
        // poller of the queue; the PMD hands us ownership of the `n` mbufs it returns.
        unsafe {
            let n = usize::from(dpdk_sys::dpdk_shim_eth_rx_burst(self.port, self.queue, slots, room));
            burst.filled(n);
            n
        }
    }
}

impl TxQueue {
    /// Port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Sends mbufs from the front of `burst`; returns how many were sent. Unsent mbufs stay
    /// in `burst` (in order) for the caller to retry or drop.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        let len = burst.len().min(usize::from(u16::MAX)) as u16;
        if len == 0 {
            return 0;
        }
        // SAFETY: the first `len` slots are owned mbufs; the PMD takes ownership of the `n`
        // it accepts, which we then drop from the burst.
        unsafe {
            let n = usize::from(dpdk_sys::dpdk_shim_eth_tx_burst(self.port, self.queue, burst.head(), len));
            burst.consumed(n);
            n
        }
    }

    /// Sends `burst` and frees whatever the queue did not take. Returns (sent, dropped).
    #[inline]
    pub fn tx_burst_or_free<const N: usize>(&mut self, burst: &mut Burst<N>) -> (usize, usize) {
        let sent = self.tx_burst(burst);
        let dropped = burst.len();
        burst.clear();
        (sent, dropped)
    }
}
