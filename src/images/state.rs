//! What the image index holds: the images of live listings and the protected originals of
//! infringement complaints, each in a [`HammingIndex`].
//!
//! The ordered image check ([`crate::checks::images`]) reads and writes it in input order;
//! the complaint API reads it and registers originals. Every change is a [`LogRecord`], so
//! the state is exactly what replaying the image index log ([`super::log`]) gives.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::hash::ImageHash;
use super::index::{EntryId, HammingIndex};

/// The `schema` of every image index log record.
pub const LOG_SCHEMA: &str = "image-index/v2";

/// One record of the image index log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum LogRecord {
    /// A listing's images as they now are; replaces what was indexed for the listing.
    Listing {
        listing: String,
        seller: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u64>,
        images: Vec<IndexedImage>,
        at: String,
    },
    /// The listing was deleted: its images leave the index.
    Delete { listing: String, at: String },
    /// A protected original of a complaint, indexed as it is and mirrored.
    Original {
        complaint: String,
        rights_holder: String,
        /// The original's name: its URL, or the name the complaint gave an upload.
        original: String,
        hash: ImageHash,
        mirrored: ImageHash,
        /// The hashes of inset crops of the original and their mirror images.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        crops: Vec<ImageHash>,
        matchable: bool,
        at: String,
    },
}

/// A hashed listing image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexedImage {
    pub url: String,
    pub hash: ImageHash,
    /// The hash of its mirror image (absent from records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrored: Option<ImageHash>,
    /// The hashes of its centred inset crops ([`crate::images::ORIGINAL_INSETS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crops: Vec<ImageHash>,
    /// False for blank and low-detail images: kept for the record, never matched.
    pub matchable: bool,
}

impl IndexedImage {
    /// How near two listing images come as the duplicate check sees them: the least distance
    /// between either picture (or its mirror image) and the other picture or one of its
    /// inset crops. So a copy mirrored, or cropped by up to a little past the largest inset,
    /// comes as near as a re-encoded one, whichever of the two was listed first.
    pub fn duplicate_distance(&self, other: &IndexedImage) -> u32 {
        let one_way = |a: &IndexedImage, b: &IndexedImage| {
            std::iter::once(a.hash)
                .chain(a.mirrored)
                .flat_map(|q| {
                    std::iter::once(b.hash)
                        .chain(b.crops.iter().copied())
                        .map(move |h| q.distance(h))
                })
                .min()
                .unwrap_or(64)
        };
        one_way(self, other).min(one_way(other, self))
    }
}

/// A listing image near a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListingMatch {
    pub listing: String,
    pub seller: String,
    pub url: String,
    pub hash: ImageHash,
    pub distance: u32,
    /// When the listing was first indexed.
    pub first_seen: String,
}

/// A protected original near a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OriginalMatch {
    pub complaint: String,
    pub rights_holder: String,
    pub original: String,
    pub distance: u32,
    /// Matched through the original's mirror image.
    pub mirrored: bool,
}

/// A live listing's indexed images.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveListing {
    pub seller: String,
    pub version: Option<u64>,
    pub first_seen: String,
    pub images: Vec<IndexedImage>,
    entries: Vec<EntryId>,
}

/// A registered protected original.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Original {
    pub complaint: String,
    pub original: String,
    pub hash: ImageHash,
    pub mirrored: ImageHash,
    /// Inset crops' hashes, plain then mirrored for each inset.
    #[serde(skip)]
    pub crops: Vec<ImageHash>,
    pub matchable: bool,
    pub at: String,
}

impl Original {
    /// Every hash the original is indexed under, each with whether it is a mirror image.
    pub fn bank(&self) -> Vec<(ImageHash, bool)> {
        let mut bank = vec![(self.hash, false), (self.mirrored, true)];
        bank.extend(self.crops.iter().enumerate().map(|(i, &h)| (h, i % 2 == 1)));
        bank
    }
}

/// A complaint and its originals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Complaint {
    pub id: String,
    pub rights_holder: String,
    pub registered_at: String,
    pub originals: Vec<Original>,
}

