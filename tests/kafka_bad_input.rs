//! Kafka mode on bad input, against a real broker (`LOOMGUARD_TEST_BROKERS`; without it these
//! tests say they are skipped and pass): messages too large, keyless or escaping badly become
//! dead letters or decisions and their partition flows on, an event whose decision would be
//! too large to send is decided in short, and a worker started before its topics exist creates
//! its output topics and waits for its input topic.

mod common;

use std::time::Duration;

use common::kafka::{create_topic_with, create_topics, unique, Reader, Record};
use common::service::Service;
use loomguard::moderator::{MAX_DECISION_BYTES, SHORT_TEXT_CHARS};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

struct Topics {
    input: String,
    output: String,
    dead: String,
    group: String,
}

fn names(test: &str) -> Topics {
    Topics {
        input: unique("in", test),
        output: unique("out", test),
        dead: unique("dead", test),
        group: unique("group", test),
    }
}

fn worker(brokers: &str, topics: &Topics) -> Service {
    Service::start_kafka(&[
        "--brokers",
        brokers,
        "--group-id",
        &topics.group,
        "--input-topic",
        &topics.input,
        "--output-topic",
        &topics.output,
        "--dead-letter-topic",
        &topics.dead,
        "--no-state-topic",
        "--linger-ms",
        "5",
    ])
}

fn event(id: &str, listing: &str) -> Vec<u8> {
    event_titled(id, listing, &format!("全棉府绸 40s×40s 133×72 {listing}"))
}

fn event_titled(id: &str, listing: &str, title: &str) -> Vec<u8> {
    serde_json::json!({
        "schema": "listing-event/v1", "event_id": id, "op": "upsert",
        "occurred_at": "2026-12-02T09:15:00+08:00",
        "seller": {"id": "S-bad", "licences": []},
        "listing": {"id": listing, "version": 1, "intent": "supply",
                    "title": title,
                    "category": ["面料", "棉类面料"], "attributes": {"成分": "100%棉"},
                    "description": "", "stock": 100, "images": []}
    })
    .to_string()
    .into_bytes()
}

