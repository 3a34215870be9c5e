//! Listings naming too many images, against a real HTTP server on 127.0.0.1: past
//! `max_images` in `rules/images.toml` they are counted and never requested, and a URL named
//! again is fetched once. A file of its own, as the metrics registry is one per process.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::{http, sample};
use loomguard::checks::images::ImageCheck;
use loomguard::checks::{Checks, Inspection};
use loomguard::contract::ListingEvent;
use loomguard::images::fetch::{FetchSettings, Fetcher};
use loomguard::images::hasher::ImageHasher;
use loomguard::images::state::ImageState;
use loomguard::rules::RuleSet;

#[test]
fn images_past_the_listing_limit_are_counted_and_never_fetched() {
    let photos = [
        "camera.png",
        "coins.png",
        "horse.png",
        "moon.png",
        "brick.png",
    ];
    let mut files = HashMap::new();
    for photo in photos {
        let path = format!("{}/tests/data/images/{photo}", env!("CARGO_MANIFEST_DIR"));
        files.insert(format!("/{photo}"), std::fs::read(path).unwrap());
    }
    let server = http::start(files);

    let mut rules = RuleSet::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/rules"
    )))
    .unwrap();
    assert_eq!(rules.images.max_images_per_listing, 32);
    rules.images.max_images_per_listing = 2;
    let fetcher = Fetcher::new(FetchSettings {
        allow_loopback: true,
        total_timeout: Duration::from_secs(5),
        ..FetchSettings::default()
    })
    .unwrap();
    let check = ImageCheck::new(
        ImageHasher::new(fetcher, rules.images.decode, 100).unwrap(),
        rules.images.clone(),
        rules.holidays.clone(),
        ImageState::new(),
        None,
    );

    let urls: Vec<String> = photos
        .iter()
        .map(|p| server.url(&format!("/{p}")))
        .collect();
    let event: ListingEvent = serde_json::from_value(serde_json::json!({
        "schema": "listing-event/v1", "event_id": "e-many", "op": "upsert",
        "occurred_at": "2026-12-02T09:15:00+08:00", "seller": { "id": "S-many" },
        "listing": { "id": "P-many", "title": "全棉帆布", "images": urls }
    }))
    .unwrap();
    let mut inspection = Inspection::default();
    check.hash_batch(std::iter::once((&event, &mut inspection)));
    check.observe(&Checks::new(&rules).unwrap(), &event, &mut inspection);

    let hits: Vec<usize> = photos
        .iter()
        .map(|p| server.hits(&format!("/{p}")))
        .collect();
    assert_eq!(hits, [1, 1, 0, 0, 0]);
    let hashed: Vec<&str> = inspection.images.iter().map(|i| i.url.as_str()).collect();
    assert_eq!(hashed, [urls[0].as_str(), urls[1].as_str()]);
    assert!(inspection.images.iter().all(|i| i.result.is_ok()));
    let counts = check.counts();
    assert_eq!(counts.hashed, 2);
    assert_eq!(
        counts.problems,
        BTreeMap::from([("listing.over_limit".to_owned(), 3)])
    );
    let indexed: Vec<String> = check
        .state()
        .listing("P-many")
        .unwrap()
        .images
        .iter()
        .map(|i| i.url.clone())
        .collect();
    assert_eq!(indexed, [urls[0].clone(), urls[1].clone()]);

    let scrape = loomguard::metrics::global().render();
    assert_eq!(
        sample(&scrape, "loomguard_image_fetches_total{outcome=\"ok\"}"),
        2.0
    );
    assert_eq!(
        sample(
            &scrape,
            "loomguard_image_fetches_total{outcome=\"over_limit\"}"
        ),
        3.0
    );
}

#[test]
fn a_url_named_again_in_a_batch_is_fetched_once_whether_or_not_it_fails() {
    let photo = format!(
        "{}/tests/data/images/camera.png",
        env!("CARGO_MANIFEST_DIR")
    );
    let files = HashMap::from([("/camera.png".to_owned(), std::fs::read(photo).unwrap())]);
    let server = http::start(files);
    let fetcher = Fetcher::new(FetchSettings {
        allow_loopback: true,
        ..FetchSettings::default()
    })
    .unwrap();
    let limits = RuleSet::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/rules"
    )))
    .unwrap()
    .images
    .decode;
    let hasher = ImageHasher::new(fetcher, limits, 100).unwrap();
    let (found, missing) = (server.url("/camera.png"), server.url("/missing.png"));
    let urls: Vec<&str> = [&found, &missing, &missing, &found, &missing]
        .map(String::as_str)
        .to_vec();

    let results = hasher.hash_all(&urls);

    assert_eq!(server.hits("/camera.png"), 1);
    assert_eq!(server.hits("/missing.png"), 1);
    let codes: Vec<String> = results
        .iter()
        .map(|r| r.as_ref().map_or_else(|p| p.code(), |_| "ok".to_owned()))
        .collect();
    assert_eq!(
        codes,
        [
            "ok",
            "fetch.http_status",
            "fetch.http_status",
            "ok",
            "fetch.http_status"
        ]
    );
    assert_eq!(results[0], results[3]);
}
