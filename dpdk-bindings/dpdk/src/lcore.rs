//! Lcores: launching a closure on a worker lcore and joining it; TSC and pause.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use crate::error::Error;
use crate::{Eal, Result};

/// An EAL logical core id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

impl LcoreId {
    /// The lcore the calling thread runs on, `None` on a non-EAL thread.
    pub fn current() -> Option<LcoreId> {
        // SAFETY: reads a thread-local variable.
        let id = unsafe { dpdk_sys::dpdk_shim_lcore_id() };
        (id < dpdk_sys::RTE_MAX_LCORE).then_some(LcoreId(id))
    }

    /// NUMA socket of this lcore.
    pub fn socket(self) -> u32 {
        // SAFETY: plain lookup in EAL's lcore table; out-of-range ids return an error value.
        unsafe { dpdk_sys::rte_lcore_to_socket_id(self.0) }
    }
}

impl std::fmt::Display for LcoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lcore {}", self.0)
    }
}

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `Eal::launch`, handed to exactly one lcore.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // A panic must not unwind into C: report it as -1 to the joiner.
    catch_unwind(AssertUnwindSafe(job)).unwrap_or(-1)
}

/// A closure running on a worker lcore. [`Launched::join`] waits for its return value;
/// dropping it also waits, so a worker never outlives its handle.
#[derive(Debug)]
pub struct Launched {
    lcore: LcoreId,
    joined: bool,
}

impl Launched {
    /// The lcore it runs on.
    pub fn lcore(&self) -> LcoreId {
        self.lcore
    }

    /// Waits for the closure to return and gives its value (-1 if it panicked).
    pub fn join(mut self) -> i32 {
        self.wait()
    }

    fn wait(&mut self) -> i32 {
        self.joined = true;
        // SAFETY: the lcore was launched by us and is waited for exactly once.
        unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore.0) }
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if !self.joined {
            self.wait();
        }
    }
}

impl Eal {
    /// Runs `f` on worker lcore `lcore` (which must be idle).
    pub fn launch<F>(&self, lcore: LcoreId, f: F) -> Result<Launched>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        // rte_eal_remote_launch checks the lcore is idle and then hands over f/arg without
        // a lock: two threads launching on one lcore at once could both pass the check.
        static LAUNCH: Mutex<()> = Mutex::new(());
        let _serial = LAUNCH.lock().unwrap_or_else(|e| e.into_inner());
        let job: Box<Job> = Box::new(Box::new(f));
        let arg = Box::into_raw(job).cast::<c_void>();
        // SAFETY: trampoline takes ownership of `arg` if and only if the launch succeeds.
        let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore.0) };
        if ret != 0 {
            // SAFETY: the launch failed, so nobody else owns the job: reclaim and drop it.
            drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
            return Err(Error::from_errno(
                format!("launching a worker on {lcore}"),
                ret,
                "the lcore must be a worker lcore (not the main one) and idle",
            ));
        }
        Ok(Launched { lcore, joined: false })
    }

    /// Runs `f(lcore)` on every worker lcore; join the handles to wait. If one launch
    /// fails, the already launched closures are joined (by drop) before the error returns,
    /// so `f` must notice a stop condition of its own when it is a loop.
    pub fn launch_on_workers<F>(&self, f: F) -> Result<Vec<Launched>>
    where
        F: Fn(LcoreId) -> i32 + Clone + Send + 'static,
    {
        self.worker_lcores()
            .into_iter()
            .map(|lcore| {
                let f = f.clone();
                self.launch(lcore, move || f(lcore))
            })
            .collect()
    }
}

/// Current TSC value.
#[inline]
pub fn tsc_cycles() -> u64 {
    // SAFETY: reads the time stamp counter.
    unsafe { dpdk_sys::dpdk_shim_get_tsc_cycles() }
}

/// TSC ticks per second (EAL must be initialised).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value EAL measured at init.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// CPU pause hint for spin loops.
#[inline]
pub fn pause() {
    // SAFETY: a pause instruction.
    unsafe { dpdk_sys::dpdk_shim_pause() }
}