/// Produces `(key, payload)` records in order, a `None` key as a message without one, through
/// a producer that takes messages up to 32 MB.
fn produce(brokers: &str, topic: &str, records: &[(Option<&str>, Vec<u8>)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("message.max.bytes", "33554432")
        .create()
        .unwrap();
    for (key, payload) in records {
        let mut record = BaseRecord::<str, [u8]>::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        producer.send(record).map_err(|(error, _)| error).unwrap();
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("the test records are acknowledged");
}

/// Reads `topic` until it holds `count` records, at most 90 s.
fn read(brokers: &str, topic: &str, count: usize, worker: &Service) -> Vec<Record> {
    let mut read = Vec::new();
    let done = Reader::new(brokers, topic)
        .read_until(&mut read, Duration::from_secs(90), |r| r.len() >= count);
    assert!(
        done,
        "{topic}: {} of {count} records\n{}",
        read.len(),
        worker.stderr.lock().unwrap().join("\n")
    );
    read
}

fn stop(worker: Service) {
    worker.signal("TERM");
    let log = worker.stderr.lock().unwrap().join("\n");
    let status = worker.finish();
    assert!(status.success(), "{status}\n{log}");
}

#[test]
fn oversized_keyless_and_badly_escaping_messages_become_dead_letters_and_the_partition_flows_on() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let topics = names("bad-input");
    // The input topic takes what the platform might one day send by mistake: 20 MB.
    create_topic_with(
        &brokers,
        &topics.input,
        1,
        &[("max.message.bytes", "33554432")],
    );
    create_topics(&brokers, &[(&topics.output, 1), (&topics.dead, 1)]);
    let worker = worker(&brokers, &topics);
    let huge_title = format!("新款热卖{}", "\u{1}".repeat(160_000));
    produce(
        &brokers,
        &topics.input,
        &[
            (Some("S-bad"), event("e-first", "P1")),
            // 20 MB: over the 1 MiB event limit, and a dead letter keeping all of it would be
            // over the broker's message limit.
            (Some("S-bad"), vec![b'x'; 20 * 1024 * 1024]),
            // No key: a decision is keyed by listing anyway.
            (None, event("e-keyless", "P2")),
            // A title of 160,000 control characters, which JSON writes six bytes each, that
            // names no product, twice: the copy's decision quotes it in two findings (no
            // product, duplicate), 1.9 MB in all, over what the producer sends (1 MB) unless
            // the decision is shortened.
            (Some("S-bad"), event_titled("e-huge", "P4", &huge_title)),
            (Some("S-bad"), event_titled("e-copy", "P5", &huge_title)),
            (None, b"not json".to_vec()),
            // Control characters are valid UTF-8 that JSON writes six bytes each: kept whole
            // (256 KiB), the dead letter would pass what the producer accepts.
            (Some("S-bad"), vec![0x01; 300 * 1024]),
            (Some("S-bad"), event("e-last", "P3")),
        ],
    );

    let decided = read(&brokers, &topics.output, 5, &worker);
    let copy_bytes = decided[3].value.as_ref().map_or(0, Vec::len);
    let decided = common::kafka::values(&decided);
    let dead = read(&brokers, &topics.dead, 3, &worker);
    stop(worker);

    let events: Vec<&str> = decided
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["e-first", "e-keyless", "e-huge", "e-copy", "e-last"]
    );
    assert_eq!(decided[1]["listing_id"], "P2");
    assert!(copy_bytes <= MAX_DECISION_BYTES, "{copy_bytes}");
    let findings: Vec<(&str, &serde_json::Value)> = decided[3]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap(), f))
        .collect();
    let kinds: Vec<&str> = findings.iter().map(|(kind, _)| *kind).collect();
    assert_eq!(kinds, ["title.no_product", "duplicate.text"]);
    let kept: String = huge_title.chars().take(SHORT_TEXT_CHARS).collect();
    for (_, finding) in findings {
        assert_eq!(
            (&finding["start"], &finding["end"]),
            (&0.into(), &160_004.into())
        );
        assert_eq!(finding["text"], format!("{kept}…"));
    }

    let keys: Vec<&str> = dead.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["S-bad", "", "S-bad"]);
    let letters = common::kafka::values(&dead);
    let reasons: Vec<&str> = letters
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["too_large", "malformed_json", "malformed_json"]);
    assert_eq!(letters[0]["original_bytes"], 20 * 1024 * 1024);
    assert_eq!(letters[0]["truncated"], true);
    assert_eq!(letters[2]["original_bytes"], 300 * 1024);
    assert_eq!(letters[2]["truncated"], true);
    let kept = letters[2]["original"].as_str().unwrap();
    assert!(
        !kept.is_empty() && kept.bytes().all(|b| b == 0x01),
        "{kept:?}"
    );
}

#[test]
fn a_worker_started_before_its_topics_exist_creates_its_outputs_and_waits_for_its_input() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let topics = names("missing-topic");
    let worker = worker(&brokers, &topics);
    // The decision and dead-letter topics it creates, as a broker that does not create
    // topics on first use would refuse its records; the input topic is not its to make.
    for topic in [&topics.output, &topics.dead] {
        let created = worker.wait_for_log(
            &format!("created the missing topic topic=\"{topic}\""),
            Duration::from_secs(60),
        );
        assert!(created.contains("BrokerDefault"), "{created}");
    }
    worker.wait_for_log("cannot fetch from the input topic", Duration::from_secs(60));

    create_topics(&brokers, &[(&topics.input, 2)]);
    produce(
        &brokers,
        &topics.input,
        &[(Some("S-bad"), event("e-late", "P-late"))],
    );
    let decided = common::kafka::values(&read(&brokers, &topics.output, 1, &worker));
    stop(worker);
    assert_eq!(decided[0]["event_id"], "e-late");
}
