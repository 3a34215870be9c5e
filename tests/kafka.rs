//! Kafka mode against a real broker: `LOOMGUARD_TEST_BROKERS=host:port` names it (CI starts
//! one with .ci/kafka/start). Without it these tests say so and pass without running.
//!
//! Each test makes its own topics and consumer group, runs `loomguard run --brokers …` as a
//! child process the way an operator would, and reads the decision topic back.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::produce;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use serde_json::Value;

/// Topic and group names no other test run uses.
struct Names {
    input: String,
    output: String,
    dead: String,
    group: String,
    state: String,
}

fn names(test: &str) -> Names {
    let unique = format!(
        "{test}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    Names {
        input: format!("in-{unique}"),
        output: format!("out-{unique}"),
        dead: format!("dead-{unique}"),
        group: format!("group-{unique}"),
        state: format!("state-{unique}"),
    }
}

fn create_topics(brokers: &str, names: &Names) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let topics = [
        NewTopic::new(&names.input, 4, TopicReplication::Fixed(1)),
        NewTopic::new(&names.output, 4, TopicReplication::Fixed(1)),
        NewTopic::new(&names.dead, 1, TopicReplication::Fixed(1)),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = runtime
        .block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .expect("the broker answers");
    for result in results {
        result.expect("the topic is created");
    }
}

/// An upsert of `listing` (version `version`) by `seller`.
fn event(id: &str, seller: &str, listing: &str, version: u64, title: &str) -> String {
    serde_json::json!({
        "schema": "listing-event/v1", "event_id": id, "op": "upsert",
        "occurred_at": "2026-12-02T09:15:00+08:00",
        "seller": {"id": seller, "licences": []},
        "listing": {"id": listing, "version": version, "intent": "supply", "title": title,
                    "category": ["面料", "棉类面料"], "attributes": {"成分": "100%棉", "型号": listing},
                    "description": "精梳全棉府绸，布面平整。", "stock": 100, "images": [],
                    "price": {"amount": 9.6, "currency": "CNY", "unit": "米"}}
    })
    .to_string()
}

