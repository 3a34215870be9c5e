//! The table of real sentences in tests/data/term_cases.toml: per prohibited-goods item, per
//! Advertising-Law class, per evasion form, per allow-list entry and context exception, with
//! the rule that must fire and the exact original span it must point at.

mod common;

use loomguard::checks::Scratch;
use loomguard::contract::Kind;
use serde::Deserialize;

#[derive(Deserialize)]
struct Table {
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    text: String,
    field: String,
    expect: String,
    #[serde(default)]
    span: Option<String>,
    #[serde(default)]
    licences: Vec<String>,
}

#[test]
fn every_table_case_gives_its_rule_and_span() {
    let moderator = common::moderator();
    let table: Table = toml::from_str(
        &std::fs::read_to_string(common::data("term_cases.toml")).expect("the table exists"),
    )
    .expect("the table parses");
    assert!(table.case.len() >= 100, "only {} cases", table.case.len());

    let mut failures = Vec::new();
    for case in &table.case {
        let licences: Vec<&str> = case.licences.iter().map(String::as_str).collect();
        let event = common::event_with(&case.field, &case.text, &licences);
        let findings = moderator
            .checks()
            .inspect(&event, &mut Scratch::default())
            .findings;
        let terms: Vec<_> = findings
            .iter()
            .filter(|f| {
                matches!(
                    f.kind,
                    Kind::TermsProhibited | Kind::TermsAdlaw | Kind::Licence
                )
            })
            .collect();

        if case.expect == "pass" {
            if !terms.is_empty() {
                failures.push(format!("{:?} should pass, got {terms:?}", case.text));
            }
            continue;
        }
        let Some(found) = terms.iter().find(|f| f.rule == case.expect) else {
            failures.push(format!("{:?}: no {} in {terms:?}", case.text, case.expect));
            continue;
        };
        // The span is in characters of the original text, and `text` is exactly that slice.
        let slice: String = case
            .text
            .chars()
            .skip(found.start)
            .take(found.end - found.start)
            .collect();
        if slice != found.text {
            failures.push(format!(
                "{:?}: span {}..{} is {slice:?}, text says {:?}",
                case.text, found.start, found.end, found.text
            ));
        }
        if let Some(span) = &case.span {
            if &found.text != span {
                failures.push(format!(
                    "{:?}: {} matched {:?}, expected {span:?}",
                    case.text, case.expect, found.text
                ));
            }
        }
        let gated = !case.licences.is_empty() || found.kind == Kind::Licence;
        if gated && found.kind != Kind::Licence {
            failures.push(format!(
                "{:?}: licence-gated rule reported as {}",
                case.text, found.kind
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The table covers the rule files: a firing case for every item and class that has terms, a
/// passing case for every allow-list entry and every context exception.
#[test]
fn the_table_covers_every_rule_allow_entry_and_exception() {
    use loomguard::normalize::Normalizer;
    use toml::Value;

    let read = |name: &str| -> Value {
        toml::from_str(&std::fs::read_to_string(common::repo().join("rules").join(name)).unwrap())
            .unwrap()
    };
    let table: Table =
        toml::from_str(&std::fs::read_to_string(common::data("term_cases.toml")).unwrap()).unwrap();
    let expected: std::collections::BTreeSet<&str> =
        table.case.iter().map(|c| c.expect.as_str()).collect();
    let passing: Vec<String> = table
        .case
        .iter()
        .filter(|c| c.expect == "pass")
        .map(|c| Normalizer.normalize(&c.text))
        .collect();
    let passes_with = |terms: &[Value]| {
        terms.iter().any(|t| {
            let term = Normalizer.normalize(t.as_str().unwrap());
            passing.iter().any(|p| p.contains(&term))
        })
    };

    let mut missing = Vec::new();
    let prohibited = read("prohibited.toml");
    for item in prohibited["item"].as_array().unwrap() {
        let id = item["id"].as_str().unwrap();
        let has_terms = item
            .get("terms")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty());
        if has_terms && !expected.contains(id) {
            missing.push(format!("no firing case for {id}"));
        }
    }
    for class in read("adlaw.toml")["class"].as_array().unwrap() {
        let id = class["id"].as_str().unwrap();
        if !expected.contains(id) {
            missing.push(format!("no firing case for {id}"));
        }
    }
    let allow = read("allow.toml");
    for (n, entry) in allow["allow"].as_array().unwrap().iter().enumerate() {
        if !passes_with(entry["terms"].as_array().unwrap()) {
            missing.push(format!(
                "no passing case for allow entry {} ({:?})",
                n + 1,
                entry["reason"]
            ));
        }
    }
    for context in allow["context"].as_array().unwrap() {
        if !passes_with(context["terms"].as_array().unwrap()) {
            missing.push(format!("no passing case for context {}", context["id"]));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
