//! `show child-sa` rows: the manager's Child SAs (SPIs, peer, cipher,
//! lifetimes) joined by SPI with the dataplane's per-SA counters, plus the
//! SAs the dataplane has that no IKE SA negotiated (`[[static_sa]]`).

use super::{ChildSaView, DataplaneSnapshot, SaCountersView};

fn spi_text(spi: u32) -> String {
    format!("0x{spi:08x}")
}

fn find<'a>(sas: &'a [SaCountersView], direction: &str, spi: &str) -> Option<&'a SaCountersView> {
    sas.iter().find(|s| s.direction == direction && spi_text(s.spi) == spi)
}

/// `rows` from the manager, completed from `snap` when there is a dataplane.
pub(crate) fn child_sa_rows(mut rows: Vec<ChildSaView>, snap: Option<&DataplaneSnapshot>) -> Vec<ChildSaView> {
    let Some(snap) = snap else { return rows };
    for r in &mut rows {
        if let Some(i) = find(&snap.sas, "in", &r.spi_in) {
            (r.in_packets, r.in_bytes, r.in_drops, r.in_worker) = (i.packets, i.bytes, i.drops, i.worker);
        }
        if let Some(o) = find(&snap.sas, "out", &r.spi_out) {
            (r.out_packets, r.out_bytes, r.out_drops, r.out_worker) = (o.packets, o.bytes, o.drops, o.worker);
        }
    }
    // Dataplane SAs no Child SA names: static ones, one row per connection
    // name pairing its inbound and outbound SA.
    let known = |s: &SaCountersView| {
        let spi = spi_text(s.spi);
        rows.iter().any(|r| if s.direction == "in" { r.spi_in == spi } else { r.spi_out == spi })
    };
    let orphans: Vec<&SaCountersView> = snap.sas.iter().filter(|s| !known(s)).collect();
    let mut extra: Vec<ChildSaView> = Vec::new();
    for s in orphans {
        let row = match extra.iter_mut().position(|r| r.connection == s.connection && r.ike_sa == "static") {
            Some(i) => &mut extra[i],
            None => {
                extra.push(ChildSaView { connection: s.connection.clone(), ike_sa: "static".into(), active: true, ..ChildSaView::default() });
                let last = extra.len() - 1;
                &mut extra[last]
            }
        };
        if s.direction == "in" && row.spi_in.is_empty() {
            row.spi_in = spi_text(s.spi);
            (row.in_packets, row.in_bytes, row.in_drops, row.in_worker) = (s.packets, s.bytes, s.drops, s.worker);
        } else if s.direction == "out" && row.spi_out.is_empty() {
            row.spi_out = spi_text(s.spi);
            (row.out_packets, row.out_bytes, row.out_drops, row.out_worker) = (s.packets, s.bytes, s.drops, s.worker);
        }
        if row.peer.is_empty() {
            row.peer = s.peer.clone();
        }
        if row.algorithm.is_empty() {
            row.algorithm = s.algorithm.clone();
        }
    }
    rows.extend(extra);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(connection: &str, direction: &str, spi: u32, packets: u64) -> SaCountersView {
        SaCountersView {
            connection: connection.into(),
            direction: direction.into(),
            spi,
            packets,
            bytes: packets * 100,
            drops: 1,
            peer: if direction == "out" { "198.51.100.1".into() } else { String::new() },
            algorithm: "aes128gcm16".into(),
            worker: Some(if direction == "in" { 1 } else { 0 }),
        }
    }

    #[test]
    fn counters_join_by_spi_and_static_sas_get_their_own_rows() {
        let ike = ChildSaView {
            connection: "left".into(),
            ike_sa: "00000000000000aa".into(),
            child: 3,
            spi_in: "0xc0000001".into(),
            spi_out: "0x00001234".into(),
            active: true,
            ..ChildSaView::default()
        };
        let snap = DataplaneSnapshot {
            sas: vec![sa("left", "in", 0xc000_0001, 5), sa("left", "out", 0x1234, 7), sa("bench", "out", 0x2002, 9), sa("bench", "in", 0x1001, 4)],
            ..DataplaneSnapshot::default()
        };
        let rows = child_sa_rows(vec![ike], Some(&snap));
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].in_packets, rows[0].in_bytes, rows[0].out_packets, rows[0].out_drops), (5, 500, 7, 1));
        let st = &rows[1];
        assert_eq!((st.connection.as_str(), st.ike_sa.as_str(), st.spi_in.as_str(), st.spi_out.as_str()), ("bench", "static", "0x00001001", "0x00002002"));
        assert_eq!((st.in_packets, st.out_packets, st.peer.as_str(), st.age_s), (4, 9, "198.51.100.1", None));
        assert_eq!((rows[0].in_worker, st.in_worker), (Some(1), Some(1)), "the decrypting worker of each inbound SA");
        assert_eq!((rows[0].out_worker, st.out_worker), (Some(0), Some(0)), "the encrypting worker of each outbound SA");
        // Without a dataplane the manager's rows are returned as they are.
        assert_eq!(child_sa_rows(vec![], None), vec![]);
    }
}