/// A worker process with its stderr in a file.
struct Worker {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn start_worker(brokers: &str, names: &Names) -> Worker {
    start_worker_with(brokers, names, &[])
}

fn start_worker_with(brokers: &str, names: &Names, extra: &[&str]) -> Worker {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let child = Command::new(env!("CARGO_BIN_EXE_loomguard"))
        .current_dir(common::repo())
        .env("LOOMGUARD_LOG", "info")
        .args([
            "run",
            "--brokers",
            brokers,
            "--linger-ms",
            "5",
            "--batch",
            "256",
        ])
        .args([
            "--input-topic",
            &names.input,
            "--output-topic",
            &names.output,
        ])
        .args([
            "--dead-letter-topic",
            &names.dead,
            "--group-id",
            &names.group,
            "--state-topic",
            &names.state,
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("loomguard starts");
    Worker {
        child,
        log,
        _dir: dir,
    }
}

impl Worker {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status and the number of events the summary reports.
    fn stop(mut self) -> (std::process::ExitStatus, u64, String) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        let log = self.log();
        let events = log
            .lines()
            .filter_map(|l| {
                l.split_once(" events: ")
                    .map(|(n, _)| n.trim().parse::<u64>())
            })
            .next_back()
            .and_then(Result::ok)
            .unwrap_or(0);
        (status, events, log)
    }

    /// Waits until the worker has been assigned partitions (at most 60 s). With the
    /// cooperative protocol a member that joins a group whose partitions are all taken first
    /// gets none, and its share only after the others have given theirs up.
    fn wait_for_partitions(&self) {
        let started = Instant::now();
        while !self.log().lines().any(|line| {
            line.split_once("partitions assigned partitions=")
                .and_then(|(_, count)| count.trim().parse::<u32>().ok())
                .is_some_and(|count| count > 0)
        }) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no partitions assigned within 60 s\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// A record read back from an output topic.
struct Read {
    key: Vec<u8>,
    value: Value,
    headers: BTreeMap<String, String>,
}

/// Reads `topic` from the beginning until it holds results for `wanted` distinct input
/// messages (redeliveries count once) or `timeout` passes.
fn read_until(brokers: &str, topic: &str, timeout: Duration, wanted: usize) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{topic}-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let started = Instant::now();
    let mut read = Vec::new();
    let mut sources = BTreeSet::new();
    while started.elapsed() < timeout && sources.len() < wanted {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let headers: BTreeMap<String, String> = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            sources.insert((
                headers.get("loomguard-source-partition").cloned(),
                headers.get("loomguard-source-offset").cloned(),
            ));
            read.push(Read {
                key: message.key().unwrap_or_default().to_vec(),
                value: serde_json::from_slice(message.payload().unwrap_or_default())
                    .expect("results are JSON"),
                headers,
            });
        }
    }
    read
}

fn event_ids(read: &[Read]) -> BTreeSet<String> {
    read.iter()
        .map(|r| r.value["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// `count` events over 40 sellers, three versions of each listing in order.
fn events(count: usize) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|n| {
            // A listing belongs to one seller, and events are keyed by seller.
            let seller = format!("S{}", (n / 3) % 40);
            let listing = format!("P{}", n / 3);
            // Each listing is its own product (its own model number): a seller's listings must
            // not read as duplicates.
            let title = if n % 10 == 0 {
                format!("最好的全棉府绸 {listing}")
            } else {
                format!("全棉府绸 40s×40s 133×72 {listing}")
            };
            let line = event(
                &format!("e{n}"),
                &seller,
                &listing,
                (n % 3) as u64 + 1,
                &title,
            );
            (seller, line.into_bytes())
        })
        .collect()
}

#[test]
fn every_event_gets_one_decision_keyed_by_listing_and_in_listing_order() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let names = names("order");
    create_topics(&brokers, &names);
    let worker = start_worker(&brokers, &names);
    produce(&brokers, &names.input, &events(3000));

    let read = read_until(&brokers, &names.output, Duration::from_secs(90), 3000);
    let (status, counted, log) = worker.stop();
    assert!(status.success(), "{log}");
    assert_eq!(read.len(), 3000, "{log}");
    assert_eq!(event_ids(&read).len(), 3000);
    assert_eq!(counted, 3000, "{log}");

    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for record in &read {
        let listing = record.value["listing_id"].as_str().unwrap();
        assert_eq!(record.key, listing.as_bytes());
        assert!(record.headers.contains_key("loomguard-source-offset"));
        assert_eq!(record.headers["loomguard-source-topic"], names.input);
        versions
            .entry(listing.to_owned())
            .or_default()
            .push(record.value["listing_version"].as_u64().unwrap());
        let want = if record.value["event_id"].as_str().unwrap()[1..]
            .parse::<u64>()
            .unwrap()
            % 10
            == 0
        {
            "suppress"
        } else {
            "pass"
        };
        assert_eq!(record.value["action"], want);
    }
    for (listing, seen) in versions {
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{listing}: {seen:?}");
    }
}

#[test]
fn a_poison_message_goes_to_the_dead_letter_topic_and_its_partition_keeps_flowing() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let names = names("poison");
    create_topics(&brokers, &names);
    let worker = start_worker(&brokers, &names);
    let key = "S-poison".to_owned();
    let mut records = vec![(
        key.clone(),
        event("before", "S-poison", "P1", 1, "全棉府绸").into_bytes(),
    )];
    records.push((key.clone(), b"{not json".to_vec()));
    records.push((key.clone(), Vec::new()));
    records.push((
        key.clone(),
        br#"{"schema":"listing-event/v1","event_id":"x"}"#.to_vec(),
    ));
    // Not UTF-8 and 700 kB: as base64 in full its dead letter would pass the broker's 1 MB
    // message limit, and a result that cannot be produced would stop the partition.
    records.push((key.clone(), vec![0xff; 700_000]));
    records.push((
        key.clone(),
        event("after", "S-poison", "P1", 2, "电击器").into_bytes(),
    ));
    produce(&brokers, &names.input, &records);

    let decided = read_until(&brokers, &names.output, Duration::from_secs(60), 2);
    let dead = read_until(&brokers, &names.dead, Duration::from_secs(30), 4);
    let (status, _, log) = worker.stop();
    assert!(status.success(), "{log}");

    let decided: Vec<(&str, &str)> = decided
        .iter()
        .map(|r| {
            (
                r.value["event_id"].as_str().unwrap(),
                r.value["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(decided, [("before", "pass"), ("after", "takedown")]);
    let reasons: Vec<&str> = dead
        .iter()
        .map(|r| r.value["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "malformed_json",
            "empty_line",
            "missing_field",
            "invalid_utf8"
        ],
        "{log}"
    );
    assert_eq!(dead[3].value["original_bytes"], 700_000);
    assert_eq!(dead[3].value["truncated"], true);
    for letter in &dead {
        assert_eq!(letter.key, key.as_bytes());
        assert_eq!(letter.value["source"]["topic"], names.input);
        assert!(letter.value["source"]["offset"].is_i64());
    }
}

#[test]
fn two_workers_in_one_group_share_the_partitions_and_decide_everything() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let names = names("pair");
    create_topics(&brokers, &names);
    let first = start_worker(&brokers, &names);
    let second = start_worker(&brokers, &names);
    // Both hold partitions before the events arrive, so that both decide some.
    first.wait_for_partitions();
    second.wait_for_partitions();
    produce(&brokers, &names.input, &events(4000));

    let read = read_until(&brokers, &names.output, Duration::from_secs(90), 4000);
    let (status_a, events_a, log_a) = first.stop();
    let (status_b, events_b, log_b) = second.stop();
    assert!(status_a.success() && status_b.success(), "{log_a}\n{log_b}");
    assert_eq!(event_ids(&read).len(), 4000, "{log_a}\n{log_b}");
    assert!(
        events_a > 0 && events_b > 0,
        "one worker did all the work: {events_a} / {events_b}"
    );
    assert!(events_a + events_b >= 4000);
}

#[test]
fn a_worker_killed_mid_stream_loses_nothing_once_another_takes_over() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let names = names("kill");
    create_topics(&brokers, &names);
    let first = start_worker(&brokers, &names);
    produce(&brokers, &names.input, &events(20_000));

    // Kill it once it is well into the stream.
    let early = read_until(&brokers, &names.output, Duration::from_secs(60), 2000);
    assert!(early.len() >= 2000, "{}", first.log());
    first.kill();

    let second = start_worker(&brokers, &names);
    let read = read_until(&brokers, &names.output, Duration::from_secs(120), 20_000);
    let (status, _, log) = second.stop();
    assert!(status.success(), "{log}");
    let decided = event_ids(&read);
    let missing: Vec<String> = (0..20_000)
        .map(|n| format!("e{n}"))
        .filter(|id| !decided.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} events never decided, e.g. {:?}\n{log}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!("redelivered after the kill: {}", read.len() - decided.len());
}

#[test]
fn exactly_once_a_read_committed_reader_sees_each_decision_once_across_a_crash() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let names = names("exactly-once");
    create_topics(&brokers, &names);
    let first = start_worker_with(&brokers, &names, &["--exactly-once"]);
    produce(&brokers, &names.input, &events(20_000));

    let early = read_until(&brokers, &names.output, Duration::from_secs(60), 2000);
    assert!(early.len() >= 2000, "{}", first.log());
    first.kill();

    let second = start_worker_with(&brokers, &names, &["--exactly-once"]);
    // The killed worker's open transaction is aborted when it times out (10 s); the reader
    // (read_committed, librdkafka's default) never sees its records.
    let read = read_until(&brokers, &names.output, Duration::from_secs(120), 20_000);
    let (status, _, log) = second.stop();
    assert!(status.success(), "{log}");
    assert_eq!(event_ids(&read).len(), 20_000, "{log}");
    // The whole topic to its end, as a duplicate may sit anywhere in it.
    let committed = common::kafka::read_all(&brokers, &names.output, "read_committed");
    let ids: BTreeSet<String> = common::kafka::values(&committed)
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 20_000, "{log}");
    assert_eq!(committed.len(), 20_000, "a decision was seen twice\n{log}");
    let uncommitted = common::kafka::read_all(&brokers, &names.output, "read_uncommitted");
    eprintln!(
        "records of aborted transactions left by the crash: {}",
        uncommitted.len() - committed.len()
    );
}

#[test]
fn a_worker_stalled_past_the_poll_interval_notices_it_left_its_group_and_rejoins() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let names = names("stall");
    create_topics(&brokers, &names);
    // The shortest poll interval librdkafka accepts next to the worker's 10 s session.
    let worker = start_worker_with(
        &brokers,
        &names,
        &["--kafka-property", "max.poll.interval.ms=10000"],
    );
    produce(&brokers, &names.input, &events(3000));
    let early = read_until(&brokers, &names.output, Duration::from_secs(60), 3000);
    assert_eq!(event_ids(&early).len(), 3000, "{}", worker.log());

