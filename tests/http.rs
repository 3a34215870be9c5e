//! The HTTP listener of `loomguard run --listen`, over real HTTP: `/healthz`, `/readyz`, and
//! `/metrics` scraped while events stream in on stdin, checked against the decisions.

mod common;

use std::collections::BTreeMap;

use common::service::Service;
use loomguard::contract::{Action, Kind};
use serde_json::Value;

#[test]
fn metrics_count_exactly_what_was_decided() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("decisions.jsonl");
    let dead = dir.path().join("dead.jsonl");
    let mut service = Service::start(&[
        "--output",
        out.to_str().unwrap(),
        "--dead-letter",
        dead.to_str().unwrap(),
        "--batch",
        "8",
    ]);

    let (status, body) = service.get("/healthz");
    assert_eq!((status, body.as_str()), (200, r#"{"alive":true}"#));
    let (status, body) = service.get("/readyz");
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"missing":[],"ready":true}"#)
    );

    // The labelled cases, then two records that are not events.
    let mut lines = common::read_lines(&common::data("cases.jsonl"));
    let events = lines.len() as f64;
    lines.push("this is not JSON".to_owned());
    lines.push(String::new());
    service.send(&lines);
    let scrape = service.wait_for("every record counted", |s| {
        s.sum("loomguard_events_received_total") == events + 2.0
    });

    // Decisions by action, as the labelled cases expect them.
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    for line in common::read_lines(&common::data("cases.expected.jsonl")) {
        let case: Value = serde_json::from_str(&line).unwrap();
        *expected
            .entry(case["action"].as_str().unwrap().to_owned())
            .or_default() += 1.0;
    }
    for action in Action::ALL {
        assert_eq!(
            scrape.value("loomguard_decisions_total", &[("action", action.as_str())]),
            expected.get(action.as_str()).copied().unwrap_or(0.0),
            "{action}"
        );
    }
    assert_eq!(
        scrape.value(
            "loomguard_events_received_total",
            &[("source", "file"), ("outcome", "decided")]
        ),
        events
    );
    assert_eq!(
        scrape.value(
            "loomguard_events_received_total",
            &[("source", "file"), ("outcome", "dead_letter")]
        ),
        2.0
    );
    assert_eq!(
        scrape.value("loomguard_dead_letters_total", &[("reason", "malformed")]),
        1.0
    );
    assert_eq!(
        scrape.value("loomguard_dead_letters_total", &[("reason", "empty")]),
        1.0
    );
    assert_eq!(
        scrape.value("loomguard_dead_letters_total", &[("reason", "schema")]),
        0.0
    );
    assert_eq!(scrape.value("loomguard_in_flight_events", &[]), 0.0);
    // Every case has a valid occurred_at, so each decision has an end-to-end latency.
    assert_eq!(
        scrape.value("loomguard_end_to_end_latency_seconds_count", &[]),
        events
    );

    // Findings by kind and the rules version agree with the decisions written (stdin's
    // output is flushed batch by batch).
    let decisions: Vec<Value> = common::read_lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(decisions.len() as f64, events);
    let mut kinds: BTreeMap<String, f64> = BTreeMap::new();
    for decision in &decisions {
        for finding in decision["findings"].as_array().unwrap() {
            *kinds
                .entry(finding["kind"].as_str().unwrap().to_owned())
                .or_default() += 1.0;
        }
    }
    assert!(kinds.len() > 5, "the cases exercise many kinds: {kinds:?}");
    for kind in Kind::ALL {
        assert_eq!(
            scrape.value("loomguard_findings_total", &[("kind", kind.as_str())]),
            kinds.get(kind.as_str()).copied().unwrap_or(0.0),
            "{kind}"
        );
    }
    let version = decisions[0]["rules_version"].as_str().unwrap();
    assert_eq!(
        scrape.value("loomguard_rules_info", &[("version", version)]),
        1.0
    );
    assert_eq!(
        scrape.value(
            "loomguard_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    assert!(service.finish().success());
}

#[test]
fn kafka_mode_is_not_ready_without_partitions() {
    // A broker that does not exist: the worker starts, the listener answers, and readiness
    // says that no partition is assigned.
    let service = Service::start_kafka(&[
        "--brokers",
        "127.0.0.1:1",
        "--group-id",
        "loomguard-http-test",
    ]);
    let (status, body) = service.get("/readyz");
    assert_eq!(status, 503);
    assert_eq!(body, r#"{"missing":["partitions"],"ready":false}"#);
    let (status, _) = service.get("/healthz");
    assert_eq!(status, 200);
    let scrape = service.scrape();
    assert_eq!(
        scrape.value("loomguard_kafka_assigned_partitions", &[]),
        0.0
    );
}

#[test]
fn a_client_stuck_mid_request_does_not_keep_the_run_from_ending() {
    use std::io::{Read, Write};

    let service = Service::start(&[]);
    // One connection kept alive after a full answer, one stuck in the middle of its headers.
    let mut idle = std::net::TcpStream::connect(service.addr).unwrap();
    write!(
        idle,
        "GET /healthz HTTP/1.1\r\nHost: loomguard\r\nConnection: keep-alive\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let mut stuck = std::net::TcpStream::connect(service.addr).unwrap();
    write!(stuck, "GET /metrics HTTP/1.1\r\nHost: loomguard\r\n").unwrap();

    // stdin ends while both stay open: the run still ends, within the grace time.
    let status = service.finish_within(std::time::Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    drop((idle, stuck));
}
