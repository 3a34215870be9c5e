//! Hostile input through the whole moderator: arbitrary bytes and arbitrary field text never
//! panic, every record gets exactly one outcome, and every span points into its field.

mod common;

use loomguard::checks::Scratch;
use loomguard::contract::SourcePosition;
use std::sync::OnceLock;

use loomguard::moderator::{Moderator, Outcome, Prepared};
use proptest::prelude::*;

/// Loading the rules takes a while; every case shares one moderator.
fn moderator() -> &'static Moderator {
    static MODERATOR: OnceLock<Moderator> = OnceLock::new();
    MODERATOR.get_or_init(common::moderator)
}

fn position() -> SourcePosition {
    SourcePosition::File {
        file: "hostile".to_owned(),
        line: 1,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_become_a_dead_letter_or_a_decision(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let moderator = moderator();
        let prepared = moderator.prepare(&bytes, bytes.len() as u64, &position, &mut Scratch::default(), "t");
        let outcome = moderator.finish(prepared, "t");
        let line = match outcome {
            Outcome::Decision { line, .. } | Outcome::DeadLetter { line, .. } => line,
        };
        prop_assert!(serde_json::from_slice::<serde_json::Value>(&line).is_ok());
    }

    #[test]
    fn arbitrary_text_in_every_field_gives_spans_inside_the_field(
        title in "\\PC{0,60}",
        description in "(\\PC|最|好|秒|杀|高|仿|枪|１|一|%| ){0,120}",
        attribute in "\\PC{0,30}",
    ) {
        let moderator = moderator();
        let mut event = common::event_with("title", &title, &[]);
        event.listing.description = description.clone();
        event.listing.attributes.insert("成分".into(), attribute.as_str().into());
        let line = serde_json::to_vec(&event).unwrap();
        let prepared = moderator.prepare(&line, line.len() as u64, &position, &mut Scratch::default(), "t");
        let Prepared::Event { inspection, .. } = &prepared else {
            panic!("a well-formed event must decode");
        };
        for finding in &inspection.findings {
            let field = match finding.field.as_str() {
                "title" => &title,
                "description" => &description,
                "attributes.成分" => &attribute,
                other => panic!("unexpected field {other}"),
            };
            let slice: String = field.chars().skip(finding.start).take(finding.end - finding.start).collect();
            prop_assert!(finding.start < finding.end);
            prop_assert_eq!(&slice, &finding.text);
        }
        let outcome = moderator.finish(prepared, "t");
        let decided = matches!(outcome, Outcome::Decision { .. });
        prop_assert!(decided);
    }
}

/// A field of one finding repeated until the event is near its 1 MiB limit: every finding
/// is counted and the kept ones point at their own words. Until each span was located from
/// where the last one ended, not from the field's start, such events took minutes (the
/// description below, at twice its size, 455 s in a release build), and this test with
/// them.
#[test]
fn a_field_of_a_hundred_thousand_findings_keeps_every_span_in_place() {
    let moderator = moderator();
    let decide = |event: loomguard::contract::ListingEvent| {
        let line = serde_json::to_string(&event).unwrap();
        assert!(line.len() < 1024 * 1024, "{}", line.len());
        common::decide(moderator, &line)
    };
    // The kept findings of `kind`: at least one, each on one repetition of `text`.
    let assert_kept = |decision: &loomguard::contract::Decision,
                       kind: loomguard::contract::Kind,
                       text: &str,
                       stride: usize| {
        let kept: Vec<_> = decision
            .findings
            .iter()
            .filter(|f| f.kind == kind)
            .collect();
        assert!(!kept.is_empty());
        for finding in kept {
            let len = text.chars().count();
            assert_eq!(
                (finding.end - finding.start, finding.start % stride),
                (len, 0)
            );
            assert_eq!(finding.text, text);
        }
    };

    let decision = decide(common::event_with(
        "description",
        &"高仿 ".repeat(140_000),
        &[],
    ));
    assert_eq!(decision.action, loomguard::contract::Action::Takedown);
    assert_eq!(decision.findings.len() + decision.findings_omitted, 140_000);
    for finding in &decision.findings {
        assert_eq!(finding.rule, "prohibited.t3.counterfeit");
        assert_eq!((finding.end - finding.start, finding.start % 3), (2, 0));
        assert_eq!(finding.text, "高仿");
    }

    let mut event = common::event_with("title", &"QQ12345678 ".repeat(90_000), &[]);
    event.listing.description = String::new();
    let decision = decide(event);
    assert_kept(
        &decision,
        loomguard::contract::Kind::TitleContact,
        "QQ12345678",
        11,
    );
    // And the title names no product.
    assert_eq!(decision.findings.len() + decision.findings_omitted, 90_001);

    let mut event = common::event_with("title", &"涤棉".repeat(150_000), &[]);
    event
        .listing
        .attributes
        .insert("成分".into(), "100%棉".into());
    let decision = decide(event);
    assert_kept(
        &decision,
        loomguard::contract::Kind::AttributesComposition,
        "涤棉",
        2,
    );
    assert_eq!(decision.findings.len() + decision.findings_omitted, 150_001);
}

/// A finding quotes its text, and a title's may be the whole title: a title of 160,000
/// control characters, six bytes each escaped, would make a decision no Kafka producer
/// takes. Its findings are shortened instead, the span left whole.
#[test]
fn a_decision_over_its_limit_keeps_its_spans_and_shortens_its_texts() {
    use loomguard::moderator::{MAX_DECISION_BYTES, SHORT_TEXT_CHARS};

    let title = format!("新款热卖{}", "\u{1}".repeat(160_000));
    let mut event = common::event_with("title", &title, &[]);
    event.listing.description = String::new();
    let line = serde_json::to_vec(&event).unwrap();
    assert!(line.len() < 1024 * 1024, "{}", line.len());
    let moderator = moderator();
    let prepared = moderator.prepare(
        &line,
        line.len() as u64,
        &position,
        &mut Scratch::default(),
        "t",
    );
    let Outcome::Decision { line, .. } = moderator.finish(prepared, "t") else {
        panic!("the event is decided");
    };
    assert!(line.len() <= MAX_DECISION_BYTES, "{}", line.len());
    let decision: serde_json::Value = serde_json::from_slice(&line).unwrap();
    let findings = decision["findings"].as_array().unwrap();
    let no_product = findings
        .iter()
        .find(|f| f["kind"] == "title.no_product")
        .unwrap_or_else(|| panic!("the title names no product: {findings:?}"));
    assert_eq!(no_product["start"], 0);
    assert_eq!(no_product["end"], 160_004);
    let kept: String = title.chars().take(SHORT_TEXT_CHARS).collect();
    assert_eq!(
        no_product["text"].as_str(),
        Some(format!("{kept}…").as_str())
    );
}
