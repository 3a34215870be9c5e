//! Duplicate listings by text (handbook 3.1.2 (6), 重复信息), kind `duplicate.text`: a seller
//! posting again a listing whose key attributes (brand, model, specification, composition)
//! are the same as one of their live listings' and whose title and description are the same
//! or nearly so: robust to spacing, punctuation, full-width forms and small edits. Another
//! seller's identical text is not this violation.
//!
//! Two halves, because the check needs history. [`sketch::SketchBuilder`] runs with the other
//! checks in parallel and sums the listing up in a [`Sketch`]. A [`DuplicateState`] runs in
//! input order: it compares the sketch with the seller's live listings and remembers it.
//!
//! # State
//!
//! [`DuplicateIndex`] is the in-memory state: per seller, the live listings' sketches; per
//! listing, its seller (a delete may come without one). What it holds is a set of
//! [`LiveListing`]s, serialisable, so a worker that restarts can rebuild it by replaying the
//! live listings ([`DuplicateState::restore`]), from a compacted topic or a snapshot taken
//! with [`DuplicateState::live`]; the Kafka source is expected to do exactly that.
//!
//! # Eviction
//!
//! Memory is bounded twice: at most `per_seller_capacity` listings per seller (from
//! `rules/duplicates.toml`) and at most `capacity` listings in all. Beyond either bound the
//! least recently written listing (of that seller, or of all) is forgotten. Forgetting can
//! only miss a duplicate of an old listing, never invent one. A duplicate is not remembered as
//! a live original, so that every later copy points at the first listing; a delete forgets.

mod growth;
pub mod sketch;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use growth::{ChunkedQueue, ChunkedVec, ShardedMap};
use sketch::simhash_distance;
pub use sketch::{Shingles, Sketch, SketchBuilder};

/// One live listing as the duplicate state remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveListing {
    pub seller: String,
    pub listing: String,
    pub sketch: Sketch,
}

/// A [`LiveListing`] borrowed from the event it was read from, for
/// [`DuplicateState::upsert`]: most listings are compared and remembered without their ids
/// being copied more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveRef<'a> {
    pub seller: &'a str,
    pub listing: &'a str,
    pub sketch: Sketch,
}

impl LiveListing {
    pub fn as_ref(&self) -> LiveRef<'_> {
        LiveRef {
            seller: &self.seller,
            listing: &self.listing,
            sketch: self.sketch,
        }
    }
}

impl LiveRef<'_> {
    pub fn to_owned(self) -> LiveListing {
        LiveListing {
            seller: self.seller.to_owned(),
            listing: self.listing.to_owned(),
            sketch: self.sketch,
        }
    }
}

/// One change of the duplicate state, as a shared state log records it: a listing that is
/// now live (an original to compare later listings with), or one that is not any more
/// (deleted, or found to be a copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    Live(LiveListing),
    Gone(String),
}

/// The earlier listing a new one duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub original: String,
    /// Bits in which the two SimHashes differ (0 for the same text up to spacing).
    pub distance: u32,
    /// Title, description, attributes and category normalise to the same text.
    pub identical: bool,
}

/// The state of the duplicate check, behind an interface so that it can be rebuilt (or kept
/// elsewhere) without the check changing.
pub trait DuplicateState: Send + std::fmt::Debug {
    /// Compares an upserted listing with the seller's live listings; returns the one it
    /// duplicates, or else remembers it as live.
    fn upsert(
        &mut self,
        listing: LiveRef<'_>,
        max_distance: u32,
        per_seller: usize,
    ) -> Option<Duplicate>;

    /// Forgets a deleted listing.
    fn remove(&mut self, listing: &str);

    /// Remembers a listing known to be live, without judging it: for rebuilding after a
    /// restart, oldest first.
    fn restore(&mut self, listing: LiveListing, per_seller: usize);

