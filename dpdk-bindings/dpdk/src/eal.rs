//! EAL initialisation and cleanup (RAII).

use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{rte_errno, strerror, Error, ErrorKind};
use crate::lcore::LcoreId;
use crate::Result;

/// Set once `rte_eal_init` has been called in this process (successfully or not: DPDK
/// does not allow a second attempt either way).
static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// DPDK objects (mempools, rings, ports) that are still alive. `rte_eal_cleanup` frees all
/// DPDK memory, so it must only run when nothing can point into it any more.
pub(crate) static LIVE_OBJECTS: AtomicUsize = AtomicUsize::new(0);

/// The initialised DPDK Environment Abstraction Layer. Dropping it runs `rte_eal_cleanup`
/// (unless DPDK objects are still alive, see the crate docs).
#[derive(Debug)]
pub struct Eal {
    log: String,
}

impl Eal {
    /// Initialises EAL from arguments as on a DPDK command line (without the program name),
    /// e.g. `["--no-huge", "-m", "1024", "--no-pci", "--vdev=net_null0,no-rx=1"]`.
    ///
    /// EAL's own log lines during init are captured; on failure the error names the cause
    /// and what to change, on success they are available from [`Eal::init_log`].
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if INIT_CALLED.swap(true, Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::AlreadyInitialised,
                "EAL init",
                "already initialised in this process",
                "DPDK allows one rte_eal_init per process: share one Eal",
            ));
        }
        let mut cargs = Vec::with_capacity(args.len() + 1);
        cargs.push(c"ipsecgw".to_owned());
        for a in args {
            let a = a.as_ref();
            match CString::new(a) {
                Ok(c) => cargs.push(c),
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::BadArguments,
                        "EAL init",
                        format!("argument {a:?} contains a NUL byte"),
                        "remove it",
                    ))
                }
            }
        }
        // EAL keeps pointers into argv (e.g. for --file-prefix on some versions) for the
        // life of the process: leak the few bytes instead of risking a dangling pointer.
        let cargs: &'static [CString] = Box::leak(cargs.into_boxed_slice());
        let mut argv: Vec<*mut c_char> = cargs.iter().map(|c| c.as_ptr().cast_mut()).collect();
        argv.push(std::ptr::null_mut());
        let argv: &'static mut [*mut c_char] = Box::leak(argv.into_boxed_slice());
        let argc = c_int::try_from(cargs.len()).unwrap_or(c_int::MAX);

        let capture = LogCapture::start();
        // SAFETY: argv is a NULL-terminated array of `argc` valid C strings that live for
        // the rest of the process (leaked above); rte_eal_init may permute the array.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        let errno = rte_errno();
        let log = capture.finish();
        if ret < 0 {
            let err = classify_init_failure(errno, &log, args);
            // Our own runtime dir (/var/run/dpdk/PREFIX) would stay behind; but when the
            // prefix belongs to another running process, its files are not ours to remove.
            if err.kind() != ErrorKind::NameInUse {
                remove_runtime_dir();
            }
            return Err(err);
        }
        Ok(Eal { log })
    }

    /// EAL's log lines captured during a successful init (device probe warnings etc.).
    pub fn init_log(&self) -> &str {
        &self.log
    }

    /// Devices (`--vdev`s) that failed to probe during init, with the driver's reason.
    /// EAL itself still succeeds in that case; the device just has no port.
    pub fn failed_devices(&self) -> Vec<FailedDevice> {
        failed_devices(&self.log)
    }

    /// EAL's runtime directory (`/var/run/dpdk/PREFIX` as root): config, multi-process
    /// and telemetry sockets.
    pub fn runtime_dir(&self) -> std::path::PathBuf {
        runtime_dir()
    }

    /// Number of lcores EAL runs on (main + workers).
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: EAL is initialised (we hold an Eal).
        unsafe { dpdk_sys::rte_lcore_count() }
    }

    /// The main lcore (the thread that called init).
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: EAL is initialised.
        LcoreId(unsafe { dpdk_sys::rte_get_main_lcore() })
    }

    /// Worker lcores (every enabled lcore but the main one), in order.
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        let mut i: u32 = u32::MAX; // -1 starts the iteration (rte_lcore.h)
        loop {
            // SAFETY: EAL is initialised; skip_main=1, wrap=0 iterates once over workers.
            i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
            if i >= dpdk_sys::RTE_MAX_LCORE {
                break;
            }
            out.push(LcoreId(i));
        }
        out
    }

    /// Number of usable ethdev ports (vdevs and bound NICs).
    pub fn port_count(&self) -> u16 {
        // SAFETY: EAL is initialised.
        unsafe { dpdk_sys::rte_eth_dev_count_avail() }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        if LIVE_OBJECTS.load(Ordering::SeqCst) == 0 {
            // SAFETY: no mempool, ring or port created through this crate is alive, so no
            // safe handle can reach DPDK memory after cleanup.
            unsafe {
                dpdk_sys::rte_eal_cleanup();
            }
            // DPDK leaves its runtime files behind; after cleanup nothing uses them.
            remove_runtime_dir();
        }
    }
}

