//! The image metrics of the Prometheus registry, filled by the image check over a real HTTP
//! server on 127.0.0.1: fetches and decodes by outcome, and the size of the image index.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{http, sample};
use loomguard::checks::images::ImageCheck;
use loomguard::checks::Inspection;
use loomguard::contract::ListingEvent;
use loomguard::images::fetch::{FetchSettings, Fetcher};
use loomguard::images::hasher::ImageHasher;
use loomguard::images::state::ImageState;
use loomguard::rules::RuleSet;

/// An image check over an empty index, fetching with `settings`.
fn image_check(rules: &RuleSet, settings: FetchSettings) -> std::sync::Arc<ImageCheck> {
    let fetcher = Fetcher::new(settings).unwrap();
    let hasher = ImageHasher::new(fetcher, rules.images.decode, 100).unwrap();
    ImageCheck::new(
        hasher,
        rules.images.clone(),
        rules.holidays.clone(),
        ImageState::new(),
        None,
    )
}

#[test]
fn fetches_decodes_and_the_index_size_are_counted() {
    let photo = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/images/camera.png"
    ))
    .unwrap();
    let mut files = HashMap::new();
    files.insert("/photo.png".to_owned(), photo);
    files.insert("/notes.jpg".to_owned(), b"not an image".to_vec());
    let server = http::start(files);

    let rules = RuleSet::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/rules"
    )))
    .unwrap();
    let check = image_check(
        &rules,
        FetchSettings {
            allow_loopback: true,
            total_timeout: Duration::from_secs(5),
            ..FetchSettings::default()
        },
    );

    let event: ListingEvent = serde_json::from_value(serde_json::json!({
        "schema": "listing-event/v1", "event_id": "e-img", "op": "upsert",
        "occurred_at": "2026-12-02T09:15:00+08:00", "seller": { "id": "S-img" },
        "listing": { "id": "P-img", "title": "全棉帆布", "images": [
            server.url("/photo.png"), server.url("/notes.jpg"), server.url("/missing.png")
        ]}
    }))
    .unwrap();
    let mut inspection = Inspection::default();
    check.hash_batch(std::iter::once((&event, &mut inspection)));
    let checks = loomguard::checks::Checks::new(&rules).unwrap();
    check.observe(&checks, &event, &mut inspection);
    check.flush();

    assert_eq!(server.hits("/photo.png"), 1);
    let scrape = loomguard::metrics::global().render();
    // The photo and the text file were fetched; the missing one was a 404.
    assert_eq!(
        sample(&scrape, "loomguard_image_fetches_total{outcome=\"ok\"}"),
        2.0
    );
    assert_eq!(
        sample(&scrape, "loomguard_image_fetches_total{outcome=\"error\"}"),
        1.0
    );
    assert_eq!(
        sample(&scrape, "loomguard_image_decodes_total{outcome=\"ok\"}"),
        1.0
    );
    assert_eq!(
        sample(&scrape, "loomguard_image_decodes_total{outcome=\"error\"}"),
        1.0
    );
    assert_eq!(sample(&scrape, "loomguard_image_index_entries"), 1.0);
}

#[test]
fn a_rule_reload_reaches_the_image_thresholds() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"));
    let rules = RuleSet::load(dir).unwrap();
    let check = image_check(&rules, FetchSettings::default());
    let moderator = loomguard::moderator::Moderator::new(std::sync::Arc::new(rules), 1 << 20)
        .unwrap()
        .with_images(check.clone());
    assert_eq!(check.rules().0.infringement_distance, 12);

    let mut reloaded = RuleSet::load(dir).unwrap();
    reloaded.images.infringement_distance = 9;
    moderator
        .replace_rules(std::sync::Arc::new(reloaded))
        .unwrap();
    assert_eq!(check.rules().0.infringement_distance, 9);
}