    /// Every live listing, least recently written first: what a snapshot needs to hold.
    fn live(&self) -> Vec<LiveListing>;

    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One remembered listing, in a slot of [`DuplicateIndex::slots`].
#[derive(Debug, Clone)]
struct Slot {
    listing: CompactString,
    sketch: Sketch,
    /// When it was last written, for eviction; 0 for a free slot.
    stamp: u64,
    /// Index of its seller in [`DuplicateIndex::sellers`].
    seller: u32,
}

/// One seller's live listings, by slot, with their sketch keys and SimHashes apart: a listing
/// is compared only with those of its key, and scanning sixteen bytes a listing instead of a
/// slot's 64 touches a quarter of the memory, which is cold by the time the seller posts
/// again. A slot is read only for a listing within the distance.
#[derive(Debug, Default)]
struct SellerListings {
    seller: CompactString,
    /// (key, SimHash) of the listing in the same place of `slots`.
    sketches: Vec<(u64, u64)>,
    slots: Vec<u32>,
}

impl SellerListings {
    fn push(&mut self, sketch: &Sketch, slot: u32) {
        self.sketches.push((sketch.key, sketch.simhash));
        self.slots.push(slot);
    }

    fn remove(&mut self, slot: u32) {
        if let Some(index) = self.slots.iter().position(|&s| s == slot) {
            self.sketches.swap_remove(index);
            self.slots.swap_remove(index);
        }
    }
}

/// The in-memory [`DuplicateState`].
///
/// Listings live in slots of one vector, reused when freed, and everything else points at
/// them by a 4-byte index: the per-seller lists, the write order for eviction, the map from
/// listing id to slot. With a million listings every pointer followed is a cache miss, and
/// every id compared is one more; this way an upsert follows few and compares slot numbers.
/// All of it grows a chunk or a shard at a time ([`growth`]), never by one big copy.
#[derive(Debug)]
pub struct DuplicateIndex {
    capacity: usize,
    slots: ChunkedVec<Slot>,
    free_slots: Vec<u32>,
    // Ids come from the publishing pipeline, not from sellers, so a fast hash without
    // flooding resistance is safe here; this is the ordered, single-threaded stage. Ids are
    // kept inline (up to 24 bytes) so that comparing a key does not chase a pointer.
    slot_of: ShardedMap<u32>,
    seller_of: ShardedMap<u32>,
    sellers: ChunkedVec<SellerListings>,
    free_sellers: Vec<u32>,
    /// Writes in order, for eviction: (stamp, slot); a slot written over since, or freed, no
    /// longer has the stamp and is skipped.
    order: ChunkedQueue<(u64, u32)>,
    clock: u64,
}

impl DuplicateIndex {
    pub fn new(capacity: usize) -> DuplicateIndex {
        DuplicateIndex {
            capacity: capacity.max(1),
            slots: ChunkedVec::default(),
            free_slots: Vec::new(),
            slot_of: ShardedMap::default(),
            seller_of: ShardedMap::default(),
            sellers: ChunkedVec::default(),
            free_sellers: Vec::new(),
            order: ChunkedQueue::default(),
            clock: 0,
        }
    }

    fn insert(&mut self, live: LiveRef<'_>, per_seller: usize) {
        self.remove(live.listing);
        self.clock += 1;
        let seller = match self.seller_of.get(live.seller) {
            Some(seller) => seller,
            None => self.new_seller(live.seller),
        };
        if self.sellers[seller as usize].slots.len() >= per_seller.max(1) {
            // The seller's least recently written listing goes.
            let slots = &self.slots;
            if let Some(&oldest) = self.sellers[seller as usize]
                .slots
                .iter()
                .min_by_key(|&&slot| slots[slot as usize].stamp)
            {
                // The seller stays, with the listing about to be added.
                self.free(oldest, false);
            }
        }
        let slot = Slot {
            listing: CompactString::from(live.listing),
            sketch: live.sketch,
            stamp: self.clock,
            seller,
        };
        let index = self.slots.put(slot, &mut self.free_slots);
        self.sellers[seller as usize].push(&live.sketch, index);
        self.slot_of.insert(live.listing, index);
        self.order.push_back((self.clock, index));
        self.evict();
    }

