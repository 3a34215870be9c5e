//! A Hamming-distance index over 64-bit image hashes: multi-index hashing.
//!
//! Behind the image check and the complaint API ([`super::state`] holds one index of listing
//! images and one of protected originals). Every hash is split into [`CHUNKS`] chunks of 16
//! bits, and each chunk position has a table from chunk value to the entries having it.
//!
//! **Layout.** A table is one array of hashes (and one of entry numbers) sorted by the
//! table's chunk, with the start of each chunk value's run: a query probes its chunk values
//! in ascending order, so it reads each array front to back, which at millions of entries
//! is what decides its time (buckets of their own, scattered over the heap, took twice as
//! long at 10M). Sorted arrays take no single insertion cheaply, so new entries wait in a
//! short pending list that every query scans whole, and are merged into the tables once the
//! list reaches a 64th of the index (or [`PENDING_MIN`]); a merge copies the tables once, so
//! an insertion costs a constant amortised. A removed entry is struck from the entry list at
//! once and skipped by queries; the tables forget it at the next merge after a 16th of them
//! are such, and only then is its number reused.
//!
//! **The guarantee.** Write the query radius as `r = CHUNKS · s + a` with `0 ≤ a < CHUNKS`.
//! A query probes the first `a + 1` tables at every chunk value within `s` bits of the
//! query's chunk, and the others within `s - 1` bits (not at all when `s` is 0). An entry at
//! distance `d ≤ r` is found: were its chunk `s + 1` or more bits off in each of the first
//! `a + 1` tables and `s` or more in each of the others, `d` would be at least
//! `(a + 1)(s + 1) + (CHUNKS - a - 1) s = r + 1`. So the search is exact, never approximate;
//! each candidate's full distance is then checked. Probing only one table at the wider
//! radius is what keeps a query cheap: within 12 bits, one table is probed at 697 chunk
//! values and three at 137 (1,108 in all, where every table at 697 would be 2,788). For
//! random hashes a probe finds `n / 65,536` candidates, so 10M hashes give about 170,000
//! candidates within 12 bits.
//!
//! A candidate found in several tables is reported once: by the first table whose chunk is
//! within that table's radius, which the candidate's own hash tells without a set of seen
//! entries.

/// Chunks a hash is split into.
pub const CHUNKS: usize = 4;
const CHUNK_BITS: u32 = 16;
const TABLE_SIZE: usize = 1 << CHUNK_BITS;

/// Pending entries below which they are never merged into the tables.
pub const PENDING_MIN: usize = 4096;

/// An entry's number in its index; a removed entry's number is reused once no table holds it.
pub type EntryId = u32;

/// The index. Entries are numbered by the index; what an entry stands for is the caller's.
#[derive(Debug, Default)]
pub struct HammingIndex {
    /// Hash of each entry, `None` once removed.
    hashes: Vec<Option<u64>>,
    /// Numbers free for reuse: held by no table.
    free: Vec<EntryId>,
    /// Removed entries the tables still hold.
    stale: Vec<EntryId>,
    tables: [Table; CHUNKS],
    /// Entries added since the last merge, in no table yet.
    pending_hashes: Vec<u64>,
    pending_ids: Vec<EntryId>,
    len: usize,
}

/// One chunk position's entries, sorted by that chunk.
#[derive(Debug, Default)]
struct Table {
    /// `starts[v]..starts[v + 1]`: where the entries whose chunk is `v` lie (empty before the
    /// first merge).
    starts: Vec<u32>,
    hashes: Vec<u64>,
    ids: Vec<EntryId>,
}

impl Table {
    fn run(&self, value: usize) -> std::ops::Range<usize> {
        match (self.starts.get(value), self.starts.get(value + 1)) {
            (Some(&a), Some(&b)) => a as usize..b as usize,
            _ => 0..0,
        }
    }
}

fn chunk(hash: u64, c: usize) -> usize {
    ((hash >> (c as u32 * CHUNK_BITS)) & 0xffff) as usize
}

impl HammingIndex {
    pub fn new() -> HammingIndex {
        HammingIndex::default()
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
        self.pending_hashes.push(hash);
        self.pending_ids.push(id);
        self.len += 1;
        if self.pending_ids.len() >= PENDING_MIN.max(self.tables[0].ids.len() / 64) {
            self.merge();
        }
        id
    }

