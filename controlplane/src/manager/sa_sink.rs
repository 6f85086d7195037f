//! Where the manager puts Child SAs: the dataplane's SA tables in the gateway
//! ([`super::DataplaneSaSink`]), or a record for tests and `ipsecgw ike`
//! ([`RecordingSaSink`]). The engine already orders installs and removals
//! make-before-break (RFC 7296 §2.8): new inbound, then outbound switch, old
//! SA removed last; a sink applies each action as it comes.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::ikev2::{ChildSaId, ChildSaInstall, ChildSaRemove, Directions, IkeSaId, Spi, UdpEncap};
use crate::proposal::Encr;
use crate::selector::TrafficSelector;

/// A sink refused an install or removal. The manager logs it; the engine's
/// view stays as it is (the SA may be renegotiated by a rekey or restart).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    #[error("ESP algorithm {0} is not implemented by the dataplane")]
    UnsupportedAlgorithm(Encr),
    #[error("ESP key material for SPI {spi}: {reason}")]
    Key { spi: Spi, reason: String },
    #[error("SA for SPI {spi} cannot be built: {reason}")]
    Build { spi: Spi, reason: String },
    #[error("traffic selector {0} cannot be expressed as SPD policies: {1}")]
    Selector(String, String),
    #[error("SA table update refused: {0}")]
    Table(String),
}

/// Receives the engine's Child SA installs and removals, in order.
pub trait SaSink: Send {
    /// Installs one or both halves of a Child SA.
    fn install(&mut self, sa: &ChildSaInstall, now: Instant) -> Result<(), SinkError>;
    /// Removes one or both halves of a Child SA.
    fn remove(&mut self, sa: &ChildSaRemove, now: Instant) -> Result<(), SinkError>;
    /// Periodic work (deferred removals, reclaiming retired snapshots).
    fn tick(&mut self, _now: Instant) {}
    /// DPD hold (`Event::Held`): `connection`'s SAs are gone; put its
    /// policies back to trap so the next matching packet re-negotiates.
    fn hold(&mut self, _connection: &str, _now: Instant) -> Result<(), SinkError> {
        Ok(())
    }
}

/// One install or removal as recorded (no key bytes: only their length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkRecord {
    Install {
        connection: String,
        ike_sa: IkeSaId,
        child: ChildSaId,
        directions: Directions,
        inbound_spi: Spi,
        outbound_spi: Spi,
        encr: Encr,
        esn: bool,
        encap: Option<UdpEncap>,
        key_len: usize,
        local_ts: Vec<TrafficSelector>,
        remote_ts: Vec<TrafficSelector>,
        replaces: Option<ChildSaId>,
    },
    Remove { ike_sa: IkeSaId, child: ChildSaId, directions: Directions, inbound_spi: Spi, outbound_spi: Spi },
}

/// Logs every install/removal (keys never printed) and keeps the list for
/// whoever holds a clone of [`RecordingSaSink::records`].
#[derive(Debug, Clone, Default)]
pub struct RecordingSaSink {
    records: Arc<Mutex<Vec<SinkRecord>>>,
}

impl RecordingSaSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared list (the sink itself moves into the manager thread).
    pub fn records(&self) -> Arc<Mutex<Vec<SinkRecord>>> {
        Arc::clone(&self.records)
    }

    fn list(&self) -> MutexGuard<'_, Vec<SinkRecord>> {
        // A panicking reader cannot leave the list half-written: take it anyway.
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn selectors(ts: &[TrafficSelector]) -> String {
    ts.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

impl SaSink for RecordingSaSink {
    fn install(&mut self, sa: &ChildSaInstall, _now: Instant) -> Result<(), SinkError> {
        let encap = match sa.encap {
            Some(e) => format!("udp {}->{}", e.local_port, e.remote_port),
            None => "esp".to_owned(),
        };
        tracing::info!(
            "SA installed: connection={} ike_sa={:016x} child={} directions={:?} spi_in={} spi_out={} encr={} esn={} encap={} local={} remote={} local_ts={} remote_ts={} replaces={}",
            sa.connection,
            sa.ike_sa.0,
            sa.child.0,
            sa.directions,
            sa.inbound_spi,
            sa.outbound_spi,
            sa.encr,
            sa.esn,
            encap,
            sa.local,
            sa.remote,
            selectors(&sa.local_ts),
            selectors(&sa.remote_ts),
            sa.replaces.map_or("-".to_owned(), |c| c.0.to_string()),
        );
        self.list().push(SinkRecord::Install {
            connection: sa.connection.clone(),
            ike_sa: sa.ike_sa,
            child: sa.child,
            directions: sa.directions,
            inbound_spi: sa.inbound_spi,
            outbound_spi: sa.outbound_spi,
            encr: sa.encr,
            esn: sa.esn,
            encap: sa.encap,
            key_len: sa.inbound_key.len(),
            local_ts: sa.local_ts.clone(),
            remote_ts: sa.remote_ts.clone(),
            replaces: sa.replaces,
        });
        Ok(())
    }

    fn remove(&mut self, sa: &ChildSaRemove, _now: Instant) -> Result<(), SinkError> {
        tracing::info!(
            "SA removed: ike_sa={:016x} child={} directions={:?} spi_in={} spi_out={}",
            sa.ike_sa.0,
            sa.child.0,
            sa.directions,
            sa.inbound_spi,
            sa.outbound_spi
        );
        self.list().push(SinkRecord::Remove {
            ike_sa: sa.ike_sa,
            child: sa.child,
            directions: sa.directions,
            inbound_spi: sa.inbound_spi,
            outbound_spi: sa.outbound_spi,
        });
        Ok(())
    }
}
