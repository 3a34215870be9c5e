//! `duplicate.image` through the image check, over a real HTTP server on 127.0.0.1: a seller's
//! mirrored or cropped copy of their own photo is a repeated image, whichever came first;
//! another seller's copy, or another photo, is not.

#[path = "common/http.rs"]
mod http;

use std::collections::HashMap;
use std::time::Duration;

use image::DynamicImage;
use loomguard::checks::images::ImageCheck;
use loomguard::checks::{Checks, Inspection};
use loomguard::contract::ListingEvent;
use loomguard::images::fetch::{FetchSettings, Fetcher};
use loomguard::images::hasher::ImageHasher;
use loomguard::images::state::ImageState;
use loomguard::rules::RuleSet;

fn photo(name: &str) -> DynamicImage {
    image::open(format!(
        "{}/tests/data/images/{name}.png",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// `image` as a listing's q90 JPEG.
fn jpeg(image: &DynamicImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90);
    image.to_rgb8().write_with_encoder(encoder).unwrap();
    bytes
}

/// `image` with `share` of its width and height cut off each side.
fn crop(image: &DynamicImage, share: f64) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    let (dx, dy) = ((f64::from(w) * share) as u32, (f64::from(h) * share) as u32);
    image.crop_imm(dx, dy, w - 2 * dx, h - 2 * dy)
}

#[test]
fn mirrored_and_cropped_copies_are_a_sellers_repeated_images() {
    let camera = photo("camera");
    let mut files = HashMap::new();
    files.insert("/cropped.jpg".to_owned(), jpeg(&crop(&camera, 0.05)));
    files.insert("/camera.jpg".to_owned(), jpeg(&camera));
    files.insert("/mirrored.jpg".to_owned(), jpeg(&camera.fliph()));
    files.insert("/coins.jpg".to_owned(), jpeg(&photo("coins")));
    let server = http::start(files);

    let rules = RuleSet::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/rules"
    )))
    .unwrap();
    let settings = FetchSettings {
        allow_loopback: true,
        total_timeout: Duration::from_secs(5),
        ..FetchSettings::default()
    };
    let hasher = ImageHasher::new(Fetcher::new(settings).unwrap(), rules.images.decode, 100);
    let check = ImageCheck::new(
        hasher.unwrap(),
        rules.images.clone(),
        rules.holidays.clone(),
        ImageState::new(),
        None,
    );
    let checks = Checks::new(&rules).unwrap();

    // In this order: the cropped copy first, so that the whole photo after it is found
    // through its own inset crops.
    let listings = [
        ("P1", "S1", "/cropped.jpg"),
        ("P2", "S1", "/camera.jpg"),
        ("P3", "S1", "/mirrored.jpg"),
        ("P4", "S2", "/mirrored.jpg"),
        ("P5", "S1", "/coins.jpg"),
    ];
    let mut duplicates = Vec::new();
    for (n, (listing, seller, path)) in listings.iter().enumerate() {
        let event: ListingEvent = serde_json::from_value(serde_json::json!({
            "schema": "listing-event/v1", "event_id": format!("e{n}"), "op": "upsert",
            "occurred_at": "2026-12-02T09:15:00+08:00", "seller": { "id": seller },
            "listing": { "id": listing, "title": "全棉帆布", "images": [server.url(path)] }
        }))
        .unwrap();
        let mut inspection = Inspection::default();
        check.hash_batch(std::iter::once((&event, &mut inspection)));
        check.observe(&checks, &event, &mut inspection);
        let found: Vec<(String, u64)> = inspection
            .findings
            .iter()
            .filter(|f| f.kind.as_str() == "duplicate.image")
            .map(|f| {
                let evidence = f.evidence.as_ref().unwrap();
                (
                    evidence["duplicate_of"].as_str().unwrap().to_owned(),
                    evidence["distance"].as_u64().unwrap(),
                )
            })
            .collect();
        duplicates.push((*listing, found));
    }
    let of = |listing: &str| {
        duplicates
            .iter()
            .find(|(l, _)| *l == listing)
            .map(|(_, found)| found.clone())
            .unwrap()
    };
    // P4's image is P3's URL: fetched once, then hashed from the cache.
    assert_eq!(server.hits("/mirrored.jpg"), 1);
    assert_eq!(of("P1"), []);
    // The whole photo after its crop, then its mirror image after both: each is reported
    // against the nearest earlier listing (one finding per image).
    let p2 = of("P2");
    assert_eq!(p2.len(), 1);
    assert_eq!(p2[0].0, "P1");
    // 4 bits: the photo's 5 % inset crop against the cropped copy (threshold 10).
    assert_eq!(p2[0].1, 4);
    let p3 = of("P3");
    assert_eq!(p3.len(), 1);
    // The mirror image's own inset crop is P1's mirror image, as P2 is its mirror image: both
    // 0 bits off, and the tie goes to the first listing id.
    assert_eq!(p3[0], ("P1".to_owned(), 0));
    assert_eq!(of("P4"), [], "another seller's copy");
    assert_eq!(of("P5"), [], "another photo");
}