    /// Removes an entry; removing one that is not there does nothing.
    pub fn remove(&mut self, id: EntryId) {
        let Some(_) = self.hashes.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        self.len -= 1;
        if let Some(at) = self.pending_ids.iter().rposition(|&e| e == id) {
            self.pending_ids.swap_remove(at);
            self.pending_hashes.swap_remove(at);
            self.free.push(id);
            return;
        }
        self.stale.push(id);
        if self.stale.len() >= PENDING_MIN.max(self.tables[0].ids.len() / 16) {
            self.merge();
        }
    }

    pub fn hash(&self, id: EntryId) -> Option<u64> {
        self.hashes.get(id as usize).copied().flatten()
    }

    /// Rewrites every table with the pending entries in and the removed ones out.
    fn merge(&mut self) {
        let hashes = &self.hashes;
        let live = |id: EntryId| hashes[id as usize].is_some();
        let purge = !self.stale.is_empty();
        for (c, table) in self.tables.iter_mut().enumerate() {
            let mut order: Vec<u32> = (0..self.pending_ids.len() as u32).collect();
            order.sort_unstable_by_key(|&i| chunk(self.pending_hashes[i as usize], c));
            let total = table.ids.len() + order.len();
            let mut starts = Vec::with_capacity(TABLE_SIZE + 1);
            let mut merged_hashes = Vec::with_capacity(total);
            let mut merged_ids = Vec::with_capacity(total);
            let mut next = order.iter().peekable();
            for value in 0..TABLE_SIZE {
                // At most 2^32 entries: `insert` numbers entries in 32 bits.
                starts.push(u32::try_from(merged_ids.len()).unwrap_or(u32::MAX));
                let run = table.run(value);
                if purge {
                    for (&hash, &id) in table.hashes[run.clone()].iter().zip(&table.ids[run]) {
                        if live(id) {
                            merged_hashes.push(hash);
                            merged_ids.push(id);
                        }
                    }
                } else {
                    merged_hashes.extend_from_slice(&table.hashes[run.clone()]);
                    merged_ids.extend_from_slice(&table.ids[run]);
                }
                while let Some(&&i) = next.peek() {
                    if chunk(self.pending_hashes[i as usize], c) != value {
                        break;
                    }
                    merged_hashes.push(self.pending_hashes[i as usize]);
                    merged_ids.push(self.pending_ids[i as usize]);
                    next.next();
                }
            }
            starts.push(u32::try_from(merged_ids.len()).unwrap_or(u32::MAX));
            *table = Table {
                starts,
                hashes: merged_hashes,
                ids: merged_ids,
            };
        }
        self.pending_hashes.clear();
        self.pending_ids.clear();
        self.free.append(&mut self.stale);
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
        let reach = table_radii(radius);
        let mut probes = Vec::new();
        let mut near = Vec::new();
        for (c, table) in self.tables.iter().enumerate() {
            let Some(own) = reach[c] else {
                continue;
            };
            if table.starts.is_empty() {
                continue;
            }
            probes.clear();
            neighbours(chunk(query, c) as u16, own, &mut probes);
            // Ascending chunk values read the table's arrays front to back.
            probes.sort_unstable();
            for &probe in &probes {
                let run = table.run(probe as usize);
                let start = run.start;
                near.clear();
                scan(&table.hashes[run], query, radius, &mut near);
                for &(at, distance) in &near {
                    let at = start + at as usize;
                    let (hash, id) = (table.hashes[at], table.ids[at]);
                    if self.hashes[id as usize].is_none() {
                        continue;
                    }
                    // Reported by the first table whose chunk is within that table's reach.
                    let first = (0..CHUNKS)
                        .find(|&k| {
                            reach[k].is_some_and(|r| {
                                ((chunk(hash, k) ^ chunk(query, k)) as u16).count_ones() <= r
                            })
                        })
                        .unwrap_or(c);
                    if first == c {
                        visit(id, distance);
                    }
                }
            }
        }
        near.clear();
        scan(&self.pending_hashes, query, radius, &mut near);
        for &(at, distance) in &near {
            visit(self.pending_ids[at as usize], distance);
        }
    }
}

/// How far each table is probed for a search within `radius` (`None`: not probed), as the
/// guarantee in the module documentation sets it.
fn table_radii(radius: u32) -> [Option<u32>; CHUNKS] {
    let chunks = CHUNKS as u32;
    let (s, a) = (radius / chunks, radius % chunks);
    let mut reach = [None; CHUNKS];
    for (c, r) in reach.iter_mut().enumerate() {
        *r = if (c as u32) <= a {
            Some(s.min(CHUNK_BITS))
        } else {
            s.checked_sub(1).map(|s| s.min(CHUNK_BITS))
        };
    }
    reach
}

