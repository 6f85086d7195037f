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

    /// The backend for a run of one packet (a burst spread over many SAs): its
    /// class in a burst of one. A burst of one goes there without
    /// [`Self::for_each_class`] and its arrays: ~90 instructions a call less.
    #[inline(always)]
    fn alone(&self, op: &AeadOp<'_>) -> &dyn Aead {
        self.backend(self.choice.class_in_burst(op.data.len(), 1))
    }

    fn backend(&self, class: SizeClass) -> &dyn Aead {
        let (tiny, small) = (self.tiny.as_deref(), self.small.as_deref());
        match class {
            SizeClass::Tiny => tiny.or(small).unwrap_or(&*self.large),
            SizeClass::Small => small.unwrap_or(&*self.large),
            SizeClass::Large => &*self.large,
        }
    }

    /// Call `f(backend, run, beside_run)` once for each size class in a burst of at
    /// most [`SORTED`] ops (a class whose backend wants bursts counts only with
    /// enough packets: `tiny_min`). Where the burst mixes classes (IMIX), the ops
    /// and `beside` (a slice as long, such as the open results) are first reordered
    /// alike so each class's are side by side, since the burst backends
    /// (`chacha-avx512`, `aesni`'s quads) gain from seeing all of them at once; both
    /// are back in the caller's order on return.
    fn for_each_class<'p, T>(
        &self,
        ops: &mut [AeadOp<'p>],
        beside: &mut [T],
        mut f: impl FnMut(&dyn Aead, &mut [AeadOp<'p>], &mut [T]),
    ) {
        let n = ops.len().min(beside.len()).min(SORTED);
        let (ops, beside) = (&mut ops[..n], &mut beside[..n]);
        // The usual burst, every op of one class (one frame size): one pass that
        // compares, without the class array and its second pass (~7
        // instructions a packet, GW=1 perf/esp/insns.sh encap 64).
        if let Some((first, rest)) = ops.split_first() {
            let c = self.choice.class(first.data.len());
            // `tiny` takes a burst only with `tiny_min` of its packets.
            let taken = c != SizeClass::Tiny || n >= self.choice.tiny_min;
            if taken && rest.iter().all(|op| self.choice.class(op.data.len()) == c) {
                return f(self.backend(c), ops, beside);
            }
        }
        let mut class = [SizeClass::Large; SORTED];
        for (c, op) in class.iter_mut().zip(ops.iter()) {
            *c = self.choice.class(op.data.len());
        }
        let tiny = match self.choice.tiny_min {
            0 | 1 => usize::MAX,
            _ => class[..n].iter().filter(|&&c| c == SizeClass::Tiny).count(),
        };
        if tiny < self.choice.tiny_min {
            for (c, op) in class.iter_mut().zip(ops.iter()).filter(|(c, _)| **c == SizeClass::Tiny) {
                *c = self.choice.class_in_burst(op.data.len(), tiny);
            }
        }
        let class = &mut class[..n];
        match class.first() {
            None => return,
            Some(&c) if class.iter().all(|&d| d == c) => return f(self.backend(c), ops, beside),
            Some(_) => {}
        }
        // from[j]: where the op now at j was in the caller's order.
        let mut from: [u8; SORTED] = core::array::from_fn(|j| j as u8);
        let mut start = 0;
        for c in [SizeClass::Tiny, SizeClass::Small, SizeClass::Large] {
            let mut end = start;
            for j in start..n {
                if class[j] == c {
                    ops.swap(end, j);
                    beside.swap(end, j);
                    from.swap(end, j);
                    class.swap(end, j);
                    end += 1;
                }
            }
            if end > start {
                f(self.backend(c), &mut ops[start..end], &mut beside[start..end]);
            }
            start = end;
        }
        // Put every op (and its companion) back where the caller had it.
        for j in 0..n {
            while usize::from(from[j]) != j {
                let k = usize::from(from[j]);
                ops.swap(j, k);
                beside.swap(j, k);
                from.swap(j, k);
            }
        }
    }
}

/// Most ops one call of `for_each_class` reorders by class (a burst is 32); longer
/// slices go through in pieces of this many.
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

    // One op (a run of one packet, many SAs) straight to its backend's `seal` /
    // `open`: not through a slice of one and the `_burst` calls on both sides.
    fn seal(&self, op: AeadOp<'_>) {
        self.alone(&op).seal(op);
    }

    fn open(&self, op: AeadOp<'_>) -> Result<(), AuthError> {
        self.alone(&op).open(op)
    }

    // Pieces of SORTED split off by hand: `chunks_mut` (zipped, for open) cost
    // 40-70 instructions a call, which a run of one packet pays per packet.
    fn seal_burst(&self, mut ops: &mut [AeadOp<'_>]) {
        if let [op] = ops {
            return self.seal(op.reborrow());
        }
        while !ops.is_empty() {
            let (now, later) = ops.split_at_mut(ops.len().min(SORTED));
            self.for_each_class(now, &mut [(); SORTED], |aead, run, _| aead.seal_burst(run));
            ops = later;
        }
    }

    fn open_burst(&self, ops: &mut [AeadOp<'_>], results: &mut [Result<(), AuthError>]) {
        let n = ops.len().min(results.len());
        let (mut ops, mut results) = (&mut ops[..n], &mut results[..n]);
        // Decap's run of one packet comes here in a slice of one.
        if let ([op], [result]) = (&mut *ops, &mut *results) {
            *result = self.open(op.reborrow());
            return;
        }
        while !ops.is_empty() {
            let k = ops.len().min(SORTED);
            let ((now, later), (verdicts, rest)) = (ops.split_at_mut(k), results.split_at_mut(k));
            self.for_each_class(now, verdicts, |aead, run, results| aead.open_burst(run, results));
            (ops, results) = (later, rest);
        }
    }
}
