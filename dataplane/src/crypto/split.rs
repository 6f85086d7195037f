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

    /// Call `f(backend, run, offset)` for each size class's packets (a class whose
    /// backend wants bursts counts only with enough packets: `tiny_min`), `offset` being
    /// where `run` starts in `ops` as `f` sees it. Where a burst mixes classes
    /// (IMIX), its ops are first reordered so each class's are side by side, since
    /// the burst backends (`chacha-avx512`, `aesni`'s quads) gain from seeing all
    /// of them at once; `ops` is back in its order on return, and `placed[j]` (when
    /// given) says where the op `f` saw at `j` was in the caller's order.
    fn for_each_class<'o, 'p>(
        &self,
        ops: &'o mut [AeadOp<'p>],
        placed: Option<&mut [u8; SORTED]>,
        mut f: impl FnMut(&dyn Aead, &mut [AeadOp<'p>], usize),
    ) {
        let n = ops.len().min(SORTED);
        let tiny = match self.choice.tiny_min {
            0 | 1 => usize::MAX,
            _ => ops.iter().filter(|op| self.choice.class(op.data.len()) == SizeClass::Tiny).count(),
        };
        let class = |op: &AeadOp<'_>| self.choice.class_in_burst(op.data.len(), tiny);
        let first = ops.first().map(class);
        if ops.iter().all(|op| Some(class(op)) == first) || ops.len() > SORTED {
            if let Some(placed) = placed {
                for (j, p) in placed.iter_mut().enumerate() {
                    *p = j as u8;
                }
            }
            let mut offset = 0;
            while let Some(op) = ops.get(offset) {
                let c = class(op);
                let len = ops[offset..].iter().take_while(|op| class(op) == c).count();
                f(self.backend(c), &mut ops[offset..offset + len], offset);
                offset += len;
            }
            return;
        }
        let mut from = [0u8; SORTED];
        for (j, p) in from.iter_mut().enumerate() {
            *p = j as u8;
        }
        let mut start = 0;
        for c in [SizeClass::Tiny, SizeClass::Small, SizeClass::Large] {
            let mut end = start;
            for j in start..n {
                if class(&ops[j]) == c {
                    ops.swap(end, j);
                    from.swap(end, j);
                    end += 1;
                }
            }
            if end > start {
                f(self.backend(c), &mut ops[start..end], start);
            }
            start = end;
        }
        if let Some(placed) = placed {
            *placed = from;
        }
        // Put every op back where the caller had it.
        for j in 0..n {
            while usize::from(from[j]) != j {
                let k = usize::from(from[j]);
                ops.swap(j, k);
                from.swap(j, k);
            }
        }
    }
}

/// Most ops one call reorders by class (a burst is 32); longer slices go by runs.
const SORTED: usize = 64;

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
        self.for_each_class(ops, None, |aead, run, _| aead.seal_burst(run));
    }

    fn open_burst(&self, ops: &mut [AeadOp<'_>], results: &mut [Result<(), AuthError>]) {
        let n = ops.len().min(results.len());
        if n > SORTED {
            self.for_each_class(&mut ops[..n], None, |aead, run, offset| {
                aead.open_burst(run, &mut results[offset..offset + run.len()]);
            });
            return;
        }
        let mut seen = [Err(AuthError); SORTED];
        let mut placed = [0u8; SORTED];
        self.for_each_class(&mut ops[..n], Some(&mut placed), |aead, run, offset| {
            aead.open_burst(run, &mut seen[offset..offset + run.len()]);
        });
        for (r, &p) in seen.iter().zip(&placed).take(n) {
            results[usize::from(p)] = *r;
        }
    }
}
