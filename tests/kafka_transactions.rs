//! Exactly-once mode when a transaction fails, against a real broker (`LOOMGUARD_TEST_BROKERS`;
//! without it the test says it is skipped and passes).
//!
//! The broker itself makes the transaction fail: the dead-letter topic is created with a
//! `max.message.bytes` smaller than the dead letter of a poison message, so the broker refuses
//! that record, librdkafka puts the transaction in its abortable state and the worker aborts
//! it. Once the test has seen the abort it raises the limit, as an operator would, and the
//! batch goes through on a later attempt.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::kafka::{
    alter_topic, create_topic_with, create_topics, produce, read_all, unique, Reader, Record,
};
use common::service::Service;
use serde_json::json;

/// Listings with an image each, then the poison.
const LISTINGS: usize = 60;

/// Every listing image is one of these, under `tests/data/images`.
const PHOTOS: [&str; 3] = ["camera.png", "coins.png", "moon.png"];

/// An upsert of listing `n` with one photo, keyed by its seller.
fn listing(n: usize) -> (String, Vec<u8>) {
    let seller = format!("S{}", n % 5);
    let photo = common::data("images").join(PHOTOS[n % PHOTOS.len()]);
    let url = reqwest::Url::from_file_path(photo).unwrap().to_string();
    let line = json!({
        "schema": "listing-event/v1", "event_id": format!("e{n}"), "op": "upsert",
        "occurred_at": "2026-12-02T09:15:00+08:00",
        "seller": {"id": seller, "licences": []},
        "listing": {"id": format!("L{n}"), "version": 1, "intent": "supply",
                    "title": format!("全棉府绸 40s×40s 133×72 L{n}"),
                    "category": ["面料", "棉类面料"], "attributes": {"成分": "100%棉", "型号": format!("L{n}")},
                    "description": "精梳全棉府绸", "stock": 100, "images": [url],
                    "price": {"amount": 9.6, "currency": "CNY", "unit": "米"}}
    });
    (seller, line.to_string().into_bytes())
}

/// Malformed JSON of 20 kB that does not compress: its dead letter, which keeps it, passes
/// the dead-letter topic's first limit whatever the producer's compression.
fn poison() -> (String, Vec<u8>) {
    let mut rng = fastrand::Rng::with_seed(6);
    let noise: String = (0..20_000).map(|_| rng.alphanumeric()).collect();
    (
        "S-poison".to_owned(),
        format!("{{\"noise\": \"{noise}").into_bytes(),
    )
}

/// The records of `read` by key, their values as JSON (`None` for a tombstone).
fn by_key(read: &[Record]) -> BTreeMap<String, Vec<Option<serde_json::Value>>> {
    let mut keyed: BTreeMap<String, Vec<Option<serde_json::Value>>> = BTreeMap::new();
    for record in read {
        let value = record.value.as_deref().map(|v| {
            serde_json::from_slice(v)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(v).into_owned()))
        });
        keyed.entry(record.key.clone()).or_default().push(value);
    }
    keyed
}

#[test]
fn an_aborted_transaction_is_never_read_committed_and_its_state_records_go_with_the_retry() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let test = "abort";
    let (input, output, dead) = (
        unique("in", test),
        unique("out", test),
        unique("dead", test),
    );
    let (state, images, group) = (
        unique("state", test),
        unique("images", test),
        unique("group", test),
    );
    // One input partition, so that the poison comes after every listing and the first fetch
    // brings them all: the batch that fails holds every listing's state records.
    create_topics(&brokers, &[(&input, 1), (&output, 2)]);
    create_topic_with(&brokers, &dead, 1, &[("max.message.bytes", "2048")]);
    let mut records: Vec<(String, Vec<u8>)> = (0..LISTINGS).map(listing).collect();
    records.push(poison());
    produce(&brokers, &input, &records);

    let root = common::data("images");
    let worker = Service::start_kafka_with_images(
        "transactions-token",
        &[
            "--brokers",
            &brokers,
            "--group-id",
            &group,
            "--input-topic",
            &input,
            "--output-topic",
            &output,
            "--dead-letter-topic",
            &dead,
            "--state-topic",
            &state,
            "--image-topic",
            &images,
            "--image-root",
            root.to_str().unwrap(),
            "--exactly-once",
        ],
    );

    // The first attempt fails on the dead letter; only then may the broker take it.
    let failed = worker.wait_for_log("transaction failed; aborting", Duration::from_secs(120));
    assert!(
        failed.contains(&format!("events={}", LISTINGS + 1)),
        "the batch that failed did not hold every event, so it does not test what it should: {failed}"
    );
    alter_topic(&brokers, &dead, "max.message.bytes", "1048588");

    let reader = Reader::new(&brokers, &output);
    let mut decided = Vec::new();
    let all_decided = reader.read_until(&mut decided, Duration::from_secs(120), |read| {
        common::kafka::decisions_by_event(read).len() == LISTINGS
    });
    worker.signal("TERM");
    let log = worker.stderr.lock().unwrap().join("\n");
    assert!(all_decided, "not every listing was decided\n{log}");
    let status = worker.finish();
    assert!(status.success(), "{status}");

    // Each decision and the dead letter once for a committed reader, though the aborted
    // attempt's records are in the log: an uncommitted reader sees them.
    let committed = common::kafka::values(&read_all(&brokers, &output, "read_committed"));
    let mut events: Vec<&str> = committed
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    events.sort_unstable();
    let mut expected: Vec<String> = (0..LISTINGS).map(|n| format!("e{n}")).collect();
    expected.sort_unstable();
    assert_eq!(events, expected, "{log}");
    let letters = common::kafka::values(&read_all(&brokers, &dead, "read_committed"));
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["reason"], "malformed_json");
    let uncommitted = read_all(&brokers, &output, "read_uncommitted");
    assert!(
        uncommitted.len() > LISTINGS,
        "no aborted attempt reached the decision topic: {} records\n{log}",
        uncommitted.len()
    );

    // The state records of the aborted attempt went with a committed one: every listing is
    // live in the duplicate state and has its image in the index.
    let listings = by_key(&read_all(&brokers, &state, "read_committed"));
    let index = by_key(&read_all(&brokers, &images, "read_committed"));
    for n in 0..LISTINGS {
        let live = listings
            .get(&format!("L{n}"))
            .and_then(|v| v.last().cloned());
        assert!(
            matches!(&live, Some(Some(value)) if value["listing"] == format!("L{n}")),
            "L{n} is not live in the state topic: {live:?}"
        );
        let indexed = index.get(&format!("listing/L{n}"));
        assert!(
            matches!(indexed, Some(values) if values.iter().all(Option::is_some)),
            "L{n} has no image record in the image index topic: {indexed:?}\n{log}"
        );
    }
}
