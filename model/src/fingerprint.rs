//! 64-bit fingerprints, by which the searches tell states apart (two states with the same
//! fingerprint count as one), and the hash sets keyed by them.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The fingerprint of `value`.
pub fn fingerprint<T: Hash>(value: &T) -> u64 {
    let mut h = Fingerprinter::default();
    value.hash(&mut h);
    h.finish()
}

/// A set of fingerprints (already well mixed: they are used as their own hash).
pub type FingerprintSet = HashSet<u64, BuildHasherDefault<Identity>>;

/// A map keyed by fingerprints.
pub type FingerprintMap<V> = HashMap<u64, V, BuildHasherDefault<Identity>>;

/// A set of fingerprints in one open-addressed table with linear probing, which threads may
/// read and insert into at once. A search looks up every successor it generates, most of them
/// in vain and each far from the last: here a lookup reads one cache line (mostly), where a
/// `HashSet` reads its control bytes and then its buckets, two lines apart.
pub struct FingerprintTable {
    /// Fingerprints, each in the first free slot from its home slot on; 0 marks a free slot.
    slots: Vec<AtomicU64>,
    len: AtomicUsize,
}

/// How full the table may get, as a fraction `NUMERATOR / DENOMINATOR`: linear probing stays
/// short up to about three quarters.
const MAX_LOAD_NUMERATOR: usize = 3;
const MAX_LOAD_DENOMINATOR: usize = 4;

/// What the table stores for fingerprint `fp`: 0 marks a free slot, so fingerprint 0 is
/// stored as 1 (two states with fingerprints 0 and 1 count as one, as any two states whose
/// fingerprints collide).
fn stored(fp: u64) -> u64 {
    fp.max(1)
}

impl Default for FingerprintTable {
    fn default() -> Self {
        FingerprintTable::with_slots(1024)
    }
}

impl FingerprintTable {
    fn with_slots(slots: usize) -> FingerprintTable {
        FingerprintTable {
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            len: AtomicUsize::new(0),
        }
    }