fn runtime_dir() -> std::path::PathBuf {
    // SAFETY: returns a pointer to EAL's static path buffer (empty before init).
    let p = unsafe { dpdk_sys::rte_eal_get_runtime_dir() };
    if p.is_null() {
        return std::path::PathBuf::new();
    }
    // SAFETY: NUL-terminated static buffer.
    let s = unsafe { std::ffi::CStr::from_ptr(p) };
    std::path::PathBuf::from(s.to_string_lossy().into_owned())
}

fn remove_runtime_dir() {
    let dir = runtime_dir();
    // Only a per-prefix dir under EAL's base ("/var/run/dpdk/PREFIX"), never the base.
    if dir.components().count() > 2 && dir.file_name().is_some() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A device that failed to probe at EAL init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDevice {
    /// Device name, e.g. `net_pcap0`.
    pub name: String,
    /// What the driver logged just before giving up.
    pub reason: String,
}

/// Finds "vdev_probe(): failed to initialize NAME device" lines and the driver's message
/// logged just before each.
fn failed_devices(log: &str) -> Vec<FailedDevice> {
    let lines: Vec<&str> = log.lines().map(str::trim).collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.split("failed to initialize ").nth(1) else { continue };
        let name = rest.trim_end_matches(" device").trim().to_string();
        let reason = i
            .checked_sub(1)
            .and_then(|j| lines.get(j))
            .filter(|p| !p.contains("failed to initialize") && !p.is_empty())
            .map(|p| p.split_once("(): ").map_or(*p, |(_, msg)| msg).to_string())
            .unwrap_or_else(|| "the driver gave no reason".to_string());
        out.push(FailedDevice { name, reason });
    }
    out
}

/// Redirects DPDK's log stream into a temporary file while EAL initialises, so failures
/// can be explained from what EAL said, not from a bare errno.
struct LogCapture {
    file: *mut libc::FILE,
}

impl LogCapture {
    fn start() -> LogCapture {
        // SAFETY: tmpfile has no preconditions; a NULL result just disables the capture.
        let file = unsafe { libc::tmpfile() };
        if !file.is_null() {
            // SAFETY: file is a valid FILE* that stays open until finish() restores the
            // default stream; rte_openlog_stream may be called before rte_eal_init.
            unsafe {
                dpdk_sys::rte_openlog_stream(file.cast());
            }
        }
        LogCapture { file }
    }

