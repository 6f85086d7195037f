//! Table stress: a million inbound SAs built with rayon, every one found, misses
//! stay misses, probe lengths stay short (the structural O(1) check; the time per
//! lookup and the memory per SA are in perf/benches/sa_lookup.rs and
//! `cargo run -p perf --bin sa_table`), and a single update on the big table
//! only changes what it should.
#![forbid(unsafe_code)]

use std::sync::Arc;

use dataplane::sa::{SaControl, SaId, Spi};
use rayon::prelude::*;

const N: u32 = 1_000_000;

#[derive(Debug)]
struct TestSa {
    spi: u32,
}

/// SPIs spread like random IKE-allocated ones but reproducible: an odd
/// multiplier is a bijection on u32, offset past the reserved range.
fn spi_of(i: u32) -> Spi {
    Spi((i.wrapping_mul(0x2545_F491) | 0x100).max(0x100) ^ (i & 0xff))
}

#[test]
fn million_sas_load_and_lookup() {
    let mut spis: Vec<Spi> = (0..N).into_par_iter().map(spi_of).collect();
    spis.par_sort_unstable();
    spis.dedup();
    let sas: Vec<(Spi, Arc<TestSa>)> = spis
        .par_iter()
        .map(|&spi| (spi, Arc::new(TestSa { spi: spi.0 })))
        .collect();
    let n = sas.len();
    assert!(n > 990_000, "{n} distinct SPIs");

    let mut ctl = SaControl::<TestSa, ()>::new(N + 16);
    let mut reader = ctl.reader();
    let mut tx = ctl.transaction();
    let mut ids = Vec::with_capacity(n);
    for (spi, sa) in sas {
        ids.push((spi, tx.add_inbound(spi, sa).expect("room for all")));
    }
    tx.commit().expect("commit");

    let table = reader.load();
    assert_eq!(table.inbound_len(), n);
    let wrong: usize = ids
        .par_iter()
        .filter(|(spi, id)| match table.inbound(*spi) {
            Some(sa) => sa.spi != spi.0 || sa.id() != *id,
            None => true,
        })
        .count();
    assert_eq!(wrong, 0, "every SA found under its SPI with its id");
    let distinct: std::collections::HashSet<SaId> = ids.iter().map(|(_, id)| *id).collect();
    assert_eq!(distinct.len(), n, "ids are unique");

    let installed: std::collections::HashSet<u32> = ids.iter().map(|(s, _)| s.0).collect();
    let false_hits = (0..200_000u32)
        .into_par_iter()
        .map(|i| i.wrapping_mul(0x9E37_79B9).rotate_left(7))
        .filter(|spi| !installed.contains(spi) && table.inbound(Spi(*spi)).is_some())
        .count();
    assert_eq!(false_hits, 0);
    for reserved in 0..256 {
        assert!(table.inbound(Spi(reserved)).is_none());
    }

    // Linear probing at load factor <= 2/3: expected longest run is O(log n);
    // a degenerate hash would give runs in the thousands.
    let longest = table.inbound_max_probe();
    assert!(longest < 64, "longest probe {longest}");
    eprintln!(
        "{n} SAs: longest probe {longest}, index {} bytes/SA",
        table.inbound_index_bytes() / n
    );

    // One change on the big table.
    let (gone, _) = ids[12_345];
    let mut tx = ctl.transaction();
    tx.remove_inbound(gone).expect("remove");
    let new_id = tx.add_inbound(Spi(0x100), Arc::new(TestSa { spi: 0x100 }));
    let new_id = match new_id {
        Ok(id) => id,
        // 0x100 may be among the generated SPIs.
        Err(_) => tx
            .add_inbound(Spi(0xffff_fffe), Arc::new(TestSa { spi: 0xffff_fffe }))
            .expect("fresh SPI"),
    };
    tx.commit().expect("commit");
    let table = reader.load();
    assert!(table.inbound(gone).is_none());
    assert_eq!(table.inbound_len(), n);
    assert!(table.inbound_iter().any(|(_, sa)| sa.id() == new_id));
    assert!(table.inbound(ids[0].0).is_some());
}
