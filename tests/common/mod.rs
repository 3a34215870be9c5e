//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod http;
pub mod kafka;
pub mod service;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use loomguard::checks::Scratch;
use loomguard::contract::{Decision, ListingEvent};
use loomguard::decode::decode;
use loomguard::moderator::Moderator;
use loomguard::rules::RuleSet;

/// One line of `tests/data/cases.expected.jsonl`: what a labelled case must come to.
#[derive(serde::Deserialize)]
pub struct Expected {
    pub event_id: String,
    pub action: String,
    pub kinds: Vec<String>,
    pub absent_kinds: Vec<String>,
    #[serde(default)]
    pub points: Option<u32>,
    #[serde(default)]
    pub note: String,
}

/// `LOOMGUARD_TEST_BROKERS`, or `None` (and a note on stderr) when no broker is given.
pub fn brokers() -> Option<String> {
    let brokers = std::env::var("LOOMGUARD_TEST_BROKERS")
        .ok()
        .filter(|b| !b.is_empty());
    if brokers.is_none() {
        eprintln!("skipped: set LOOMGUARD_TEST_BROKERS=host:port to run the Kafka tests (.ci/kafka/start starts a broker)");
    }
    brokers
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn data(name: &str) -> PathBuf {
    repo().join("tests/data").join(name)
}

/// The moderator over the project's own `rules/`.
pub fn moderator() -> Moderator {
    let rules = RuleSet::load(&repo().join("rules")).unwrap_or_else(|err| panic!("{err}"));
    Moderator::new(Arc::new(rules), 1024 * 1024).expect("the project's rules compile")
}

pub fn decide(moderator: &Moderator, line: &str) -> Decision {
    let decoded = decode(line.as_bytes()).unwrap_or_else(|err| panic!("{line}: {err:?}"));
    moderator.decide(
        &decoded,
        &mut Scratch::default(),
        "2026-12-02T09:15:00.000Z".to_owned(),
    )
}

/// A minimal upsert whose `field` (title, description or attribute) holds `text`.
pub fn event_with(field: &str, text: &str, licences: &[&str]) -> ListingEvent {
    let mut event: ListingEvent = serde_json::from_value(serde_json::json!({
        "schema": "listing-event/v1",
        "event_id": "e-test",
        "op": "upsert",
        "occurred_at": "2026-12-02T09:15:00+08:00",
        "seller": { "id": "S-test", "licences": licences },
        "listing": { "id": "P-test", "version": 1, "intent": "supply", "title": "" }
    }))
    .expect("the test event is well formed");
    match field {
        "title" => event.listing.title = Some(text.to_owned()),
        "description" => event.listing.description = text.to_owned(),
        "attribute" => {
            event.listing.attributes.insert("成分".into(), text.into());
        }
        other => panic!("unknown field {other}"),
    }
    event
}

pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The value of one sample line of a Prometheus scrape, e.g.
/// `loomguard_image_fetches_total{outcome="ok"}`.
pub fn sample(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in the scrape:\n{scrape}"))
}
