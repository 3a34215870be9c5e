//! The image checks: repeated images of a seller (`duplicate.image`, handbook 3.1.2 (6)) and
//! copies of a rights holder's protected originals (`infringement`, handbook 3.2).
//!
//! Split like the other checks that need history. The parallel half is
//! [`ImageCheck::hash_batch`]: every image URL of a batch is fetched, decoded and hashed
//! ([`crate::images::hasher`]) into each event's [`Inspection`]; a batch without images costs
//! one pass over its events. The ordered half, [`ImageCheck::observe`], runs in input order:
//! it matches the event's hashes against the protected originals and against the seller's
//! other live listings, then indexes the listing's images and appends them to the image index
//! log. An image that cannot be fetched or decoded is counted by reason and logged at debug
//! level; the event is still decided by every other check.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;

use time::OffsetDateTime;

use super::{Checks, Inspection};
use crate::contract::{Finding, Kind, ListingEvent, Op};
use crate::images::decode::DecodeError;
use crate::images::fetch::FetchError;
use crate::images::hasher::{HashResult, ImageHasher, ImageProblem};
use crate::images::log::ImageLog;
use crate::images::state::{ImageState, IndexedImage, LogRecord};
use crate::images::{Detail, Perceptual};
use crate::rules::{Holidays, ImageRules};

/// One listing image after the parallel half.
#[derive(Debug, Clone)]
pub struct HashedImage {
    pub url: String,
    pub result: HashResult,
}

/// Images hashed and images that could not be, by reason, since the start.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImageCounts {
    pub hashed: u64,
    /// Hashed, but with too little detail to be matched.
    pub low_detail: u64,
    pub problems: BTreeMap<String, u64>,
}

impl ImageCounts {
    pub fn problem_total(&self) -> u64 {
        self.problems.values().sum()
    }
}

/// The image checks and the state they share with the complaint API.
#[derive(Debug)]
pub struct ImageCheck {
    pub hasher: ImageHasher,
    /// Thresholds and holidays, swapped by a rule reload ([`ImageCheck::replace_rules`]).
    /// The decode limits stay those the hasher was built with.
    rules: ArcSwap<(ImageRules, Holidays)>,
    state: Mutex<ImageState>,
    /// Appended under the state's lock, so the log's order is the state's.
    log: Option<Mutex<ImageLog>>,
    /// The records the stream's ordered check made since the worker last took them, kept
    /// when they go to the image index topic with each batch's results (Kafka mode).
    journal: Mutex<Option<Vec<LogRecord>>>,
    /// False while the index is still being replayed from its topic: until then it answers
    /// no complaint, which would miss the listings not replayed yet.
    replayed: AtomicBool,
    counts: Mutex<ImageCounts>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ImageCheck {
    /// Over a state (replayed from `log`, when there is one).
    pub fn new(
        hasher: ImageHasher,
        rules: ImageRules,
        holidays: Holidays,
        state: ImageState,
        log: Option<ImageLog>,
    ) -> Arc<ImageCheck> {
        Arc::new(ImageCheck {
            hasher,
            rules: ArcSwap::from_pointee((rules, holidays)),
            state: Mutex::new(state),
            log: log.map(Mutex::new),
            journal: Mutex::new(None),
            replayed: AtomicBool::new(true),
            counts: Mutex::new(ImageCounts::default()),
        })
    }

    /// The image rules in force now.
    pub fn rules(&self) -> Arc<(ImageRules, Holidays)> {
        self.rules.load_full()
    }

    /// Takes a reloaded rule set's thresholds and holidays.
    pub fn replace_rules(&self, rules: ImageRules, holidays: Holidays) {
        self.rules.store(Arc::new((rules, holidays)));
    }

    /// The index, locked; the log is appended to only through [`ImageCheck::record`].
    pub fn state(&self) -> MutexGuard<'_, ImageState> {
        lock(&self.state)
    }

    /// Applies a record to the locked state and appends it to the log.
    pub fn record(&self, state: &mut ImageState, record: LogRecord) {
        state.apply(&record);
        if let Some(log) = &self.log {
            let mut log = lock(log);
            if let Err(err) = log.append(&record) {
                tracing::warn!(error = %err, path = %log.path().display(), "cannot append to the image index log");
            }
        }
    }

