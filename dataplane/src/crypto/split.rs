//! A size-split AEAD: one key, two backends, each packet handled by the backend
//! that is fastest for its length. `Backend::Auto` builds one where the numbers
//! say so (intel-ipsec-mb below a threshold, ring above, on AVX2 CPUs; see
//! perf/README.md). Both instances hold the same key and wipe it on drop.

use super::{Aead, AeadOp, Algorithm, AuthError, AutoChoice};

pub(super) struct Split {
    small: Box<dyn Aead>,
    large: Box<dyn Aead>,
    /// Which packets go to `small` (by plaintext length).
    choice: AutoChoice,
}

impl Split {
    pub(super) fn new(
        small: Box<dyn Aead>,
        large: Box<dyn Aead>,
        choice: AutoChoice,
    ) -> Self {
        Split { small, large, choice }
    }

    /// Call `f(backend, run, offset)` for each maximal run of consecutive ops of the
    /// same size class, so each backend still sees bursts.
    fn for_each_run<'o, 'p>(
        &self,
        mut ops: &'o mut [AeadOp<'p>],
        mut f: impl FnMut(&dyn Aead, &'o mut [AeadOp<'p>], usize),
    ) {
        let mut offset = 0;
        while let Some(first) = ops.first() {
            let small = self.choice.is_small(first.data.len());
            let len = ops
                .iter()
                .take_while(|op| self.choice.is_small(op.data.len()) == small)
                .count();
            let (run, rest) = ops.split_at_mut(len);
            f(if small { &*self.small } else { &*self.large }, run, offset);
            offset += len;
            ops = rest;
        }
    }
}

impl core::fmt::Debug for Split {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Split")
            .field("small", &self.small)
            .field("large", &self.large)
            .field("choice", &self.choice)
            .finish()
    }
}

impl Aead for Split {
    fn algorithm(&self) -> Algorithm {
        self.large.algorithm()
    }

    fn backend(&self) -> &'static str {
        self.choice.name()
    }

    fn seal_burst(&self, ops: &mut [AeadOp<'_>]) {
        self.for_each_run(ops, |aead, run, _| aead.seal_burst(run));
    }

    fn open_burst(&self, ops: &mut [AeadOp<'_>], results: &mut [Result<(), AuthError>]) {
        let n = ops.len().min(results.len());
        self.for_each_run(&mut ops[..n], |aead, run, offset| {
            aead.open_burst(run, &mut results[offset..offset + run.len()]);
        });
    }
}
