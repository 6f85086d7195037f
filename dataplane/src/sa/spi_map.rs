//! Inbound SPI → SA map: an immutable open-addressing table split into shards so a
//! control-plane update rebuilds only the shards it touched (copy-on-write), and
//! a lookup costs one hash, one shard pointer and (almost always) one bucket line.
//!
//! The key is the SPI alone: we allocate our inbound SPIs ourselves, unique per
//! gateway, which RFC 4301 §4.1 says is enough for unicast SAs.
//!
//! Hash flooding is not a concern: the keys are SPIs *we* chose (random from
//! IKEv2, or the operator's static ones); a peer only controls what it looks up,
//! and a miss stops at the first empty bucket (load factor ≤ 2/3).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use rayon::prelude::*;

/// log2 of the number of shards. 256 shards keep a rebuild at 1M SAs to ~4k
/// entries while the shard array (4 KiB) stays cache resident.
const SHARD_BITS: u32 = 8;
const SHARDS: usize = 1 << SHARD_BITS;

/// Fibonacci hashing (Knuth 6.4): SPIs are often sequential in static configs,
/// and a multiply spreads them over the high bits, which is all we use.
#[inline]
fn hash(spi: u32) -> u64 {
    u64::from(spi).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[inline]
fn shard_of(h: u64) -> usize {
    (h >> (64 - SHARD_BITS)) as usize
}

#[inline]
fn home_of(h: u64, mask: usize) -> usize {
    // Bits 32..56: disjoint from the shard bits, all key bits mixed in.
    ((h >> 32) as usize) & mask
}

#[derive(Debug, Clone)]
struct Bucket<V> {
    /// 0 = empty (SPI 0 is never installed, RFC 4303 §2.1).
    spi: u32,
    value: Option<V>,
}

type Shard<V> = Arc<[Bucket<V>]>;

/// Immutable SPI map (one per snapshot; unchanged shards are shared between
/// snapshots).
#[derive(Debug)]
pub struct SpiMap<V> {
    shards: Box<[Shard<V>]>,
    len: usize,
}

impl<V> SpiMap<V> {
    /// The value for `spi`, if installed. Any `u32` is fine, including 0 and
    /// reserved values (they miss).
    #[inline]
    pub fn get(&self, spi: u32) -> Option<&V> {
        let h = hash(spi);
        let shard = &self.shards[shard_of(h)];
        let mask = shard.len() - 1;
        let mut i = home_of(h, mask);
        loop {
            let b = &shard[i];
            if b.spi == spi {
                // Also the answer for spi == 0: an empty bucket holds None.
                return b.value.as_ref();
            }
            if b.spi == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes of bucket storage (the index itself, not the values' heap data).
    pub fn index_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.len() * std::mem::size_of::<Bucket<V>>())
            .sum::<usize>()
            + SHARDS * std::mem::size_of::<Shard<V>>()
    }

    /// Longest probe sequence of any installed SPI (1 = found in its home
    /// bucket): the structural O(1) check of the stress test.
    pub fn max_probe(&self) -> usize {
        let mut longest = 0;
        for shard in self.shards.iter() {
            let mask = shard.len() - 1;
            for (i, b) in shard.iter().enumerate() {
                if b.spi != 0 {
                    let home = home_of(hash(b.spi), mask);
                    longest = longest.max(((i + shard.len() - home) & mask) + 1);
                }
            }
        }
        longest
    }

    /// Iterate over all (SPI, value) pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &V)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter())
            .filter_map(|b| b.value.as_ref().map(|v| (b.spi, v)))
    }
}

fn build_shard<V>(items: Vec<(u32, V)>) -> Shard<V> {
    // Load factor <= 2/3 and at least one empty bucket, so probing terminates.
    let capacity = (items.len() + items.len() / 2 + 1).next_power_of_two();
    let mask = capacity - 1;
    let mut buckets: Vec<Bucket<V>> = (0..capacity)
        .map(|_| Bucket {
            spi: 0,
            value: None,
        })
        .collect();
    for (spi, value) in items {
        let mut i = home_of(hash(spi), mask);
        while buckets[i].spi != 0 {
            i = (i + 1) & mask;
        }
        buckets[i] = Bucket {
            spi,
            value: Some(value),
        };
    }
    Arc::from(buckets)
}

/// Hasher for the control-side master maps: the SPI is already a well mixed
/// key once multiplied (and chosen by us, see the module doc).
#[derive(Debug, Default, Clone, Copy)]
struct SpiHasher(u64);

impl Hasher for SpiHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = hash(u32::from(*b) ^ (self.0 as u32)).rotate_left(32);
        }
    }
    fn write_u32(&mut self, i: u32) {
        // Rotate so hashbrown's bucket bits (low) get the well mixed high bits.
        self.0 = hash(i).rotate_left(32);
    }
}

