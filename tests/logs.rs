//! The logs of `loomguard run`: JSON lines with `--log-format json`, lifecycle at info, and
//! nothing per event above debug (the log does not grow with the input).

mod common;

use std::process::Command;

use serde_json::Value;

/// The log lines (the closing summary is not one) of a run over `events` events.
fn log_lines(events: &[String], format: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let mut text = events.join("\n");
    text.push_str("\n{broken\n");
    std::fs::write(&input, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_loomguard"))
        .current_dir(common::repo())
        .env("LOOMGUARD_LOG", "info")
        .args(["--log-format", format, "run", "--no-progress", "--input"])
        .arg(&input)
        .args(["--output", "/dev/null", "--dead-letter", "/dev/null"])
        .args(["--summary", "json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let mut lines: Vec<String> = stderr.lines().map(str::to_owned).collect();
    let summary = lines.pop().expect("the summary closes stderr");
    assert!(summary.starts_with("{\"events\":"), "{summary}");
    lines
}

#[test]
fn json_logs_are_one_object_per_line_with_the_lifecycle_at_info() {
    let events = common::read_lines(&common::data("cases.jsonl"));
    let lines = log_lines(&events, "json");
    assert!(!lines.is_empty());
    let logs: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let loaded = logs
        .iter()
        .find(|l| l["fields"]["message"] == "rules loaded")
        .expect("a rules loaded line");
    assert_eq!(loaded["level"], "INFO");
    assert_eq!(loaded["fields"]["version"].as_str().unwrap().len(), 16);
}

#[test]
fn the_log_does_not_grow_with_the_events() {
    let events = common::read_lines(&common::data("cases.jsonl"));
    let one = log_lines(&events[..1], "text");
    let all = log_lines(&events, "text");
    assert_eq!(all.len(), one.len(), "{all:#?}");
    // Text logs carry no colour codes when stderr is not a terminal.
    assert!(all.iter().all(|l| !l.contains('\u{1b}')), "{all:#?}");
}
