//! A Hamming-distance index over 64-bit image hashes: multi-index hashing.
//!
//! Behind the image check and the complaint API ([`super::state`] holds one index of listing
//! images and one of protected originals). Every hash is split into [`CHUNKS`] chunks of 16
//! bits, and each chunk position has an exact-match table from chunk value to the entries
//! having it.
//!
//! **The guarantee.** A query for every entry within distance `r` probes, in each table,
//! every chunk value within `s = r / CHUNKS` (rounded down) of the query's chunk. Two hashes
//! at distance `d ≤ r` differ in `d` bits spread over the chunks; if every chunk differed in
//! `s + 1` bits or more, `d` would be at least `CHUNKS · (s + 1) > r`. So at least one chunk
//! differs in at most `s` bits, its table is probed at that value, and the entry is found:
//! the search is exact, never approximate. Each candidate's full distance is then checked.
//! The cost is `CHUNKS · Σ_{i≤s} C(16, i)` probes (4 for r < 4, 68 for r < 8, 548 for r < 12,
//! 2,788 for r < 16) plus the candidates found, which for random hashes is
//! `probes · n / 65,536`.
//!
//! A candidate found in several tables is reported once: by the first table whose chunk is
//! within `s`, which the candidate's own hash tells without a set of seen entries.

/// Chunks a hash is split into.
pub const CHUNKS: usize = 4;
const CHUNK_BITS: u32 = 16;
const TABLE_SIZE: usize = 1 << CHUNK_BITS;

/// An entry's number in its index; numbers of removed entries are reused.
pub type EntryId = u32;

/// The index. Entries are numbered by the index; what an entry stands for is the caller's.
#[derive(Debug)]
pub struct HammingIndex {
    /// Hash of each entry, `None` once removed.
    hashes: Vec<Option<u64>>,
    free: Vec<EntryId>,
    /// `tables[c][value]`: the entries whose chunk `c` is `value`.
    tables: Vec<Vec<Bucket>>,
    len: usize,
}

impl Default for HammingIndex {
    fn default() -> Self {
        HammingIndex::new()
    }
}

/// The entries of one chunk value, with their full hashes beside them: a query reads a
/// bucket front to back instead of jumping to each candidate's hash elsewhere in memory,
/// which at millions of entries is what a query's time goes to.
#[derive(Debug, Clone, Default)]
struct Bucket {
    hashes: Vec<u64>,
    ids: Vec<EntryId>,
}

fn chunk(hash: u64, c: usize) -> usize {
    ((hash >> (c as u32 * CHUNK_BITS)) & 0xffff) as usize
}