    /// Applies and logs a record of the stream's ordered check, and journals it when a
    /// journal is kept.
    fn remember(&self, state: &mut ImageState, record: LogRecord) {
        if let Some(journal) = lock(&self.journal).as_mut() {
            journal.push(record.clone());
        }
        self.record(state, record);
    }

    /// Keeps the stream's records from now on, for [`ImageCheck::take_journal`].
    pub fn keep_journal(&self) {
        lock(&self.journal).get_or_insert_with(Vec::new);
    }

    /// The stream's records since the last call, oldest first (none without a journal).
    pub fn take_journal(&self) -> Vec<LogRecord> {
        lock(&self.journal)
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Marks the index as awaiting the replay of its topic.
    pub fn expect_replay(&self) {
        self.replayed.store(false, Ordering::Release);
    }

    /// Marks the index as replayed.
    pub fn set_replayed(&self) {
        self.replayed.store(true, Ordering::Release);
    }

    /// Whether the index holds everything its log held at start.
    pub fn is_replayed(&self) -> bool {
        self.replayed.load(Ordering::Acquire)
    }

    /// Applies a record another worker wrote (or an earlier run did): to the state alone, as
    /// it is in the log already.
    pub fn apply_replicated(&self, record: &LogRecord) {
        let indexed = {
            let mut state = self.state();
            state.apply(record);
            state.listing_images() + state.original_hashes()
        };
        // An idle worker flushes no batch, yet its index grows with what others write.
        crate::metrics::global()
            .image_index_entries
            .set(i64::try_from(indexed).unwrap_or(i64::MAX));
    }

    /// Writes the log's buffered records out.
    pub fn flush(&self) {
        let indexed = {
            let state = lock(&self.state);
            state.listing_images() + state.original_hashes()
        };
        crate::metrics::global()
            .image_index_entries
            .set(i64::try_from(indexed).unwrap_or(i64::MAX));
        if let Some(log) = &self.log {
            let mut log = lock(log);
            if let Err(err) = log.flush() {
                tracing::warn!(error = %err, path = %log.path().display(), "cannot write the image index log");
            }
        }
    }

    pub fn counts(&self) -> ImageCounts {
        lock(&self.counts).clone()
    }

    /// Whether a hashed picture has the detail to be matched.
    pub fn matchable(&self, hash: &Perceptual) -> bool {
        let rules = self.rules.load();
        hash.detail(rules.0.min_spread, rules.0.min_edges) == Detail::Enough
    }

    /// The parallel half: hashes the images of every upsert among `events`, into their
    /// inspections.
    pub fn hash_batch<'a>(
        &self,
        events: impl Iterator<Item = (&'a ListingEvent, &'a mut Inspection)>,
    ) {
        let mut wanting: Vec<(&ListingEvent, &mut Inspection)> = events
            .filter(|(event, _)| event.op == Op::Upsert && !event.listing.images.is_empty())
            .collect();
        if wanting.is_empty() {
            return;
        }
        let limit = self.rules.load().0.max_images_per_listing;
        let urls: Vec<&str> = wanting
            .iter()
            .flat_map(|(event, _)| event.listing.images.iter().take(limit))
            .map(String::as_str)
            .collect();
        let mut results = self.hasher.hash_all(&urls).into_iter();

        let mut counts = lock(&self.counts);
        for (event, inspection) in &mut wanting {
            let over = event.listing.images.len().saturating_sub(limit);
            if over > 0 {
                tracing::debug!(
                    event = %event.event_id,
                    images = event.listing.images.len(),
                    limit,
                    "images over the listing's limit not fetched"
                );
                *counts
                    .problems
                    .entry(OVER_LIMIT_PROBLEM.to_owned())
                    .or_default() += over as u64;
                crate::metrics::global()
                    .image_fetches
                    .with_label_values(&[crate::metrics::IMAGE_OVER_LIMIT])
                    .inc_by(over as u64);
            }
            for url in event.listing.images.iter().take(limit) {
                let Some(result) = results.next() else { break };
                count_outcome(&result);
                match &result {
                    Ok(hash) => {
                        counts.hashed += 1;
                        if !self.matchable(hash) {
                            counts.low_detail += 1;
                        }
                    }
                    Err(problem) => {
                        tracing::debug!(event = %event.event_id, %url, %problem, "image not hashed");
                        *counts.problems.entry(problem.code()).or_default() += 1;
                    }
                }
                inspection.images.push(HashedImage {
                    url: url.clone(),
                    result,
                });
            }
        }
    }

