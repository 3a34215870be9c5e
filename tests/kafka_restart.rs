//! Kafka mode across a broker restart: the broker is stopped mid-stream and started again
//! with its data (in exactly-once mode, for longer than a transaction may last), is down when
//! the worker starts, or goes away as the worker is stopped; the worker resumes, waits for it,
//! or exits by its deadline, and nothing is lost.
//!
//! Needs `LOOMGUARD_TEST_BROKERS` and `LOOMGUARD_TEST_KAFKA_STATE`, the state directory of a
//! broker that `.ci/kafka/start` started (CI gives both). The tests restart that broker, so
//! they live in a test binary of their own, which cargo runs alone, and take turns.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
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
    assert!(run_script(name, state, port), ".ci/kafka/{name} failed");
}

fn run_script(name: &str, state: &str, port: &str) -> bool {
    Command::new(common::repo().join(".ci/kafka").join(name))
        .arg(state)
        .env("KAFKA_KEEP_DATA", "1")
        .env("KAFKA_PORT", port)
        .stdout(Stdio::null())
        .status()
        .expect("the broker script runs")
        .success()
}

/// Held by a test while it stops and starts the broker.
static BROKER: Mutex<()> = Mutex::new(());

/// Topic, group and state-topic names no other test run uses.
struct Names {
    input: String,
    output: String,
    dead: String,
    group: String,
    state: String,
}

fn names(test: &str) -> Names {
    let unique = format!("{test}-{}", std::process::id());
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let topics = [
        NewTopic::new(&names.input, 4, TopicReplication::Fixed(1)),
        NewTopic::new(&names.output, 4, TopicReplication::Fixed(1)),
        NewTopic::new(&names.dead, 1, TopicReplication::Fixed(1)),
    ];
    for result in runtime
        .block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .unwrap()
    {
        result.unwrap();
    }
}

/// A worker process, killed if a failed assertion leaves it running.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The broker stopped; started again when this is dropped, whatever the test's outcome.
struct Stopped<'a> {
    state: &'a str,
    port: &'a str,
}

impl<'a> Stopped<'a> {
    fn stop(state: &'a str, port: &'a str) -> Stopped<'a> {
        script("stop", state, port);
        Stopped { state, port }
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        // A test failing with the broker down must not leave it down; a second panic would
        // abort the test binary, so then a failed start is only not asserted.
        if std::thread::panicking() {
            run_script("start", self.state, self.port);
        } else {
            script("start", self.state, self.port);
        }
    }
}

/// A worker with its stderr in `log`.
fn start_worker(brokers: &str, names: &Names, log: &Path) -> Worker {
    start_worker_with(brokers, names, log, &[])
}

fn start_worker_with(brokers: &str, names: &Names, log: &Path, extra: &[&str]) -> Worker {
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
            "--dead-letter-topic",
            &names.dead,
        ])
        .args(["--group-id", &names.group, "--state-topic", &names.state])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Worker(child)
}

