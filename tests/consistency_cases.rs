//! The labelled cases (tests/data/cases.jsonl) as far as the consistency checks of handbook
//! 3.1.2 go: every case that expects one of their kinds gets it, with its evidence, and no
//! `pass` case gets any of them. The market quotes, real listings, get none either.

mod common;

use std::collections::BTreeSet;

use common::Expected;
use loomguard::contract::{Decision, Kind};

const KINDS: [&str; 9] = [
    "duplicate.text",
    "title.contact",
    "attributes.composition",
    "title.intent",
    "stock",
    "title.no_product",
    "title.stuffing",
    "title.mismatch",
    "category",
];

fn ours(decision: &Decision) -> BTreeSet<&'static str> {
    decision
        .findings
        .iter()
        .map(|f| f.kind.as_str())
        .filter(|k| KINDS.contains(k))
        .collect()
}

/// Every case in file order through one moderator (the duplicate cases depend on order).
fn decide_all() -> Vec<(Expected, Decision)> {
    let moderator = common::moderator();
    let events = common::read_lines(&common::data("cases.jsonl"));
    let expectations = common::read_lines(&common::data("cases.expected.jsonl"));
    assert_eq!(events.len(), expectations.len());
    events
        .iter()
        .zip(&expectations)
        .map(|(line, expected)| {
            let expected: Expected = serde_json::from_str(expected).unwrap();
            let decision = common::decide(&moderator, line);
            assert_eq!(decision.event_id, expected.event_id);
            (expected, decision)
        })
        .collect()
}

