//! The `loomguard` binary as a user runs it: `run` over files with good and bad lines,
//! `rules check`, and `explain`.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn loomguard() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loomguard"));
    command
        .current_dir(common::repo())
        .env("LOOMGUARD_LOG", "warn");
    command
}

fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("loomguard starts");
    assert!(
        output.status.success(),
        "status {:?}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json_lines(path: &Path) -> Vec<Value> {
    common::read_lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

fn event(id: &str, title: &str) -> String {
    serde_json::json!({
        "schema": "listing-event/v1", "event_id": id, "op": "upsert",
        "occurred_at": "2026-12-02T09:15:00+08:00",
        "seller": {"id": "S1", "licences": []},
        "listing": {"id": format!("P-{id}"), "version": 1, "intent": "supply", "title": title,
                    "category": ["面料", "棉类面料"], "attributes": {"成分": "100%棉"},
                    "description": "", "price": {"amount": 9.6, "currency": "CNY", "unit": "米"},
                    "stock": 100, "images": []}
    })
    .to_string()
}

#[test]
fn run_decides_good_lines_and_dead_letters_bad_ones_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let decisions = dir.path().join("decisions.jsonl");
    let dead = dir.path().join("dead.jsonl");

    let huge_title = event("huge", &"布".repeat(10 * 1024 * 1024 / 3 + 10));
    let mut bytes = Vec::new();
    let lines: Vec<Vec<u8>> = vec![
        event("good-1", "全棉府绸 40s×40s 133×72").into_bytes(),
        b"{\"schema\": \"listing-event/v1\", ".to_vec(),
        b"[1, 2, 3]".to_vec(),
        event("no-listing-id", "全棉府绸")
            .replace("\"id\":\"P-no-listing-id\",", "")
            .into_bytes(),
        event("wrong-type", "全棉府绸")
            .replace("\"stock\":100", "\"stock\":\"lots\"")
            .into_bytes(),
        Vec::new(),
        b"{\"schema\":\"listing-event/v1\",\0}".to_vec(),
        b"{\"title\": \"\xff\xfe\"}".to_vec(),
        huge_title.into_bytes(),
        event("good-2", "最好的全棉府绸").into_bytes(),
        event("old-schema", "全棉府绸")
            .replace("listing-event/v1", "listing-event/v0")
            .into_bytes(),
    ];
    for line in &lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    std::fs::write(&input, bytes).unwrap();

    let output = run_ok(
        loomguard()
            .args(["run", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&decisions)
            .arg("--dead-letter")
            .arg(&dead),
    );

    let decided = json_lines(&decisions);
    let ids: Vec<&str> = decided
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["good-1", "good-2"]);
    assert_eq!(decided[0]["action"], "pass");
    assert_eq!(decided[1]["action"], "suppress");
    assert_eq!(decided[1]["findings"][0]["rule"], "adlaw.absolute");
    assert_eq!(decided[1]["findings"][0]["text"], "最好");
    assert_eq!(decided[1]["schema"], "moderation-decision/v1");

    let letters = json_lines(&dead);
    let got: Vec<(u64, &str)> = letters
        .iter()
        .map(|l| {
            (
                l["source"]["line"].as_u64().unwrap(),
                l["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (2, "malformed_json"),
            (3, "not_an_object"),
            (4, "missing_field"),
            (5, "wrong_type"),
            (6, "empty_line"),
            (7, "nul_byte"),
            (8, "invalid_utf8"),
            (9, "too_large"),
            (11, "unsupported_schema"),
        ]
    );
    assert!(letters[2]["error"]
        .as_str()
        .unwrap()
        .contains("missing field `id`"));
    assert_eq!(
        letters[0]["original"],
        "{\"schema\": \"listing-event/v1\", "
    );
    assert_eq!(letters[6]["original_base64"], "eyJ0aXRsZSI6ICL//iJ9");
    assert_eq!(letters[7]["truncated"], true);
    assert!(letters[7]["original_bytes"].as_u64().unwrap() > 10 * 1024 * 1024);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("11 events"), "{stderr}");
    assert!(stderr.contains("pass 1, suppress 1"), "{stderr}");
    assert!(stderr.contains("9 dead letters"), "{stderr}");
}

#[test]
fn run_keeps_input_order_across_many_batches() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("generated.jsonl");
    let decisions = dir.path().join("decisions.jsonl");
    run_ok(
        loomguard()
            .args(["generate", "--events", "5000", "--seed", "11", "--output"])
            .arg(&input),
    );

    run_ok(
        loomguard()
            .args(["run", "--batch", "37", "--threads", "2", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&decisions),
    );

    let wanted: Vec<String> = common::read_lines(&input)
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let got: Vec<String> = json_lines(&decisions)
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got.len(), 5000);
    assert_eq!(got, wanted);
}

