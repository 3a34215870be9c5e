//! The checks: functions of a listing event and the rules to findings.
//!
//! Most checks look at one event and nothing else: [`Checks::inspect`] runs them, on any
//! thread, in any order, which is what lets the pipeline spread events over threads. A few
//! need history (has this seller posted the same listing before?): they are split in two, a
//! parallel half that prepares what it can (a content sketch) into the [`Inspection`],
//! and [`OrderedChecks::observe`], which runs in input order and keeps the state.
//! One event in [`crate::metrics::CHECK_SAMPLE_EVERY`] per thread has each check timed into
//! `loomguard_check_duration_seconds`.
//! A thread keeps its buffers in a [`Scratch`] so that the hot path does not allocate for text
//! it only reads.
//!
//! | module | kinds | handbook | half |
//! | --- | --- | --- | --- |
//! | [`terms`] | `terms.prohibited`, `terms.adlaw`, `licence` | 3.3, 3.4 | parallel |
//! | [`contact`] | `title.contact` | 3.1.2 (1) | parallel |
//! | [`product`] | `title.no_product`, `title.stuffing`, `title.mismatch` | 3.1.2 (1) | parallel |
//! | [`intent`] | `title.intent` | 3.1.2 (1) | parallel |
//! | [`category`] | `category` | 3.1.2 (2) | parallel |
//! | [`composition`] | `attributes.composition` | 3.1.2 (3) | parallel |
//! | [`stock`] | `stock` | 3.1.2 (5) | parallel |
//! | [`duplicates`] | `duplicate.text` | 3.1.2 (6) | both |
//! | [`price`] | `price` | 3.1.2 (4) | both |
//! | [`images`] | `duplicate.image`, `infringement` | 3.1.2 (6), 3.2 | both (hashing per batch) |
//!
//! The consistency checks of handbook 3.1.2 read the title and description folded character
//! by character ([`folded`]), which keeps the spaces and symbols that normalising drops.

pub mod category;
mod charmap;
pub mod composition;
pub mod contact;
pub mod duplicates;
pub mod folded;
pub mod images;
pub mod intent;
mod patterns;
pub mod price;
pub mod product;
pub mod stock;
pub mod terms;

use crate::contract::{FieldName, Finding, Kind, ListingEvent, Op};
use crate::metrics::{Check, CheckClock};
use crate::normalize::{Normalized, Normalizer};
use crate::rules::{CompositionRules, DuplicateRules, ListingRules, RuleSet, Taxonomy};
use folded::{original_slice, Folded, Lexicon, LexiconBuilder, Slicer};

pub use terms::TermMatcher;

/// Listings the duplicate check remembers per worker.
pub const DUPLICATE_CAPACITY: usize = 2_000_000;

/// Every check, compiled for one rule set.
#[derive(Debug)]
pub struct Checks {
    terms: TermMatcher,
    listing: ListingRules,
    price: price::PriceCheck,
    contact: contact::ContactDetector,
    taxonomy: Taxonomy,
    products: product::ProductNouns,
    composition: CompositionRules,
    fibres: composition::parse::CompositionParser,
    /// The word lists of `contact`, `products` and `fibres`, read in one pass per field.
    lexicon: Lexicon,
    /// What the title and description pass reads of each character.
    chars: charmap::CharMap,
    duplicates: DuplicateRules,
}

/// Per-thread buffers the checks reuse from one event to the next.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) normalized: Normalized,
    pub(crate) seller_licences: Vec<String>,
    pub(crate) occurrences: Vec<terms::Occurrence>,
    pub(crate) price_unit: price::UnitScratch,
    pub(crate) title: Folded,
    pub(crate) contacts: Vec<contact::Contact>,
    pub(crate) description: Folded,
    pub(crate) attribute: Folded,
    pub(crate) hits: Vec<folded::Hit>,
    pub(crate) description_hits: Vec<folded::Hit>,
    pub(crate) lex: composition::parse::LexBuffers,
    pub(crate) nouns: Vec<product::Noun>,
    pub(crate) products: product::TitleProducts,
    /// The product the title sells, for the duplicate sketch's key.
    pub(crate) product: String,
}

/// What the parallel checks found in one event, and what they prepared for the ordered ones.
#[derive(Debug, Default)]
pub struct Inspection {
    pub findings: Vec<Finding>,
    /// The price read into canonical units, for the ordered half of the price check.
    pub price: price::Prepared,
    /// The duplicate check's summary of the listing's content, for the ordered half.
    pub sketch: Option<duplicates::Sketch>,
    /// The listing's images, hashed by the image check's parallel half (empty when images
    /// are not checked).
    pub images: Vec<images::HashedImage>,
    /// Set by the image check on an infringement: the end of the seller's time to appeal.
    pub appeal_deadline: Option<String>,
}

