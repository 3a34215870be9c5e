//! Records through decode → checks → decide, in the three steps the pipeline runs them in:
//! [`Moderator::prepare`] (decode and the per-event checks, in parallel),
//! [`Moderator::observe_batch`] (the checks that need history, in input order) and
//! [`Moderator::finish`] (decide and encode, in parallel).
//!
//! The rules and the checks compiled from them sit behind an atomic pointer: a reload
//! ([`crate::reload`]) builds a new [`Compiled`] set off the hot path and swaps it in with
//! [`Moderator::replace_rules`]. The pipeline takes one [`Moderator::snapshot`] per batch and
//! decides the whole batch with it, so every decision carries the version that decided it.
//! The state of the ordered checks (duplicates, learned prices) outlives a swap.
//!
//! With images checked ([`Moderator::with_images`]), `observe_batch` first has the batch's
//! images fetched and hashed in parallel, then matches them in input order with the other
//! ordered checks.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use time::OffsetDateTime;

use crate::checks::images::{ImageCheck, ImageCounts};
use crate::checks::price::UnreadablePrices;
use crate::checks::{BuildError, Checks, Inspection, OrderedChecks, Scratch};
use crate::contract::{Action, DeadLetter, DeadLetterReason, Decision, SourcePosition};
use crate::decide::{decide, DecisionView, Verdict};
use crate::decode::{decode, DecodeError, Decoded};
use crate::metrics::KindCounts;
use crate::rules::RuleSet;

/// What became of one input record, already encoded as a JSON line.
#[derive(Debug)]
pub enum Outcome {
    /// `key` is the listing id, which decisions are keyed by.
    Decision {
        action: Action,
        key: compact_str::CompactString,
        line: Vec<u8>,
        /// The decision's findings by kind, for the metrics.
        findings: KindCounts,
        /// The event's `occurred_at` in Unix seconds, when it can be read, for the
        /// end-to-end latency.
        occurred_at: Option<f64>,
    },
    DeadLetter {
        reason: DeadLetterReason,
        line: Vec<u8>,
    },
}

/// A record between the parallel checks and the decision.
#[derive(Debug)]
pub enum Prepared {
    Event {
        decoded: Box<Decoded>,
        inspection: Inspection,
    },
    /// Not an event; its dead letter is already encoded.
    Dead {
        reason: DeadLetterReason,
        line: Vec<u8>,
    },
}

/// One rule set and the checks compiled from it: what a batch is decided with.
#[derive(Debug)]
pub struct Compiled {
    pub rules: Arc<RuleSet>,
    pub checks: Arc<Checks>,
}

impl Compiled {
    pub fn new(rules: Arc<RuleSet>) -> Result<Compiled, BuildError> {
        let checks = Arc::new(Checks::new(&rules)?);
        Ok(Compiled { rules, checks })
    }
}

/// The rules in use, the checks compiled from them, and the state of the checks that need
/// history.
#[derive(Debug)]
pub struct Moderator {
    current: ArcSwap<Compiled>,
    /// Only touched by `observe_batch`, which the pipeline calls from one thread at a time;
    /// the lock makes that a guarantee instead of a convention.
    ordered: Mutex<OrderedChecks>,
    max_event_bytes: u64,
    /// Bytes a dead letter's line takes at most, the input it keeps cut to fit.
    dead_letter_max_bytes: usize,
    /// The image checks, when images are fetched and matched.
    images: Option<Arc<ImageCheck>>,
}

impl Moderator {
    pub fn new(rules: Arc<RuleSet>, max_event_bytes: u64) -> Result<Moderator, BuildError> {
        Ok(Moderator {
            current: ArcSwap::from_pointee(Compiled::new(rules)?),
            ordered: Mutex::new(OrderedChecks::default()),
            max_event_bytes,
            dead_letter_max_bytes: usize::MAX,
            images: None,
        })
    }

    /// Fetches, hashes and matches listing images with `images`.
    pub fn with_images(mut self, images: Arc<ImageCheck>) -> Moderator {
        self.images = Some(images);
        self
    }

    pub fn images(&self) -> Option<&Arc<ImageCheck>> {
        self.images.as_ref()
    }

    /// Images hashed and not hashed so far (all zero when images are not checked).
    pub fn image_counts(&self) -> ImageCounts {
        self.images
            .as_ref()
            .map(|images| images.counts())
            .unwrap_or_default()
    }

