//! Kafka mode across a broker restart: the broker is stopped mid-stream and started again
//! with its data; the worker resumes and nothing is lost.
//!
//! Needs `LOOMGUARD_TEST_BROKERS` and `LOOMGUARD_TEST_KAFKA_STATE`, the state directory of a
//! broker that `.ci/kafka/start` started (CI gives both). It restarts that broker, so it lives
//! in its own test binary, which cargo runs alone.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn broker() -> Option<(String, String)> {
    let brokers = std::env::var("LOOMGUARD_TEST_BROKERS")
        .ok()
        .filter(|b| !b.is_empty());
    let state = std::env::var("LOOMGUARD_TEST_KAFKA_STATE")
        .ok()
        .filter(|s| !s.is_empty());
    match (brokers, state) {
        (Some(brokers), Some(state)) => Some((brokers, state)),
        _ => {
            eprintln!("skipped: set LOOMGUARD_TEST_BROKERS and LOOMGUARD_TEST_KAFKA_STATE (a broker from .ci/kafka/start and its state directory) to run the restart test");
            None
        }
    }
}

fn script(name: &str, state: &str, port: &str) {
    let status = Command::new(common::repo().join(".ci/kafka").join(name))
        .arg(state)
        .env("KAFKA_KEEP_DATA", "1")
        .env("KAFKA_PORT", port)
        .stdout(Stdio::null())
        .status()
        .expect("the broker script runs");
    assert!(status.success(), ".ci/kafka/{name} failed");
}

#[test]
fn the_worker_resumes_after_the_broker_restarts_and_loses_nothing() {
    let Some((brokers, state)) = broker() else {
        return;
    };
    let port = brokers.rsplit(':').next().unwrap().to_owned();
    let unique = format!("restart-{}", std::process::id());
    let (input, output, dead) = (
        format!("in-{unique}"),
        format!("out-{unique}"),
        format!("dead-{unique}"),
    );

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let topics = [
        NewTopic::new(&input, 4, TopicReplication::Fixed(1)),
        NewTopic::new(&output, 4, TopicReplication::Fixed(1)),
        NewTopic::new(&dead, 1, TopicReplication::Fixed(1)),
    ];
    for result in runtime
        .block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .unwrap()
    {
        result.unwrap();
    }
    drop(admin);

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let mut worker = Command::new(env!("CARGO_BIN_EXE_loomguard"))
        .current_dir(common::repo())
        .env("LOOMGUARD_LOG", "info")
        .args([
            "run",
            "--brokers",
            &brokers,
            "--linger-ms",
            "5",
            "--batch",
            "256",
        ])
        .args([
            "--input-topic",
            &input,
            "--output-topic",
            &output,
            "--dead-letter-topic",
            &dead,
        ])
        .args(["--group-id", &format!("group-{unique}")])
        .args(["--state-topic", &format!("state-{unique}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    let total = 8000;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let produce = |from: usize, to: usize| {
        for n in from..to {
            let line = serde_json::json!({
                "schema": "listing-event/v1", "event_id": format!("e{n}"), "op": "upsert",
                "occurred_at": "2026-12-02T09:15:00+08:00", "seller": {"id": format!("S{}", n % 16)},
                "listing": {"id": format!("P{n}"), "title": format!("全棉府绸 P{n}")}
            })
            .to_string();
            let key = format!("S{}", n % 16);
            let mut record = BaseRecord::to(&input).key(&key).payload(&line);
            while let Err((_, back)) = producer.send(record) {
                record = back;
                producer.poll(Duration::from_millis(50));
            }
        }
        producer
            .flush(Duration::from_secs(60))
            .expect("the test events are acknowledged");
    };
    produce(0, total / 2);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("reader-{unique}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&output]).unwrap();
    let mut decided = BTreeSet::new();
    let read_for = |wanted: usize, timeout: Duration, decided: &mut BTreeSet<String>| {
        let started = Instant::now();
        while decided.len() < wanted && started.elapsed() < timeout {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                let value: serde_json::Value =
                    serde_json::from_slice(message.payload().unwrap()).unwrap();
                decided.insert(value["event_id"].as_str().unwrap().to_owned());
            }
        }
    };
    read_for(500, Duration::from_secs(60), &mut decided);
    assert!(
        decided.len() >= 500,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );

    // The broker goes away mid-stream and comes back with its data.
    script("stop", &state, &port);
    std::thread::sleep(Duration::from_secs(3));
    script("start", &state, &port);
    produce(total / 2, total);

    read_for(total, Duration::from_secs(120), &mut decided);
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    let status = worker.wait().unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{log}");
    let missing: Vec<String> = (0..total)
        .map(|n| format!("e{n}"))
        .filter(|id| !decided.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} never decided, e.g. {:?}\n{log}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}
