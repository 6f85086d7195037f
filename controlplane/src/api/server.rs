//! The socket server: one thread, one request line → one response line per
//! connection turn; clients may send several lines on one connection.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

use super::view;
use super::{DataplaneView, Request, Response, ShowWhat};
use crate::manager::ManagerClient;

/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// A client that sends nothing for this long is dropped (one thread serves all).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest request line accepted.
const MAX_LINE: u64 = 64 * 1024;

/// The running server; dropping it stops the thread and removes the socket file.
#[derive(Debug)]
pub struct ApiServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Binds `path` (mode 0600; its directory is created with 0700 if missing)
    /// and serves in a thread. A stale socket file is replaced; a live one
    /// (another gateway answering) is an error.
    pub fn bind(path: &Path, manager: ManagerClient, dataplane: Option<Arc<dyn DataplaneView>>) -> io::Result<ApiServer> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists and is not a socket", path.display())));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{}: another ipsecgw answers on it", path.display())));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        // Root-only: the socket can tear tunnels down.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("api".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Err(e) = serve(stream, &manager, dataplane.as_deref()) {
                            tracing::debug!("control socket client: {e}");
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
                    Err(e) => {
                        tracing::warn!("control socket accept failed: {e}");
                        std::thread::sleep(ACCEPT_POLL);
                    }
                }
            }
        })?;
        Ok(ApiServer { path: path.to_path_buf(), stop, thread: Some(thread) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(stream: UnixStream, manager: &ManagerClient, dataplane: Option<&dyn DataplaneView>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream.take_limit());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let response = match serde_json::from_str::<Request>(line.trim()) {
            Ok(r) => answer(&r, manager, dataplane),
            Err(e) => Response::error(format!("bad request ({e}); expected e.g. {{\"cmd\":\"show\",\"what\":\"connections\"}}")),
        };
        let mut out = serde_json::to_string(&response).map_err(io::Error::other)?;
        out.push('\n');
        writer.write_all(out.as_bytes())?;
    }
}

/// Bounds what one client can make us buffer.
trait TakeLimit: Sized {
    fn take_limit(self) -> io::Take<Self>;
}

impl TakeLimit for UnixStream {
    fn take_limit(self) -> io::Take<Self> {
        io::Read::take(self, MAX_LINE)
    }
}

fn value<T: serde::Serialize>(v: T) -> Response {
    match serde_json::to_value(v) {
        Ok(v) => Response::data(v),
        Err(e) => Response::error(e),
    }
}

/// Answers one request (also used by tests without a socket).
pub fn answer(r: &Request, manager: &ManagerClient, dataplane: Option<&dyn DataplaneView>) -> Response {
    let counted = |r: Result<usize, crate::manager::CommandError>| match r {
        Ok(n) => Response::data(json!({ "count": n })),
        Err(e) => Response::error(e),
    };
    match r {
        Request::Initiate { name } => match manager.initiate(name) {
            Ok(()) => Response::data(json!({ "initiated": name })),
            Err(e) => Response::error(e),
        },
        Request::Terminate { name } => counted(manager.terminate(name)),
        Request::Rekey { name, ike: true } => counted(manager.rekey_ike(name)),
        Request::Rekey { name, ike: false } => counted(manager.rekey_child(name)),
        Request::Show { what } => show(*what, manager, dataplane),
        Request::TestTunnel { name, count } => {
            let count = count.unwrap_or(super::DEFAULT_TEST_PROBES).clamp(1, super::MAX_TEST_PROBES);
            match dataplane.map(|d| d.test_tunnel(name, count)) {
                Some(Ok(t)) => value(t),
                Some(Err(e)) => Response::error(e),
                None => Response::error("no dataplane in this process (ipsecgw ike cannot send through a tunnel): use ipsecgw run"),
            }
        }
    }
}

fn show(what: ShowWhat, manager: &ManagerClient, dataplane: Option<&dyn DataplaneView>) -> Response {
    let no_dataplane = || Response::error("no dataplane in this process (ipsecgw ike runs the control plane alone)");
    match what {
        ShowWhat::Connections => match manager.status() {
            Ok(s) => {
                let mut rows = view::connections(&s);
                let monitors = dataplane.map(|d| d.monitors()).unwrap_or_default();
                for r in &mut rows {
                    r.monitor = monitors.iter().find(|m| m.connection == r.name).cloned();
                }
                value(rows)
            }
            Err(e) => Response::error(e),
        },
        ShowWhat::IkeSa => match manager.ike_sas() {
            Ok(sas) => value(view::ike_sas(&sas)),
            Err(e) => Response::error(e),
        },
        ShowWhat::ChildSa => match manager.ike_sas() {
            Ok(sas) => value(super::sa_rows::child_sa_rows(view::child_sas(&sas), dataplane.map(|d| d.snapshot()).as_ref())),
            Err(e) => Response::error(e),
        },
        ShowWhat::Stats => match manager.status() {
            Ok(s) => value(super::StatsView {
                ike: view::ike_counters(&s),
                failures_by_reason: view::failures_by_reason(&s),
                ports: dataplane.map(|d| d.snapshot().ports),
                unknown_spis: view::unknown_spis(&s),
            }),
            Err(e) => Response::error(e),
        },
        ShowWhat::Drops => dataplane.map_or_else(no_dataplane, |d| value(d.snapshot().drops)),
        ShowWhat::Neighbors => dataplane.map_or_else(no_dataplane, |d| value(d.snapshot().neighbors)),
        ShowWhat::Routes => dataplane.map_or_else(no_dataplane, |d| value(d.snapshot().routes)),
    }
}
