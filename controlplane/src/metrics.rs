//! Prometheus text exposition (format 0.0.4) on an optional HTTP address
//! (`--metrics-listen`, issue 7 item 5): IKE SA states, negotiation failures
//! by reason, the engine's IKE drop counters and, with a dataplane, per-port,
//! per-reason and per-SA counters. One small thread, std `TcpListener`, any
//! GET path answers the page (Prometheus scrapes `/metrics`).

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::api::{DataplaneSnapshot, DataplaneView};
use crate::ikev2::IkeSaInfo;
use crate::manager::{ManagerClient, Status};

const ACCEPT_POLL: Duration = Duration::from_millis(50);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Label value escaping (exposition format: backslash, quote, newline).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Page(String);

impl Page {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", esc(v))).collect();
            let _ = write!(self.0, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// The page for one moment.
pub fn render(status: &Status, sas: &[IkeSaInfo], dataplane: Option<&DataplaneSnapshot>) -> String {
    let mut p = Page(String::new());
    p.family("ipsecgw_ike_sas", "gauge", "IKE SAs by connection and state.");
    for c in &status.connections {
        let est = sas.iter().filter(|s| s.connection == c.name && s.established).count() as u64;
        let conn = sas.iter().filter(|s| s.connection == c.name && !s.established).count() as u64;
        p.sample("ipsecgw_ike_sas", &[("connection", &c.name), ("state", "established")], est);
        p.sample("ipsecgw_ike_sas", &[("connection", &c.name), ("state", "connecting")], conn);
    }
    p.family("ipsecgw_child_sas", "gauge", "Active Child SAs by connection.");
    for c in &status.connections {
        let n: usize = sas.iter().filter(|s| s.connection == c.name).map(|s| s.children.iter().filter(|ch| ch.active).count()).sum();
        p.sample("ipsecgw_child_sas", &[("connection", &c.name)], n as u64);
    }
    p.family("ipsecgw_connection_failures_total", "counter", "Negotiation failures by connection since start.");
    for c in &status.connections {
        p.sample("ipsecgw_connection_failures_total", &[("connection", &c.name)], c.last_failure.as_ref().map_or(0, |f| f.count));
    }
    p.family("ipsecgw_negotiation_failures_total", "counter", "Negotiation failures by reason since start (both roles).");
    for r in crate::diagnosis::Reason::ALL {
        p.sample("ipsecgw_negotiation_failures_total", &[("reason", r.as_str())], status.failures_by_reason.get(&r).copied().unwrap_or(0));
    }
    p.family("ipsecgw_ike_messages_total", "counter", "IKE messages dropped, answered with an error, or retransmitted, by kind.");
    for (k, v) in crate::api::ike_counters_of(status) {
        p.sample("ipsecgw_ike_messages_total", &[("kind", &k)], v);
    }
    if let Some(d) = dataplane {
        dataplane_families(&mut p, d);
    }
    p.0
}

fn dataplane_families(p: &mut Page, d: &DataplaneSnapshot) {
    type PortField = fn(&crate::api::PortView) -> u64;
    let ports: [(&str, &str, PortField); 9] = [
        ("ipsecgw_port_rx_packets_total", "Packets received by port.", |x| x.rx_packets),
        ("ipsecgw_port_rx_bytes_total", "Bytes received by port.", |x| x.rx_bytes),
        ("ipsecgw_port_tx_packets_total", "Packets sent by port.", |x| x.tx_packets),
        ("ipsecgw_port_tx_bytes_total", "Bytes sent by port.", |x| x.tx_bytes),
        ("ipsecgw_port_drops_total", "Received packets dropped by the gateway, by port.", |x| x.drops),
        ("ipsecgw_port_missed_total", "Packets the NIC missed (no rx descriptor), by port.", |x| x.missed),
        ("ipsecgw_port_rx_nombuf_total", "Receive mbuf allocation failures, by port.", |x| x.rx_nombuf),
        ("ipsecgw_port_rx_errors_total", "Erroneous packets received by the NIC, by port.", |x| x.rx_errors),
        ("ipsecgw_port_tx_errors_total", "Failed transmissions by the NIC, by port.", |x| x.tx_errors),
    ];
    for (name, help, f) in ports {
        p.family(name, "counter", help);
        for port in &d.ports {
            let id = port.port.to_string();
            p.sample(name, &[("port", &id), ("name", &port.name)], f(port));
        }
    }
    // The driver's own loss counters (names vary by PMD), non-zero ones.
    p.family("ipsecgw_port_nic_counter", "counter", "Loss-related extended counters of the NIC driver (DPDK xstats), by port and name.");
    for port in &d.ports {
        let id = port.port.to_string();
        for (name, v) in &port.xstats {
            p.sample("ipsecgw_port_nic_counter", &[("port", &id), ("name", &port.name), ("counter", name)], *v);
        }
    }
    p.family("ipsecgw_drops_total", "counter", "Dataplane drops by reason.");
    for x in &d.drops {
        p.sample("ipsecgw_drops_total", &[("reason", &x.reason)], x.packets);
    }
    type SaField = fn(&crate::api::SaCountersView) -> u64;
    let sa: [(&str, &str, SaField); 3] = [
        ("ipsecgw_sa_packets_total", "Packets by SA.", |x| x.packets),
        ("ipsecgw_sa_bytes_total", "Bytes by SA.", |x| x.bytes),
        ("ipsecgw_sa_drops_total", "Drops by SA.", |x| x.drops),
    ];
    for (name, help, f) in sa {
        p.family(name, "counter", help);
        for s in &d.sas {
            let spi = format!("0x{:08x}", s.spi);
            p.sample(name, &[("connection", &s.connection), ("direction", &s.direction), ("spi", &spi), ("peer", &s.peer)], f(s));
        }
    }
}

/// The running exporter; dropping it stops the thread.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    pub fn bind(addr: SocketAddr, manager: ManagerClient, dataplane: Option<Arc<dyn DataplaneView>>) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("metrics".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Err(e) = serve(stream, &manager, dataplane.as_deref()) {
                            tracing::debug!("metrics client: {e}");
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
                    Err(e) => {
                        tracing::warn!("metrics accept failed: {e}");
                        std::thread::sleep(ACCEPT_POLL);
                    }
                }
            }
        })?;
        Ok(MetricsServer { addr, stop, thread: Some(thread) })
    }

    /// The bound address (port 0 in the request gives a free one).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, manager: &ManagerClient, dataplane: Option<&dyn DataplaneView>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    // Read the request head (bounded); only GET is answered.
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    if !head.starts_with(b"GET ") {
        return stream.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    let (status, sas) = match (manager.status(), manager.ike_sas()) {
        (Ok(s), Ok(sas)) => (s, sas),
        _ => return stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
    let snap = dataplane.map(|d| d.snapshot());
    let body = render(&status, &sas, snap.as_ref());
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nic_and_sa_counters_are_exported() {
        use crate::api::{PortView, SaCountersView};
        let d = DataplaneSnapshot {
            ports: vec![PortView { port: 0, name: "outside".into(), missed: 4, rx_nombuf: 2, xstats: vec![("rx_missed_errors".into(), 4)], ..PortView::default() }],
            sas: vec![SaCountersView {
                connection: "left".into(),
                direction: "in".into(),
                spi: 0x1001,
                packets: 9,
                bytes: 900,
                drops: 1,
                peer: "198.51.100.1".into(),
                algorithm: "aes128gcm16".into(),
                worker: None,
            }],
            ..DataplaneSnapshot::default()
        };
        let mut p = Page(String::new());
        dataplane_families(&mut p, &d);
        let lines: Vec<&str> = p.0.lines().collect();
        for want in [
            "ipsecgw_port_missed_total{port=\"0\",name=\"outside\"} 4",
            "ipsecgw_port_rx_nombuf_total{port=\"0\",name=\"outside\"} 2",
            "ipsecgw_port_nic_counter{port=\"0\",name=\"outside\",counter=\"rx_missed_errors\"} 4",
            "ipsecgw_sa_packets_total{connection=\"left\",direction=\"in\",spi=\"0x00001001\",peer=\"198.51.100.1\"} 9",
        ] {
            assert!(lines.contains(&want), "missing {want} in\n{}", p.0);
        }
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
