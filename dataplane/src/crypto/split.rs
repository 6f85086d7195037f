//! A size-split AEAD: one key, two or three backends, each packet handled by the
//! backend that is fastest for its length. `Backend::Auto` builds one where the
//! numbers say so (with VAES: our aesni-gcm below 2 KB, ring above, or with
//! AVX-512 too, aesni-gcm below ≈ 1150 B and intel-ipsec-mb above; on other AVX2
//! CPUs: aesni-gcm up to 64 B, intel-ipsec-mb below a threshold, ring above; see
//! perf/README.md). Every instance holds the same key
//! and wipes it on drop.

use super::{Aead, AeadOp, Algorithm, AuthError, AutoChoice, SizeClass};

pub(super) struct Split {
    /// For `SizeClass::Tiny` packets (`small` without it).
    tiny: Option<Box<dyn Aead>>,
    /// For `SizeClass::Small` packets (`large` without it).
    small: Option<Box<dyn Aead>>,
    large: Box<dyn Aead>,
    /// Which packets go where (by plaintext length).
    choice: AutoChoice,
}

impl Split {
    pub(super) fn new(
        tiny: Option<Box<dyn Aead>>,
        small: Option<Box<dyn Aead>>,
        large: Box<dyn Aead>,
        choice: AutoChoice,
    ) -> Self {
        Split { tiny, small, large, choice }
    }

    fn backend(&self, class: SizeClass) -> &dyn Aead {
        let (tiny, small) = (self.tiny.as_deref(), self.small.as_deref());
        match class {
            SizeClass::Tiny => tiny.or(small).unwrap_or(&*self.large),
            SizeClass::Small => small.unwrap_or(&*self.large),
            SizeClass::Large => &*self.large,
        }
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
            let class = self.choice.class(first.data.len());
            let len = ops
                .iter()
                .take_while(|op| self.choice.class(op.data.len()) == class)
                .count();
            let (run, rest) = ops.split_at_mut(len);
            f(self.backend(class), run, offset);
            offset += len;
            ops = rest;
        }
    }
}

impl core::fmt::Debug for Split {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Split")
            .field("tiny", &self.tiny)
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
