//! Errors that say what failed, why, and what to change — never a bare rte_errno.

use std::ffi::CStr;

/// What kind of failure this was, for callers that react differently (and for tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// EAL init already ran in this process (DPDK allows one `rte_eal_init` per process).
    AlreadyInitialised,
    /// No hugepages are mounted or reserved and `--no-huge` was not given.
    NoHugepages,
    /// A `--vdev` names a driver that does not exist.
    UnknownDevice,
    /// A device exists but failed to probe (bad devargs, unreadable/unwritable file...).
    DeviceProbe,
    /// EAL arguments were rejected.
    BadArguments,
    /// Not enough memory for a mempool/ring/queue.
    NoMemory,
    /// A port id does not exist.
    NoSuchPort,
    /// The driver does not support what was asked (queue count, ...).
    Unsupported,
    /// A name (mempool, ring) is already in use.
    NameInUse,
    /// Anything else DPDK reported.
    Other,
}

/// A DPDK failure: `"{context}: {cause}; {hint}"`, one line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{context}: {cause}{}", hint_suffix(.hint))]
pub struct Error {
    kind: ErrorKind,
    context: String,
    cause: String,
    hint: String,
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    }
}

impl Error {
    pub(crate) fn new(
        kind: ErrorKind,
        context: impl Into<String>,
        cause: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Error { kind, context: context.into(), cause: cause.into(), hint: hint.into() }
    }

    /// An error from a DPDK call that returned `-errno` or set rte_errno; kind from the code.
    pub(crate) fn from_errno(context: impl Into<String>, errno: i32, hint: impl Into<String>) -> Self {
        let errno = errno.abs();
        let kind = match errno {
            libc::ENOMEM | libc::ENOSPC => ErrorKind::NoMemory,
            libc::ENODEV => ErrorKind::NoSuchPort,
            libc::ENOTSUP => ErrorKind::Unsupported,
            libc::EEXIST => ErrorKind::NameInUse,
            libc::EINVAL => ErrorKind::BadArguments,
            _ => ErrorKind::Other,
        };
        Error::new(kind, context, format!("{} (errno {errno})", strerror(errno)), hint)
    }

    /// What kind of failure this was.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The suggestion of what to change, if any.
    pub fn hint(&self) -> &str {
        &self.hint
    }
}

/// DPDK's text for an errno value (covers DPDK's own E_RTE_* codes too).
pub(crate) fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated
    // string that stays valid until the next call on this thread; we copy it at once.
    unsafe {
        let p = dpdk_sys::rte_strerror(errno);
        if p.is_null() {
            return format!("error {errno}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The calling thread's rte_errno.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local int; no preconditions.
    unsafe { dpdk_sys::dpdk_shim_errno() }
}
