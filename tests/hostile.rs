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