/// Appends `(position, distance)` of each of `hashes` within `radius` bits of `query`.
///
/// This loop is where a query's time goes (about 170,000 hashes within 12 bits at 10M
/// entries). The baseline x86-64 target has no POPCNT instruction, and counting bits without
/// it took about four times as long, so the loop is compiled a second time with it and that
/// copy is used where the CPU has it.
fn scan(hashes: &[u64], query: u64, radius: u32, out: &mut Vec<(u32, u32)>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has just been found to execute POPCNT, the one feature the copy
        // is compiled with.
        unsafe { scan_popcnt(hashes, query, radius, out) };
        return;
    }
    scan_blocks(hashes, query, radius, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn scan_popcnt(hashes: &[u64], query: u64, radius: u32, out: &mut Vec<(u32, u32)>) {
    scan_blocks(hashes, query, radius, out);
}

/// Eight distances at a time, without a branch until all eight are known: hits are rare,
/// so the common case is one test per eight hashes.
#[inline(always)]
fn scan_blocks(hashes: &[u64], query: u64, radius: u32, out: &mut Vec<(u32, u32)>) {
    let mut blocks = hashes.chunks_exact(8);
    let mut at = 0u32;
    for block in blocks.by_ref() {
        let mut distances = [0u32; 8];
        for (d, &hash) in distances.iter_mut().zip(block) {
            *d = (hash ^ query).count_ones();
        }
        if distances.iter().any(|&d| d <= radius) {
            for (i, &d) in distances.iter().enumerate() {
                if d <= radius {
                    out.push((at + i as u32, d));
                }
            }
        }
        at += 8;
    }
    for (i, &hash) in blocks.remainder().iter().enumerate() {
        let d = (hash ^ query).count_ones();
        if d <= radius {
            out.push((at + i as u32, d));
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
    fn one_table_takes_the_wider_radius_the_rest_one_less() {
        assert_eq!(table_radii(0), [Some(0), None, None, None]);
        assert_eq!(table_radii(3), [Some(0); 4]);
        assert_eq!(table_radii(10), [Some(2), Some(2), Some(2), Some(1)]);
        assert_eq!(table_radii(12), [Some(3), Some(2), Some(2), Some(2)]);
    }

    #[test]
    fn finds_every_entry_at_every_distance_up_to_the_radius() {
        // For each radius, entries at exactly that distance with the differing bits placed
        // as unevenly as the guarantee allows: as many as possible in the tables probed
        // narrowest.
        let base = 0x0123_4567_89ab_cdefu64;
        for radius in 0..=20u32 {
            let reach = table_radii(radius);
            let mut index = HammingIndex::new();
            let mut flipped = base;
            let mut left = radius;
            // Fill each chunk to one bit past its reach, last chunks first, then the rest.
            for c in (0..CHUNKS).rev() {
                let over = reach[c].map_or(0, |r| r + 1).min(left);
                for bit in 0..over {
                    flipped ^= 1 << (c as u32 * CHUNK_BITS + bit);
                }
                left -= over;
            }
            assert_eq!(left, 0, "radius {radius} must leave one chunk within reach");
            let id = index.insert(flipped);
            assert_eq!(
                index.within(base, radius),
                [(id, radius)],
                "radius {radius}"
            );
        }
    }

    #[test]
    fn merged_and_pending_entries_are_found_once_and_removed_ones_never() {
        // Enough entries for several merges, removals among them, against a linear scan.
        let mut rng = fastrand::Rng::with_seed(11);
        let mut index = HammingIndex::new();
        let mut live: Vec<(EntryId, u64)> = Vec::new();
        let base = rng.u64(..);
        for i in 0..3 * PENDING_MIN {
            let mut hash = base;
            for _ in 0..rng.u32(0..16) {
                hash ^= 1 << rng.u32(0..64);
            }
            live.push((index.insert(hash), hash));
            if i % 3 == 0 {
                let (id, _) = live.swap_remove(rng.usize(..live.len()));
                index.remove(id);
            }
        }
        assert_eq!(index.len(), live.len());
        for radius in [0, 5, 9, 12] {
            let mut expected: Vec<(EntryId, u32)> = live
                .iter()
                .map(|&(id, h)| (id, (h ^ base).count_ones()))
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