impl HammingIndex {
    pub fn new() -> HammingIndex {
        HammingIndex {
            hashes: Vec::new(),
            free: Vec::new(),
            tables: (0..CHUNKS)
                .map(|_| vec![Bucket::default(); TABLE_SIZE])
                .collect(),
            len: 0,
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a hash and returns its entry's number.
    pub fn insert(&mut self, hash: u64) -> EntryId {
        let id = match self.free.pop() {
            Some(id) => {
                self.hashes[id as usize] = Some(hash);
                id
            }
            None => {
                self.hashes.push(Some(hash));
                // More than four billion entries would need 64 GiB of hashes alone.
                EntryId::try_from(self.hashes.len() - 1).unwrap_or(EntryId::MAX)
            }
        };
        for (c, table) in self.tables.iter_mut().enumerate() {
            let bucket = &mut table[chunk(hash, c)];
            bucket.hashes.push(hash);
            bucket.ids.push(id);
        }
        self.len += 1;
        id
    }

    /// Removes an entry; removing one that is not there does nothing.
    pub fn remove(&mut self, id: EntryId) {
        let Some(hash) = self.hashes.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        for (c, table) in self.tables.iter_mut().enumerate() {
            let bucket = &mut table[chunk(hash, c)];
            if let Some(at) = bucket.ids.iter().position(|&e| e == id) {
                bucket.ids.swap_remove(at);
                bucket.hashes.swap_remove(at);
            }
        }
        self.free.push(id);
        self.len -= 1;
    }

    pub fn hash(&self, id: EntryId) -> Option<u64> {
        self.hashes.get(id as usize).copied().flatten()
    }

    /// Every entry within `radius` bits of `query`, as `(entry, distance)`, nearest first.
    pub fn within(&self, query: u64, radius: u32) -> Vec<(EntryId, u32)> {
        let mut found = Vec::new();
        self.for_each_within(query, radius, |id, distance| found.push((id, distance)));
        found.sort_unstable_by_key(|&(id, distance)| (distance, id));
        found
    }

    /// Calls `visit(entry, distance)` once for every entry within `radius` bits of `query`.
    pub fn for_each_within(&self, query: u64, radius: u32, mut visit: impl FnMut(EntryId, u32)) {
        let radius = radius.min(64);
        let per_chunk = radius / CHUNKS as u32;
        let mut probes = Vec::new();
        for (c, table) in self.tables.iter().enumerate() {
            let want = chunk(query, c) as u16;
            probes.clear();
            neighbours(want, per_chunk.min(CHUNK_BITS), &mut probes);
            for &probe in &probes {
                let bucket = &table[probe as usize];
                for (&hash, &id) in bucket.hashes.iter().zip(&bucket.ids) {
                    let distance = (hash ^ query).count_ones();
                    if distance > radius {
                        continue;
                    }
                    // Reported by the first table whose chunk is within reach.
                    let first = (0..CHUNKS)
                        .find(|&k| {
                            ((chunk(hash, k) ^ chunk(query, k)) as u16).count_ones() <= per_chunk
                        })
                        .unwrap_or(c);
                    if first == c {
                        visit(id, distance);
                    }
                }
            }
        }
    }
}

/// Every 16-bit value within `radius` bits of `value`.
fn neighbours(value: u16, radius: u32, out: &mut Vec<u16>) {
    fn flip(value: u16, from: u32, left: u32, out: &mut Vec<u16>) {
        out.push(value);
        if left == 0 {
            return;
        }
        for bit in from..CHUNK_BITS {
            flip(value ^ (1 << bit), bit + 1, left - 1, out);
        }
    }
    flip(value, 0, radius, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_counts_are_binomial_sums() {
        let count = |r| {
            let mut out = Vec::new();
            neighbours(0xabcd, r, &mut out);
            let mut unique = out.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), out.len());
            out.len()
        };
        assert_eq!([count(0), count(1), count(2), count(3)], [1, 17, 137, 697]);
    }

    #[test]
    fn finds_exactly_what_a_linear_scan_finds() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut index = HammingIndex::new();
        let mut hashes = Vec::new();
        let base = rng.u64(..);
        for i in 0..3000 {
            // Half near `base`, so that small radii have answers.
            let hash = if i % 2 == 0 {
                let mut h = base;
                for _ in 0..rng.u32(0..20) {
                    h ^= 1 << rng.u32(0..64);
                }
                h
            } else {
                rng.u64(..)
            };
            hashes.push(hash);
            index.insert(hash);
        }
        for radius in [0, 3, 4, 7, 10, 13, 20] {
            let mut expected: Vec<(EntryId, u32)> = hashes
                .iter()
                .enumerate()
                .map(|(i, &h)| (i as EntryId, (h ^ base).count_ones()))
                .filter(|&(_, d)| d <= radius)
                .collect();
            expected.sort_unstable_by_key(|&(id, d)| (d, id));
            assert_eq!(index.within(base, radius), expected, "radius {radius}");
        }
    }

    #[test]
    fn removed_entries_are_not_found_and_their_numbers_reused() {
        let mut index = HammingIndex::new();
        let a = index.insert(0xffff);
        let b = index.insert(0xfffe);
        index.remove(a);
        index.remove(a);
        assert_eq!(index.len(), 1);
        assert_eq!(index.within(0xffff, 2), [(b, 1)]);
        assert_eq!(index.insert(7), a);
    }
}