    /// The ordered half: matches, then remembers, one event.
    pub fn observe(&self, checks: &Checks, event: &ListingEvent, inspection: &mut Inspection) {
        let listing = &event.listing;
        let mut state = self.state();
        // A listing without images (most of a text-only stream) costs a lookup: this runs in
        // input order on one thread, so nothing else is done for it.
        if event.op == Op::Delete || inspection.images.is_empty() {
            if state.listing(&listing.id).is_some() {
                let record = LogRecord::Delete {
                    listing: listing.id.to_string(),
                    at: crate::moderator::timestamp(OffsetDateTime::now_utc()),
                };
                self.remember(&mut state, record);
            }
            return;
        }
        let now = crate::moderator::timestamp(OffsetDateTime::now_utc());

        let mut indexed = Vec::new();
        let mut infringing = false;
        for (number, image) in inspection.images.iter().enumerate() {
            let Ok(hash) = &image.result else { continue };
            let matchable = self.matchable(hash);
            let this = IndexedImage {
                url: image.url.clone(),
                hash: hash.hash,
                mirrored: Some(hash.mirrored),
                crops: hash.crops.map(Vec::from).unwrap_or_default(),
                matchable,
            };
            if !matchable {
                indexed.push(this);
                continue;
            }
            let field = |kind| {
                checks
                    .listing_finding(kind, "images", image.url.clone())
                    .map(|mut f| {
                        f.start = number;
                        f.end = number + 1;
                        f
                    })
            };

            let infringement = self.rules.load().0.infringement_distance;
            if let Some(original) = state.originals_near(hash.hash, infringement).first() {
                if let Some(mut finding) = field(Kind::Infringement) {
                    finding.evidence = Some(serde_json::json!({
                        "complaint": original.complaint,
                        "rights_holder": original.rights_holder,
                        "original": original.original,
                        "mirrored": original.mirrored,
                        "distance": original.distance,
                        "max_distance": infringement,
                        "hash": hash.hash,
                    }));
                    inspection.findings.push(finding);
                    infringing = true;
                }
            }

            let duplicate = self.rules.load().0.duplicate_distance;
            let earlier = state
                .seller_duplicates(&event.seller.id, &listing.id, &this, duplicate)
                .into_iter()
                .next();
            indexed.push(this);
            if let Some(earlier) = earlier {
                if let Some(mut finding) = field(Kind::DuplicateImage) {
                    finding.evidence = Some(duplicate_evidence(&earlier, duplicate, hash));
                    inspection.findings.push(finding);
                }
            }
        }
        if infringing {
            inspection.appeal_deadline = Some(self.appeal_deadline(OffsetDateTime::now_utc()));
        }

        if state.has_images(&listing.id, &event.seller.id, &indexed) {
            return;
        }
        if indexed.is_empty() {
            if state.listing(&listing.id).is_some() {
                self.remember(
                    &mut state,
                    LogRecord::Delete {
                        listing: listing.id.to_string(),
                        at: now,
                    },
                );
            }
            return;
        }
        let record = LogRecord::Listing {
            listing: listing.id.to_string(),
            seller: event.seller.id.to_string(),
            version: listing.version,
            images: indexed,
            at: now,
        };
        self.remember(&mut state, record);
    }

    /// The end of the seller's time for counter-evidence, for a decision made `at`: RFC 3339
    /// in China Standard Time, to the millisecond like the decision's own time.
    pub fn appeal_deadline(&self, at: OffsetDateTime) -> String {
        const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory]:[offset_minute]"
        );
        let rules = self.rules.load();
        let deadline = rules.1.working_days_after(at, rules.0.appeal_working_days);
        deadline
            .format(FORMAT)
            .unwrap_or_else(|_| deadline.unix_timestamp().to_string())
    }

    /// An infringement finding for a listing image already indexed, as a complaint finds it.
    pub fn infringement_finding(
        &self,
        checks: &Checks,
        number: usize,
        url: &str,
        evidence: serde_json::Value,
    ) -> Option<Finding> {
        let mut finding = checks.listing_finding(Kind::Infringement, "images", url.to_owned())?;
        finding.start = number;
        finding.end = number + 1;
        finding.evidence = Some(evidence);
        Some(finding)
    }
}

