//! Anti-replay window: RFC 6479 bitmap, RFC 4303 Appendix A2 ESN reconstruction.
//!
//! The window is checked before decryption ([`ReplayWindow::check`]) so forged
//! packets cost no AEAD work, and updated only after the ICV verified
//! ([`ReplayWindow::update`], RFC 4303 §3.4.3), which re-checks because two packets
//! of one burst may carry the same number.
//!
//! The state is atomics so one `Arc`'d window can live outside the SA-table
//! snapshot and survive snapshot swaps; it has a **single writer**: the one core
//! that owns the inbound SA (worker/handoff.rs: other workers hand it the SA's packets). The
//! atomics are only there to make that sharing safe Rust; every access is
//! `Relaxed` and costs what a plain load/store costs. Concurrent writers could not
//! corrupt memory but could let a duplicate through.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Default window: 1024 packets, enough for multi-queue reordering at 100 Gb/s.
pub const DEFAULT_WINDOW: u32 = 1024;
/// Largest window accepted (bitmap of 8 KiB).
pub const MAX_WINDOW: u32 = 65536;

const WORD_BITS: u64 = 64;

/// Why a sequence number is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Already received (RFC 4303 §3.4.3).
    #[error("duplicate sequence number")]
    Duplicate,
    /// Left of the window: too old to tell.
    #[error("sequence number left of the replay window")]
    TooOld,
    /// Sequence number 0 is never sent (RFC 4303 §3.3.3 starts at 1).
    #[error("sequence number zero")]
    Zero,
}

/// The window size asked for is larger than [`MAX_WINDOW`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("replay window {0} exceeds the maximum of {MAX_WINDOW}")]
pub struct WindowTooLarge(pub u32);

/// RFC 6479 replay window for one inbound SA.
#[derive(Debug)]
pub struct ReplayWindow {
    /// Packets the window covers; 0 disables replay protection (benchmarks only).
    size: u32,
    esn: bool,
    /// Highest authenticated sequence number (64-bit with ESN); 0 = none yet.
    top: AtomicU64,
    /// Ring of 64-bit words, a power of two with one word more than the window
    /// needs so that advancing never clears bits still inside the window (RFC 6479 §3).
    bitmap: Box<[AtomicU64]>,
    /// `bitmap.len() - 1`: the word index is a mask, not a division.
    word_mask: u64,
}

impl ReplayWindow {
    /// A window of `size` packets (0 = disabled), with or without ESN.
    pub fn new(size: u32, esn: bool) -> Result<Self, WindowTooLarge> {
        if size > MAX_WINDOW {
            return Err(WindowTooLarge(size));
        }
        let words = if size == 0 { 0 } else { (size.div_ceil(64) as usize + 1).next_power_of_two() };
        Ok(ReplayWindow {
            size,
            esn,
            top: AtomicU64::new(0),
            bitmap: (0..words).map(|_| AtomicU64::new(0)).collect(),
            word_mask: (words as u64).saturating_sub(1),
        })
    }

    /// Window size in packets (0 = disabled).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Whether the SA uses extended sequence numbers.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// Highest authenticated sequence number so far (0 = none).
    pub fn top(&self) -> u64 {
        self.top.load(Relaxed)
    }

    /// Reconstruct the full sequence number from the 32 bits on the wire
    /// (RFC 4303 Appendix A2.2) and check it against the window. Returns the full
    /// number to put in the AAD (its high half with ESN, RFC 4106 §5).
    pub fn check(&self, seq_low: u32) -> Result<u64, ReplayError> {
        let top = self.top.load(Relaxed);
        let seq = if self.esn { self.reconstruct(top, seq_low) } else { u64::from(seq_low) };
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if self.size == 0 || seq > top {
            return Ok(seq);
        }
        if seq + u64::from(self.size) <= top {
            return Err(ReplayError::TooOld);
        }
        let (word, bit) = self.position(seq);
        if self.bitmap[word].load(Relaxed) & bit != 0 {
            return Err(ReplayError::Duplicate);
        }
        Ok(seq)
    }

    /// Record `seq` (the value `check` returned) after its ICV verified. Checks
    /// again, so the second of two equal numbers in one burst is refused here.
    pub fn update(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        let top = self.top.load(Relaxed);
        if self.size == 0 {
            // Still track the top so ESN reconstruction follows the sender.
            if seq > top {
                self.top.store(seq, Relaxed);
            }
            return Ok(());
        }
        if seq > top {
            self.advance(top, seq);
        } else if seq + u64::from(self.size) <= top {
            return Err(ReplayError::TooOld);
        }
        let (word, bit) = self.position(seq);
        let w = self.bitmap[word].load(Relaxed);
        if w & bit != 0 {
            return Err(ReplayError::Duplicate);
        }
        self.bitmap[word].store(w | bit, Relaxed);
        Ok(())
    }

