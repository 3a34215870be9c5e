//! The checks: functions of a listing event and the rules to findings.
//!
//! Most checks look at one event and nothing else: [`Checks::inspect`] runs them, on any
//! thread, in any order, which is what lets the pipeline spread events over threads. A few
//! need history (has this seller posted the same listing before?): they are split in two, a
//! parallel half that prepares what it can (a content fingerprint) into the [`Inspection`],
//! and [`OrderedChecks::observe`], which runs in input order and keeps the state.
//! A thread keeps its buffers in a [`Scratch`] so that the hot path does not allocate for text
//! it only reads.
//!
//! | module | kinds | handbook | half |
//! | --- | --- | --- | --- |
//! | [`terms`] | `terms.prohibited`, `terms.adlaw`, `licence` | 3.3, 3.4 | parallel |
//! | [`duplicates`] | `duplicate.text` | 3.1.2 (6) | both |
//! | [`price`] | `price` | 3.1.2 (4) | both |

pub mod duplicates;
pub mod price;
pub mod terms;

use crate::contract::{Finding, Kind, ListingEvent, Op};
use crate::normalize::{Normalized, Normalizer};
use crate::rules::{ListingRules, RuleSet};

pub use terms::TermMatcher;

/// Listings the duplicate check remembers per worker.
pub const DUPLICATE_CAPACITY: usize = 2_000_000;

/// Every check, compiled for one rule set.
#[derive(Debug)]
pub struct Checks {
    terms: TermMatcher,
    listing: ListingRules,
    price: price::PriceCheck,
}

/// Per-thread buffers the checks reuse from one event to the next.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) normalized: Normalized,
    pub(crate) seller_licences: Vec<String>,
    pub(crate) price_unit: price::UnitScratch,
}

/// What the parallel checks found in one event, and what they prepared for the ordered ones.
#[derive(Debug, Default)]
pub struct Inspection {
    pub findings: Vec<Finding>,
    pub fingerprint: Option<duplicates::Fingerprint>,
    /// The price read into canonical units, for the ordered half of the price check.
    pub price: price::Prepared,
}

impl Checks {
    pub fn new(rules: &RuleSet) -> Result<Checks, BuildError> {
        Ok(Checks {
            terms: TermMatcher::new(&rules.terms)?,
            listing: rules.listing.clone(),
            price: price::PriceCheck::new(&rules.prices),
        })
    }

    /// Runs every check that needs only this event.
    pub fn inspect(&self, event: &ListingEvent, scratch: &mut Scratch) -> Inspection {
        let mut inspection = Inspection::default();
        if event.op == Op::Delete {
            return inspection;
        }

        // Each text field is normalised once and read by every check that needs it.
        let mut content = duplicates::ContentHasher::new(event, &mut scratch.normalized);
        self.terms.prepare_seller(event, scratch);
        for (field, text) in event.text_fields() {
            Normalizer.normalize_into(text, &mut scratch.normalized);
            let normalized = &scratch.normalized;
            self.terms.scan_field(
                field,
                text,
                normalized,
                &scratch.seller_licences,
                &mut inspection.findings,
            );
            content.add(field, normalized);
        }
        inspection.fingerprint = Some(content.finish());
        inspection.price = self.price.prepare(event, &mut scratch.price_unit);
        inspection
    }

    pub fn terms(&self) -> &TermMatcher {
        &self.terms
    }

    /// A finding of a listing-violation kind, with the action and points `listing.toml` gives.
    fn listing_finding(&self, kind: Kind, field: &str, text: String) -> Option<Finding> {
        let rule = self.listing.get(kind)?;
        Some(Finding {
            kind,
            rule: rule.rule.clone(),
            field: field.to_owned(),
            start: 0,
            end: text.chars().count(),
            text,
            action: rule.action,
            points: rule.points,
            evidence: None,
        })
    }
}

/// The checks that need history, fed in input order.
#[derive(Debug)]
pub struct OrderedChecks {
    duplicates: duplicates::DuplicateIndex,
    prices: price::PriceBook,
}

impl Default for OrderedChecks {
    fn default() -> Self {
        OrderedChecks::new(DUPLICATE_CAPACITY)
    }
}

impl OrderedChecks {
    pub fn new(duplicate_capacity: usize) -> OrderedChecks {
        OrderedChecks {
            duplicates: duplicates::DuplicateIndex::new(duplicate_capacity),
            prices: price::PriceBook::default(),
        }
    }

    /// The band a prepared price is checked against now: seeded, learned or blended.
    pub fn price_bounds(
        &self,
        checks: &Checks,
        price: &price::PreparedPrice,
    ) -> Option<price::learned::Bounds> {
        self.prices.bounds(checks, price)
    }

    /// Prices the price check could not understand, by reason, since the start.
    pub fn unreadable_prices(&self) -> price::UnreadablePrices {
        self.prices.unreadable()
    }

    /// Adds the findings that depend on earlier events, and remembers this one.
    pub fn observe(&mut self, checks: &Checks, event: &ListingEvent, inspection: &mut Inspection) {
        let listing = &event.listing;
        if event.op == Op::Delete {
            self.duplicates.remove(&listing.id);
            return;
        }
        if let Some(fingerprint) = inspection.fingerprint {
            if let Some(original) = self.duplicates.upsert(&listing.id, fingerprint) {
                let title = listing.title.clone().unwrap_or_default();
                if let Some(mut finding) =
                    checks.listing_finding(Kind::DuplicateText, "title", title)
                {
                    finding.evidence = Some(serde_json::json!({ "duplicate_of": original }));
                    inspection.findings.push(finding);
                }
            }
        }

        // After the duplicate check, so that a duplicate's price is not learned either.
        let clean = inspection.findings.is_empty();
        if let Some(finding) = self.prices.observe(checks, event, inspection.price, clean) {
            inspection.findings.push(finding);
        }
    }
}

/// A rule set that validated but could not be compiled into a matcher.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the {what}: {reason}")]
pub struct BuildError {
    pub what: String,
    pub reason: String,
}