#[test]
fn consistency_findings_match_every_labelled_case() {
    let mut failures = Vec::new();
    let mut expected_cases = 0;
    for (expected, decision) in decide_all() {
        let found = ours(&decision);
        let wanted: BTreeSet<&str> = expected
            .kinds
            .iter()
            .map(String::as_str)
            .filter(|k| KINDS.contains(k))
            .collect();
        if !wanted.is_empty() {
            expected_cases += 1;
        }
        let missing: Vec<_> = wanted.difference(&found).collect();
        let unwanted = expected.action == "pass" && !found.is_empty();
        let absent: Vec<_> = expected
            .absent_kinds
            .iter()
            .filter(|k| found.contains(k.as_str()))
            .collect();
        if !missing.is_empty() || unwanted || !absent.is_empty() {
            failures.push(format!(
                "{}: found {found:?}, expected {wanted:?}, absent {:?} ({}): {:?}",
                expected.event_id, expected.absent_kinds, expected.note, decision.findings
            ));
        }
        // Where the case is decided by our kinds alone, the action is ours: suppress.
        let decided_by_ours =
            !wanted.is_empty() && expected.kinds.iter().all(|k| KINDS.contains(&k.as_str()));
        if decided_by_ours {
            let (action, points) = (decision.action.as_str(), decision.points);
            if action != expected.action || points != 0 {
                failures.push(format!(
                    "{}: action {} points {}, expected {}",
                    expected.event_id, action, points, expected.action
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        expected_cases >= 8,
        "only {expected_cases} cases expect our kinds"
    );
}

#[test]
fn the_market_quotes_raise_no_consistency_finding() {
    let moderator = common::moderator();
    for line in common::read_lines(&common::data("market-quotes.jsonl")) {
        let decision = common::decide(&moderator, &line);
        let found = ours(&decision);
        assert!(
            found.is_empty(),
            "{}: {:?}",
            decision.event_id,
            decision.findings
        );
    }
}

/// Event id, kind, rule, field, span, text and evidence of one expected finding.
type EvidenceCase = (
    &'static str,
    Kind,
    &'static str,
    &'static str,
    usize,
    usize,
    &'static str,
    serde_json::Value,
);

/// Exact evidence for the labelled cases of each kind: rule, field, span, text, evidence.
#[test]
fn labelled_cases_carry_exact_evidence() {
    let decisions = decide_all();
    let find = |id: &str, kind: Kind| {
        let (_, decision) = decisions
            .iter()
            .find(|(e, _)| e.event_id == id)
            .unwrap_or_else(|| panic!("{id} is among the cases"));
        decision
            .findings
            .iter()
            .find(|f| f.kind == kind)
            .unwrap_or_else(|| panic!("{id}: no {kind}: {:?}", decision.findings))
            .clone()
    };
    let cases: Vec<EvidenceCase> = vec![
        (
            "e-P5001-1",
            Kind::TitleContact,
            "listing.title_contact",
            "title",
            5,
            16,
            "13800138000",
            serde_json::json!({ "contact": "mobile", "value": "13800138000" }),
        ),
        (
            "e-P5002-1",
            Kind::TitleContact,
            "listing.title_contact",
            "title",
            6,
            16,
            "微信 fab2026",
            serde_json::json!({ "contact": "wechat", "value": "fab2026" }),
        ),
        (
            "e-P5003-1",
            Kind::TitleContact,
            "listing.title_contact",
            "title",
            4,
            15,
            "QQ 12345678",
            serde_json::json!({ "contact": "qq", "value": "12345678" }),
        ),
        (
            "e-P5004-1",
            Kind::TitleNoProduct,
            "listing.title_no_product",
            "title",
            0,
            11,
            "新款 热卖 现货 包邮",
            serde_json::json!({ "category_path": ["面料", "棉类面料"], "product_nouns": 0 }),
        ),
        (
            "e-P5005-1",
            Kind::TitleStuffing,
            "listing.title_stuffing",
            "title",
            0,
            28,
            "府绸 帆布 牛仔布 雪纺 麂皮绒 塔丝隆 针织布 全棉布",
            serde_json::json!({
                "products": ["府绸", "帆布", "牛仔布", "雪纺", "麂皮绒", "塔丝隆", "针织布", "全棉布"],
                "count": 8,
                "threshold": 4,
            }),
        ),
        (
            "e-P5006-1",
            Kind::TitleMismatch,
            "listing.title_mismatch",
            "title",
            2,
            4,
            "帆布",
            serde_json::json!({
                "title_product": "帆布",
                "title_category": "fabric",
                "description_product": "剑杆织机",
                "description_category": "machinery",
                "description_start": 4,
                "description_end": 8,
            }),
        ),
        (
            "e-P6001-1",
            Kind::Category,
            "listing.category",
            "title",
            2,
            5,
            "连衣裙",
            serde_json::json!({
                "product": "连衣裙",
                "product_category": "garment",
                "category_path": ["面料", "化纤面料"],
                "path_category": "fabric",
            }),
        ),
        (
            "e-P6002-1",
            Kind::Category,
            "listing.category",
            "title",
            0,
            4,
            "剑杆织机",
            serde_json::json!({
                "product": "剑杆织机",
                "product_category": "machinery",
                "category_path": ["面料", "棉类面料"],
                "path_category": "fabric",
            }),
        ),
        (
            "e-P5007-1",
            Kind::TitleIntent,
            "listing.title_intent",
            "title",
            0,
            2,
            "求购",
            serde_json::json!({ "declared": "supply", "title_states": "purchase", "word": "求购" }),
        ),
        (
            "e-P9001-1",
            Kind::Stock,
            "listing.stock",
            "stock",
            0,
            1,
            "0",
            serde_json::json!({ "stock": 0, "intent": "supply" }),
        ),
        (
            "e-P7001-1",
            Kind::AttributesComposition,
            "listing.attributes_composition",
            "title",
            0,
            6,
            "100%纯棉",
            serde_json::json!({
                "attribute": {
                    "text": "涤棉",
                    "parts": [
                        { "fibre": "聚酯纤维", "share": null, "pure": false },
                        { "fibre": "棉", "share": null, "pure": false },
                    ],
                },
                "claim": { "parts": [{ "fibre": "棉", "share": 100.0, "pure": true }] },
                "reason": "fibre_not_claimed",
                "fibre": "聚酯纤维",
                "attribute_share": null,
                "claim_share": null,
                "limit": null,
            }),
        ),
        (
            "e-P7004-1",
            Kind::AttributesComposition,
            "listing.attributes_composition",
            "title",
            0,
            3,
            "纯羊毛",
            serde_json::json!({
                "attribute": {
                    "text": "30%羊毛 70%涤纶",
                    "parts": [
                        { "fibre": "羊毛", "share": 30.0, "pure": false },
                        { "fibre": "聚酯纤维", "share": 70.0, "pure": false },
                    ],
                },
                "claim": { "parts": [{ "fibre": "羊毛", "share": null, "pure": true }] },
                "reason": "not_pure",
                "fibre": "羊毛",
                "attribute_share": 30.0,
                "claim_share": null,
                "limit": 93.0,
            }),
        ),
        (
            "e-P9102-1",
            Kind::DuplicateText,
            "listing.duplicate_text",
            "title",
            0,
            23,
            "精梳全棉贡缎 60s 173*124 床品面料",
            serde_json::json!({
                "duplicate_of": "P9101",
                "seller": "S3001",
                "identical": true,
                "distance": 0,
                "max_distance": 12,
            }),
        ),
    ];
    for (id, kind, rule, field, start, end, text, evidence) in cases {
        let f = find(id, kind);
        assert_eq!(
            (
                f.rule.as_str(),
                f.field.as_str(),
                f.start,
                f.end,
                f.text.as_str()
            ),
            (rule, field, start, end, text),
            "{id}"
        );
        assert_eq!(f.evidence.as_ref(), Some(&evidence), "{id}");
    }
}

/// How many different products clean titles name: the data behind `stuffing_threshold` in
/// rules/categories.toml. Run with `--nocapture` to see the distribution.
#[test]
fn the_stuffing_threshold_sits_above_every_clean_title() {
    use loomguard::checks::folded::{Folded, LexiconBuilder};
    use loomguard::checks::product::{distinct_products, ProductNouns, TitleProducts};

    let rules = loomguard::rules::RuleSet::load(&common::repo().join("rules")).unwrap();
    let mut lexicon = LexiconBuilder::default();
    let nouns = ProductNouns::new(&rules.taxonomy, &rules.title.intent, &mut lexicon).unwrap();
    let lexicon = lexicon.build().unwrap();
    let count = |title: &str| {
        let mut folded = Folded::default();
        folded.fold(title, &lexicon);
        let mut products = TitleProducts::default();
        nouns.title(
            &lexicon,
            &folded,
            &mut Vec::new(),
            &mut Vec::new(),
            &mut products,
        );
        distinct_products(&folded, &products.phrase_heads).len()
    };

    let mut clean_titles: Vec<String> = Vec::new();
    let events = common::read_lines(&common::data("cases.jsonl"));
    let expectations = common::read_lines(&common::data("cases.expected.jsonl"));
    let mut stuffed = Vec::new();
    for (line, expected) in events.iter().zip(&expectations) {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let title = event["listing"]["title"].as_str().unwrap_or("").to_owned();
        let expected: Expected = serde_json::from_str(expected).unwrap();
        if expected.kinds.iter().any(|k| k == "title.stuffing") {
            stuffed.push(title);
        } else {
            clean_titles.push(title);
        }
    }
    for line in common::read_lines(&common::data("market-quotes.jsonl")) {
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        clean_titles.push(event["listing"]["title"].as_str().unwrap_or("").to_owned());
    }
    loomguard::generate::write_events(20_000, 7, |line| {
        let event: serde_json::Value = serde_json::from_slice(line).unwrap();
        if let Some(title) = event["listing"]["title"].as_str() {
            clean_titles.push(title.to_owned());
        }
        Ok(())
    })
    .unwrap();

    let mut histogram = std::collections::BTreeMap::new();
    for title in &clean_titles {
        *histogram.entry(count(title)).or_insert(0usize) += 1;
    }
    println!("distinct products per clean title: {histogram:?}");
    let threshold = rules.taxonomy.stuffing_threshold;
    let max_clean = histogram.keys().max().copied().unwrap_or(0);
    assert!(max_clean < threshold, "{histogram:?} vs {threshold}");
    assert!(
        max_clean + 2 >= threshold,
        "the threshold is far above the data: {histogram:?}"
    );
    for title in stuffed {
        assert!(count(&title) >= threshold, "{title}");
    }
}