fn duplicate_evidence(
    earlier: &crate::images::state::ListingMatch,
    max_distance: u32,
    hash: &Perceptual,
) -> serde_json::Value {
    serde_json::json!({
        "duplicate_of": earlier.listing,
        "seller": earlier.seller,
        "image": earlier.url,
        "distance": earlier.distance,
        "max_distance": max_distance,
        "hash": hash.hash,
    })
}

/// The problem an image past its listing's limit is counted under.
const OVER_LIMIT_PROBLEM: &str = "listing.over_limit";

/// Counts a fetch and decode in the image metrics: a fetch that failed was never decoded.
fn count_outcome(result: &HashResult) {
    let metrics = crate::metrics::global();
    let (fetch, decode) = match result {
        Ok(_) => ("ok", Some("ok")),
        Err(ImageProblem::Fetch(FetchError::Timeout(_))) => ("timeout", None),
        Err(ImageProblem::Fetch(FetchError::TooLarge(_))) => ("too_large", None),
        Err(ImageProblem::Fetch(_)) => ("error", None),
        Err(ImageProblem::Decode(
            DecodeError::TooLarge { .. } | DecodeError::OverMemoryLimit(_),
        )) => ("ok", Some("too_large")),
        Err(ImageProblem::Decode(_)) => ("ok", Some("error")),
    };
    metrics.image_fetches.with_label_values(&[fetch]).inc();
    if let Some(decode) = decode {
        metrics.image_decodes.with_label_values(&[decode]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::fetch::{FetchSettings, Fetcher};
    use crate::images::ImageHash;
    use crate::rules::RuleSet;

    fn listing_event(listing: &str, op: Op) -> ListingEvent {
        serde_json::from_value(serde_json::json!({
            "schema": "listing-event/v1", "event_id": "e", "op": op,
            "occurred_at": "2026-12-02T09:15:00+08:00",
            "seller": {"id": "S1"},
            "listing": {"id": listing, "images": ["file:///camera.png"]}
        }))
        .expect("the test event is well formed")
    }

    #[test]
    fn the_journal_holds_the_streams_records_only() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let rules = RuleSet::load(&root.join("rules")).unwrap();
        let checks = Checks::new(&rules).unwrap();
        let hasher = ImageHasher::new(
            Fetcher::new(FetchSettings::default()).unwrap(),
            rules.images.decode,
            10,
        )
        .unwrap();
        let check = ImageCheck::new(
            hasher,
            rules.images.clone(),
            rules.holidays.clone(),
            ImageState::new(),
            None,
        );
        let photo = std::fs::read(root.join("tests/data/images/camera.png")).unwrap();
        let hash = crate::images::hash_bytes(&photo, &rules.images.decode).unwrap();
        let observe = |listing: &str, op: Op| {
            let mut inspection = Inspection::default();
            if op == Op::Upsert {
                inspection.images.push(HashedImage {
                    url: "file:///camera.png".into(),
                    result: Ok(hash),
                });
            }
            check.observe(&checks, &listing_event(listing, op), &mut inspection);
        };

        // Without a journal nothing is kept.
        observe("P0", Op::Upsert);
        assert!(check.take_journal().is_empty());

        check.keep_journal();
        observe("P1", Op::Upsert);
        let journal = check.take_journal();
        assert!(
            matches!(journal.as_slice(), [LogRecord::Listing { listing, .. }] if listing == "P1"),
            "{journal:?}"
        );
        // The same images again change nothing, so they make no record.
        observe("P1", Op::Upsert);
        assert!(check.take_journal().is_empty());

        // The complaint API's records and other workers' are applied, not journaled.
        let original = LogRecord::Original {
            complaint: "C1".into(),
            rights_holder: "R".into(),
            original: "o.png".into(),
            hash: ImageHash(7),
            mirrored: ImageHash(8),
            crops: Vec::new(),
            matchable: true,
            at: "t".into(),
        };
        check.record(&mut check.state(), original);
        check.apply_replicated(&LogRecord::Delete {
            listing: "P0".into(),
            at: String::new(),
        });
        assert!(check.take_journal().is_empty());
        assert!(check.state().complaint("C1").is_some());
        assert!(check.state().listing("P0").is_none());

        observe("P1", Op::Delete);
        let journal = check.take_journal();
        assert!(
            matches!(journal.as_slice(), [LogRecord::Delete { listing, .. }] if listing == "P1"),
            "{journal:?}"
        );
    }
}