    fn new_seller(&mut self, id: &str) -> u32 {
        let listings = SellerListings {
            seller: CompactString::from(id),
            ..SellerListings::default()
        };
        let seller = self.sellers.put(listings, &mut self.free_sellers);
        self.seller_of.insert(id, seller);
        seller
    }

    /// Forgets the listing in `slot`, which is live, and its seller with it when it was the
    /// seller's last and `seller_too`.
    fn free(&mut self, slot: u32, seller_too: bool) {
        let entry = &mut self.slots[slot as usize];
        entry.stamp = 0;
        let listing = std::mem::take(&mut entry.listing);
        let seller = entry.seller;
        self.slot_of.remove(&listing);
        let listings = &mut self.sellers[seller as usize];
        listings.remove(slot);
        if seller_too && listings.slots.is_empty() {
            let id = std::mem::take(&mut listings.seller);
            *listings = SellerListings::default();
            self.seller_of.remove(&id);
            self.free_sellers.push(seller);
        }
        self.free_slots.push(slot);
    }

    fn evict(&mut self) {
        while self.slot_of.len() > self.capacity || self.order.len() > 2 * self.capacity {
            let Some((stamp, slot)) = self.order.pop_front() else {
                break;
            };
            if self.slots[slot as usize].stamp == stamp {
                self.free(slot, true);
            }
        }
    }
}

impl DuplicateState for DuplicateIndex {
    fn upsert(
        &mut self,
        live: LiveRef<'_>,
        max_distance: u32,
        per_seller: usize,
    ) -> Option<Duplicate> {
        let found = self.seller_of.get(live.seller).and_then(|seller| {
            let listings = &self.sellers[seller as usize];
            // Cheapest test first: the slot is read, and the id compared, only for a listing
            // close enough.
            listings
                .sketches
                .iter()
                .zip(&listings.slots)
                .filter(|&(&(key, _), _)| key == live.sketch.key)
                .map(|(&(_, simhash), &slot)| {
                    (slot, simhash_distance(simhash, live.sketch.simhash))
                })
                .filter(|&(_, distance)| distance <= max_distance)
                .map(|(slot, distance)| (&self.slots[slot as usize], distance))
                .filter(|&(e, _)| &*e.listing != live.listing)
                // The closest; of equals, the oldest.
                .min_by_key(|&(e, distance)| (distance, e.stamp))
                .map(|(e, distance)| Duplicate {
                    original: e.listing.to_string(),
                    distance,
                    identical: e.sketch.exact == live.sketch.exact,
                })
        });
        match found {
            Some(duplicate) => {
                // A copy is not an original: forget what this listing held before.
                self.remove(live.listing);
                Some(duplicate)
            }
            None => {
                self.insert(live, per_seller);
                None
            }
        }
    }

    fn remove(&mut self, listing: &str) {
        if let Some(slot) = self.slot_of.get(listing) {
            self.free(slot, true);
        }
    }

    fn restore(&mut self, live: LiveListing, per_seller: usize) {
        self.insert(live.as_ref(), per_seller);
    }

    fn live(&self) -> Vec<LiveListing> {
        let mut all: Vec<&Slot> = self.slots.iter().filter(|s| s.stamp != 0).collect();
        all.sort_by_key(|slot| slot.stamp);
        all.into_iter()
            .map(|slot| LiveListing {
                seller: self.sellers[slot.seller as usize].seller.to_string(),
                listing: slot.listing.to_string(),
                sketch: slot.sketch,
            })
            .collect()
    }