    /// Slide the window so `new_top` is its right edge, zeroing the words that
    /// now hold numbers above the old top (RFC 6479 §3: clear whole words only).
    fn advance(&self, old_top: u64, new_top: u64) {
        let old_word = old_top / WORD_BITS;
        let new_word = new_top / WORD_BITS;
        let diff = (new_word - old_word).min(self.word_mask + 1);
        for i in 1..=diff {
            self.bitmap[((old_word + i) & self.word_mask) as usize].store(0, Relaxed);
        }
        self.top.store(new_top, Relaxed);
    }

    fn position(&self, seq: u64) -> (usize, u64) {
        (((seq / WORD_BITS) & self.word_mask) as usize, 1u64 << (seq % WORD_BITS))
    }

    /// RFC 4303 Appendix A2.2: pick the high 32 bits that put the received low
    /// half inside or to the right of the window. With the window disabled,
    /// half the number space stands in for the window.
    fn reconstruct(&self, top: u64, seql: u32) -> u64 {
        let w: u32 = if self.size == 0 { 1 << 31 } else { self.size };
        let th = (top >> 32) as u32;
        let tl = top as u32;
        let low_edge = tl.wrapping_sub(w).wrapping_add(1);
        let seqh = if tl >= w - 1 {
            // Case A: the window does not straddle a 2^32 boundary.
            if seql >= low_edge { th } else { th.wrapping_add(1) }
        } else if seql >= low_edge {
            // Case B, seq in the previous subspace; before the first wrap there is
            // none, so the number can only be ahead in this one.
            th.saturating_sub(1)
        } else {
            th
        };
        (u64::from(seqh) << 32) | u64::from(seql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Receive a packet: check, (authenticate), update.
    fn recv(w: &ReplayWindow, seq_low: u32) -> Result<u64, ReplayError> {
        let seq = w.check(seq_low)?;
        w.update(seq)?;
        Ok(seq)
    }

    #[test]
    fn table_without_esn() {
        use ReplayError::*;
        // (sequence number received, expected result) in order, window 64.
        let cases: &[(u32, Result<u64, ReplayError>)] = &[
            (0, Err(Zero)),
            (1, Ok(1)),
            (1, Err(Duplicate)),
            (2, Ok(2)),
            (4, Ok(4)),
            (3, Ok(3)), // reordered but inside
            (3, Err(Duplicate)),
            (64, Ok(64)),
            (1, Err(Duplicate)), // 1 is the left edge: 64 - 64 + 1
            (65, Ok(65)),        // left edge is now 2
            (1, Err(TooOld)),
            (2, Err(Duplicate)),
            (5, Ok(5)),
            (1000, Ok(1000)), // far ahead clears the bitmap
            (936, Err(TooOld)),
            (937, Ok(937)), // exactly the left edge
            (937, Err(Duplicate)),
            (999, Ok(999)),
            (1000, Err(Duplicate)),
            (u32::MAX, Ok(u64::from(u32::MAX))),
            (u32::MAX - 63, Ok(u64::from(u32::MAX - 63))),
            (u32::MAX - 64, Err(TooOld)),
            (1, Err(TooOld)), // no wrap without ESN
        ];
        let w = ReplayWindow::new(64, false).expect("size");
        for (i, (seq, want)) in cases.iter().enumerate() {
            assert_eq!(recv(&w, *seq), *want, "case {i}: seq {seq}");
        }
    }

    #[test]
    fn every_window_size_keeps_exactly_size_packets() {
        for size in [1u32, 32, 64, 100, 1024, 4096, MAX_WINDOW] {
            let w = ReplayWindow::new(size, false).expect("size");
            let top = 3 * u64::from(size) + 17;
            assert_eq!(recv(&w, top as u32), Ok(top));
            let left = top + 1 - u64::from(size);
            assert_eq!(recv(&w, (left - 1) as u32), Err(ReplayError::TooOld), "size {size}");
            for s in left..top {
                assert_eq!(recv(&w, s as u32), Ok(s), "size {size} seq {s}");
            }
            for s in left..=top {
                assert_eq!(w.check(s as u32), Err(ReplayError::Duplicate), "size {size} seq {s}");
            }
            // Slide by one: the old left edge falls out, everything else stays seen.
            assert_eq!(recv(&w, (top + 1) as u32), Ok(top + 1));
            assert_eq!(w.check(left as u32), Err(ReplayError::TooOld));
            assert_eq!(w.check((left + 1) as u32), Err(ReplayError::Duplicate));
        }
    }

    #[test]
    fn jump_of_exactly_the_bitmap_span_clears_stale_bits() {
        let w = ReplayWindow::new(64, false).expect("size");
        // Bitmap has 2 words = 128 bits; seq 1 and 129 share a bit position.
        assert_eq!(recv(&w, 1), Ok(1));
        assert_eq!(recv(&w, 129), Ok(129));
        assert_eq!(recv(&w, 128), Ok(128), "stale bit of 0..63 must not leak into 128..191");
        assert_eq!(recv(&w, 130), Ok(130));
    }

    #[test]
    fn check_does_not_update_and_burst_duplicates_are_caught_at_update() {
        let w = ReplayWindow::new(1024, false).expect("size");
        let a = w.check(10).expect("new");
        let b = w.check(10).expect("not recorded yet");
        assert_eq!(w.update(a), Ok(()));
        assert_eq!(w.update(b), Err(ReplayError::Duplicate));
        // A packet that failed authentication is never updated, so it does not
        // block the genuine one.
        assert_eq!(w.check(11), Ok(11));
        assert_eq!(recv(&w, 11), Ok(11));
    }

    #[test]
    fn esn_table() {
        use ReplayError::*;
        const M: u64 = 1 << 32;
        let w = ReplayWindow::new(128, true).expect("size");
        // (low 32 bits received, whether the packet authenticates, expected result).
        // A packet that does not authenticate is only checked, never recorded.
        let cases: &[(u32, bool, Result<u64, ReplayError>)] = &[
            (0, true, Err(Zero)), // 64-bit zero is never sent
            (1, true, Ok(1)),
            // Case B before the first wrap: there is no previous subspace, so ahead.
            (u32::MAX - 10, true, Ok(u64::from(u32::MAX - 10))),
            (u32::MAX, true, Ok(u64::from(u32::MAX))),
            (0, true, Ok(M)), // wrap: low 0 is now 2^32
            (5, true, Ok(M + 5)),
            (u32::MAX - 1, true, Ok(M - 2)), // Case B: previous subspace, inside the window
            (u32::MAX - 1, true, Err(Duplicate)),
            (u32::MAX, true, Err(Duplicate)),
            (u32::MAX - 200, true, Ok(2 * M - 201)), // Case B below the window: this subspace, far ahead
            (6, true, Ok(2 * M + 6)),                // Case A below the window: next subspace
            // An old packet from before the window is guessed to be ahead; its ICV
            // then fails because the AAD carries the wrong high bits (RFC 4303 A2.2).
            (u32::MAX - 150, false, Ok(3 * M - 151)),
            (2, true, Ok(2 * M + 2)),
            (2, true, Err(Duplicate)),
            (u32::MAX - 100, true, Ok(2 * M - 101)), // Case B: previous subspace, inside
        ];
        for (i, (seq, authentic, want)) in cases.iter().enumerate() {
            let got = if *authentic { recv(&w, *seq) } else { w.check(*seq) };
            assert_eq!(got, *want, "case {i}: seq {seq:#x}");
        }
    }

    #[test]
    fn esn_case_a_window_edge() {
        const M: u64 = 1 << 32;
        let w = ReplayWindow::new(64, true).expect("size");
        assert_eq!(recv(&w, 1000), Ok(1000));
        // Tl - W + 1 = 937 is the window edge: 937 belongs to this subspace, 936 to the next.
        assert_eq!(w.check(937), Ok(937));
        assert_eq!(w.check(936), Ok(M + 936));
    }

    #[test]
    fn disabled_window_accepts_everything_but_tracks_esn() {
        let w = ReplayWindow::new(0, true).expect("size");
        for _ in 0..3 {
            assert_eq!(recv(&w, 7), Ok(7));
        }
        assert_eq!(recv(&w, u32::MAX), Ok(u64::from(u32::MAX)));
        assert_eq!(recv(&w, 1), Ok((1 << 32) + 1), "wrap followed without a window");
        assert_eq!(ReplayWindow::new(MAX_WINDOW + 1, false).err(), Some(WindowTooLarge(MAX_WINDOW + 1)));
    }
}