/// Produces events `from..to`, keyed over 16 sellers, and waits for the broker to have them.
fn produce(brokers: &str, topic: &str, from: usize, to: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for n in from..to {
        let line = serde_json::json!({
            "schema": "listing-event/v1", "event_id": format!("e{n}"), "op": "upsert",
            "occurred_at": "2026-12-02T09:15:00+08:00", "seller": {"id": format!("S{}", n % 16)},
            "listing": {"id": format!("P{n}"), "title": format!("全棉府绸 P{n}")}
        })
        .to_string();
        let key = format!("S{}", n % 16);
        let mut record = BaseRecord::to(topic).key(&key).payload(&line);
        while let Err((_, back)) = producer.send(record) {
            record = back;
            producer.poll(Duration::from_millis(50));
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("the test events are acknowledged");
}

/// A reader of the decision topic, collecting event ids.
struct Decided {
    consumer: BaseConsumer,
    ids: BTreeSet<String>,
    /// Decisions read, copies included.
    read: usize,
}

impl Decided {
    fn new(brokers: &str, names: &Names) -> Decided {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("reader-{}", names.group))
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        consumer.subscribe(&[&names.output]).unwrap();
        Decided {
            consumer,
            ids: BTreeSet::new(),
            read: 0,
        }
    }

    /// Reads until `wanted` distinct events are decided or `timeout` passes.
    fn read_until(&mut self, wanted: usize, timeout: Duration) {
        let started = Instant::now();
        while self.ids.len() < wanted && started.elapsed() < timeout {
            if let Some(Ok(message)) = self.consumer.poll(Duration::from_millis(200)) {
                let value: serde_json::Value =
                    serde_json::from_slice(message.payload().unwrap()).unwrap();
                self.ids
                    .insert(value["event_id"].as_str().unwrap().to_owned());
                self.read += 1;
            }
        }
    }

    /// Asserts that every event of `0..total` is decided, showing `log` if not.
    fn assert_all(&self, total: usize, log: &str) {
        let missing: Vec<String> = (0..total)
            .map(|n| format!("e{n}"))
            .filter(|id| !self.ids.contains(id))
            .collect();
        assert!(
            missing.is_empty(),
            "{} never decided, e.g. {:?}\n{log}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
}

/// SIGTERM, then the exit status and the log.
fn stop(mut worker: Worker, log: &Path) -> (std::process::ExitStatus, String) {
    Command::new("kill")
        .args(["-TERM", &worker.0.id().to_string()])
        .status()
        .unwrap();
    let status = worker.0.wait().unwrap();
    (status, std::fs::read_to_string(log).unwrap_or_default())
}

/// A worker (with `mode` on its command line) part of the way through the first half of
/// `total` events when the broker is stopped for `down` and started again with its data; the
/// second half is produced after.
struct Outage {
    _broker: MutexGuard<'static, ()>,
    brokers: String,
    names: Names,
    _dir: tempfile::TempDir,
    log: PathBuf,
    worker: Worker,
    decided: Decided,
}

fn through_an_outage(test: &str, mode: &[&str], total: usize, down: Duration) -> Option<Outage> {
    let (brokers, state) = broker()?;
    let guard = BROKER.lock().unwrap_or_else(PoisonError::into_inner);
    let port = brokers.rsplit(':').next().unwrap().to_owned();
    let names = names(test);
    create_topics(&brokers, &names);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let worker = start_worker_with(&brokers, &names, &log, mode);

    produce(&brokers, &names.input, 0, total / 2);
    let mut decided = Decided::new(&brokers, &names);
    decided.read_until(500, Duration::from_secs(60));
    assert!(
        decided.ids.len() >= 500,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );

    let stopped = Stopped::stop(&state, &port);
    std::thread::sleep(down);
    drop(stopped);
    produce(&brokers, &names.input, total / 2, total);
    Some(Outage {
        _broker: guard,
        brokers,
        names,
        _dir: dir,
        log,
        worker,
        decided,
    })
}

#[test]
fn the_worker_resumes_after_the_broker_restarts_and_loses_nothing() {
    let total = 8000;
    let Some(mut outage) = through_an_outage("restart", &[], total, Duration::from_secs(3)) else {
        return;
    };
    outage.decided.read_until(total, Duration::from_secs(120));
    let (status, log) = stop(outage.worker, &outage.log);
    assert!(status.success(), "{log}");
    outage.decided.assert_all(total, &log);
}

#[test]
fn an_exactly_once_worker_through_an_outage_longer_than_its_transactions_decides_each_event_once() {
    // Down for longer than the producer's transaction timeout (10 s): the coordinator aborts
    // the transaction the worker had open and fences its producer.
    let total = 8000;
    let mode = ["--exactly-once"];
    let Some(outage) = through_an_outage("outage-eos", &mode, total, Duration::from_secs(15))
    else {
        return;
    };
    let Outage {
        brokers,
        names,
        log,
        mut worker,
        mut decided,
        ..
    } = outage;

    // The worker goes on, or exits (not successfully) to be restarted, as a supervisor would
    // restart it; either way a read_committed reader sees each decision once.
    let mut logs = Vec::new();
    let started = Instant::now();
    while decided.ids.len() < total && started.elapsed() < Duration::from_secs(180) {
        decided.read_until(total, Duration::from_secs(1));
        if let Some(status) = worker.0.try_wait().unwrap() {
            let text = std::fs::read_to_string(&log).unwrap();
            assert!(!status.success(), "exited successfully unasked\n{text}");
            assert!(logs.len() < 3, "restarted three times\n{}", logs.join("\n"));
            let error = text.lines().rev().find(|l| l.contains("ERROR"));
            eprintln!("outage-eos: worker exited with {status}, restarted: {error:?}");
            logs.push(text);
            worker = start_worker_with(&brokers, &names, &log, &mode);
        }
    }
    let (status, last) = stop(worker, &log);
    logs.push(last);
    let logs = logs.join("\n");
    assert!(status.success(), "{logs}");
    decided.assert_all(total, &logs);
    // Whatever else arrives within a few seconds is read too: no decision may come twice.
    decided.read_until(usize::MAX, Duration::from_secs(3));
    assert_eq!(decided.read, total, "decisions read more than once\n{logs}");
}

#[test]
fn a_worker_started_while_the_broker_is_down_waits_for_it_and_decides_everything() {
    let Some((brokers, state)) = broker() else {
        return;
    };
    let _broker = BROKER.lock().unwrap_or_else(PoisonError::into_inner);
    let port = brokers.rsplit(':').next().unwrap().to_owned();
    let names = names("down-at-start");
    create_topics(&brokers, &names);
    let total = 2000;
    produce(&brokers, &names.input, 0, total);

    let stopped = Stopped::stop(&state, &port);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let worker = start_worker(&brokers, &names, &log);
    // It cannot reach the broker to set up its state topic, says so, and keeps trying.
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("cannot set up the output and state topics; trying again")
    {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no retry logged\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(stopped);

    let mut decided = Decided::new(&brokers, &names);
    decided.read_until(total, Duration::from_secs(180));
    let (status, log) = stop(worker, &log);
    assert!(status.success(), "{log}");
    decided.assert_all(total, &log);
}

#[test]
fn a_worker_stopped_while_the_broker_is_down_exits_by_its_deadline_and_loses_nothing() {
    stopped_while_the_broker_is_down("deadline", &[]);
}

#[test]
fn an_exactly_once_worker_stopped_while_the_broker_is_down_exits_by_its_deadline() {
    stopped_while_the_broker_is_down("deadline-eos", &["--exactly-once"]);
}

/// A worker (with `mode` on its command line) stopped with SIGTERM and a 5 s deadline while
/// the broker is gone: it exits within the deadline and a few seconds, not successfully, and
/// (at least once) its successor decides everything.
fn stopped_while_the_broker_is_down(test: &str, mode: &[&str]) {
    let Some((brokers, state)) = broker() else {
        return;
    };
    let _broker = BROKER.lock().unwrap_or_else(PoisonError::into_inner);
    let port = brokers.rsplit(':').next().unwrap().to_owned();
    let names = names(test);
    create_topics(&brokers, &names);
    let total = 20_000;
    produce(&brokers, &names.input, 0, total);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("first.log");
    let args: Vec<&str> = ["--shutdown-seconds", "5"]
        .iter()
        .chain(mode)
        .copied()
        .collect();
    let mut first = start_worker_with(&brokers, &names, &log, &args);
    let mut decided = Decided::new(&brokers, &names);
    decided.read_until(1000, Duration::from_secs(60));
    assert!(
        decided.ids.len() >= 1000,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );

    // Stopped mid-stream with the broker gone, the worker cannot have its last results
    // acknowledged; librdkafka alone would wait for them for five minutes, and a
    // transactional call for as long as it was given.
    let stopped = Stopped::stop(&state, &port);
    Command::new("kill")
        .args(["-TERM", &first.0.id().to_string()])
        .status()
        .unwrap();
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = first.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(120),
            "still running 120 s after SIGTERM with a 5 s deadline\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let exited = signalled.elapsed();
    let first_log = std::fs::read_to_string(&log).unwrap();
    eprintln!("{test}: exited {exited:?} after SIGTERM");
    assert!(!status.success(), "{first_log}");
    if mode.is_empty() {
        assert!(first_log.contains("shutdown deadline"), "{first_log}");
    }
    assert!(
        exited < Duration::from_secs(EXIT_BOUND),
        "exited {exited:?} after SIGTERM with a 5 s deadline\n{first_log}"
    );
    drop(stopped);

    // What it had not committed, its successor decides.
    let log = dir.path().join("second.log");
    let second = start_worker_with(&brokers, &names, &log, mode);
    decided.read_until(total, Duration::from_secs(180));
    let (status, log) = stop(second, &log);
    assert!(status.success(), "{log}");
    decided.assert_all(total, &format!("{first_log}\n{log}"));
}

/// Seconds after SIGTERM by which a worker with a 5 s deadline must be gone.
const EXIT_BOUND: u64 = 20;