/// Both indexes and what their entries stand for.
#[derive(Debug, Default)]
pub struct ImageState {
    listing_index: HammingIndex,
    /// Entry → (listing id, image number).
    listing_entries: HashMap<EntryId, (String, usize)>,
    listings: HashMap<String, LiveListing>,
    /// Seller → their live listings with indexed images, for the duplicate check.
    seller_listings: HashMap<String, BTreeSet<String>>,
    original_index: HammingIndex,
    /// Entry → (complaint id, original number, through the mirror image).
    original_entries: HashMap<EntryId, (String, usize, bool)>,
    complaints: BTreeMap<String, Complaint>,
}

impl ImageState {
    pub fn new() -> ImageState {
        ImageState::default()
    }

    /// Applies one log record.
    pub fn apply(&mut self, record: &LogRecord) {
        match record {
            LogRecord::Listing {
                listing,
                seller,
                version,
                images,
                at,
            } => self.upsert_listing(listing, seller, *version, images.clone(), at),
            LogRecord::Delete { listing, .. } => self.remove_listing(listing),
            LogRecord::Original {
                complaint,
                rights_holder,
                original,
                hash,
                mirrored,
                crops,
                matchable,
                at,
            } => self.add_original(
                complaint,
                rights_holder,
                Original {
                    complaint: complaint.clone(),
                    original: original.clone(),
                    hash: *hash,
                    mirrored: *mirrored,
                    crops: crops.clone(),
                    matchable: *matchable,
                    at: at.clone(),
                },
            ),
        }
    }

    /// Whether `images` are what is indexed for `listing` already (so nothing need be logged).
    pub fn has_images(&self, listing: &str, seller: &str, images: &[IndexedImage]) -> bool {
        self.listings
            .get(listing)
            .is_some_and(|l| l.seller == seller && l.images == images)
    }

    /// Indexes a listing's images, replacing what was indexed for it.
    pub fn upsert_listing(
        &mut self,
        listing: &str,
        seller: &str,
        version: Option<u64>,
        images: Vec<IndexedImage>,
        at: &str,
    ) {
        let first_seen = self
            .listings
            .get(listing)
            .map_or_else(|| at.to_owned(), |l| l.first_seen.clone());
        self.remove_listing(listing);
        if images.is_empty() {
            return;
        }
        let mut entries = Vec::new();
        for (number, image) in images.iter().enumerate() {
            if image.matchable {
                let entry = self.listing_index.insert(image.hash.0);
                self.listing_entries
                    .insert(entry, (listing.to_owned(), number));
                entries.push(entry);
            }
        }
        self.seller_listings
            .entry(seller.to_owned())
            .or_default()
            .insert(listing.to_owned());
        self.listings.insert(
            listing.to_owned(),
            LiveListing {
                seller: seller.to_owned(),
                version,
                first_seen,
                images,
                entries,
            },
        );
    }

    /// Takes a listing's images out of the index.
    pub fn remove_listing(&mut self, listing: &str) {
        if let Some(live) = self.listings.remove(listing) {
            if let Some(listings) = self.seller_listings.get_mut(&live.seller) {
                listings.remove(listing);
                if listings.is_empty() {
                    self.seller_listings.remove(&live.seller);
                }
            }
            for entry in live.entries {
                self.listing_index.remove(entry);
                self.listing_entries.remove(&entry);
            }
        }
    }

    /// Registers a protected original (and its mirror image) under its complaint. The same
    /// original again (same name and hash) changes nothing: a topic replayed before its
    /// compaction can hold a record twice.
    pub fn add_original(&mut self, complaint: &str, rights_holder: &str, original: Original) {
        let entry = self
            .complaints
            .entry(complaint.to_owned())
            .or_insert_with(|| Complaint {
                id: complaint.to_owned(),
                rights_holder: rights_holder.to_owned(),
                registered_at: original.at.clone(),
                originals: Vec::new(),
            });
        if entry
            .originals
            .iter()
            .any(|o| o.original == original.original && o.hash == original.hash)
        {
            return;
        }
        let number = entry.originals.len();
        if original.matchable {
            for (hash, mirrored) in original.bank() {
                let id = self.original_index.insert(hash.0);
                self.original_entries
                    .insert(id, (complaint.to_owned(), number, mirrored));
            }
        }
        entry.originals.push(original);
    }

    pub fn listing(&self, listing: &str) -> Option<&LiveListing> {
        self.listings.get(listing)
    }

    pub fn complaint(&self, complaint: &str) -> Option<&Complaint> {
        self.complaints.get(complaint)
    }

