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

pub mod sketch;

use std::collections::VecDeque;

use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone)]
struct Entry {
    listing: CompactString,
    sketch: Sketch,
    /// When it was last written, for eviction.
    stamp: u64,
}

/// One seller's live listings, with their sketch keys apart: a listing is compared only with
/// those of its key, and scanning eight bytes a listing instead of an entry's 56 touches a
/// seventh of the memory, which is cold by the time the seller posts again.
#[derive(Debug, Default)]
struct SellerListings {
    keys: Vec<u64>,
    entries: Vec<Entry>,
}

impl SellerListings {
    fn push(&mut self, entry: Entry) {
        self.keys.push(entry.sketch.key);
        self.entries.push(entry);
    }

    fn swap_remove(&mut self, index: usize) -> Entry {
        self.keys.swap_remove(index);
        self.entries.swap_remove(index)
    }

    /// The listings whose sketch has `key`.
    fn with_key(&self, key: u64) -> impl Iterator<Item = &Entry> {
        self.keys
            .iter()
            .zip(&self.entries)
            .filter(move |&(&k, _)| k == key)
            .map(|(_, entry)| entry)
    }

    fn remove(&mut self, listing: &str) {
        if let Some(index) = self.entries.iter().position(|e| e.listing == listing) {
            self.keys.remove(index);
            self.entries.remove(index);
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The in-memory [`DuplicateState`].
#[derive(Debug)]
pub struct DuplicateIndex {
    capacity: usize,
    // Ids come from the publishing pipeline, not from sellers, so a fast hash without
    // flooding resistance is safe here; this is the ordered, single-threaded stage. Ids are
    // kept inline (up to 24 bytes) so that comparing a key does not chase a pointer: with a
    // million listings every such pointer is a cache miss.
    by_seller: FxHashMap<CompactString, SellerListings>,
    seller_of: FxHashMap<CompactString, CompactString>,
    /// Writes in order, for eviction; entries written over since are skipped by their stamp.
    order: VecDeque<(u64, CompactString)>,
    clock: u64,
}

impl DuplicateIndex {
    pub fn new(capacity: usize) -> DuplicateIndex {
        DuplicateIndex {
            capacity: capacity.max(1),
            by_seller: FxHashMap::default(),
            seller_of: FxHashMap::default(),
            order: VecDeque::new(),
            clock: 0,
        }
    }

    fn insert(&mut self, live: LiveRef<'_>, per_seller: usize) {
        self.remove(live.listing);
        self.clock += 1;
        let listing = CompactString::from(live.listing);
        let seller = CompactString::from(live.seller);
        let listings = self.by_seller.entry(seller.clone()).or_default();
        if listings.len() >= per_seller.max(1) {
            // The seller's least recently written listing goes.
            if let Some(oldest) = listings
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.stamp)
                .map(|(i, _)| i)
            {
                let gone = listings.swap_remove(oldest);
                self.seller_of.remove(&gone.listing);
            }
        }
        listings.push(Entry {
            listing: listing.clone(),
            sketch: live.sketch,
            stamp: self.clock,
        });
        self.seller_of.insert(listing.clone(), seller);
        self.order.push_back((self.clock, listing));
        self.evict();
    }

    fn evict(&mut self) {
        while self.seller_of.len() > self.capacity || self.order.len() > 2 * self.capacity {
            let Some((stamp, listing)) = self.order.pop_front() else {
                break;
            };
            let current = self
                .seller_of
                .get(&listing)
                .and_then(|seller| self.by_seller.get(seller))
                .and_then(|listings| listings.entries.iter().find(|e| e.listing == listing))
                .map(|e| e.stamp);
            if current == Some(stamp) {
                self.remove(&listing);
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
        let found = self.by_seller.get(live.seller).and_then(|listings| {
            // Cheapest test first: the id is compared only for a listing close enough.
            listings
                .with_key(live.sketch.key)
                .map(|e| (e, e.sketch.distance(&live.sketch)))
                .filter(|&(e, distance)| distance <= max_distance && &*e.listing != live.listing)
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
        let Some(seller) = self.seller_of.remove(listing) else {
            return;
        };
        if let Some(listings) = self.by_seller.get_mut(&seller) {
            listings.remove(listing);
            if listings.is_empty() {
                self.by_seller.remove(&seller);
            }
        }
    }

    fn restore(&mut self, live: LiveListing, per_seller: usize) {
        self.insert(live.as_ref(), per_seller);
    }

    fn live(&self) -> Vec<LiveListing> {
        let mut all: Vec<(u64, LiveListing)> = self
            .by_seller
            .iter()
            .flat_map(|(seller, listings)| {
                listings.entries.iter().map(move |e| {
                    (
                        e.stamp,
                        LiveListing {
                            seller: seller.to_string(),
                            listing: e.listing.to_string(),
                            sketch: e.sketch,
                        },
                    )
                })
            })
            .collect();
        all.sort_by_key(|(stamp, _)| *stamp);
        all.into_iter().map(|(_, live)| live).collect()
    }

    fn len(&self) -> usize {
        self.seller_of.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
