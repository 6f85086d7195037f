//! scapy's IKEv2 layer parses our messages the way we do, and our responder
//! answers an IKE_SA_INIT built by scapy (with a real P-256 key from
//! python-cryptography). Needs /usr/bin/python3 with scapy (scripts/setup.sh).
#![forbid(unsafe_code)]

mod ikev2_common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use controlplane::ikev2::wire::{parse_payloads, Header, Payload, PayloadType};
use controlplane::ikev2::{Action, Event};
use ikev2_common::*;

const PY: &str = "/usr/bin/python3";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ikev2_scapy.py");

fn scapy_available() -> bool {
    Command::new(PY).args(["-c", "import scapy.contrib.ikev2, cryptography"]).output().is_ok_and(|o| o.status.success())
}

fn name(t: PayloadType) -> String {
    match t {
        PayloadType::Sa => "SA".into(),
        PayloadType::Ke => "KE".into(),
        PayloadType::IdI => "IDi".into(),
        PayloadType::IdR => "IDr".into(),
        PayloadType::Auth => "AUTH".into(),
        PayloadType::Nonce => "Nonce".into(),
        PayloadType::Notify => "N".into(),
        PayloadType::Delete => "D".into(),
        PayloadType::Vendor => "V".into(),
        PayloadType::TsI => "TSi".into(),
        PayloadType::TsR => "TSr".into(),
        PayloadType::Sk => "SK".into(),
        other => u8::from(other).to_string(),
    }
}

/// The same summary line the Python script prints, from our parser.
fn summary(bytes: &[u8]) -> String {
    let h = Header::new_checked(bytes).expect("our header");
    let r = h.repr();
    let flags = (if r.flags.initiator { 0x08 } else { 0 }) | (if r.flags.response { 0x20 } else { 0 });
    let mut parts = vec![
        format!("exch={}", u8::from(r.exchange)),
        format!("flags={flags}"),
        format!("mid={}", r.message_id),
        format!("spi_i={:016x}", r.spi_i),
        format!("spi_r={:016x}", r.spi_r),
        format!("len={}", r.length),
    ];
    let payloads = parse_payloads(r.next_payload, h.body()).expect("our payloads");
    parts.push(format!("payloads={}", payloads.iter().map(|p| name(p.kind())).collect::<Vec<_>>().join(",")));
    for p in &payloads {
        match p {
            Payload::Sa(props) => {
                let s: Vec<String> = props
                    .iter()
                    .map(|pr| {
                        let t: Vec<String> = pr
                            .transforms
                            .iter()
                            .map(|t| match t.key_length() {
                                Some(k) => format!("{}:{}:{}", t.kind.0, t.id, k),
                                None => format!("{}:{}", t.kind.0, t.id),
                            })
                            .collect();
                        format!("{}/{}/{}[{}]", pr.number, u8::from(pr.protocol), pr.spi.len(), t.join(","))
                    })
                    .collect();
                parts.push(format!("sa={}", s.join(";")));
            }
            Payload::Ke(k) => parts.push(format!("ke={}/{}", k.group, k.data.len())),
            Payload::Nonce(n) => parts.push(format!("nonce={}", n.len())),
            Payload::Notify(n) => parts.push(format!("n={}/{}", n.kind.0, n.data.len())),
            Payload::Sk(sk) => parts.push(format!("sk={}", sk.body.len())),
            _ => {}
        }
    }
    parts.join(" ")
}

fn python(mode: &str, dir: &Path) -> String {
    let out = Command::new(PY).arg(SCRIPT).arg(mode).arg(dir).output().expect("run python");
    assert!(out.status.success(), "scapy script failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn scapy_and_we_agree_on_every_message() {
    if !scapy_available() {
        eprintln!("ikev2_scapy: skipped, {PY} has no scapy/cryptography (scripts/setup.sh installs them)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ikev2_scapy_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");

    // Our messages: setup through a NAT (IKE_AUTH on 4500), a Child rekey
    // with PFS and its delete, every proposal shape we emit.
    let (mut a, mut b) = (conn_a(), conn_b());
    a.ike_proposals = ike("aes256gcm16-aes128gcm16-prfsha384-prfsha256-x25519-ecp256");
    a.ike_proposals.extend(ike("chacha20poly1305-prfsha512-modp2048"));
    b.ike_proposals = ike("aes256gcm16-prfsha384-x25519");
    a.esp_proposals = esp("aes128gcm16-chacha20poly1305-ecp256-esn-noesn");
    b.esp_proposals = esp("aes128gcm16-ecp256");
    b.remote_addr = Some(NAT_IP.parse().expect("ip"));
    let mut net = Net::new(a, b);
    net.nat = true;
    net.initiate(Side::A);
    net.settle();
    assert!(net.established());
    let now = net.now;
    let sa = net.a.ep.ike_sas()[0].clone();
    let acts = net.a.ep.rekey_child(sa.id, sa.children[0].id, now);
    net.absorb(Side::A, acts);
    net.run_for(Duration::from_secs(5));
    let mut ours = Vec::new();
    for (i, d) in net.wire.iter().enumerate() {
        let f = format!("ours_{i:02}.bin");
        std::fs::write(dir.join(&f), d.ike()).expect("write");
        ours.push(format!("{f} {}", summary(d.ike())));
    }

    // scapy's IKE_SA_INIT, answered by a fresh responder.
    python("build", &dir);
    let theirs = std::fs::read(dir.join("scapy_init.bin")).expect("scapy message");
    let mut b = controlplane::ikev2::Endpoint::new(Box::new(controlplane::ikev2::crypto::DeterministicEntropy::new(b"s")));
    b.add_connection(conn_b(), Instant::now());
    let acts = b.handle_datagram(addr(B_IP, 500), addr(A_IP, 500), &theirs, Instant::now());
    let reply = acts.iter().find_map(|a| if let Action::Send { bytes, .. } = a { Some(bytes.clone()) } else { None }).expect("a reply");
    assert!(!acts.iter().any(|a| matches!(a, Action::Event(Event::Failure(_)))), "{acts:#?}");
    let rs = summary(&reply);
    assert!(rs.contains("payloads=SA,KE,Nonce,N,N") && rs.contains("sa=1/1/0[1:20:128,2:5,4:19]") && rs.contains("ke=19/64"), "{rs}");
    std::fs::write(dir.join("reply_to_scapy.bin"), &reply).expect("write");
    let mut expected = ours;
    expected.push(format!("reply_to_scapy.bin {rs}"));
    expected.push(format!("scapy_init.bin {}", summary(&theirs)));
    expected.sort();

    let got: Vec<String> = python("parse", &dir).lines().map(str::to_owned).collect();
    // `IKEV2_FUZZ_SEEDS=controlplane/fuzz/seeds` refreshes the fuzzing seeds.
    if let Some(seeds) = std::env::var_os("IKEV2_FUZZ_SEEDS") {
        for e in std::fs::read_dir(&dir).expect("dir").flatten() {
            let _ = std::fs::copy(e.path(), Path::new(&seeds).join(e.file_name()));
        }
    }
    eprintln!("{}", got.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e, "scapy (left) and our parser (right) disagree");
    }
}