    /// Listing images indexed.
    pub fn listing_images(&self) -> usize {
        self.listing_index.len()
    }

    /// Original hashes indexed (each original as it is, mirrored, and at inset crops).
    pub fn original_hashes(&self) -> usize {
        self.original_index.len()
    }

    /// Live listing images within `radius` of `hash`, nearest first.
    pub fn listings_near(&self, hash: ImageHash, radius: u32) -> Vec<ListingMatch> {
        self.listing_index
            .within(hash.0, radius)
            .into_iter()
            .filter_map(|(entry, distance)| {
                let (listing, number) = self.listing_entries.get(&entry)?;
                let live = self.listings.get(listing)?;
                let image = live.images.get(*number)?;
                Some(ListingMatch {
                    listing: listing.clone(),
                    seller: live.seller.clone(),
                    url: image.url.clone(),
                    hash: image.hash,
                    distance,
                    first_seen: live.first_seen.clone(),
                })
            })
            .collect()
    }

    /// The images of `seller`'s other live listings within `radius` of `image` by
    /// [`IndexedImage::duplicate_distance`], nearest first (then by listing id). A seller's
    /// listings are compared one by one: sellers list thousands of products, not millions,
    /// and mirror images and crops compared both ways are no single index query.
    pub fn seller_duplicates(
        &self,
        seller: &str,
        listing: &str,
        image: &IndexedImage,
        radius: u32,
    ) -> Vec<ListingMatch> {
        let Some(listings) = self.seller_listings.get(seller) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for id in listings.iter().filter(|id| id.as_str() != listing) {
            let Some(live) = self.listings.get(id) else {
                continue;
            };
            for other in live.images.iter().filter(|i| i.matchable) {
                let distance = image.duplicate_distance(other);
                if distance <= radius {
                    found.push(ListingMatch {
                        listing: id.clone(),
                        seller: live.seller.clone(),
                        url: other.url.clone(),
                        hash: other.hash,
                        distance,
                        first_seen: live.first_seen.clone(),
                    });
                }
            }
        }
        // Stable: equal distances keep the listings' id order.
        found.sort_by_key(|m| m.distance);
        found
    }