type MasterShard<V> = HashMap<u32, V, BuildHasherDefault<SpiHasher>>;

/// Control-plane master copy of an [`SpiMap`]: a `HashMap` per shard plus dirty
/// flags, so [`SpiMapBuilder::build`] rebuilds only what changed since the last build.
#[derive(Debug)]
pub(crate) struct SpiMapBuilder<V> {
    shards: Vec<MasterShard<V>>,
    dirty: Vec<bool>,
    len: usize,
}

impl<V: Clone + Send + Sync> SpiMapBuilder<V> {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| MasterShard::default()).collect(),
            dirty: vec![true; SHARDS],
            len: 0,
        }
    }

    pub(crate) fn get(&self, spi: u32) -> Option<&V> {
        self.shards[shard_of(hash(spi))].get(&spi)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Insert or replace; returns the previous value.
    pub(crate) fn insert(&mut self, spi: u32, value: V) -> Option<V> {
        let s = shard_of(hash(spi));
        self.dirty[s] = true;
        let prev = self.shards[s].insert(spi, value);
        if prev.is_none() {
            self.len += 1;
        }
        prev
    }

    pub(crate) fn remove(&mut self, spi: u32) -> Option<V> {
        let s = shard_of(hash(spi));
        let prev = self.shards[s].remove(&spi);
        if prev.is_some() {
            self.dirty[s] = true;
            self.len -= 1;
        }
        prev
    }

    /// A new immutable map: dirty shards rebuilt (in parallel when there are
    /// many, e.g. a bulk load), clean ones shared with `previous`.
    pub(crate) fn build(&mut self, previous: Option<&SpiMap<V>>) -> SpiMap<V> {
        let dirty = &self.dirty;
        let sources = &self.shards;
        let rebuild = |s: usize| -> Shard<V> {
            match previous {
                Some(prev) if !dirty[s] => Arc::clone(&prev.shards[s]),
                _ => build_shard(sources[s].iter().map(|(k, v)| (*k, v.clone())).collect()),
            }
        };
        let work: usize = (0..SHARDS)
            .filter(|&s| dirty[s] || previous.is_none())
            .map(|s| sources[s].len())
            .sum();
        let shards: Vec<Shard<V>> = if work > 64 * 1024 {
            (0..SHARDS).into_par_iter().map(rebuild).collect()
        } else {
            (0..SHARDS).map(rebuild).collect()
        };
        self.dirty.iter_mut().for_each(|d| *d = false);
        SpiMap {
            shards: shards.into_boxed_slice(),
            len: self.len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_lookup_remove_and_share_clean_shards() {
        let mut b = SpiMapBuilder::new();
        for spi in 256..10_256u32 {
            b.insert(spi, spi * 2);
        }
        let m1 = b.build(None);
        assert_eq!(m1.len(), 10_000);
        for spi in 256..10_256u32 {
            assert_eq!(m1.get(spi), Some(&(spi * 2)));
        }
        for miss in [0u32, 1, 255, 10_256, u32::MAX] {
            assert_eq!(m1.get(miss), None);
        }
        assert_eq!(b.remove(300), Some(600));
        let m2 = b.build(Some(&m1));
        assert_eq!(m2.get(300), None);
        assert_eq!(m1.get(300), Some(&600), "old snapshot unchanged");
        let shared = m1
            .shards
            .iter()
            .zip(m2.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(shared, SHARDS - 1, "only the touched shard is rebuilt");
        assert_eq!(m2.iter().count(), 9_999);
    }

    #[test]
    fn empty_map_misses() {
        let mut b = SpiMapBuilder::<u8>::new();
        let m = b.build(None);
        assert_eq!(m.len(), 0);
        assert_eq!(m.get(0), None);
        assert_eq!(m.get(12345), None);
    }
}
