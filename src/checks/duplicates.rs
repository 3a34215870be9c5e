//! Duplicate listings by text (handbook 3.1.2 (6)): a seller posting again a listing whose
//! title, category, attributes and description are the same as one of their live listings.
//!
//! Two halves, because the check needs history. [`ContentHasher`] runs with the other checks
//! in parallel: it hashes the listing's normalised content (so that spacing, punctuation and
//! full-width forms do not make two copies different). [`DuplicateIndex`] runs in input order
//! and remembers, per seller and fingerprint, which listing holds it. Price, stock and images
//! are left out of the fingerprint: the same goods at another price are still the same listing.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use crate::contract::{FieldName, ListingEvent};
use crate::normalize::{Normalized, Normalizer};

/// The hash of a seller and a listing's normalised content.
pub type Fingerprint = u64;

/// Hashes a listing's content field by field, from the normalised text the other checks
/// already made, so that the check costs no normalising of its own.
pub struct ContentHasher(DefaultHasher);

impl ContentHasher {
    /// Starts with the seller and the category path, which are part of the content too.
    pub fn new(event: &ListingEvent, normalized: &mut Normalized) -> ContentHasher {
        let mut hasher = DefaultHasher::new();
        event.seller.id.hash(&mut hasher);
        for level in &event.listing.category {
            Normalizer.normalize_into(level, normalized);
            normalized.text().hash(&mut hasher);
        }
        ContentHasher(hasher)
    }

    pub fn add(&mut self, field: FieldName<'_>, normalized: &Normalized) {
        match field {
            FieldName::Title => 0u8.hash(&mut self.0),
            FieldName::Description => 1u8.hash(&mut self.0),
            FieldName::Attribute(name) => name.hash(&mut self.0),
        }
        normalized.text().hash(&mut self.0);
    }

    pub fn finish(self) -> Fingerprint {
        self.0.finish()
    }
}

/// Which live listing holds each fingerprint, in bounded memory: beyond `capacity` listings
/// the oldest are forgotten, which can only miss a duplicate, never invent one.
#[derive(Debug)]
pub struct DuplicateIndex {
    capacity: usize,
    holder: HashMap<Fingerprint, String>,
    by_listing: HashMap<String, Fingerprint>,
    /// Listings in the order they were last written, for eviction.
    order: VecDeque<(String, Fingerprint)>,
}

impl DuplicateIndex {
    pub fn new(capacity: usize) -> DuplicateIndex {
        DuplicateIndex {
            capacity: capacity.max(1),
            holder: HashMap::new(),
            by_listing: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records an upsert of `listing` with `fingerprint`; returns the other listing that
    /// already holds the same content, if any. A duplicate is not recorded as the holder, so
    /// that every later copy points at the original.
    pub fn upsert(&mut self, listing: &str, fingerprint: Fingerprint) -> Option<String> {
        if let Some(holder) = self.holder.get(&fingerprint) {
            if holder != listing {
                let original = holder.clone();
                self.remove(listing);
                return Some(original);
            }
            return None;
        }
        self.remove(listing);
        self.holder.insert(fingerprint, listing.to_owned());
        self.by_listing.insert(listing.to_owned(), fingerprint);
        self.order.push_back((listing.to_owned(), fingerprint));
        self.evict();
        None
    }

    /// Forgets a deleted (or changed) listing.
    pub fn remove(&mut self, listing: &str) {
        if let Some(fingerprint) = self.by_listing.remove(listing) {
            if self.holder.get(&fingerprint).is_some_and(|h| h == listing) {
                self.holder.remove(&fingerprint);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_listing.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_listing.is_empty()
    }

    fn evict(&mut self) {
        while self.by_listing.len() > self.capacity || self.order.len() > 2 * self.capacity {
            let Some((listing, fingerprint)) = self.order.pop_front() else {
                break;
            };
            // Entries of listings changed or removed since are stale; skip them.
            if self.by_listing.get(&listing) == Some(&fingerprint) {
                self.remove(&listing);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_listing_with_the_same_content_points_at_the_first() {
        let mut index = DuplicateIndex::new(10);
        assert_eq!(index.upsert("P1", 7), None);
        assert_eq!(index.upsert("P2", 7), Some("P1".to_owned()));
        assert_eq!(index.upsert("P3", 7), Some("P1".to_owned()));
        // Updating the original itself is not a duplicate.
        assert_eq!(index.upsert("P1", 7), None);
    }

    #[test]
    fn deleting_or_changing_the_original_frees_its_content() {
        let mut index = DuplicateIndex::new(10);
        index.upsert("P1", 7);
        index.remove("P1");
        assert_eq!(index.upsert("P2", 7), None);
        index.upsert("P2", 8);
        assert_eq!(index.upsert("P3", 7), None);
    }

    #[test]
    fn memory_stays_within_capacity() {
        let mut index = DuplicateIndex::new(3);
        for n in 0..100u64 {
            index.upsert(&format!("P{n}"), n);
        }
        assert_eq!(index.len(), 3);
        assert_eq!(index.upsert("Q", 99), Some("P99".to_owned()));
        assert_eq!(index.upsert("Q", 5), None);
    }
}
