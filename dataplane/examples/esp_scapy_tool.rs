//! Line-oriented driver for scripts/tests/esp_scapy.sh: seals and opens ESP packets
//! with `dataplane::esp` so an independent implementation (scapy) can check them.
//!
//! stdin, one request per line, `key=value` tokens:
//!   seal alg=A key=HEX spi=HEX seq=N esn=0|1 src=IP dst=IP udp=SPORT:DPORT|none
//!        csum6=0|1 pad=4|16 ttl=N inner=HEX          -> `ok HEX` | `err REASON`
//!   open alg=A key=HEX spi=HEX esn=0|1 top=N pkt=HEX  -> `ok NEXT_HEADER HEX` | `err REASON`
//! where A is aes128gcm, aes256gcm or chacha20poly1305 and REASON a drop-reason name.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::Arc;

use dataplane::crypto::{new_aead, Aead, Algorithm, Backend};
use dataplane::esp::{
    decap, encap, InboundConfig, InboundSa, OutboundConfig, OutboundSa, OutboundState, PadAlign, UdpEncap,
};
use dataplane::packet::{HeapPacket, Packet};
use dataplane::wire::Spi;

type Fields<'a> = HashMap<&'a str, &'a str>;

fn field<'a>(f: &Fields<'a>, k: &str) -> Result<&'a str, String> {
    f.get(k).copied().ok_or_else(|| format!("missing {k}"))
}

fn num<T: std::str::FromStr>(f: &Fields<'_>, k: &str) -> Result<T, String> {
    field(f, k)?.parse().map_err(|_| format!("bad {k}"))
}

fn bytes(f: &Fields<'_>, k: &str) -> Result<Vec<u8>, String> {
    hex::decode(field(f, k)?).map_err(|e| format!("bad {k}: {e}"))
}

fn aead(f: &Fields<'_>) -> Result<Arc<dyn Aead>, String> {
    let alg = match field(f, "alg")? {
        "aes128gcm" => Algorithm::Aes128Gcm,
        "aes256gcm" => Algorithm::Aes256Gcm,
        "chacha20poly1305" => Algorithm::ChaCha20Poly1305,
        other => return Err(format!("unknown alg {other}")),
    };
    let backend = f.get("backend").map_or(Ok(Backend::Auto), |b| b.parse()).map_err(|_| "bad backend")?;
    Ok(Arc::from(new_aead(alg, &bytes(f, "key")?, backend).map_err(|e| e.to_string())?))
}

fn spi(f: &Fields<'_>) -> Result<Spi, String> {
    u32::from_str_radix(field(f, "spi")?, 16).map(Spi).map_err(|_| "bad spi".into())
}

fn seal(f: &Fields<'_>) -> Result<String, String> {
    let esn = num::<u8>(f, "esn")? == 1;
    let mut cfg = OutboundConfig::new(spi(f)?, num(f, "src")?, num(f, "dst")?);
    cfg.esn = esn;
    cfg.ttl = num(f, "ttl")?;
    cfg.pad_align = Some(if num::<u8>(f, "pad")? == 16 { PadAlign::Sixteen } else { PadAlign::Four });
    cfg.udp = match field(f, "udp")? {
        "none" => None,
        ports => {
            let (s, d) = ports.split_once(':').ok_or("bad udp")?;
            Some(UdpEncap {
                src_port: s.parse().map_err(|_| "bad udp")?,
                dst_port: d.parse().map_err(|_| "bad udp")?,
                ipv6_checksum: num::<u8>(f, "csum6")? == 1,
            })
        }
    };
    let sa = OutboundSa::new(cfg, aead(f)?).map_err(|e| e.to_string())?;
    let state = OutboundState::with_next(esn, num(f, "seq")?);
    let mut p = HeapPacket::from_slice(&bytes(f, "inner")?);
    Ok(match encap(&sa, &state, &mut p) {
        Ok(()) => format!("ok {}", hex::encode(p.data())),
        Err(e) => format!("err {}", e.drop_reason()),
    })
}

fn open(f: &Fields<'_>) -> Result<String, String> {
    let esn = num::<u8>(f, "esn")? == 1;
    let sa = InboundSa::new(InboundConfig { spi: spi(f)?, esn, replay_window: 1024 }, aead(f)?)
        .map_err(|e| e.to_string())?;
    let state = sa.new_state().map_err(|e| e.to_string())?;
    let top: u64 = num(f, "top")?;
    if top > 0 {
        state.replay.update(top).map_err(|e| e.to_string())?;
    }
    let mut p = HeapPacket::from_slice(&bytes(f, "pkt")?);
    Ok(match decap(&sa, &state, &mut p) {
        Ok(d) => format!("ok {} {}", u8::from(d.next_header), hex::encode(p.data())),
        Err(e) => format!("err {}", e.drop_reason()),
    })
}

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for (n, line) in stdin.lock().lines().enumerate() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let f: Fields<'_> = words.filter_map(|w| w.split_once('=')).collect();
        let r = match cmd {
            "seal" => seal(&f),
            "open" => open(&f),
            "" => continue,
            other => Err(format!("unknown command {other}")),
        };
        let line = r.unwrap_or_else(|e| {
            failed = true;
            eprintln!("line {}: {e}", n + 1);
            format!("fail {e}")
        });
        if writeln!(out, "{line}").is_err() {
            std::process::exit(1);
        }
    }
    std::process::exit(i32::from(failed));
}