impl Checks {
    pub fn new(rules: &RuleSet) -> Result<Checks, BuildError> {
        let mut lexicon = LexiconBuilder::default();
        let contact = contact::ContactDetector::new(&rules.title.contact, &mut lexicon);
        let products =
            product::ProductNouns::new(&rules.taxonomy, &rules.title.intent, &mut lexicon)?;
        let fibres = composition::parse::CompositionParser::new(&rules.composition, &mut lexicon);
        let lexicon = lexicon.build()?;
        let terms = TermMatcher::new(&rules.terms)?;
        Ok(Checks {
            chars: terms.char_map(&lexicon),
            terms,
            listing: rules.listing.clone(),
            price: price::PriceCheck::new(&rules.prices),
            contact,
            taxonomy: rules.taxonomy.clone(),
            products,
            composition: rules.composition.clone(),
            fibres,
            lexicon,
            duplicates: rules.duplicates.clone(),
        })
    }

    /// Runs every check that needs only this event.
    pub fn inspect(&self, event: &ListingEvent, scratch: &mut Scratch) -> Inspection {
        let mut inspection = Inspection::default();
        if event.op == Op::Delete {
            return inspection;
        }
        let mut clock = CheckClock::start();

        // Each text field is normalised once and read by every check that needs it; the title
        // and description are folded in the same pass, for the consistency checks.
        let mut content = duplicates::SketchBuilder::new(
            event,
            &self.duplicates.key_attributes,
            &mut scratch.normalized,
        );
        self.terms.prepare_seller(event, scratch);
        if event.listing.title.is_none() {
            scratch.title.fold("", &self.lexicon);
        }
        for (field, text) in event.text_fields() {
            let Scratch {
                normalized,
                occurrences,
                title,
                description,
                seller_licences,
                ..
            } = &mut *scratch;
            let folded = match field {
                FieldName::Title => Some(title),
                FieldName::Description => Some(description),
                FieldName::Attribute(_) => None,
            };
            occurrences.clear();
            match (folded, content.shingles(field)) {
                (Some(folded), Some(mut shingles)) => {
                    // Folded, normalised, read by both automata and shingled in one pass.
                    let mut terms = self.terms.stepper(occurrences);
                    folded.fold_normalizing(
                        text,
                        &self.lexicon,
                        &self.chars,
                        normalized,
                        &mut terms,
                        &mut shingles,
                        &mut content,
                    );
                    terms::sort_occurrences(occurrences);
                    content.add_shingled(field, normalized, shingles);
                }
                _ => {
                    Normalizer.normalize_into(text, normalized);
                    self.terms.occurrences(normalized, occurrences);
                    content.add(field, normalized);
                }
            }
            self.terms.report_field(
                field,
                text,
                normalized,
                seller_licences,
                occurrences,
                &mut inspection.findings,
            );
        }
        clock.lap(Check::Terms);
        inspection.price = self.price.prepare(event, &mut scratch.price_unit);
        clock.lap(Check::Price);
        self.check_consistency(event, scratch, &mut inspection.findings, &mut clock);
        scratch.product.clear();
        if let Some(head) = scratch.products.head {
            scratch
                .title
                .write_slice(head.start, head.end, &mut scratch.product);
        }
        inspection.sketch = content
            .finish()
            .map(|sketch| sketch.for_product(&scratch.product));
        inspection
    }

    /// The consistency checks of handbook 3.1.2 on one listing, whose title and description
    /// `scratch` holds folded.
    fn check_consistency(
        &self,
        event: &ListingEvent,
        scratch: &mut Scratch,
        out: &mut Vec<Finding>,
        clock: &mut CheckClock,
    ) {
        let listing = &event.listing;
        let title = listing.title.as_deref().unwrap_or("");
        scratch.contacts.clear();
        self.contact.find(
            &self.lexicon,
            &scratch.title,
            &mut scratch.hits,
            &mut scratch.contacts,
        );
        // Contacts come in order of their start.
        let mut slicer = Slicer::default();
        for contact in &scratch.contacts {
            let evidence = serde_json::json!({
                "contact": contact.kind.as_str(),
                "value": contact.value,
            });
            let text = slicer.slice(title, contact.start, contact.end).to_owned();
            out.extend(self.finding_of(
                Kind::TitleContact,
                "title",
                (contact.start, contact.end, text),
                evidence,
            ));
        }
        clock.lap(Check::Contact);

        self.products.title(
            &self.lexicon,
            &scratch.title,
            &mut scratch.hits,
            &mut scratch.nouns,
            &mut scratch.products,
        );
        self.products.scan(
            &self.lexicon,
            &scratch.description,
            &mut scratch.description_hits,
        );
        product::check(self, listing, scratch, out);
        clock.lap(Check::Product);
        category::check(self, listing, scratch, out);
        clock.lap(Check::Category);
        intent::check(self, listing, scratch, out);
        clock.lap(Check::Intent);
        composition::check(self, listing, scratch, out);
        clock.lap(Check::Composition);
        stock::check(self, listing, out);
        clock.lap(Check::Stock);
    }

    pub fn terms(&self) -> &TermMatcher {
        &self.terms
    }

