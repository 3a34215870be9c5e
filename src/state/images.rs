//! The image index log in the compacted topic `image-index` (Kafka mode).
//!
//! The records are those of the local log ([`crate::images::log`]), each value one line of
//! it. Keys make compaction keep what a replay needs and no more:
//!
//! - `listing/<listing id>`: a listing's images as they now are; a later record of the
//!   listing supersedes it, and a delete is a tombstone on this key, so compaction drops a
//!   deleted listing's images altogether.
//! - `original/<complaint id>/<hash>`: one protected original of a complaint, under its hash
//!   (16 hex digits) so that every distinct original of a complaint has a key of its own.
//!   Complaints are never withdrawn, so these keys see no tombstone.

use std::sync::Arc;

use super::{Replica, StateRecord};
use crate::checks::images::ImageCheck;
use crate::images::log::{decode, encode};
use crate::images::state::LogRecord;

const LISTING_PREFIX: &str = "listing/";
const ORIGINAL_PREFIX: &str = "original/";

/// A worker's image index, as a topic replicates it.
pub struct ImageIndex(pub Arc<ImageCheck>);

impl Replica for ImageIndex {
    fn apply(&self, key: &[u8], value: Option<&[u8]>) -> bool {
        match record_of(key, value) {
            Some(record) => {
                self.0.apply_replicated(&record);
                true
            }
            None => {
                tracing::debug!(
                    key = %String::from_utf8_lossy(key),
                    "image index record that is none of ours skipped"
                );
                false
            }
        }
    }
}

/// The key a record is compacted under.
pub fn key(record: &LogRecord) -> String {
    match record {
        LogRecord::Listing { listing, .. } | LogRecord::Delete { listing, .. } => {
            format!("{LISTING_PREFIX}{listing}")
        }
        LogRecord::Original {
            complaint, hash, ..
        } => format!("{ORIGINAL_PREFIX}{complaint}/{hash}"),
    }
}

/// The topic records of image index log records, in order: deletes become tombstones.
pub fn records(records: &[LogRecord]) -> Vec<StateRecord> {
    records
        .iter()
        .map(|record| StateRecord {
            key: key(record),
            value: match record {
                LogRecord::Delete { .. } => None,
                _ => Some(encode(record)),
            },
        })
        .collect()
}

/// The log record a topic record holds, if it is one whose key fits it.
fn record_of(key: &[u8], value: Option<&[u8]>) -> Option<LogRecord> {
    let key = std::str::from_utf8(key).ok()?;
    let Some(value) = value else {
        // Only listings are ever tombstoned; the time of a delete is not needed to apply it.
        let listing = key.strip_prefix(LISTING_PREFIX)?;
        return Some(LogRecord::Delete {
            listing: listing.to_owned(),
            at: String::new(),
        });
    };
    let record = decode(value)?;
    (self::key(&record) == key).then_some(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::state::{ImageState, IndexedImage};
    use crate::images::ImageHash;

    fn listing(id: &str, hash: u64) -> LogRecord {
        LogRecord::Listing {
            listing: id.into(),
            seller: "S1".into(),
            version: Some(1),
            images: vec![IndexedImage {
                url: format!("file:///{id}.jpg"),
                hash: ImageHash(hash),
                matchable: true,
                ..IndexedImage::default()
            }],
            at: "t".into(),
        }
    }

    fn original(complaint: &str, name: &str, hash: u64) -> LogRecord {
        LogRecord::Original {
            complaint: complaint.into(),
            rights_holder: "R".into(),
            original: name.into(),
            hash: ImageHash(hash),
            mirrored: ImageHash(!hash),
            crops: Vec::new(),
            matchable: true,
            at: "t".into(),
        }
    }

    /// What a compacted topic keeps: the last record of each key, tombstones dropped.
    fn compact(records: &[StateRecord]) -> Vec<StateRecord> {
        let mut kept: Vec<StateRecord> = Vec::new();
        for record in records {
            kept.retain(|k| k.key != record.key);
            kept.push(record.clone());
        }
        kept.retain(|k| k.value.is_some());
        kept
    }

    fn replay(records: &[StateRecord]) -> ImageState {
        let mut state = ImageState::new();
        for record in records {
            let applied = record_of(record.key.as_bytes(), record.value.as_deref())
                .expect("every record written reads back");
            state.apply(&applied);
        }
        state
    }

    #[test]
    fn a_compacted_topic_replays_to_the_same_index_as_the_whole_log() {
        let log = vec![
            listing("P1", 0x1),
            listing("P2", 0x2),
            original("C1", "a.jpg", 0xf0),
            original("C1", "b.jpg", 0xf00),
            listing("P1", 0x10),
            LogRecord::Delete {
                listing: "P2".into(),
                at: "t".into(),
            },
        ];
        let written = records(&log);
        assert_eq!(written[5].key, "listing/P2");
        assert_eq!(written[5].value, None);

        let compacted = compact(&written);
        let keys: Vec<&str> = compacted.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "original/C1/00000000000000f0",
                "original/C1/0000000000000f00",
                "listing/P1"
            ]
        );

        for state in [replay(&written), replay(&compacted)] {
            assert!(state.listing("P2").is_none());
            assert_eq!(state.listing("P1").unwrap().images[0].hash, ImageHash(0x10));
            assert_eq!(state.listing_images(), 1);
            assert_eq!(state.complaint("C1").unwrap().originals.len(), 2);
        }
    }

    #[test]
    fn records_whose_key_does_not_fit_are_skipped() {
        let value = encode(&listing("P1", 1));
        assert!(record_of(b"listing/P9", Some(&value)).is_none());
        assert!(record_of(b"P1", Some(&value)).is_none());
        assert!(record_of(b"original/C1/00", None).is_none());
        assert!(record_of(b"listing/P1", Some(b"{not json")).is_none());
        assert!(record_of(b"listing/P1", Some(&value)).is_some());
    }
}
