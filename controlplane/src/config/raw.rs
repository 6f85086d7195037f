//! The file as written: serde shapes with spans, before validation.
//!
//! Every key is optional here so the validator can report all missing keys at once,
//! with messages that say what to add; unknown keys are rejected by serde and the
//! message is rewritten with the list of valid keys (see `super::syntax_error`).

use serde::Deserialize;
use toml::Spanned;
use zeroize::Zeroize;

pub(crate) type S<T> = Spanned<T>;

/// `["outside", "inside"]` in `[forward]` pairs.
pub(crate) type PortPair = S<Vec<S<String>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub dpdk: Option<S<RawDpdk>>,
    #[serde(default)]
    pub port: Vec<S<RawPort>>,
    #[serde(default)]
    pub route: Vec<S<RawRoute>>,
    pub forward: Option<S<RawForward>>,
    #[serde(default)]
    pub static_sa: Vec<S<RawStaticSa>>,
    #[serde(default)]
    pub connection: Vec<S<RawConnection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [dpdk] table")]
pub(crate) struct RawDpdk {
    pub eal_args: Option<S<Vec<String>>>,
    pub mbufs: Option<S<u32>>,
    pub busy_poll: Option<S<bool>>,
    pub burst: Option<S<u16>>,
    pub sa_owner: Option<S<String>>,
    pub encrypt: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[port]] table")]
pub(crate) struct RawPort {
    pub name: Option<S<String>>,
    pub dpdk_port: Option<S<u16>>,
    pub addresses: Option<S<Vec<S<String>>>>,
    pub mac: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[route]] table")]
pub(crate) struct RawRoute {
    pub destination: Option<S<String>>,
    pub via: Option<S<String>>,
    pub port: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [forward] table")]
pub(crate) struct RawForward {
    pub pairs: Option<S<Vec<PortPair>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[static_sa]] table")]
pub(crate) struct RawStaticSa {
    pub name: Option<S<String>>,
    pub local: Option<S<String>>,
    pub remote: Option<S<String>>,
    pub encap: Option<S<String>>,
    pub algorithm: Option<S<String>>,
    pub spi_in: Option<S<i64>>,
    pub spi_out: Option<S<i64>>,
    pub key_in: Option<S<String>>,
    pub key_out: Option<S<String>>,
    pub local_ts: Option<S<Vec<S<String>>>>,
    pub remote_ts: Option<S<Vec<S<String>>>>,
    pub esn: Option<S<bool>>,
    pub replay_window: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[connection]] table")]
pub(crate) struct RawConnection {
    pub name: Option<S<String>>,
    pub local_addr: Option<S<String>>,
    pub remote_addr: Option<S<String>>,
    pub local_id: Option<S<String>>,
    pub remote_id: Option<S<String>>,
    pub psk: Option<S<RawPsk>>,
    pub ike_proposals: Option<S<Vec<S<String>>>>,
    pub esp_proposals: Option<S<Vec<S<String>>>>,
    pub local_ts: Option<S<Vec<S<String>>>>,
    pub remote_ts: Option<S<Vec<S<String>>>>,
    pub role: Option<S<String>>,
    pub start_action: Option<S<String>>,
    pub encap: Option<S<String>>,
    pub ike_rekey: Option<S<String>>,
    pub ike_lifetime: Option<S<String>>,
    pub child_rekey: Option<S<String>>,
    pub child_lifetime: Option<S<String>>,
    pub jitter: Option<S<String>>,
    pub replay_window: Option<S<i64>>,
    pub nat_keepalive: Option<S<String>>,
    pub dpd: Option<S<RawDpd>>,
    pub monitor: Option<S<RawMonitor>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table: psk = { file = \"/etc/ipsecgw/NAME.psk\" } or { env = \"VAR\" } or { inline = \"...\" }"
)]
pub(crate) struct RawPsk {
    pub file: Option<S<String>>,
    pub env: Option<S<String>>,
    pub inline: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table: dpd = { interval = \"30s\", timeout = \"90s\", action = \"restart\" }"
)]
pub(crate) struct RawDpd {
    pub interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub action: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table: monitor = { address = \"10.1.0.1\", source = \"10.2.0.1\", interval = \"2s\", threshold = 3, action = \"fail-over\", backup = \"NAME\" }"
)]
pub(crate) struct RawMonitor {
    pub address: Option<S<String>>,
    pub source: Option<S<String>>,
    pub interval: Option<S<String>>,
    pub threshold: Option<S<i64>>,
    pub action: Option<S<String>>,
    pub backup: Option<S<String>>,
}

/// Key material read from the file is wiped when the raw tables go away (the
/// validated copies live in `Secret`s).
fn wipe(value: &mut Option<S<String>>) {
    if let Some(v) = value {
        v.get_mut().zeroize();
    }
}

impl Drop for RawStaticSa {
    fn drop(&mut self) {
        wipe(&mut self.key_in);
        wipe(&mut self.key_out);
    }
}

impl Drop for RawPsk {
    fn drop(&mut self) {
        wipe(&mut self.inline);
    }
}
