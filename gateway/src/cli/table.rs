//! Human tables for `ipsecgw show` from the socket's JSON rows.

use controlplane::api::ShowWhat;
use serde_json::Value;

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Columns aligned, header first.
fn grid(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i == last {
                s.push_str(&c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn rows(data: &Value, keys: &[&str]) -> Vec<Vec<String>> {
    data.as_array().map_or_else(Vec::new, |a| a.iter().map(|r| keys.iter().map(|k| cell(&r[*k])).collect()).collect())
}

fn pairs(v: &Value) -> Vec<Vec<String>> {
    v.as_array().map_or_else(Vec::new, |a| a.iter().map(|p| vec![cell(&p[0]), cell(&p[1])]).collect())
}

pub fn render(what: ShowWhat, data: &Value) -> String {
    match what {
        ShowWhat::Connections => {
            let mut out = grid(&["NAME", "STATE", "IKE_SAS", "CHILD_SAS", "FAILURES", "LAST_FAILURE"], &connection_rows(data));
            // The operator line of each failure in full, below the table.
            for c in data.as_array().into_iter().flatten() {
                if let Some(d) = c["last_failure"]["diagnosis"].as_str() {
                    out.push_str(&format!("\n{}: {d}\n", cell(&c["name"])));
                }
            }
            // Tunnel monitors (issue 7 item 3), one line each.
            let monitors: Vec<Vec<String>> = data
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["monitor"].is_object())
                .map(|c| {
                    let m = &c["monitor"];
                    let probes = format!("{} -> {}", cell(&m["source"]), cell(&m["address"]));
                    let counts = format!("{}/{}", cell(&m["received"]), cell(&m["sent"]));
                    let action = match m["backup"].as_str() {
                        Some(b) => format!("{} ({b})", cell(&m["action"])),
                        None => cell(&m["action"]),
                    };
                    vec![cell(&c["name"]), cell(&m["state"]), probes, counts, cell(&m["lost_in_row"]), action, cell(&m["carried_by"])]
                })
                .collect();
            if !monitors.is_empty() {
                out.push('\n');
                out.push_str(&grid(&["MONITOR", "STATE", "PROBES", "REPLIES/SENT", "LOST_IN_ROW", "ACTION", "TRAFFIC_ON"], &monitors));
            }
            out
        }
        ShowWhat::IkeSa => grid(
            &["ID", "CONNECTION", "ROLE", "ESTABLISHED", "LOCAL", "REMOTE", "CHILD_SAS"],
            &rows(data, &["id", "connection", "role", "established", "local", "remote", "child_sas"]),
        ),
        ShowWhat::ChildSa => grid(
            &[
                "CONNECTION", "IKE_SA", "CHILD", "SPI_IN", "SPI_OUT", "PEER", "ALGORITHM", "ACTIVE", "IN_PKTS", "IN_BYTES", "IN_DROPS",
                "OUT_PKTS", "OUT_BYTES", "OUT_DROPS", "AGE_S", "REKEY_IN_S", "EXPIRES_IN_S", "IN_WORKER",
                "OUT_WORKER",
            ],
            &rows(
                data,
                &[
                    "connection", "ike_sa", "child", "spi_in", "spi_out", "peer", "algorithm", "active", "in_packets", "in_bytes", "in_drops",
                    "out_packets", "out_bytes", "out_drops", "age_s", "rekey_in_s", "expires_in_s", "in_worker",
                    "out_worker",
                ],
            ),
        ),
        ShowWhat::Stats => {
            let mut out = grid(&["IKE", "COUNT"], &pairs(&data["ike"]));
            out.push('\n');
            out.push_str(&grid(&["FAILURE_REASON", "COUNT"], &pairs(&data["failures_by_reason"])));
            if data["ports"].is_array() {
                out.push('\n');
                out.push_str(&grid(
                    &["PORT", "NAME", "RX_PKTS", "RX_BYTES", "TX_PKTS", "TX_BYTES", "DROPS", "MISSED", "RX_NOMBUF", "RX_ERRORS", "TX_ERRORS"],
                    &rows(
                        &data["ports"],
                        &["port", "name", "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "drops", "missed", "rx_nombuf", "rx_errors", "tx_errors"],
                    ),
                ));
                // The driver's own loss counters, where it has any.
                let xstats: Vec<Vec<String>> = data["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|p| p["xstats"].as_array().into_iter().flatten().map(move |x| vec![cell(&p["name"]), cell(&x[0]), cell(&x[1])]))
                    .collect();
                if !xstats.is_empty() {
                    out.push('\n');
                    out.push_str(&grid(&["PORT", "NIC_COUNTER", "VALUE"], &xstats));
                }
            }
            // ESP on SPIs without an SA, per (peer, SPI) (issue 7 item 4).
            if data["unknown_spis"].as_array().is_some_and(|a| !a.is_empty()) {
                out.push('\n');
                out.push_str(&grid(
                    &["UNKNOWN_SPI_PEER", "SPI", "PACKETS", "INVALID_SPI_SENT", "LAST_SEEN_UNIX_S"],
                    &rows(&data["unknown_spis"], &["peer", "spi", "packets", "notifies", "last_seen"]),
                ));
            }
            out
        }
        ShowWhat::Drops => grid(&["REASON", "PACKETS"], &rows(data, &["reason", "packets"])),
        ShowWhat::Neighbors => grid(&["IP", "MAC", "PORT", "STATE", "AGE_S"], &rows(data, &["ip", "mac", "port", "state", "age_s"])),
        ShowWhat::Routes => grid(&["PREFIX", "VIA", "PORT"], &rows(data, &["prefix", "via", "port"])),
    }
}

fn connection_rows(data: &Value) -> Vec<Vec<String>> {
    data.as_array().map_or_else(Vec::new, |a| {
        a.iter()
            .map(|c| {
                let f = &c["last_failure"];
                vec![
                    cell(&c["name"]),
                    cell(&c["state"]),
                    cell(&c["ike_sas"]),
                    cell(&c["child_sas"]),
                    if f.is_null() { "0".into() } else { cell(&f["count"]) },
                    if f.is_null() { "-".into() } else { cell(&f["reason"]) },
                ]
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_sa_rows_show_counters_and_lifetimes() {
        let data = serde_json::json!([{
            "connection": "left", "ike_sa": "00000000000000aa", "child": 3, "spi_in": "0xc0000001", "spi_out": "0x00001234",
            "peer": "198.51.100.1", "algorithm": "AES_GCM_16_128", "active": true, "in_packets": 5, "in_bytes": 500, "in_drops": 0,
            "out_packets": 7, "out_bytes": 700, "out_drops": 1, "age_s": 12, "rekey_in_s": 3000, "expires_in_s": null, "in_worker": 1,
            "out_worker": 0
        }]);
        let t = render(ShowWhat::ChildSa, &data);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("CONNECTION") && lines[0].ends_with("IN_WORKER  OUT_WORKER"), "{t}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(cells, ["left", "00000000000000aa", "3", "0xc0000001", "0x00001234", "198.51.100.1", "AES_GCM_16_128", "true", "5", "500", "0", "7", "700", "1", "12", "3000", "-", "1", "0"]);
    }

    #[test]
    fn nic_loss_counters_get_their_own_table() {
        let data = serde_json::json!({"ike": [], "failures_by_reason": [], "ports": [
            {"port": 0, "name": "outside", "rx_packets": 1, "rx_bytes": 2, "tx_packets": 3, "tx_bytes": 4, "drops": 0, "missed": 6,
             "rx_nombuf": 1, "rx_errors": 0, "tx_errors": 0, "xstats": [["rx_missed_errors", 6]]}]});
        let t = render(ShowWhat::Stats, &data);
        assert!(t.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["outside", "rx_missed_errors", "6"]), "{t}");
        assert!(t.lines().any(|l| l.starts_with("0") && l.split_whitespace().nth(7) == Some("6")), "missed column: {t}");
    }

    #[test]
    fn stats_list_unknown_spis_per_peer_and_spi() {
        let data = serde_json::json!({
            "ike": [], "failures_by_reason": [],
            "unknown_spis": [{"peer": "198.51.100.1", "spi": "0xdeadbeef", "packets": 200, "notifies": 3, "last_seen": 1764115200}],
        });
        let out = render(ShowWhat::Stats, &data);
        assert!(out.contains("UNKNOWN_SPI_PEER  SPI         PACKETS  INVALID_SPI_SENT  LAST_SEEN_UNIX_S\n"), "{out}");
        assert!(out.contains("198.51.100.1      0xdeadbeef  200      3                 1764115200\n"), "{out}");
        let none = render(ShowWhat::Stats, &serde_json::json!({"ike": [], "failures_by_reason": [], "unknown_spis": []}));
        assert!(!none.contains("UNKNOWN_SPI"), "no table without rows");
    }

    #[test]
    fn connections_list_their_tunnel_monitors() {
        let data = serde_json::json!([
            {"name": "primary", "state": "up", "ike_sas": 1, "child_sas": 1, "last_failure": null,
             "monitor": {"connection": "primary", "state": "down", "action": "fail-over", "backup": "backup", "failed_over": true,
                         "carried_by": "backup", "source": "10.2.0.1", "address": "10.1.0.1", "sent": 35, "received": 26,
                         "lost_in_row": 6, "last_rtt_us": 400, "changes": 3, "last_change": 1764115200}},
            {"name": "other", "state": "down", "ike_sas": 0, "child_sas": 0, "last_failure": null}
        ]);
        let t = render(ShowWhat::Connections, &data);
        let row = t.lines().skip_while(|l| !l.starts_with("MONITOR")).nth(1).expect("a monitor row");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["primary", "down", "10.2.0.1", "->", "10.1.0.1", "26/35", "6", "fail-over", "(backup)", "backup"]
        );
        assert_eq!(t.lines().filter(|l| l.starts_with("other")).count(), 1, "no monitor line without a monitor");
    }

    #[test]
    fn columns_align() {
        let t = grid(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     BB\nlong  x\n");
    }
}
