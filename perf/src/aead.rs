//! AEAD benchmark fixture shared by `benches/aead.rs` (criterion) and the
//! `aead_table` binary: one keyed instance and a burst of packets of one size,
//! sealed or opened per packet or as one burst.
//!
//! Opening in place turns the buffer into plaintext, and re-opening plaintext
//! would fail authentication (and some backends skip the decryption then, which
//! would flatter them). So each packet carries two tags: `T0` for ciphertext
//! `C = seal(P)` and `T1` for `P` viewed as the ciphertext of `C` (CTR mode is its
//! own inverse: seal(C) = P with tag T1). Every run, seal or open, flips the
//! buffers between C and P, and opens use the tag set of the current state, so
//! every timed open authenticates and decrypts, with no copying.

use dataplane::crypto::{new_aead, Aead, AeadOp, Algorithm, Backend, KeyError, TAG_LEN};

/// Packet sizes (bytes of plaintext sealed per packet).
pub const SIZES: [usize; 4] = [64, 512, 1400, 9000];
/// Packets per burst (the dataplane's rx burst).
pub const BURST: usize = 32;
/// Algorithms with their table names.
pub const ALGS: [(Algorithm, &str); 3] = [
    (Algorithm::Aes128Gcm, "aes128gcm"),
    (Algorithm::Aes256Gcm, "aes256gcm"),
    (Algorithm::ChaCha20Poly1305, "chacha20poly1305"),
];

/// Seal or open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Encrypt and tag.
    Seal,
    /// Verify and decrypt.
    Open,
}

/// One call per packet, or one call for the whole burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `Aead::seal`/`open` for each packet.
    PerPacket,
    /// One `seal_burst`/`open_burst` for all [`BURST`] packets.
    Burst,
}

/// A keyed AEAD and [`BURST`] packets of one size.
#[derive(Debug)]
pub struct Fixture {
    aead: Box<dyn Aead>,
    ivs: Vec<[u8; 8]>,
    aads: Vec<[u8; 8]>,
    data: Vec<Vec<u8>>,
    /// Where each packet starts in its `data` buffer (its alignment).
    offset: usize,
    /// `tags[phase][i]`: the tag that authenticates `data[i]` in its current state.
    tags: [Vec<[u8; TAG_LEN]>; 2],
    phase: usize,
    scratch_tags: Vec<[u8; TAG_LEN]>,
    results: Vec<Result<(), dataplane::crypto::AuthError>>,
    /// Opens that failed authentication (must stay 0; checked by callers).
    pub failures: u64,
}

impl Fixture {
    /// Key `alg` on `backend` and build a burst of `size`-byte packets.
    pub fn new(alg: Algorithm, backend: Backend, size: usize) -> Result<Self, KeyError> {
        Self::at_offset(alg, backend, size, 0)
    }

    /// [`Self::new`] with each packet `offset` bytes into its buffer (the heap's
    /// buffers are 16-byte aligned; a gateway's plaintext is where the frame put it).
    pub fn at_offset(alg: Algorithm, backend: Backend, size: usize, offset: usize) -> Result<Self, KeyError> {
        let keymat: Vec<u8> = (0..alg.keymat_len())
            .map(|i| (i as u8).wrapping_mul(37) ^ 0xa5)
            .collect();
        let aead = new_aead(alg, &keymat, backend)?;
        let ivs: Vec<[u8; 8]> = (0..BURST as u64)
            .map(|i| (0x1000 + i).to_be_bytes())
            .collect();
        let aads: Vec<[u8; 8]> = (0..BURST as u32)
            .map(|i| {
                let mut a = [0u8; 8];
                a[..4].copy_from_slice(&0x0102_0304u32.to_be_bytes());
                a[4..].copy_from_slice(&(i + 1).to_be_bytes());
                a
            })
            .collect();
        let mut data: Vec<Vec<u8>> = (0..BURST)
            .map(|i| (0..offset + size).map(|j| (i * 7 + j) as u8).collect())
            .collect();
        let mut t0 = vec![[0u8; TAG_LEN]; BURST];
        let mut t1 = vec![[0u8; TAG_LEN]; BURST];
        // data: P -> C (tag T0), then a copy C -> P (tag T1) to learn T1.
        for i in 0..BURST {
            aead.seal(AeadOp {
                iv: ivs[i],
                aad: &aads[i],
                data: &mut data[i][offset..],
                tag: &mut t0[i],
            });
            let mut p = data[i][offset..].to_vec();
            aead.seal(AeadOp {
                iv: ivs[i],
                aad: &aads[i],
                data: &mut p,
                tag: &mut t1[i],
            });
        }
        Ok(Fixture {
            aead,
            ivs,
            aads,
            data,
            offset,
            tags: [t0, t1],
            phase: 0,
            scratch_tags: vec![[0u8; TAG_LEN]; BURST],
            results: vec![Ok(()); BURST],
            failures: 0,
        })
    }

    /// Backend name of the keyed instance.
    pub fn backend(&self) -> &'static str {
        self.aead.backend()
    }

    /// Process the whole burst once ([`BURST`] packets).
    pub fn run(&mut self, dir: Direction, mode: Mode) {
        let Fixture {
            aead,
            ivs,
            aads,
            data,
            offset,
            tags,
            phase,
            scratch_tags,
            results,
            failures,
        } = self;
        // Seal writes throwaway tags; open checks the tags of the current phase.
        let tag_set: &mut Vec<[u8; TAG_LEN]> = match dir {
            Direction::Seal => scratch_tags,
            Direction::Open => &mut tags[*phase],
        };
        let mut ops = data
            .iter_mut()
            .zip(tag_set.iter_mut())
            .zip(ivs.iter().zip(aads.iter()))
            .map(|((d, t), (iv, aad))| AeadOp {
                iv: *iv,
                aad: &aad[..],
                data: &mut d[*offset..],
                tag: t,
            });
        match (dir, mode) {
            (Direction::Seal, Mode::PerPacket) => ops.for_each(|op| aead.seal(op)),
            (Direction::Open, Mode::PerPacket) => {
                *failures += ops.map(|op| aead.open(op)).filter(Result::is_err).count() as u64;
            }
            // A fixed array, no allocation per call, as the dataplane builds its ops.
            (Direction::Seal, Mode::Burst) => {
                let mut burst: [AeadOp<'_>; BURST] =
                    core::array::from_fn(|_| ops.next().expect("BURST ops"));
                aead.seal_burst(&mut burst);
            }
            (Direction::Open, Mode::Burst) => {
                let mut burst: [AeadOp<'_>; BURST] =
                    core::array::from_fn(|_| ops.next().expect("BURST ops"));
                aead.open_burst(&mut burst, results);
                *failures += results.iter().filter(|r| r.is_err()).count() as u64;
            }
        }
        // Seal (same nonce) and open both turn C into P and P into C, so the other
        // tag set applies now.
        *phase ^= 1;
    }
}