    fn finish(self) -> String {
        if self.file.is_null() {
            return String::new();
        }
        let mut out = Vec::new();
        // SAFETY: restore DPDK's default stream first so nothing writes to `file` while we
        // read and close it; then a plain stdio read of our own FILE*.
        unsafe {
            dpdk_sys::rte_openlog_stream(std::ptr::null_mut());
            libc::fflush(self.file);
            libc::rewind(self.file);
            let mut buf = [0u8; 4096];
            loop {
                let n = libc::fread(buf.as_mut_ptr().cast(), 1, buf.len(), self.file);
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            libc::fclose(self.file);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Turns a failed rte_eal_init into "cause; what to do".
fn classify_init_failure<S: AsRef<str>>(errno: i32, log: &str, args: &[S]) -> Error {
    let said = last_error_line(log);
    let no_huge = args.iter().any(|a| a.as_ref() == "--no-huge");
    let lower = log.to_ascii_lowercase();
    if lower.contains("hugepage") && !no_huge && (lower.contains("cannot") || lower.contains("no available")) {
        return Error::new(
            ErrorKind::NoHugepages,
            "EAL init",
            format!("no hugepages ({said})"),
            "mount hugetlbfs and reserve pages (echo 512 > /proc/sys/vm/nr_hugepages; mount -t hugetlbfs none /dev/hugepages) or run with --no-huge -m 1024",
        );
    }
    if let Some(dev) = find_after(log, "failed to parse device \"") {
        return Error::new(
            ErrorKind::UnknownDevice,
            "EAL init",
            format!("unknown device {dev:?}"),
            "check the --vdev driver name (net_af_packet, net_pcap, net_ring, net_null, net_memif...) and that its PMD is installed",
        );
    }
    if lower.contains("cannot create lock on") || lower.contains("is another primary process running") {
        return Error::new(
            ErrorKind::NameInUse,
            "EAL init",
            format!("runtime files are in use ({said})"),
            "another DPDK process uses the same --file-prefix: give each process its own --file-prefix",
        );
    }
    if lower.contains("cannot init memory") || errno == libc::ENOMEM {
        let hint = if no_huge {
            "raise -m (e.g. -m 1024) or free memory"
        } else {
            "reserve more hugepages (/proc/sys/vm/nr_hugepages) or use --no-huge -m 1024"
        };
        return Error::new(ErrorKind::NoMemory, "EAL init", format!("out of memory ({said})"), hint);
    }
    if errno == libc::EINVAL || lower.contains("invalid") || lower.contains("usage") {
        return Error::new(
            ErrorKind::BadArguments,
            "EAL init",
            format!("EAL rejected its arguments ({said})"),
            "check the EAL arguments (dpdk-testpmd --help lists them)",
        );
    }
    Error::new(
        ErrorKind::Other,
        "EAL init",
        format!("{} (errno {errno}; EAL said: {said})", strerror(errno)),
        "",
    )
}

/// The most telling line of an EAL log: the last one that reads like an error.
pub(crate) fn last_error_line(log: &str) -> String {
    let lines: Vec<&str> = log.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let is_err = |l: &&&str| {
        let l = l.to_ascii_lowercase();
        ["error", "fail", "cannot", "can't", "couldn't", "invalid", "unable", "no such", "not "]
            .iter()
            .any(|w| l.contains(w))
    };
    lines
        .iter()
        .rev()
        .find(is_err)
        .or(lines.last())
        .map(|l| l.to_string())
        .unwrap_or_else(|| "no log output".to_string())
}

fn find_after(log: &str, marker: &str) -> Option<String> {
    let start = log.find(marker)? + marker.len();
    let rest = &log[start..];
    let end = rest.find('"')?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_line_prefers_errors() {
        let log = "EAL: Detected CPU lcores: 2\nEAL: failed to parse device \"net_foo0\"\nEAL: done\n";
        assert_eq!(last_error_line(log), "EAL: failed to parse device \"net_foo0\"");
        assert_eq!(find_after(log, "failed to parse device \"").as_deref(), Some("net_foo0"));
        assert_eq!(last_error_line(""), "no log output");
    }

    #[test]
    fn failed_devices_carry_the_driver_reason() {
        let log = "EAL: Selected IOVA mode 'VA'\nopen_single_rx_pcap(): Couldn't open /x.pcap: No such file\nvdev_probe(): failed to initialize net_pcap0 device\nEAL: Bus (vdev) probe failed.\n";
        assert_eq!(
            failed_devices(log),
            vec![FailedDevice { name: "net_pcap0".into(), reason: "Couldn't open /x.pcap: No such file".into() }]
        );
        assert!(failed_devices("EAL: all good\n").is_empty());
    }
}