    /// How many fingerprints the table holds.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Does the table hold no fingerprint?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Does the table hold `fp`?
    pub fn contains(&self, fp: u64) -> bool {
        let fp = stored(fp);
        let mask = self.mask();
        // The low bits of a fingerprint are as good as any: they are well mixed.
        let mut i = fp as usize & mask;
        loop {
            match self.slots[i].load(Ordering::Relaxed) {
                0 => return false,
                f if f == fp => return true,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Makes room for `additional` more fingerprints (to be inserted by
    /// [`FingerprintTable::insert_all`], which does not grow the table).
    pub fn reserve(&mut self, additional: usize) {
        let needed = (self.len() + additional) * MAX_LOAD_DENOMINATOR / MAX_LOAD_NUMERATOR + 1;
        if needed <= self.slots.len() {
            return;
        }
        let old = std::mem::replace(
            self,
            FingerprintTable::with_slots(needed.next_power_of_two()),
        );
        let mut len = 0;
        for slot in old.slots {
            let fp = slot.into_inner();
            if fp != 0 {
                self.insert(fp);
                len += 1;
            }
        }
        self.len = AtomicUsize::new(len);
    }

    /// Adds `fp`; false if the table held it already. Threads may insert at once, but the
    /// table must have room ([`FingerprintTable::reserve`]): it never grows by itself. Nor
    /// does it count: [`FingerprintTable::insert_all`] does, once for many.
    fn insert(&self, fp: u64) -> bool {
        let fp = stored(fp);
        let mask = self.mask();
        let mut i = fp as usize & mask;
        loop {
            match self.slots[i].compare_exchange(0, fp, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(f) if f == fp => return false,
                Err(_) => i = (i + 1) & mask,
            }
        }
    }

    /// Adds every fingerprint of `fps`, and returns how many were new. Threads may insert at
    /// once, but the table must have room ([`FingerprintTable::reserve`]).
    pub fn insert_all(&self, fps: impl IntoIterator<Item = u64> + Clone) -> usize {
        // Each insert misses the cache, and a compare-and-swap waits for its line before the
        // next may start: plain reads of the home slots first, which the processor overlaps,
        // bring the lines in. (What they read does not matter; `black_box` keeps them.)
        let mask = self.mask();
        for fp in fps.clone() {
            std::hint::black_box(self.slots[stored(fp) as usize & mask].load(Ordering::Relaxed));
        }
        let added = fps.into_iter().filter(|&fp| self.insert(fp)).count();
        // Counted once: a counter shared by threads that each bumped it per insert would
        // bounce between their caches.
        self.len.fetch_add(added, Ordering::Relaxed);
        added
    }
}

/// Hashing every successor is a sizeable share of a search's cost, and a derived `Hash` of a
/// state writes dozens of single bytes (`u8` fields, enum tags). So the bytes are packed into
/// 64-bit words and only whole words are mixed in, each with one 64 × 64 → 128-bit multiply
/// whose halves are folded together (the scheme of foldhash and wyhash); `finish` avalanches
/// the result so that every bit of a fingerprint depends on every input bit, as hash tables
/// and the sharding by bits of the fingerprint need. States are not attacker-controlled: no
/// random seed.
struct Fingerprinter {
    /// The words mixed in so far.
    accumulated: u64,
    /// Bytes not yet mixed in, the first in the lowest bits.
    pending: u64,
    /// How many bytes `pending` holds (0 to 7).
    pending_len: u32,
}

/// Constants with well-spread bits (the fractional digits of pi), the multipliers odd.
const MULTIPLIER: u64 = 0x243f_6a88_85a3_08d3;
const FINISH_MULTIPLIER: u64 = 0x1319_8a2e_0370_7345;
/// Where the mixing starts. Not 0: a folded multiply maps 0 to 0, so from 0 every leading
/// zero word would be lost (`[0, 0, x]` and `[0, x]` would collide).
const SEED: u64 = 0xa409_3822_299f_31d0;

impl Default for Fingerprinter {
    fn default() -> Self {
        Fingerprinter {
            accumulated: SEED,
            pending: 0,
            pending_len: 0,
        }
    }
}

/// The folded multiply: the two halves of the 128-bit product, xor-ed.
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Fingerprinter {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.accumulated = folded_multiply(self.accumulated ^ word, MULTIPLIER);
    }

    /// Appends the `len` (1 to 8) low bytes of `bytes` (its other bytes are zero).
    #[inline]
    fn push(&mut self, bytes: u64, len: u32) {
        let used = self.pending_len;
        // `used` is at most 7: the shift stays below 64.
        self.pending |= bytes << (used * 8);
        let total = used + len;
        if total >= 8 {
            self.mix(self.pending);
            // What did not fit: the high bytes of `bytes` (none when `used` was 0).
            self.pending = bytes.checked_shr((8 - used) * 8).unwrap_or(0);
            self.pending_len = total - 8;
        } else {
            self.pending_len = total;
        }
    }
}

impl Hasher for Fingerprinter {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(word);
            self.push(u64::from_le_bytes(buf), 8);
        }
        for &byte in words.remainder() {
            self.push(u64::from(byte), 1);
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.push(u64::from(n), 1);
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.push(u64::from(n), 2);
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.push(u64::from(n), 4);
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.push(n, 8);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.push(n as u64, 8);
    }

    #[inline]
    fn write_isize(&mut self, n: isize) {
        self.push(n as u64, 8);
    }

    fn finish(&self) -> u64 {
        let last = self.accumulated ^ self.pending ^ u64::from(self.pending_len).rotate_right(8);
        folded_multiply(last, FINISH_MULTIPLIER)
    }
}

/// Fingerprints are already well mixed: the sets use them as they are.
#[derive(Default)]
pub struct Identity(u64);

impl Hasher for Identity {
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 fingerprints are hashed")
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_does_not_depend_on_how_the_bytes_are_split() {
        // The same byte stream, written in different pieces, gives the same fingerprint: the
        // packing loses no byte and invents none.
        let bytes: Vec<u8> = (1..=23).collect();
        let mut whole = Fingerprinter::default();
        whole.write(&bytes);
        let mut single = Fingerprinter::default();
        for &b in &bytes {
            single.write_u8(b);
        }
        let mut mixed = Fingerprinter::default();
        mixed.write_u8(bytes[0]);
        mixed.write_u32(u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]));
        mixed.write_u64(u64::from_le_bytes(bytes[5..13].try_into().unwrap()));
        mixed.write_u16(u16::from_le_bytes([bytes[13], bytes[14]]));
        mixed.write(&bytes[15..]);
        assert_eq!(whole.finish(), single.finish());
        assert_eq!(whole.finish(), mixed.finish());
    }

    #[test]
    fn the_table_holds_what_was_inserted_across_growth() {
        let mut table = FingerprintTable::default();
        let fps: Vec<u64> = (0..10_000u64).map(|i| fingerprint(&i)).collect();
        for chunk in fps.chunks(1000) {
            table.reserve(chunk.len());
            assert_eq!(table.insert_all(chunk.iter().copied()), chunk.len());
            assert_eq!(table.insert_all(chunk.iter().copied()), 0);
        }
        assert_eq!(table.len(), fps.len());
        assert!(fps.iter().all(|&fp| table.contains(fp)));
        assert!((10_000..20_000u64).all(|i| !table.contains(fingerprint(&i))));
        // 0 marks a free slot: fingerprint 0 is kept as 1.
        table.reserve(1);
        assert_eq!(table.insert_all([0]), 1);
        assert!(table.contains(0));
    }

    #[test]
    fn small_differences_give_different_fingerprints() {
        let mut seen = std::collections::HashSet::new();
        for a in 0..=255u8 {
            for b in 0..=64u8 {
                assert!(seen.insert(fingerprint(&(a, b, [0u8; 9], a ^ b))));
            }
        }
        assert_ne!(fingerprint(&vec![0u8]), fingerprint(&vec![0u8, 0]));
        assert_ne!(fingerprint(&()), fingerprint(&0u8));
        assert_ne!(fingerprint(&(0u64, 0u64, 1u64)), fingerprint(&(0u64, 1u64)));
        // No small input lands on 0 or 1 (which the table keeps as one).
        assert!((0..100_000u64).all(|i| fingerprint(&i) > 1));
    }
}