    /// Protected originals within `radius` of `hash`, nearest first, one per original.
    pub fn originals_near(&self, hash: ImageHash, radius: u32) -> Vec<OriginalMatch> {
        let mut found: Vec<OriginalMatch> = Vec::new();
        for (entry, distance) in self.original_index.within(hash.0, radius) {
            let Some((complaint, number, mirrored)) = self.original_entries.get(&entry) else {
                continue;
            };
            let Some(registered) = self.complaints.get(complaint) else {
                continue;
            };
            let Some(original) = registered.originals.get(*number) else {
                continue;
            };
            // Nearest first, so the first hit of an original (plain or mirrored) is its best.
            if found
                .iter()
                .any(|m| m.complaint == *complaint && m.original == original.original)
            {
                continue;
            }
            found.push(OriginalMatch {
                complaint: complaint.clone(),
                rights_holder: registered.rights_holder.clone(),
                original: original.original.clone(),
                distance,
                mirrored: *mirrored,
            });
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(url: &str, hash: u64) -> IndexedImage {
        IndexedImage {
            url: url.to_owned(),
            hash: ImageHash(hash),
            matchable: true,
            ..IndexedImage::default()
        }
    }

    #[test]
    fn a_duplicate_is_found_through_a_mirror_image_or_a_crop_either_way() {
        let picture = IndexedImage {
            url: "a".into(),
            hash: ImageHash(0xffff_0000_0000_0000),
            mirrored: Some(ImageHash(0x0000_ffff_0000_0000)),
            crops: vec![
                ImageHash(0x0000_0000_ffff_0000),
                ImageHash(0x0000_0000_0000_ffff),
            ],
            matchable: true,
        };
        // The mirror image of the picture, listed later: its hash is the picture's mirrored one.
        let mirror = IndexedImage {
            hash: ImageHash(0x0000_ffff_0000_0001),
            ..image("b", 0)
        };
        assert_eq!(mirror.duplicate_distance(&picture), 1);
        assert_eq!(picture.duplicate_distance(&mirror), 1);
        // A crop of the picture, as near to its second inset crop, either way round.
        let crop = image("c", 0x0000_0000_0000_fff0);
        assert_eq!(crop.duplicate_distance(&picture), 4);
        assert_eq!(picture.duplicate_distance(&crop), 4);
        // Crops are not compared with crops: two pictures alike only there stay apart.
        let other = IndexedImage {
            crops: vec![ImageHash(0x0000_0000_ffff_0000)],
            ..image("d", 0xaaaa_aaaa_aaaa_aaaa)
        };
        assert_eq!(other.duplicate_distance(&picture), 32);

        let mut state = ImageState::new();
        state.upsert_listing("P1", "S1", None, vec![picture], "t1");
        state.upsert_listing(
            "P2",
            "S2",
            None,
            vec![image("e", 0xffff_0000_0000_0000)],
            "t2",
        );
        let found = state.seller_duplicates("S1", "P9", &crop, 10);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].listing.as_str(), found[0].distance), ("P1", 4));
        // Another seller's identical picture is no duplicate, nor is the listing itself.
        assert!(state.seller_duplicates("S1", "P1", &crop, 10).is_empty());
        state.remove_listing("P1");
        assert!(state.seller_duplicates("S1", "P9", &crop, 10).is_empty());
    }

    #[test]
    fn an_upsert_replaces_a_listings_images_and_a_delete_removes_them() {
        let mut state = ImageState::new();
        state.upsert_listing("P1", "S1", Some(1), vec![image("a", 0xff)], "t1");
        state.upsert_listing("P1", "S1", Some(2), vec![image("b", 0xff00)], "t2");
        assert_eq!(state.listing_images(), 1);
        let near = state.listings_near(ImageHash(0xff00), 0);
        assert_eq!(near.len(), 1);
        assert_eq!(
            (near[0].url.as_str(), near[0].first_seen.as_str()),
            ("b", "t1")
        );
        assert!(state.listings_near(ImageHash(0xff), 3).is_empty());

        state.apply(&LogRecord::Delete {
            listing: "P1".into(),
            at: "t3".into(),
        });
        assert_eq!(state.listing_images(), 0);
        assert!(state.listing("P1").is_none());
    }

    /// Complaint C1's one original, hashed 0x0f0f and 0xf0f0 mirrored.
    fn original() -> LogRecord {
        LogRecord::Original {
            complaint: "C1".into(),
            rights_holder: "R".into(),
            original: "o.jpg".into(),
            hash: ImageHash(0x0f0f),
            mirrored: ImageHash(0xf0f0),
            crops: Vec::new(),
            matchable: true,
            at: "t".into(),
        }
    }

    #[test]
    fn an_original_matches_as_it_is_and_mirrored_once() {
        let mut state = ImageState::new();
        state.apply(&original());
        assert_eq!(state.original_hashes(), 2);
        let plain = state.originals_near(ImageHash(0x0f0e), 2);
        assert_eq!(plain.len(), 1);
        assert_eq!((plain[0].distance, plain[0].mirrored), (1, false));
        let mirror = state.originals_near(ImageHash(0xf0f0), 2);
        assert_eq!((mirror[0].distance, mirror[0].mirrored), (0, true));
    }

    #[test]
    fn an_original_recorded_twice_is_registered_once() {
        let mut state = ImageState::new();
        let record = original();
        state.apply(&record);
        state.apply(&record);
        assert_eq!(state.original_hashes(), 2);
        assert_eq!(state.complaint("C1").unwrap().originals.len(), 1);
        assert_eq!(state.originals_near(ImageHash(0x0f0f), 0).len(), 1);
    }

    #[test]
    fn log_records_read_back_as_written() {
        let record = LogRecord::Listing {
            listing: "P1".into(),
            seller: "S1".into(),
            version: Some(3),
            images: vec![image("https://x/1.jpg", 0x00ff_0000_0000_00aa)],
            at: "2026-12-04T00:00:00.000Z".into(),
        };
        let line = serde_json::to_string(&record).unwrap();
        assert_eq!(
            line,
            r#"{"record":"listing","listing":"P1","seller":"S1","version":3,"images":[{"url":"https://x/1.jpg","hash":"00ff0000000000aa","matchable":true}],"at":"2026-12-04T00:00:00.000Z"}"#
        );
        assert_eq!(serde_json::from_str::<LogRecord>(&line).unwrap(), record);
    }
}
