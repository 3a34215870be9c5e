//! The image index on a compacted topic, against a real broker (`LOOMGUARD_TEST_BROKERS`;
//! without it these tests say they are skipped and pass): complaints registered through one
//! worker's API reach the workers running beside it and those started after it, a complaint's
//! suppressions go to the decision topic, and a deleted listing stays out of a restarted
//! worker's index.
//!
//! Listing images are `file://` URLs of tests/data/images photos under each worker's
//! `--image-root`; the workers are child processes serving `--listen`.

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use common::kafka::{create_topics, decisions_by_event, produce, unique, Reader, Record};
use common::service::Service;
use image::ImageFormat;
use serde_json::{json, Value};

const TOKEN: &str = "kafka-images-token";

/// The topics of one test: inputs of two consumer groups, shared output and image index.
struct Topics {
    input_a: String,
    input_b: String,
    output: String,
    dead: String,
    images: String,
    state: String,
}

fn topics(test: &str, brokers: &str) -> Topics {
    let topics = Topics {
        input_a: unique("in-a", test),
        input_b: unique("in-b", test),
        output: unique("out", test),
        dead: unique("dead", test),
        images: unique("images", test),
        state: unique("state", test),
    };
    create_topics(
        brokers,
        &[
            (&topics.input_a, 2),
            (&topics.input_b, 2),
            (&topics.output, 2),
            (&topics.dead, 1),
        ],
    );
    topics
}

/// A worker of `group` reading `input`, with the complaint API.
fn worker(brokers: &str, topics: &Topics, group: &str, input: &str, root: &Path) -> Service {
    let service = Service::start_kafka_with_images(
        TOKEN,
        &[
            "--brokers",
            brokers,
            "--group-id",
            group,
            "--input-topic",
            input,
            "--output-topic",
            &topics.output,
            "--dead-letter-topic",
            &topics.dead,
            "--state-topic",
            &topics.state,
            "--image-topic",
            &topics.images,
            "--image-root",
            root.to_str().unwrap(),
            "--linger-ms",
            "5",
        ],
    );
    service.wait_ready();
    service
}

fn png(image: &image::DynamicImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    bytes
}

/// A directory of listing photos: the camera, the camera at half size, the coins.
fn photos() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let camera = image::open(common::data("images/camera.png")).unwrap();
    let coins = image::open(common::data("images/coins.png")).unwrap();
    std::fs::write(dir.path().join("camera.png"), png(&camera)).unwrap();
    let half = camera.resize_exact(256, 256, image::imageops::FilterType::Triangle);
    std::fs::write(dir.path().join("camera-half.png"), png(&half)).unwrap();
    std::fs::write(dir.path().join("coins.png"), png(&coins)).unwrap();
    dir
}

fn url(root: &Path, name: &str) -> String {
    reqwest::Url::from_file_path(root.join(name))
        .unwrap()
        .to_string()
}

/// An upsert of `listing` by `seller` with `images`, keyed by seller.
fn upsert(id: &str, seller: &str, listing: &str, images: &[String]) -> (String, String) {
    let line = json!({
        "schema": "listing-event/v1", "event_id": id, "op": "upsert",
        "occurred_at": "2026-12-02T09:00:00+08:00",
        "seller": {"id": seller},
        "listing": {"id": listing, "version": 1, "intent": "supply",
                    "title": format!("全棉府绸 40s×40s 133×72 幅宽150cm {listing}"),
                    "category": ["面料", "棉类面料"], "attributes": {"成分": "100%棉", "型号": listing},
                    "description": "精梳全棉府绸", "stock": 100, "images": images}
    });
    (seller.to_owned(), line.to_string())
}

fn delete(id: &str, seller: &str, listing: &str) -> (String, String) {
    let line = json!({
        "schema": "listing-event/v1", "event_id": id, "op": "delete",
        "occurred_at": "2026-12-02T09:00:00+08:00", "seller": {"id": seller},
        "listing": {"id": listing}
    });
    (seller.to_owned(), line.to_string())
}