    /// Keeps a dead letter's line to at most `bytes`, cutting the input it keeps to fit. A
    /// Kafka sink needs this: a dead letter over the producer's or the broker's message size
    /// would fail to produce and stop the partition.
    pub fn with_dead_letter_limit(mut self, bytes: usize) -> Moderator {
        self.dead_letter_max_bytes = bytes;
        self
    }

    /// The rule set in use now.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.current.load().rules.clone()
    }

    /// The checks in use now.
    pub fn checks(&self) -> Arc<Checks> {
        self.current.load().checks.clone()
    }

    /// The rules and checks in use now, to decide a batch with from start to end.
    pub fn snapshot(&self) -> Arc<Compiled> {
        self.current.load_full()
    }

    /// Puts a new rule set in use for every batch that starts from now on. It is compiled
    /// here, on the caller's thread; if that fails the old set stays.
    pub fn replace_rules(&self, rules: Arc<RuleSet>) -> Result<(), BuildError> {
        let compiled = Compiled::new(rules)?;
        if let Some(images) = &self.images {
            images.replace_rules(
                compiled.rules.images.clone(),
                compiled.rules.holidays.clone(),
            );
        }
        self.current.store(Arc::new(compiled));
        Ok(())
    }

    /// Keeps a journal of the duplicate state's changes from now on, for a shared state log.
    pub fn keep_state_journal(&self) {
        self.ordered().keep_journal();
    }

    /// The duplicate state's changes since the last call, oldest first.
    pub fn take_state_changes(&self) -> Vec<crate::checks::duplicates::StateChange> {
        self.ordered().take_changes()
    }

    /// Applies changes another worker made to the shared duplicate state.
    pub fn apply_state_changes(
        &self,
        changes: impl IntoIterator<Item = crate::checks::duplicates::StateChange>,
    ) {
        let per_seller = self.rules().duplicates.per_seller_capacity;
        let mut ordered = self.ordered();
        for change in changes {
            ordered.apply(change, per_seller);
        }
    }

    fn ordered(&self) -> std::sync::MutexGuard<'_, OrderedChecks> {
        self.ordered.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Prices the price check could not understand so far, by reason.
    pub fn unreadable_prices(&self) -> UnreadablePrices {
        self.ordered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unreadable_prices()
    }

    /// Decodes a record and runs the per-event checks with the rules in use now. `kept` is
    /// what the source held of it, `total_len` its full length, `now` the time a dead letter
    /// is stamped with.
    pub fn prepare(
        &self,
        kept: &[u8],
        total_len: u64,
        position: &(dyn Fn() -> SourcePosition + Sync),
        scratch: &mut Scratch,
        now: &str,
    ) -> Prepared {
        self.prepare_with(&self.snapshot(), kept, total_len, position, scratch, now)
    }

    /// [`Moderator::prepare`] with a given snapshot of the rules.
    pub fn prepare_with(
        &self,
        compiled: &Compiled,
        kept: &[u8],
        total_len: u64,
        position: &(dyn Fn() -> SourcePosition + Sync),
        scratch: &mut Scratch,
        now: &str,
    ) -> Prepared {
        let mut prepared = self.decode_record(kept, total_len, position, now);
        self.inspect(compiled, &mut prepared, scratch);
        prepared
    }

    /// The first half of [`Moderator::prepare_with`]: the record decoded, its inspection
    /// still empty (or its dead letter).
    pub fn decode_record(
        &self,
        kept: &[u8],
        total_len: u64,
        position: &(dyn Fn() -> SourcePosition + Sync),
        now: &str,
    ) -> Prepared {
        let decoded = if total_len > self.max_event_bytes {
            Err(DecodeError {
                reason: DeadLetterReason::TooLarge,
                message: format!(
                    "the record is {total_len} bytes, over the limit of {} bytes",
                    self.max_event_bytes
                ),
            })
        } else {
            decode(kept)
        };

        match decoded {
            Ok(decoded) => Prepared::Event {
                decoded: Box::new(decoded),
                inspection: Inspection::default(),
            },
            Err(err) => {
                let position = position();
                let error = format!("{position}: {}", err.message);
                Prepared::Dead {
                    reason: err.reason,
                    line: self.dead_letter_line(err.reason, error, position, kept, total_len, now),
                }
            }
        }
    }

    /// The second half of [`Moderator::prepare_with`]: the per-event checks of a decoded
    /// record.
    pub fn inspect(&self, compiled: &Compiled, prepared: &mut Prepared, scratch: &mut Scratch) {
        if let Prepared::Event {
            decoded,
            inspection,
        } = prepared
        {
            *inspection = compiled.checks.inspect(&decoded.event, scratch);
        }
    }

    /// The dead letter of an input, its line at most the dead-letter limit. Escaping can
    /// make the input several times longer (a control character takes six bytes, base64 four
    /// for three), so the input kept is cut, in proportion, until the line fits.
    fn dead_letter_line(
        &self,
        reason: DeadLetterReason,
        error: String,
        position: SourcePosition,
        kept: &[u8],
        total_len: u64,
        now: &str,
    ) -> Vec<u8> {
        let limit = self.dead_letter_max_bytes;
        let mut keep = kept.len().min(limit);
        loop {
            let letter = DeadLetter::new(
                reason,
                error.clone(),
                position.clone(),
                &kept[..keep],
                total_len,
                now.to_owned(),
            );
            let line = encode_line(&letter);
            if line.len() <= limit || keep == 0 {
                return line;
            }
            // At least a tenth less each time, so that the loop ends.
            let in_proportion = keep.saturating_mul(limit) / line.len();
            keep = in_proportion.min(keep - keep.div_ceil(10));
        }
    }

    /// Runs the checks that need history over a batch, in order, with a snapshot's checks.
    pub fn observe_batch(&self, compiled: &Compiled, batch: &mut [Prepared]) {
        if let Some(images) = &self.images {
            images.hash_batch(batch.iter_mut().filter_map(|prepared| match prepared {
                Prepared::Event {
                    decoded,
                    inspection,
                } => Some((&decoded.event, inspection)),
                Prepared::Dead { .. } => None,
            }));
        }
        let mut ordered = self.ordered.lock().unwrap_or_else(PoisonError::into_inner);
        for prepared in batch {
            if let Prepared::Event {
                decoded,
                inspection,
            } = prepared
            {
                // Images first, so that the price check does not learn an infringing price.
                if let Some(images) = &self.images {
                    images.observe(&compiled.checks, &decoded.event, inspection);
                }
                ordered.observe(&compiled.checks, &decoded.event, inspection);
            }
        }
        if let Some(images) = &self.images {
            images.flush();
        }
    }

    /// Decides and encodes a prepared record, stamped with the rules version in use now.
    pub fn finish(&self, prepared: Prepared, now: &str) -> Outcome {
        self.finish_with(&self.snapshot(), prepared, now)
    }

    /// [`Moderator::finish`] with the snapshot the record was prepared with.
    pub fn finish_with(&self, compiled: &Compiled, prepared: Prepared, now: &str) -> Outcome {
        match prepared {
            Prepared::Event {
                decoded,
                mut inspection,
            } => {
                let findings = KindCounts::of(inspection.findings.iter().map(|f| &f.kind));
                let verdict = Verdict::of(&mut inspection.findings);
                let encode = |findings: &[crate::contract::Finding]| {
                    encode_line(&DecisionView::new(
                        &decoded.event,
                        verdict,
                        findings,
                        inspection.appeal_deadline.as_deref(),
                        &compiled.rules.version,
                        now,
                    ))
                };
                let mut line = encode(&inspection.findings);
                if line.len() > MAX_DECISION_BYTES {
                    shorten(&mut inspection.findings);
                    line = encode(&inspection.findings);
                }
                // Decoding parsed and validated the time already.
                let occurred_at = Some(decoded.occurred_at.unix_timestamp_nanos() as f64 / 1e9);
                Outcome::Decision {
                    action: verdict.action,
                    line,
                    key: decoded.event.listing.id,
                    findings,
                    occurred_at,
                }
            }
            Prepared::Dead { reason, line } => Outcome::DeadLetter { reason, line },
        }
    }

    /// The decision for one decoded event, through all three steps; the ordered checks see it
    /// after every event decided before it.
    pub fn decide(&self, decoded: &Decoded, scratch: &mut Scratch, decided_at: String) -> Decision {
        let compiled = self.snapshot();
        let mut inspection = compiled.checks.inspect(&decoded.event, scratch);
        if let Some(images) = &self.images {
            images.hash_batch(std::iter::once((&decoded.event, &mut inspection)));
            images.observe(&compiled.checks, &decoded.event, &mut inspection);
            images.flush();
        }
        self.ordered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(&compiled.checks, &decoded.event, &mut inspection);
        let mut decision = decide(
            &decoded.event,
            inspection.findings,
            &compiled.rules.version,
            decided_at,
        );
        decision.appeal_deadline = inspection.appeal_deadline;
        decision
    }
}