    /// A finding of a listing-violation kind over characters `start..end` of `original`.
    fn finding_at(
        &self,
        kind: Kind,
        field: &str,
        original: &str,
        start: usize,
        end: usize,
        evidence: serde_json::Value,
    ) -> Option<Finding> {
        let text = original_slice(original, start, end);
        self.finding_of(kind, field, (start, end, text), evidence)
    }

    /// A finding of a listing-violation kind over characters `start..end`, which read `text`.
    fn finding_of(
        &self,
        kind: Kind,
        field: &str,
        (start, end, text): (usize, usize, String),
        evidence: serde_json::Value,
    ) -> Option<Finding> {
        let rule = self.listing.get(kind)?;
        Some(Finding {
            kind,
            rule: rule.rule.clone(),
            field: field.to_owned(),
            start,
            end,
            text,
            action: rule.action,
            points: rule.points,
            evidence: Some(evidence),
        })
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
    duplicates: Box<dyn duplicates::DuplicateState>,
    prices: price::PriceBook,
    /// What the duplicate state learned, kept for a shared state log when one is attached.
    journal: Option<Vec<duplicates::StateChange>>,
}

impl Default for OrderedChecks {
    fn default() -> Self {
        OrderedChecks::new(DUPLICATE_CAPACITY)
    }
}

impl OrderedChecks {
    /// In-memory state remembering at most `duplicate_capacity` live listings.
    pub fn new(duplicate_capacity: usize) -> OrderedChecks {
        OrderedChecks::with_state(Box::new(duplicates::DuplicateIndex::new(
            duplicate_capacity,
        )))
    }

    /// Over a given duplicate state, e.g. one rebuilt from a compacted topic after a restart.
    pub fn with_state(duplicates: Box<dyn duplicates::DuplicateState>) -> OrderedChecks {
        OrderedChecks {
            duplicates,
            prices: price::PriceBook::default(),
            journal: None,
        }
    }

    /// From now on, keeps every change of the duplicate state for [`OrderedChecks::take_changes`].
    pub fn keep_journal(&mut self) {
        self.journal.get_or_insert_with(Vec::new);
    }

    /// The changes of the duplicate state since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<duplicates::StateChange> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Applies a change another worker (or an earlier run) made, without judging anything.
    pub fn apply(&mut self, change: duplicates::StateChange, per_seller: usize) {
        match change {
            duplicates::StateChange::Live(live) => self.duplicates.restore(live, per_seller),
            duplicates::StateChange::Gone(listing) => self.duplicates.remove(&listing),
        }
    }

    fn note(&mut self, change: impl FnOnce() -> duplicates::StateChange) {
        if let Some(journal) = &mut self.journal {
            journal.push(change());
        }
    }

    /// The duplicate state, to snapshot or inspect.
    pub fn duplicate_state(&self) -> &dyn duplicates::DuplicateState {
        self.duplicates.as_ref()
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
        if event.op == Op::Delete {
            self.duplicates.remove(&event.listing.id);
            self.note(|| duplicates::StateChange::Gone(event.listing.id.to_string()));
            return;
        }
        let mut clock = CheckClock::start_ordered();
        self.observe_duplicates(checks, event, inspection);
        clock.lap(Check::Duplicates);

        // After the duplicate check, so that a duplicate's price is not learned either.
        let clean = inspection.findings.is_empty();
        if let Some(finding) = self.prices.observe(checks, event, inspection.price, clean) {
            inspection.findings.push(finding);
        }
        clock.lap(Check::PriceBand);
    }

    fn observe_duplicates(
        &mut self,
        checks: &Checks,
        event: &ListingEvent,
        inspection: &mut Inspection,
    ) {
        let listing = &event.listing;
        let Some(sketch) = inspection.sketch else {
            // Nothing left to compare: the listing is no original any more.
            self.duplicates.remove(&listing.id);
            self.note(|| duplicates::StateChange::Gone(listing.id.to_string()));
            return;
        };
        let rules = &checks.duplicates;
        let live = duplicates::LiveRef {
            seller: &event.seller.id,
            listing: &listing.id,
            sketch,
        };
        let journal = self.journal.is_some().then(|| live.to_owned());
        let Some(duplicate) =
            self.duplicates
                .upsert(live, rules.max_distance, rules.per_seller_capacity)
        else {
            if let Some(live) = journal {
                self.note(|| duplicates::StateChange::Live(live));
            }
            return;
        };
        // A copy is no original: whatever the listing was before, it is not live any more.
        self.note(|| duplicates::StateChange::Gone(listing.id.to_string()));
        let title = listing.title.clone().unwrap_or_default();
        if let Some(mut finding) = checks.listing_finding(Kind::DuplicateText, "title", title) {
            finding.evidence = Some(serde_json::json!({
                "duplicate_of": duplicate.original,
                "seller": event.seller.id,
                "identical": duplicate.identical,
                "distance": duplicate.distance,
                "max_distance": rules.max_distance,
            }));
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
