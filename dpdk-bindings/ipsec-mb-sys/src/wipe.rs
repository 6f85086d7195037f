//! Wiping foreign key objects on drop.
//!
//! ring's `LessSafeKey` keeps its expanded AES / ChaCha20 key inline and has no
//! way to wipe it. [`WipeOnDrop`] owns such a value, drops it, and then overwrites
//! the bytes it occupied with zeros, so the dataplane's "keys are zeroized on
//! drop" holds for every backend. It lives here because this is the crypto crate
//! allowed to contain `unsafe` (house rule: only crates under dpdk-bindings/).

use core::mem::{size_of, ManuallyDrop};
use core::ops::Deref;
use core::sync::atomic::{compiler_fence, Ordering};

/// Owns a `T` and zeroes its bytes after dropping it. Only the value's own bytes
/// are wiped: heap memory it owns would be freed unwiped, so use it for types
/// that keep their secrets inline.
pub struct WipeOnDrop<T>(ManuallyDrop<T>);

impl<T> WipeOnDrop<T> {
    /// Take ownership of `value`.
    pub fn new(value: T) -> Self {
        WipeOnDrop(ManuallyDrop::new(value))
    }
}

impl<T> Deref for WipeOnDrop<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> core::fmt::Debug for WipeOnDrop<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never show the wrapped key.
        f.write_str("WipeOnDrop(..)")
    }
}

impl<T> Drop for WipeOnDrop<T> {
    fn drop(&mut self) {
        let bytes: *mut u8 = (&mut self.0 as *mut ManuallyDrop<T>).cast();
        // SAFETY: the value is dropped exactly once, here; `ManuallyDrop` keeps the
        // compiler from dropping it again, and it is never read as a `T` afterwards.
        unsafe { ManuallyDrop::drop(&mut self.0) };
        for i in 0..size_of::<T>() {
            // SAFETY: `bytes` points at the `size_of::<T>()` bytes this struct owns,
            // valid for writes; they are only raw memory now (the value was dropped
            // above). Volatile so the stores to soon-freed memory are not elided.
            unsafe { core::ptr::write_volatile(bytes.add(i), 0) };
        }
        compiler_fence(Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static DROPS: AtomicUsize = AtomicUsize::new(0);

    struct Counted([u8; 40]);

    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn inner_value_is_dropped_exactly_once_and_hidden_from_debug() {
        let w = WipeOnDrop::new(Counted([0x5a; 40]));
        assert_eq!(w.0 .0[39], 0x5a);
        assert_eq!(format!("{w:?}"), "WipeOnDrop(..)");
        drop(w);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }
}