/// The outcome of a decision made outside the stream (a complaint's suppression).
pub fn decision_outcome(decision: &Decision) -> Outcome {
    Outcome::Decision {
        action: decision.action,
        key: decision.listing_id.as_str().into(),
        line: encode_line(decision),
        findings: KindCounts::of(decision.findings.iter().map(|f| &f.kind)),
        // Not an event's latency: the complaint, not a listing change, caused it.
        occurred_at: None,
    }
}

/// Above this a decision's findings are shortened ([`shorten`]): a finding quotes its text,
/// which may be a whole 1 MiB title, and a decision must fit a Kafka message (1,000,000
/// bytes by default) with its headers, or the worker could never send it and would meet the
/// same event again after every restart.
pub const MAX_DECISION_BYTES: usize = 768 * 1024;

/// Characters of a finding's text kept by [`shorten`]; the span still gives the whole range.
pub const SHORT_TEXT_CHARS: usize = 256;

/// Cuts each finding's text to [`SHORT_TEXT_CHARS`] (marked with a final `…`) and replaces
/// evidence of over 4 KiB with a note saying so: 64 findings then take under 400 KiB.
fn shorten(findings: &mut [crate::contract::Finding]) {
    for finding in findings {
        if let Some((cut, _)) = finding.text.char_indices().nth(SHORT_TEXT_CHARS) {
            finding.text.truncate(cut);
            finding.text.push('…');
        }
        let large = finding
            .evidence
            .as_ref()
            .is_some_and(|evidence| evidence.to_string().len() > 4096);
        if large {
            finding.evidence = Some(serde_json::json!({ "omitted": "over 4 KiB" }));
        }
    }
}

