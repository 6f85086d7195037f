//! Our proposal parser and wire codes checked against implementations we did not write:
//! strongSwan's own proposal parser (libstrongswan's proposal_create_from_string, called
//! through Python ctypes, printed with strongSwan's %P format) and scapy's IKEv2 tables.
//! Each check is skipped, loudly, when its tool is not installed (scripts/setup.sh
//! installs both).
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use controlplane::identity::IdType;
use controlplane::proposal::{
    keywords, DhGroup, EncrId, Esn, IntegId, ParseErrorKind, PrfId, Proposal, Protocol, TransformType,
};
use controlplane::selector::TsType;

const PYTHON: &str = "/usr/bin/python3";
const LIBSTRONGSWAN: &str = "/usr/lib/ipsec/libstrongswan.so.0";

/// Reads "PROTO TEXT" lines, prints strongSwan's %P rendering of each or "ERROR".
const STRONGSWAN_PARSER: &str = r#"
import ctypes, sys
ss = ctypes.CDLL(sys.argv[1])
libc = ctypes.CDLL(None)
ss.library_init.restype = ctypes.c_bool
ss.library_init.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
if not ss.library_init(None, b"ipsecgw-test"):
    sys.exit("library_init failed")
ss.proposal_create_from_string.restype = ctypes.c_void_p
ss.proposal_create_from_string.argtypes = [ctypes.c_int, ctypes.c_char_p]
for line in sys.stdin:
    proto, text = line.split()
    p = ss.proposal_create_from_string(1 if proto == "IKE" else 3, text.encode())
    if not p:
        print("ERROR", flush=True)
        continue
    buf = ctypes.create_string_buffer(4096)
    libc.snprintf(buf, 4096, b"%P", ctypes.c_void_p(p))
    print(buf.value.decode(), flush=True)
"#;