/// Reads the output topic on until every event of `events` has its decision.
fn decisions(reader: &Reader, read: &mut Vec<Record>, events: &[&str]) -> Vec<Value> {
    let found = reader.read_until(read, Duration::from_secs(90), |read| {
        let decided = decisions_by_event(read);
        events.iter().all(|e| decided.contains_key(*e))
    });
    let decided = decisions_by_event(read);
    assert!(found, "waited for {events:?}; decided {:?}", decided.keys());
    events.iter().map(|e| decided[*e].clone()).collect()
}

fn kinds(decision: &Value) -> Vec<&str> {
    decision["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect()
}

fn infringed_complaint(decision: &Value) -> Option<&str> {
    decision["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "infringement")
        .and_then(|f| f["evidence"]["complaint"].as_str())
}

fn json_of(answer: &(u16, String)) -> Value {
    serde_json::from_str(&answer.1).unwrap_or_else(|_| Value::String(answer.1.clone()))
}

fn listing_ids(matches: &Value) -> Vec<String> {
    let mut ids: Vec<String> = matches
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["listing_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_complaint_registered_on_one_worker_reaches_running_and_later_workers() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let topics = topics("complaint", &brokers);
    let photos = photos();
    let root = photos.path();
    let (group_a, group_b) = (
        unique("group-a", "complaint"),
        unique("group-b", "complaint"),
    );

    // Two workers of two groups share the image index topic; each decides its own input.
    let a = worker(&brokers, &topics, &group_a, &topics.input_a, root);
    let b = worker(&brokers, &topics, &group_b, &topics.input_b, root);
    produce(
        &brokers,
        &topics.input_a,
        &[
            upsert("e1", "S1", "P1", &[url(root, "camera.png")]),
            upsert("e2", "S2", "P2", &[url(root, "coins.png")]),
        ],
    );
    let output = Reader::new(&brokers, &topics.output);
    let mut read = Vec::new();
    let first = decisions(&output, &mut read, &["e1", "e2"]);
    assert!(first.iter().all(|d| !kinds(d).contains(&"infringement")));

    // The complaint, on worker A, with the camera's mirror image.
    let camera = image::open(common::data("images/camera.png")).unwrap();
    let original = base64::engine::general_purpose::STANDARD.encode(png(&camera.fliph()));
    let complaint = json!({"complaint_id": "C1", "rights_holder": "Acme Textiles",
                           "originals": [{"name": "camera-original.png", "base64": original}]});
    let answer = a.post("/v1/complaints", TOKEN, &complaint);
    let registered = json_of(&answer);
    assert_eq!(answer.0, 201, "{registered}");
    assert_eq!(listing_ids(&registered["matches"]), ["P1"]);
    assert_eq!(registered["suppressed"], 1);

    // Its suppression is on the decision topic.
    let suppression = &decisions(&output, &mut read, &["complaint:C1"])[0];
    assert_eq!(suppression["listing_id"], "P1");
    assert_eq!(suppression["action"], "suppress");
    assert_eq!(infringed_complaint(suppression), Some("C1"));
    assert!(suppression["appeal_deadline"].is_string(), "{suppression}");
    let key = read
        .iter()
        .find(|r| {
            r.value.as_deref().is_some_and(|v| {
                serde_json::from_slice::<Value>(v).unwrap()["event_id"] == "complaint:C1"
            })
        })
        .map(|r| r.key.clone());
    assert_eq!(
        key.as_deref(),
        Some("P1"),
        "decisions are keyed by listing id"
    );

    // Worker B, running all along, learns the complaint from the topic as soon as its tail
    // reads it; then a copy in its own stream infringes, and it lists A's listing P1 among the
    // matches too.
    let started = std::time::Instant::now();
    while b.get_authorized("/v1/complaints/C1/matches", TOKEN).0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "worker B never learned complaint C1"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "worker B learned the complaint {:?} after it was registered",
        started.elapsed()
    );
    produce(
        &brokers,
        &topics.input_b,
        &[upsert("e3", "S3", "P3", &[url(root, "camera-half.png")])],
    );
    let on_b = &decisions(&output, &mut read, &["e3"])[0];
    assert_eq!(infringed_complaint(on_b), Some("C1"), "{on_b}");
    assert_eq!(on_b["action"], "suppress");
    let matches = json_of(&b.get_authorized("/v1/complaints/C1/matches", TOKEN));
    assert_eq!(listing_ids(&matches["matches"]), ["P1", "P3"], "{matches}");

    // A worker started after the complaint replays it before it is ready.
    a.signal("TERM");
    assert!(a.finish().success());
    let c = worker(&brokers, &topics, &group_a, &topics.input_a, root);
    let replayed = json_of(&c.get_authorized("/v1/complaints/C1/matches", TOKEN));
    assert_eq!(replayed["rights_holder"], "Acme Textiles", "{replayed}");
    assert_eq!(listing_ids(&replayed["matches"]), ["P1", "P3"]);
    produce(
        &brokers,
        &topics.input_a,
        &[upsert("e4", "S4", "P4", &[url(root, "camera.png")])],
    );
    let on_c = &decisions(&output, &mut read, &["e4"])[0];
    assert_eq!(infringed_complaint(on_c), Some("C1"), "{on_c}");
    // Registering the same complaint on the new worker is refused: it knows it.
    assert_eq!(c.post("/v1/complaints", TOKEN, &complaint).0, 409);

    for worker in [b, c] {
        worker.signal("TERM");
        assert!(worker.finish().success());
    }
}

#[test]
fn a_deleted_listing_stays_out_of_a_restarted_workers_index() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let topics = topics("delete", &brokers);
    let photos = photos();
    let root = photos.path();
    let group = unique("group", "delete");

    let first = worker(&brokers, &topics, &group, &topics.input_a, root);
    produce(
        &brokers,
        &topics.input_a,
        &[
            upsert("e1", "S1", "P1", &[url(root, "camera.png")]),
            upsert("e2", "S1", "P2", &[url(root, "coins.png")]),
            delete("e3", "S1", "P1"),
        ],
    );
    let output = Reader::new(&brokers, &topics.output);
    let mut read = Vec::new();
    decisions(&output, &mut read, &["e1", "e2", "e3"]);
    assert_eq!(first.get_authorized("/v1/listings/P1/images", TOKEN).0, 404);
    first.signal("TERM");
    assert!(first.finish().success());

    // On the topic: P1's images, then its tombstone, under one key; P2's images.
    let index = Reader::new(&brokers, &topics.images);
    let mut records = Vec::new();
    let complete = index.read_until(&mut records, Duration::from_secs(30), |records| {
        records.len() >= 3
    });
    assert!(complete, "{records:?}");
    let p1: Vec<&Record> = records.iter().filter(|r| r.key == "listing/P1").collect();
    assert_eq!(p1.len(), 2, "{records:?}");
    assert!(p1[0].value.is_some() && p1[1].value.is_none());
    let p2: Vec<Value> = records
        .iter()
        .filter(|r| r.key == "listing/P2")
        .filter_map(|r| r.value.as_deref())
        .map(|v| serde_json::from_slice(v).unwrap())
        .collect();
    assert_eq!(p2.len(), 1);
    assert_eq!(
        (p2[0]["schema"].as_str(), p2[0]["record"].as_str()),
        (Some("image-index/v2"), Some("listing"))
    );

    // The restarted worker replays P2 but not P1.
    let again = worker(&brokers, &topics, &group, &topics.input_a, root);
    assert_eq!(again.get_authorized("/v1/listings/P1/images", TOKEN).0, 404);
    let (status, p2) = again.get_authorized("/v1/listings/P2/images", TOKEN);
    assert_eq!(status, 200, "{p2}");
    produce(
        &brokers,
        &topics.input_a,
        &[
            upsert("e4", "S1", "P4", &[url(root, "camera.png")]),
            upsert("e5", "S1", "P5", &[url(root, "coins.png")]),
        ],
    );
    let later = decisions(&output, &mut read, &["e4", "e5"]);
    // The seller's deleted listing is no longer there to be repeated; the live one is.
    assert!(
        !kinds(&later[0]).contains(&"duplicate.image"),
        "{}",
        later[0]
    );
    let duplicate = later[1]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "duplicate.image")
        .unwrap_or_else(|| panic!("P5 repeats P2's photo: {}", later[1]));
    assert_eq!(duplicate["evidence"]["duplicate_of"], "P2");
    again.signal("TERM");
    assert!(again.finish().success());
}