pub(crate) fn encode_line<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut line = Vec::with_capacity(512);
    // Serialising these plain structs into memory cannot fail: no maps with non-string keys,
    // no failing Serialize impls, no I/O.
    serde_json::to_writer(&mut line, value).expect("decisions and dead letters always serialise");
    line.push(b'\n');
    line
}

/// The current time in the form decisions and dead letters carry: RFC 3339, UTC, milliseconds.
pub fn timestamp(now: OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moderator(dead_letter_limit: usize) -> Moderator {
        let rules = RuleSet::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
            .expect("the project's rules load");
        Moderator::new(Arc::new(rules), 1024 * 1024)
            .expect("the project's rules compile")
            .with_dead_letter_limit(dead_letter_limit)
    }

    fn dead_letter(moderator: &Moderator, input: &[u8]) -> (Vec<u8>, DeadLetter) {
        let position = || SourcePosition::Kafka {
            topic: "listing-events".to_owned(),
            partition: 0,
            offset: 7,
        };
        let prepared = moderator.prepare(
            input,
            input.len() as u64,
            &position,
            &mut Scratch::default(),
            "2026-12-02T09:15:00.000Z",
        );
        let Prepared::Dead { line, .. } = prepared else {
            panic!("not a dead letter");
        };
        let letter = serde_json::from_slice(&line).expect("a dead letter is JSON");
        (line, letter)
    }

    #[test]
    fn control_characters_that_escape_to_six_bytes_each_are_cut_until_the_dead_letter_fits() {
        let moderator = moderator(4096);
        let (line, letter) = dead_letter(&moderator, &[0x01; 3000]);
        assert!(line.len() <= 4096, "{} bytes", line.len());
        let original = letter.original.expect("the kept input is text");
        assert!(original.len() > 300, "only {} bytes kept", original.len());
        assert!(original.bytes().all(|b| b == 0x01));
        assert!(letter.truncated);
        assert_eq!(letter.original_bytes, 3000);
    }

    #[test]
    fn a_dead_letter_within_the_limit_keeps_its_input_whole() {
        let moderator = moderator(4096);
        let (_, letter) = dead_letter(&moderator, b"{not json");
        assert_eq!(letter.original.as_deref(), Some("{not json"));
        assert!(!letter.truncated);
    }
}
