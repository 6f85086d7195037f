//! The example configs in examples/ load, and load to what they say.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use controlplane::config::{
    Config, DpdAction, IkeEncap, MonitorAction, Role, SaOwner, StartAction, StaticEncap, Warning,
};
use controlplane::identity::Identity;
use controlplane::proposal::{DhGroup, Encr, Esn, PrfId};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name)
}

fn load(name: &str) -> (Config, Vec<Warning>) {
    // One value for every test thread, so setting it races with nothing.
    std::env::set_var("IPSECGW_RW_PSK", "0x00112233445566778899aabbccddeeff");
    match Config::load(&example(name)) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("{name} does not load:\n{errors}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

#[test]
fn gateway_forward() {
    let (config, warnings) = load("gateway-forward.toml");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.dpdk.eal_args[0], "--no-huge");
    assert_eq!((config.dpdk.mbufs, config.dpdk.burst, config.dpdk.busy_poll), (8191, 32, false));
    assert_eq!(config.dpdk.sa_owner, SaOwner::FirstReceiver);
    assert_eq!(config.ports.len(), 2);
    let inside = config.port("inside").expect("port inside");
    assert_eq!(inside.dpdk_port, 1);
    assert_eq!(inside.mac, Some([2, 0, 0, 0, 2, 1]));
    assert_eq!(inside.addresses[0].to_string(), "10.2.0.1/24");
    assert_eq!(config.routes[0].via, Some(ip("198.51.100.2")));
    assert_eq!(config.routes[0].destination.to_string(), "10.1.0.0/24");
    let forward = config.forward.expect("[forward]");
    assert_eq!(forward.pairs, vec![("outside".to_owned(), "inside".to_owned())]);
}

#[test]
fn static_sa() {
    let (config, warnings) = load("static-sa.toml");
    assert!(warnings.is_empty(), "{warnings:?}");
    let sa = config.static_sa("to-gw2").expect("to-gw2");
    assert_eq!((sa.local, sa.remote), (ip("198.51.100.1"), ip("198.51.100.2")));
    assert_eq!(sa.encap, StaticEncap::Esp);
    assert_eq!(sa.algorithm, Encr::aes_gcm16(128));
    assert_eq!((sa.spi_in, sa.spi_out), (0x1001, 0x2002));
    assert_eq!((sa.key_in.len(), sa.key_out.len()), (20, 20));
    assert_eq!(sa.local_ts[0].to_string(), "10.2.0.0/24");
    assert_eq!((sa.esn, sa.replay_window), (false, 1024));
    let sa = config.static_sa("to-gw3").expect("to-gw3");
    assert_eq!((sa.encap, sa.algorithm, sa.esn), (StaticEncap::Udp, Encr::CHACHA20_POLY1305, true));
    assert_eq!(sa.key_in.len(), 36);
    assert_eq!(sa.remote_ts[1].to_string(), "10.4.0.0/24[udp/5000-5999]");
    // Keys never show in Debug output.
    let debug = format!("{config:?}");
    assert!(debug.contains("Secret(<20 bytes redacted>)"));
}

#[test]
fn strongswan_peer() {
    let (config, warnings) = load("strongswan-peer.toml");
    // A fresh clone may give the PSK file mode 644: that warning, and only that one, is fine.
    assert!(warnings.iter().all(|w| w.message.contains("chmod 600")), "{warnings:?}");
    let left = config.connection("left").expect("left");
    assert_eq!(left.local_id, Identity::Fqdn("gw.example.org".into()));
    assert_eq!(left.remote_id, Identity::Fqdn("left.example.org".into()));
    assert!(left.psk.expose().starts_with(b"example-psk-"));
    assert_eq!(left.psk.len(), "example-psk-".len() + 32);
    assert_eq!(left.ike_proposals.len(), 2);
    assert_eq!(left.ike_proposals[0].prf, vec![PrfId::HmacSha2_384]);
    assert_eq!(left.ike_proposals[1].ke, vec![DhGroup::Ecp256]);
    assert_eq!(left.esp_proposals[0].esn, vec![Esn::Yes]);
    assert_eq!(left.esp_proposals[1].esn, vec![Esn::No]);
    assert_eq!((left.role, left.start_action, left.encap), (Role::Initiator, StartAction::Start, IkeEncap::Auto));
    assert_eq!(left.ike_rekey, Duration::from_secs(4 * 3600));
    assert_eq!(left.ike_lifetime, Duration::from_secs(4 * 3600 + 1440));
    assert_eq!(left.child_lifetime, Duration::from_secs(4200));
    assert_eq!(left.jitter_percent, 5);
    let dpd = left.dpd.expect("dpd");
    assert_eq!((dpd.interval, dpd.timeout, dpd.action), (Duration::from_secs(30), Duration::from_secs(90), DpdAction::Restart));
    let monitor = left.monitor.as_ref().expect("monitor");
    assert_eq!(monitor.action, MonitorAction::FailOver);
    assert_eq!(monitor.backup.as_deref(), Some("left-backup"));
    assert_eq!(monitor.threshold, 3);

    let backup = config.connection("left-backup").expect("left-backup");
    assert_eq!(backup.start_action, StartAction::Trap);
    assert_eq!(backup.esp_proposals[0].to_string(), "aes256gcm16-x25519-esn");

    let rw = config.connection("roadwarriors").expect("roadwarriors");
    assert_eq!(rw.remote_addr, None);
    assert_eq!(rw.remote_id, Identity::Any);
    assert_eq!((rw.role, rw.start_action), (Role::Passive, StartAction::None));
    assert_eq!(rw.psk.len(), 16);
    // Defaults: every supported algorithm, no PFS, no ESN.
    assert_eq!(rw.esp_proposals[0].to_string(), "aes256gcm16-aes128gcm16-chacha20poly1305-noesn");
    assert_eq!(rw.ike_proposals[0].ke.len(), 4);
    assert_eq!(rw.child_rekey, Duration::from_secs(3600));
    assert_eq!(rw.replay_window, 1024);
    assert!(!format!("{config:?}").contains("example-psk-"));

    // What the IKEv2 engine gets.
    let engine = left.to_engine();
    assert_eq!(engine.local, "198.51.100.1:500".parse().expect("socket address"));
    assert_eq!((engine.remote_addr, engine.remote_port), (Some(ip("198.51.100.2")), 500));
    assert_eq!(engine.psk.as_slice(), left.psk.expose());
    assert_eq!(engine.ike_lifetime.rekey, left.ike_rekey);
    assert_eq!(engine.ike_lifetime.jitter, Duration::from_secs(720)); // 5% of 4h
    assert_eq!(engine.child_lifetime.life, Duration::from_secs(4200));
    assert_eq!(engine.start_action, controlplane::ikev2::StartAction::Start);
    assert_eq!(engine.dpd_interval, Some(Duration::from_secs(30)));
    assert_eq!(engine.dpd_action, controlplane::ikev2::DpdAction::Restart);
    assert!(!engine.passive && !engine.force_encap);
    assert!(rw.to_engine().passive);
    assert_eq!(rw.to_engine().remote_addr, None);
}