#[test]
fn run_reads_stdin_and_writes_stdout() {
    let mut child = loomguard()
        .args(["run", "--input", "-", "--output", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = event("stdin-1", "电击器 防身") + "\n";
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), line.as_bytes()).unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let decision: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(decision["action"], "takedown");
    assert_eq!(decision["findings"][0]["kind"], "terms.prohibited");
}

#[test]
fn an_output_that_cannot_be_written_fails_the_run() {
    let output = loomguard()
        .args([
            "run",
            "--input",
            "tests/data/cases.jsonl",
            "--output",
            "/nonexistent-dir/decisions.jsonl",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent-dir/decisions.jsonl"));
}

/// A copy of the project's rules with `edit` applied to one file.
fn broken_rules(file: &str, edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(common::repo().join("rules")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    dir
}

#[test]
fn rules_check_accepts_the_project_rules() {
    let output = run_ok(loomguard().args(["rules", "check", "rules"]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ok: rules version"), "{stdout}");
}

#[test]
fn rules_check_reports_every_problem_with_file_and_line() {
    let dir = broken_rules("adlaw.toml", |text| {
        // A second copy of a term already in the file, and an unknown action, at the end.
        format!(
            "{text}\n[[class]]\nid = \"adlaw.extra\"\nname = \"x\"\nhandbook = \"x\"\ntext = \"x\"\naction = \"suppress\"\npoints = 0\nterms = [\"最好\", \"头\"]\n"
        )
    });
    let lines = std::fs::read_to_string(dir.path().join("adlaw.toml"))
        .unwrap()
        .lines()
        .count();
    let output = loomguard()
        .args(["rules", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let file = dir.path().join("adlaw.toml").display().to_string();
    assert!(
        stdout.contains(&format!("{file}:{lines}: term `最好`")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{file}:{lines}: term `头` is a single character")),
        "{stdout}"
    );

    let syntax = broken_rules("prohibited.toml", |text| {
        text.replacen("[[item]]", "[[item]\n", 1)
    });
    let output = loomguard()
        .args(["rules", "check"])
        .arg(syntax.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("prohibited.toml:"), "{stdout}");
}

#[test]
fn rules_check_reports_image_thresholds_and_holidays_with_file_and_line() {
    let dir = broken_rules("images.toml", |text| {
        text.replace("max_distance = 12", "max_distance = 40")
    });
    let holidays = dir.path().join("holidays.toml");
    let text = std::fs::read_to_string(&holidays).unwrap();
    std::fs::write(&holidays, text.replace("\"2026-01-04\"", "\"2026-01-05\"")).unwrap();
    let line_of = |file: &std::path::Path, needle: &str| {
        std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .position(|l| l.contains(needle))
            .unwrap()
            + 1
    };
    let images = dir.path().join("images.toml");
    let output = loomguard()
        .args(["rules", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "{}:{}: infringement max_distance must be at most 24",
            images.display(),
            line_of(&images, "max_distance = 40")
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{}:{}: 2026-01-05 is a Monday, not a weekend day",
            holidays.display(),
            line_of(&holidays, "\"2026-01-05\"")
        )),
        "{stdout}"
    );
}

#[test]
fn run_refuses_to_start_on_invalid_rules() {
    let dir = broken_rules("allow.toml", |text| {
        format!("{text}\n[[context]]\nid = \"x\"\n")
    });
    let decisions = dir.path().join("decisions.jsonl");
    let output = loomguard()
        .args(["run", "--input", "tests/data/cases.jsonl", "--rules"])
        .arg(dir.path())
        .arg("--output")
        .arg(&decisions)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("allow.toml:"));
    assert!(!decisions.exists());
}

#[test]
fn explain_shows_the_verdict_and_the_highlighted_span() {
    let mut child = loomguard()
        .args(["explain", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = event("explain-1", "高仿大牌提花面料 A货");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), line.as_bytes()).unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("TAKEDOWN — listing P-explain-1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("title: >>高仿<<大牌提花面料 A货"),
        "{stdout}"
    );
    assert!(
        stdout.contains("terms.prohibited [prohibited.t3.counterfeit]"),
        "{stdout}"
    );
}

#[test]
fn explain_says_why_a_record_is_not_an_event() {
    let path = common::data("cases.jsonl");
    let output = loomguard().args(["explain"]).arg(&path).output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("PASS — listing P1001"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"schema\": 1}").unwrap();
    let output = loomguard().args(["explain"]).arg(&bad).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("not a listing event (wrong_type)"));
}

#[test]
fn explain_drops_a_byte_order_mark_as_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bom.json");
    let line = event("explain-bom", "高仿大牌提花面料");
    std::fs::write(
        &path,
        [b"\xEF\xBB\xBF".as_slice(), line.as_bytes()].concat(),
    )
    .unwrap();
    let output = loomguard().args(["explain"]).arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.starts_with("TAKEDOWN — listing P-explain-bom"),
        "{stdout}"
    );
}

#[test]
fn a_configuration_file_sets_run_and_flags_win_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("from-file.jsonl");
    let from_flag = dir.path().join("from-flag.jsonl");
    let config = dir.path().join("loomguard.toml");
    std::fs::write(
        &config,
        format!(
            "input = \"tests/data/cases.jsonl\"\noutput = {:?}\nrules = \"rules\"\n",
            from_file.display().to_string()
        ),
    )
    .unwrap();

    run_ok(loomguard().args(["run", "--config"]).arg(&config));
    assert_eq!(json_lines(&from_file).len(), 56);

    run_ok(
        loomguard()
            .args(["run", "--config"])
            .arg(&config)
            .arg("--output")
            .arg(&from_flag),
    );
    assert_eq!(json_lines(&from_flag).len(), 56);

    std::fs::write(&config, "input = \"x\"\ntopic = \"y\"\n").unwrap();
    let output = loomguard()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("loomguard.toml:2:") && stderr.contains("topic"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_outputs_that_would_write_over_the_input_or_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let original = std::fs::read(common::repo().join("examples/events.jsonl")).unwrap();
    std::fs::write(&input, &original).unwrap();
    let same_by_another_name = dir.path().join(".").join("events.jsonl");
    let decisions = dir.path().join("decisions.jsonl");

    for (output, dead_letter, says) in [
        (&input, None, "the output names the same file as the input"),
        (
            &same_by_another_name,
            None,
            "the output names the same file as the input",
        ),
        (
            &decisions,
            Some(&input),
            "the dead-letter output names the same file as the input",
        ),
        (
            &decisions,
            Some(&decisions),
            "the dead-letter output names the same file as the output",
        ),
    ] {
        let mut command = loomguard();
        command
            .args(["run", "--no-progress", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(output);
        if let Some(dead_letter) = dead_letter {
            command.arg("--dead-letter").arg(dead_letter);
        }
        let run = command.output().unwrap();
        assert_eq!(run.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&run.stderr).contains(says),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(
            std::fs::read(&input).unwrap(),
            original,
            "the input is intact"
        );
    }
}

#[test]
fn kafka_mode_refuses_a_state_dir_beside_the_image_index_topic() {
    let dir = tempfile::tempdir().unwrap();
    // Refused before any connection: no broker listens on port 1.
    let output = loomguard()
        .args(["run", "--brokers", "127.0.0.1:1", "--state-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("loomguard starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--no-image-topic"), "{stderr}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing is written to the state directory"
    );
}
