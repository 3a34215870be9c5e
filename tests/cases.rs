//! The labelled cases of the platform (tests/data/cases.jsonl, copied from the shared test
//! data) as far as the term checks go: terms.prohibited, terms.adlaw and licence.

mod common;

use std::collections::BTreeSet;

use common::Expected;
use loomguard::contract::Kind;

const TERM_KINDS: [&str; 3] = ["terms.prohibited", "terms.adlaw", "licence"];

fn is_term_kind(kind: &str) -> bool {
    TERM_KINDS.contains(&kind)
}

#[test]
fn term_findings_match_every_labelled_case() {
    let moderator = common::moderator();
    let events = common::read_lines(&common::data("cases.jsonl"));
    let expectations = common::read_lines(&common::data("cases.expected.jsonl"));
    assert_eq!(events.len(), expectations.len());
    assert!(events.len() >= 56);

    let mut failures = Vec::new();
    let mut checked_action = 0;
    for (line, expected) in events.iter().zip(&expectations) {
        let expected: Expected = serde_json::from_str(expected).unwrap();
        let decision = common::decide(&moderator, line);
        assert_eq!(decision.event_id, expected.event_id);

        let term_findings: BTreeSet<&str> = decision
            .findings
            .iter()
            .map(|f| f.kind.as_str())
            .filter(|k| is_term_kind(k))
            .collect();
        let wanted: BTreeSet<&str> = expected
            .kinds
            .iter()
            .map(String::as_str)
            .filter(|k| is_term_kind(k))
            .collect();
        // Kinds the case expects must be there; on a case that must pass, a term finding of
        // any kind would change its decision.
        let missing: Vec<_> = wanted.difference(&term_findings).collect();
        let unwanted = expected.action == "pass" && !term_findings.is_empty();
        if !missing.is_empty() || unwanted {
            failures.push(format!(
                "{}: term kinds {term_findings:?}, expected {wanted:?} ({}) findings {:?}",
                expected.event_id, expected.note, decision.findings
            ));
        }
        for absent in expected.absent_kinds.iter().filter(|k| is_term_kind(k)) {
            assert!(
                !term_findings.contains(absent.as_str()),
                "{}",
                expected.event_id
            );
        }

        // Where the case is decided by term kinds alone, the action and points are ours.
        if !wanted.is_empty() && expected.kinds.iter().all(|k| is_term_kind(k)) {
            checked_action += 1;
            if decision.action.as_str() != expected.action {
                failures.push(format!(
                    "{}: action {}, expected {}",
                    expected.event_id, decision.action, expected.action
                ));
            }
            if let Some(points) = expected.points {
                if decision.points != points {
                    failures.push(format!(
                        "{}: points {}, expected {points}",
                        expected.event_id, decision.points
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked_action >= 19, "only {checked_action} cases checked");
}

#[test]
fn the_market_quotes_raise_no_term_finding() {
    let moderator = common::moderator();
    for line in common::read_lines(&common::data("market-quotes.jsonl")) {
        let decision = common::decide(&moderator, &line);
        let terms: Vec<_> = decision
            .findings
            .iter()
            .filter(|f| {
                matches!(
                    f.kind,
                    Kind::TermsProhibited | Kind::TermsAdlaw | Kind::Licence
                )
            })
            .collect();
        assert!(terms.is_empty(), "{}: {terms:?}", decision.event_id);
    }
}

/// Exact evidence for the handbook's own examples: rule, field, span and text.
#[test]
fn labelled_cases_carry_exact_evidence() {
    let moderator = common::moderator();
    let events = common::read_lines(&common::data("cases.jsonl"));
    let find = |id: &str| {
        let line = events
            .iter()
            .find(|l| l.contains(&format!("\"event_id\": \"{id}\"")))
            .unwrap_or_else(|| panic!("{id} is among the cases"));
        common::decide(&moderator, line)
    };

    let cases: [(&str, Kind, &str, &str, usize, usize, &str); 8] = [
        (
            "e-P2001-1",
            Kind::TermsAdlaw,
            "adlaw.absolute",
            "title",
            0,
            2,
            "最好",
        ),
        (
            "e-P2007-1",
            Kind::TermsAdlaw,
            "adlaw.absolute",
            "title",
            0,
            3,
            "最*好",
        ),
        (
            "e-P2008-1",
            Kind::TermsAdlaw,
            "adlaw.absolute",
            "title",
            0,
            2,
            "頂級",
        ),
        (
            "e-P2009-1",
            Kind::TermsAdlaw,
            "adlaw.absolute",
            "title",
            0,
            4,
            "ＴＯＰ１",
        ),
        (
            "e-P2010-1",
            Kind::TermsAdlaw,
            "adlaw.false_claim",
            "title",
            0,
            6,
            "100%正品",
        ),
        (
            "e-P3003-1",
            Kind::TermsProhibited,
            "prohibited.t4.military_police_uniforms",
            "title",
            0,
            2,
            "警服",
        ),
        (
            "e-P3006-1",
            Kind::TermsProhibited,
            "prohibited.t1.drugs",
            "title",
            0,
            2,
            "冰毒",
        ),
        (
            "e-P4003-1",
            Kind::Licence,
            "prohibited.t5.drugs_medical_devices",
            "title",
            0,
            6,
            "医用脱脂纱布",
        ),
    ];
    for (id, kind, rule, field, start, end, text) in cases {
        let decision = find(id);
        let finding = decision
            .findings
            .iter()
            .find(|f| f.kind == kind && f.field == field)
            .unwrap_or_else(|| {
                panic!(
                    "{id}: no {kind} finding in {field}: {:?}",
                    decision.findings
                )
            });
        assert_eq!(
            (
                finding.rule.as_str(),
                finding.start,
                finding.end,
                finding.text.as_str()
            ),
            (rule, start, end, text),
            "{id}"
        );
    }
}
