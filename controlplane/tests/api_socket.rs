//! The control socket and the metrics page against a real manager thread on
//! the punt transport (no sockets for IKE): the socket is 0600, answers JSON
//! lines, refuses bad requests with a message; an IKEv1 datagram punted in
//! shows up as a failure (reason ike_version) in `show connections` and in the
//! metrics counters; the page is valid Prometheus text.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use controlplane::api::{self, ApiServer, Request, ShowWhat};
use controlplane::identity::Identity;
use controlplane::ikev2::ConnectionConfig;
use controlplane::manager::{punt_channel, Manager, ManagerHandle, PuntEnds, RecordingSaSink, UdpDatagram};
use controlplane::metrics::MetricsServer;
use controlplane::proposal::{Proposal, Protocol};
use controlplane::selector::TrafficSelector;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn conn() -> ConnectionConfig {
    let id = |s: &str| s.parse::<Identity>().expect("identity");
    ConnectionConfig::new(
        "left",
        addr("198.51.100.2:500"),
        Some(addr("198.51.100.1:500")),
        id("gw"),
        id("left"),
        b"a pre-shared key for the test",
        vec![Proposal::parse_supported(Protocol::Ike, "aes128gcm16-prfsha256-ecp256").expect("ike")],
        vec![Proposal::parse_supported(Protocol::Esp, "aes128gcm16").expect("esp")],
        vec![TrafficSelector::from_cidr("10.2.0.0/24").expect("ts")],
        vec![TrafficSelector::from_cidr("10.1.0.0/24").expect("ts")],
    )
}

fn start(tag: &str) -> (ManagerHandle, PuntEnds, PathBuf) {
    let (ends, transport) = punt_channel(64);
    let handle = Manager::spawn(vec![conn()], Box::new(transport), Box::new(RecordingSaSink::new())).expect("manager");
    let dir = std::env::temp_dir().join(format!("ipsecgw-api-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    (handle, ends, dir.join("sub").join("api.sock"))
}

/// An ISAKMP (IKEv1) Main Mode header, RFC 2408 §3.1.
fn ikev1() -> Vec<u8> {
    let mut m = vec![0u8; 28];
    m[..8].copy_from_slice(&[9, 8, 7, 6, 5, 4, 3, 2]);
    m[16] = 1;
    m[17] = 0x10;
    m[18] = 2;
    m[24..].copy_from_slice(&28u32.to_be_bytes());
    m
}

fn show(path: &std::path::Path, what: ShowWhat) -> serde_json::Value {
    let r = api::request(path, &Request::Show { what }).expect("request");
    assert!(r.ok, "{r:?}");
    r.data.expect("data")
}

#[test]
fn socket_show_initiate_and_failures() {
    let (handle, ends, path) = start("show");
    let server = ApiServer::bind(&path, handle.client(), None).expect("bind");
    let mode = std::fs::metadata(&path).expect("socket").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(path.parent().expect("dir")).expect("dir").permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);

    let conns = show(&path, ShowWhat::Connections);
    assert_eq!(conns[0]["name"], "left");
    assert_eq!(conns[0]["state"], "down");
    assert!(conns[0]["last_failure"].is_null());

    // Unknown connection: refused with the configured names.
    let r = api::request(&path, &Request::Initiate { name: "nope".into() }).expect("request");
    assert!(!r.ok && r.error.as_deref().is_some_and(|e| e.contains("left")), "{r:?}");
    // Initiate: the manager sends IKE_SA_INIT through the punt transport.
    let r = api::request(&path, &Request::Initiate { name: "left".into() }).expect("request");
    assert!(r.ok, "{r:?}");
    let sent = ends.outbound.recv_timeout(std::time::Duration::from_secs(5)).expect("IKE_SA_INIT sent");
    assert_eq!(sent.remote, addr("198.51.100.1:500"));
    assert_eq!(sent.payload[17], 0x20, "IKEv2 header");
    let sas = show(&path, ShowWhat::IkeSa);
    assert_eq!(sas[0]["established"], false);
    assert_eq!(show(&path, ShowWhat::Connections)[0]["state"], "connecting");

    // An IKEv1 peer: the failure is kept and explained.
    assert!(ends.punt(UdpDatagram { local: addr("198.51.100.2:500"), remote: addr("198.51.100.7:500"), payload: ikev1() }));
    let mut reason = serde_json::Value::Null;
    for _ in 0..250 {
        let rows = show(&path, ShowWhat::Connections);
        if let Some(r) = rows.as_array().and_then(|a| a.iter().find(|r| !r["last_failure"].is_null())) {
            reason = r["last_failure"]["reason"].clone();
            assert!(r["last_failure"]["diagnosis"].as_str().is_some_and(|d| d.contains("IKEv1")), "{r}");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(reason, "ike_version");
    let stats = show(&path, ShowWhat::Stats);
    let by_reason: Vec<(String, u64)> = serde_json::from_value(stats["failures_by_reason"].clone()).expect("pairs");
    assert!(by_reason.contains(&("ike_version".into(), 1)), "{by_reason:?}");
    assert!(stats["ports"].is_null(), "no dataplane in this process");
    let r = api::request(&path, &Request::Show { what: ShowWhat::Drops }).expect("request");
    assert!(!r.ok && r.error.as_deref().is_some_and(|e| e.contains("no dataplane")));

    // A bad line gets an error line, and the connection stays usable.
    let mut s = UnixStream::connect(&path).expect("connect");
    s.write_all(b"{\"cmd\":\"reboot\"}\n{\"cmd\":\"show\",\"what\":\"ike-sa\"}\n").expect("write");
    let mut lines = BufReader::new(s).lines();
    let first: api::Response = serde_json::from_str(&lines.next().expect("line").expect("read")).expect("json");
    assert!(!first.ok && first.error.as_deref().is_some_and(|e| e.contains("bad request")));
    let second: api::Response = serde_json::from_str(&lines.next().expect("line").expect("read")).expect("json");
    assert!(second.ok);

    // A second server on the same live socket is refused; dropping removes the file.
    assert!(ApiServer::bind(&path, handle.client(), None).is_err());
    drop(server);
    assert!(!path.exists());
    handle.shutdown(false);
}

fn get(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn metrics_page() {
    let (handle, ends, _) = start("metrics");
    let m = MetricsServer::bind(addr("127.0.0.1:0"), handle.client(), None).expect("bind");
    assert!(ends.punt(UdpDatagram { local: addr("198.51.100.2:500"), remote: addr("198.51.100.7:500"), payload: ikev1() }));
    let mut page = String::new();
    for _ in 0..250 {
        page = get(m.local_addr());
        if page.contains("ipsecgw_negotiation_failures_total{reason=\"ike_version\"} 1") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (head, body) = page.split_once("\r\n\r\n").expect("HTTP head");
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/plain; version=0.0.4"), "{head}");
    assert!(body.contains("ipsecgw_negotiation_failures_total{reason=\"ike_version\"} 1"), "{body}");
    assert!(body.contains("ipsecgw_ike_sas{connection=\"left\",state=\"established\"} 0"), "{body}");
    // Exposition format 0.0.4: comments, or `name{labels} value`; every sample's family declared.
    let mut typed = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.push(rest.split(' ').next().expect("name").to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("value");
        assert!(value.parse::<u64>().is_ok(), "{line}");
        let name = series.split('{').next().expect("name");
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{line}");
        assert!(typed.iter().any(|t| t == name), "sample before its # TYPE: {line}");
        if let Some(labels) = series.strip_prefix(name) {
            assert!(labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')), "{line}");
        }
    }
    drop(m);
    handle.shutdown(false);
}