fn run_python(script: &str, args: &[&str], input: &str) -> Option<String> {
    if !Path::new(PYTHON).exists() {
        return None;
    }
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(input.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn inputs() -> Vec<(Protocol, String)> {
    let mut inputs: Vec<(Protocol, String)> = [
        "IKE aes256gcm16-prfsha384-x25519",
        "IKE aes128gcm16-prfsha256-ecp256",
        "IKE chacha20poly1305-prfsha256-modp2048",
        "IKE aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp384-ecp256",
        "IKE aes256gcm16-prfsha384-ecp384-aes128gcm16-prfsha256-ecp256",
        "IKE aes128-sha256-modp2048",
        "IKE aes256-sha384-sha256-ecp384",
        "IKE AES256GCM16-PRFSHA384-X25519",
        "ESP aes128gcm16-aes128gcm16",
        "IKE aes256gcm16-x25519",
        "IKE aes256gcm16-prfsha384",
        "IKE aes256gmc16-prfsha384-x25519",
        "IKE aes128gcm16--x25519",
        "ESP aes256gcm16-x25519-esn",
        "ESP aes128gcm16",
        "ESP aes128gcm16-noesn",
        "ESP aes128gcm16-esn-noesn",
        "ESP chacha20poly1305-ecp256",
        "ESP aes128-sha256",
        "ESP aes128-sha256-modp2048-esn",
        "ESP aes128",
        "ESP banana",
        "ESP sha256",
    ]
    .iter()
    .map(|l| {
        let (p, t) = l.split_once(' ').unwrap_or((l, ""));
        (if p == "IKE" { Protocol::Ike } else { Protocol::Esp }, t.to_owned())
    })
    .collect();
    // Every keyword we know, in every role it could play.
    for kw in keywords() {
        inputs.push((Protocol::Esp, kw.to_owned()));
        inputs.push((Protocol::Esp, format!("{kw}-sha256")));
        inputs.push((Protocol::Esp, format!("aes128-{kw}")));
        inputs.push((Protocol::Esp, format!("aes128gcm16-{kw}")));
        inputs.push((Protocol::Ike, format!("aes128gcm16-{kw}-x25519")));
        inputs.push((Protocol::Ike, format!("aes128-sha256-{kw}")));
    }
    inputs
}

#[test]
fn proposal_strings_parse_as_strongswan_parses_them() {
    if !Path::new(LIBSTRONGSWAN).exists() {
        eprintln!("SKIPPED: {LIBSTRONGSWAN} not installed");
        return;
    }
    let inputs = inputs();
    let stdin: String = inputs.iter().map(|(p, t)| format!("{p} {t}\n")).collect();
    let Some(out) = run_python(STRONGSWAN_PARSER, &[LIBSTRONGSWAN], &stdin) else {
        panic!("could not run strongSwan's parser through {PYTHON} ctypes");
    };
    let theirs: Vec<&str> = out.lines().collect();
    assert_eq!(theirs.len(), inputs.len(), "strongSwan answered {} of {} lines", theirs.len(), inputs.len());
    let (mut agree, mut stricter) = (0, Vec::new());
    let mut failures = Vec::new();
    for ((protocol, text), theirs) in inputs.iter().zip(theirs) {
        let ours = Proposal::parse(*protocol, text);
        match (&ours, theirs) {
            (Ok(p), t) if t != "ERROR" => {
                // strongSwan keeps a repeated algorithm twice; we send it once.
                let mut seen: Vec<&str> = Vec::new();
                let (proto, list) = t.split_once(':').unwrap_or((t, ""));
                for name in list.split('/') {
                    if !seen.contains(&name) {
                        seen.push(name);
                    }
                }
                let t = format!("{proto}:{}", seen.join("/"));
                if p.describe() == t {
                    agree += 1;
                } else {
                    failures.push(format!("{protocol} {text}: ours {}, strongSwan {t}", p.describe()));
                }
            }
            (Err(_), "ERROR") => agree += 1,
            // Where we are stricter on purpose: AEAD with integrity, AEAD mixed with
            // classic ciphers in one proposal, a PRF in ESP or ESN in IKE; strongSwan
            // accepts these and drops or splits transforms silently.
            (Err(e), t)
                if matches!(e.kind, ParseErrorKind::IntegWithAead { .. } | ParseErrorKind::MixedAead | ParseErrorKind::NotAllowed { .. }) =>
            {
                stricter.push(format!("{protocol} {text}: strongSwan {t}, ours: {e}"));
            }
            (Err(e), t) => failures.push(format!("{protocol} {text}: strongSwan {t}, ours: {e}")),
            (Ok(p), _) => failures.push(format!("{protocol} {text}: strongSwan rejects it, ours {}", p.describe())),
        }
    }
    eprintln!("{agree} of {} proposal strings parse identically; {} rejected only by us on purpose", inputs.len(), stricter.len());
    assert!(failures.is_empty(), "{} disagreements with strongSwan:\n{}", failures.len(), failures.join("\n"));
    assert!(agree > inputs.len() / 2, "too few agreements: {agree}");
}

/// Prints scapy's IKEv2 tables as "TABLE CODE NAME" lines.
const SCAPY_TABLES: &str = r#"
from scapy.contrib import ikev2 as k
for name, (code, values, *_) in k.IKEv2TransformTypes.items():
    print(f"type {code} {name}")
    for v, c in values.items():
        print(f"{code} {c} {v}")
for c, v in k.IKEv2_payload_IDi().get_field("IDtype").i2s.items():
    print(f"id {c} {v}")
for c, v in k.IKEv2_payload_Proposal().get_field("proto").i2s.items():
    print(f"proto {c} {v}")
for c, v in k.IKEv2TrafficSelectorTypes.items():
    print(f"ts {c} {v}")
"#;

#[test]
fn wire_codes_match_scapy() {
    let Some(out) = run_python(SCAPY_TABLES, &[], "") else {
        eprintln!("SKIPPED: scapy not available through {PYTHON}");
        return;
    };
    let lookup = |table: &str, name: &str| -> Option<u16> {
        out.lines().find_map(|l| {
            let mut parts = l.splitn(3, ' ');
            let (t, code, n) = (parts.next()?, parts.next()?, parts.next()?);
            (t == table && n == name).then(|| code.parse().ok()).flatten()
        })
    };
    let t = |ty: TransformType| ty.code().to_string();
    let cases: Vec<(String, &str, u16)> = vec![
        ("type".into(), "Encryption", TransformType::Encr.code().into()),
        ("type".into(), "PRF", TransformType::Prf.code().into()),
        ("type".into(), "Integrity", TransformType::Integ.code().into()),
        ("type".into(), "GroupDesc", TransformType::Ke.code().into()),
        ("type".into(), "Extended Sequence Number", TransformType::Esn.code().into()),
        (t(TransformType::Encr), "3DES", EncrId::TripleDes.code()),
        (t(TransformType::Encr), "AES-CBC", EncrId::AesCbc.code()),
        (t(TransformType::Encr), "AES-CTR", EncrId::AesCtr.code()),
        (t(TransformType::Encr), "AES-CCM-8", EncrId::AesCcm8.code()),
        (t(TransformType::Encr), "AES-CCM-12", EncrId::AesCcm12.code()),
        (t(TransformType::Encr), "AES-CCM-16", EncrId::AesCcm16.code()),
        (t(TransformType::Encr), "AES-GCM-8ICV", EncrId::AesGcm8.code()),
        (t(TransformType::Encr), "AES-GCM-12ICV", EncrId::AesGcm12.code()),
        (t(TransformType::Encr), "AES-GCM-16ICV", EncrId::AesGcm16.code()),
        (t(TransformType::Encr), "ChaCha20-Poly1305", EncrId::ChaCha20Poly1305.code()),
        (t(TransformType::Prf), "PRF_HMAC_MD5", PrfId::HmacMd5.code()),
        (t(TransformType::Prf), "PRF_HMAC_SHA1", PrfId::HmacSha1.code()),
        (t(TransformType::Prf), "PRF_AES128_XCBC", PrfId::AesXcbc.code()),
        (t(TransformType::Prf), "PRF_HMAC_SHA2_256", PrfId::HmacSha2_256.code()),
        (t(TransformType::Prf), "PRF_HMAC_SHA2_384", PrfId::HmacSha2_384.code()),
        (t(TransformType::Prf), "PRF_HMAC_SHA2_512", PrfId::HmacSha2_512.code()),
        (t(TransformType::Prf), "PRF_AES128_CMAC", PrfId::AesCmac.code()),
        (t(TransformType::Integ), "HMAC-MD5-96", IntegId::HmacMd5_96.code()),
        (t(TransformType::Integ), "HMAC-SHA1-96", IntegId::HmacSha1_96.code()),
        (t(TransformType::Integ), "AES-XCBC-96", IntegId::AesXcbc96.code()),
        (t(TransformType::Integ), "AES-CMAC-96", IntegId::AesCmac96.code()),
        (t(TransformType::Integ), "SHA2-256-128", IntegId::HmacSha2_256_128.code()),
        (t(TransformType::Integ), "SHA2-384-192", IntegId::HmacSha2_384_192.code()),
        (t(TransformType::Integ), "SHA2-512-256", IntegId::HmacSha2_512_256.code()),
        (t(TransformType::Ke), "768MODPgr", DhGroup::Modp768.code()),
        (t(TransformType::Ke), "1024MODPgr", DhGroup::Modp1024.code()),
        (t(TransformType::Ke), "1536MODPgr", DhGroup::Modp1536.code()),
        (t(TransformType::Ke), "2048MODPgr", DhGroup::Modp2048.code()),
        (t(TransformType::Ke), "3072MODPgr", DhGroup::Modp3072.code()),
        (t(TransformType::Ke), "4096MODPgr", DhGroup::Modp4096.code()),
        (t(TransformType::Ke), "6144MODPgr", DhGroup::Modp6144.code()),
        (t(TransformType::Ke), "8192MODPgr", DhGroup::Modp8192.code()),
        (t(TransformType::Ke), "256randECPgr", DhGroup::Ecp256.code()),
        (t(TransformType::Ke), "384randECPgr", DhGroup::Ecp384.code()),
        (t(TransformType::Ke), "521randECPgr", DhGroup::Ecp521.code()),
        (t(TransformType::Ke), "1024MODP160POSgr", DhGroup::Modp1024S160.code()),
        (t(TransformType::Ke), "2048MODP224POSgr", DhGroup::Modp2048S224.code()),
        (t(TransformType::Ke), "2048MODP256POSgr", DhGroup::Modp2048S256.code()),
        (t(TransformType::Ke), "192randECPgr", DhGroup::Ecp192.code()),
        (t(TransformType::Ke), "224randECPgr", DhGroup::Ecp224.code()),
        (t(TransformType::Ke), "brainpoolP224r1gr", DhGroup::Ecp224Bp.code()),
        (t(TransformType::Ke), "brainpoolP256r1gr", DhGroup::Ecp256Bp.code()),
        (t(TransformType::Ke), "brainpoolP384r1gr", DhGroup::Ecp384Bp.code()),
        (t(TransformType::Ke), "brainpoolP512r1gr", DhGroup::Ecp512Bp.code()),
        (t(TransformType::Ke), "curve25519gr", DhGroup::Curve25519.code()),
        (t(TransformType::Ke), "curve448gr", DhGroup::Curve448.code()),
        (t(TransformType::Esn), "No ESN", Esn::No.code()),
        (t(TransformType::Esn), "ESN", Esn::Yes.code()),
        ("id".into(), "IPv4_addr", IdType::Ipv4Addr.code().into()),
        ("id".into(), "FQDN", IdType::Fqdn.code().into()),
        ("id".into(), "Email_addr", IdType::Rfc822Addr.code().into()),
        ("id".into(), "IPv6_addr", IdType::Ipv6Addr.code().into()),
        ("id".into(), "Key", IdType::KeyId.code().into()),
        ("proto".into(), "IKEv2", Protocol::Ike.code().into()),
        ("proto".into(), "AH", Protocol::Ah.code().into()),
        ("proto".into(), "ESP", Protocol::Esp.code().into()),
        ("ts".into(), "TS_IPV4_ADDR_RANGE", TsType::Ipv4AddrRange.code().into()),
        ("ts".into(), "TS_IPV6_ADDR_RANGE", TsType::Ipv6AddrRange.code().into()),
    ];
    let mut failures = Vec::new();
    for (table, name, ours) in &cases {
        match lookup(table, name) {
            Some(theirs) if theirs == *ours => {}
            other => failures.push(format!("{table} {name}: ours {ours}, scapy {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