    fn len(&self) -> usize {
        self.slot_of.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::VecDeque;

    fn live(seller: &str, listing: &str, key: u64, simhash: u64) -> LiveListing {
        LiveListing {
            seller: seller.to_owned(),
            listing: listing.to_owned(),
            sketch: Sketch {
                key,
                simhash,
                exact: simhash,
            },
        }
    }

    fn original(found: Option<Duplicate>) -> Option<String> {
        found.map(|d| d.original)
    }

    #[test]
    fn a_near_copy_of_the_same_seller_points_at_the_first() {
        let mut index = DuplicateIndex::new(10);
        assert_eq!(
            original(index.upsert(live("S1", "P1", 1, 0b1111).as_ref(), 2, 10)),
            None
        );
        let copy = index
            .upsert(live("S1", "P2", 1, 0b1100).as_ref(), 2, 10)
            .unwrap();
        assert_eq!(
            copy,
            Duplicate {
                original: "P1".to_owned(),
                distance: 2,
                identical: false
            }
        );
        assert_eq!(
            original(index.upsert(live("S1", "P3", 1, 0b1111).as_ref(), 2, 10)),
            Some("P1".to_owned())
        );
        // Too far apart, another key, another seller, or the original itself: no duplicate.
        assert_eq!(
            original(index.upsert(live("S1", "P4", 1, 0b0000).as_ref(), 2, 10)),
            None
        );
        assert_eq!(
            original(index.upsert(live("S1", "P5", 2, 0b1111).as_ref(), 2, 10)),
            None
        );
        assert_eq!(
            original(index.upsert(live("S2", "P6", 1, 0b1111).as_ref(), 2, 10)),
            None
        );
        assert_eq!(
            original(index.upsert(live("S1", "P1", 1, 0b1111).as_ref(), 2, 10)),
            None
        );
    }

    #[test]
    fn deleting_or_changing_the_original_frees_its_content() {
        let mut index = DuplicateIndex::new(10);
        index.upsert(live("S1", "P1", 1, 7).as_ref(), 0, 10);
        index.remove("P1");
        assert_eq!(
            original(index.upsert(live("S1", "P2", 1, 7).as_ref(), 0, 10)),
            None
        );
        index.upsert(live("S1", "P2", 1, 8).as_ref(), 0, 10);
        assert_eq!(
            original(index.upsert(live("S1", "P3", 1, 7).as_ref(), 0, 10)),
            None
        );
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn memory_stays_within_both_bounds() {
        let mut index = DuplicateIndex::new(5);
        for n in 0..100u64 {
            index.upsert(
                live(&format!("S{}", n % 3), &format!("P{n}"), n, n).as_ref(),
                0,
                2,
            );
        }
        assert!(index.len() <= 5, "{}", index.len());
        // The most recent listing is remembered; the oldest are gone.
        assert_eq!(
            original(index.upsert(live("S0", "Q", 99, 99).as_ref(), 0, 2)),
            Some("P99".to_owned())
        );
        assert_eq!(
            original(index.upsert(live("S0", "Q", 0, 0).as_ref(), 0, 2)),
            None
        );

        let mut per_seller = DuplicateIndex::new(100);
        for n in 0..10u64 {
            per_seller.upsert(live("S1", &format!("P{n}"), n, n).as_ref(), 0, 3);
        }
        assert_eq!(per_seller.len(), 3);
        assert_eq!(
            per_seller
                .live()
                .iter()
                .map(|l| l.listing.as_str())
                .collect::<Vec<_>>(),
            ["P7", "P8", "P9"]
        );
    }

    /// The duplicate state as the module documentation says it, kept as plainly as
    /// possible: every live listing in one list, the write order in a queue.
    #[derive(Default)]
    struct Model {
        live: Vec<(String, String, Sketch, u64)>,
        order: VecDeque<(u64, String)>,
        clock: u64,
    }

    impl Model {
        fn remove(&mut self, listing: &str) {
            self.live.retain(|(_, l, _, _)| l != listing);
        }

        fn upsert(
            &mut self,
            live: LiveRef<'_>,
            max: u32,
            per_seller: usize,
            capacity: usize,
        ) -> Option<Duplicate> {
            let found = self
                .live
                .iter()
                .filter(|(s, l, k, _)| {
                    s == live.seller && k.key == live.sketch.key && l != live.listing
                })
                .map(|(_, l, k, stamp)| (l, k, k.distance(&live.sketch), *stamp))
                .filter(|&(_, _, d, _)| d <= max)
                .min_by_key(|&(_, _, d, stamp)| (d, stamp))
                .map(|(l, k, distance, _)| Duplicate {
                    original: l.clone(),
                    distance,
                    identical: k.exact == live.sketch.exact,
                });
            if found.is_some() {
                self.remove(live.listing);
                return found;
            }
            self.remove(live.listing);
            self.clock += 1;
            let of_seller: Vec<usize> = (0..self.live.len())
                .filter(|&i| self.live[i].0 == live.seller)
                .collect();
            if of_seller.len() >= per_seller.max(1) {
                if let Some(&oldest) = of_seller.iter().min_by_key(|&&i| self.live[i].3) {
                    self.live.remove(oldest);
                }
            }
            self.live.push((
                live.seller.to_owned(),
                live.listing.to_owned(),
                live.sketch,
                self.clock,
            ));
            self.order.push_back((self.clock, live.listing.to_owned()));
            while self.live.len() > capacity || self.order.len() > 2 * capacity {
                let Some((stamp, listing)) = self.order.pop_front() else {
                    break;
                };
                if self
                    .live
                    .iter()
                    .any(|(_, l, _, s)| *l == listing && *s == stamp)
                {
                    self.remove(&listing);
                }
            }
            None
        }
    }

    proptest::proptest! {
        /// Slots, free lists and indices change nothing the state says: the same duplicates,
        /// the same live listings in the same order, as the plain model, whatever the upserts
        /// and deletes and however tight the bounds.
        #[test]
        fn the_index_behaves_as_the_plain_model(
            ops in proptest::collection::vec((0u8..4, 0u8..3, 0u8..12, 0u64..3, 0u64..8), 1..200),
            capacity in 1usize..8,
            per_seller in 1usize..4,
        ) {
            let mut index = DuplicateIndex::new(capacity);
            let mut model = Model::default();
            for (op, seller, listing, key, simhash) in ops {
                let (seller, listing) = (format!("S{seller}"), format!("P{listing}"));
                if op == 0 {
                    index.remove(&listing);
                    model.remove(&listing);
                    continue;
                }
                let sketch = Sketch { key, simhash, exact: simhash };
                let live = LiveRef { seller: &seller, listing: &listing, sketch };
                proptest::prop_assert_eq!(
                    index.upsert(live, 1, per_seller),
                    model.upsert(live, 1, per_seller, capacity.max(1))
                );
                let mut expected: Vec<_> = model.live.iter().collect();
                expected.sort_by_key(|(_, _, _, stamp)| *stamp);
                let expected: Vec<LiveListing> = expected
                    .into_iter()
                    .map(|(s, l, k, _)| LiveListing { seller: s.clone(), listing: l.clone(), sketch: *k })
                    .collect();
                proptest::prop_assert_eq!(index.live(), expected);
                proptest::prop_assert_eq!(index.len(), model.live.len());
            }
        }
    }

    #[test]
    fn the_state_rebuilds_from_its_live_listings() {
        let mut index = DuplicateIndex::new(10);
        index.upsert(live("S1", "P1", 1, 7).as_ref(), 0, 10);
        index.upsert(live("S1", "P2", 2, 9).as_ref(), 0, 10);
        let snapshot = serde_json::to_string(&index.live()).unwrap();

        let mut rebuilt = DuplicateIndex::new(10);
        let listings: Vec<LiveListing> = serde_json::from_str(&snapshot).unwrap();
        for listing in listings {
            rebuilt.restore(listing, 10);
        }
        assert_eq!(rebuilt.live(), index.live());
        assert_eq!(
            original(rebuilt.upsert(live("S1", "P3", 2, 9).as_ref(), 0, 10)),
            Some("P2".to_owned())
        );
    }
}