    // A paused container: every thread of the process stops, heartbeats included.
    let pid = worker.child.id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    std::thread::sleep(Duration::from_secs(14));
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();

    let later: Vec<(String, Vec<u8>)> = events(6000).split_off(3000);
    produce(&brokers, &names.input, &later);
    let read = read_until(&brokers, &names.output, Duration::from_secs(90), 6000);
    let (status, _, log) = worker.stop();
    assert!(status.success(), "{log}");
    assert_eq!(event_ids(&read).len(), 6000, "{log}");
    assert!(log.contains("the consumer left its group"), "{log}");
}

#[test]
fn a_worker_started_later_finds_duplicates_of_listings_another_worker_decided() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let names = names("shared-state");
    create_topics(&brokers, &names);
    // The same product twice: same attributes, title and description.
    let listing = |id: &str, listing: &str| {
        let mut line: serde_json::Value = serde_json::from_str(&event(
            id,
            "S-shared",
            listing,
            1,
            "全棉府绸 40s×40s 133×72",
        ))
        .unwrap();
        line["listing"]["attributes"] = serde_json::json!({"成分": "100%棉", "型号": "FC-4040"});
        ("S-shared".to_owned(), line.to_string().into_bytes())
    };

    let first = start_worker(&brokers, &names);
    produce(
        &brokers,
        &names.input,
        &[listing("e-original", "P-original")],
    );
    let read = read_until(&brokers, &names.output, Duration::from_secs(60), 1);
    let (status, _, log) = first.stop();
    assert!(status.success(), "{log}");
    assert_eq!(read[0].value["action"], "pass", "{log}");

    // The copy reaches a worker that never saw the original, only the state topic.
    produce(&brokers, &names.input, &[listing("e-copy", "P-copy")]);
    let second = start_worker(&brokers, &names);
    let read = read_until(&brokers, &names.output, Duration::from_secs(60), 2);
    let (status, _, log) = second.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("shared state replayed"), "{log}");
    let copy = read
        .iter()
        .find(|r| r.value["event_id"] == "e-copy")
        .unwrap_or_else(|| panic!("no decision for the copy\n{log}"));
    let findings = copy.value["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["kind"], "duplicate.text");
    assert_eq!(findings[0]["evidence"]["duplicate_of"], "P-original");
}
