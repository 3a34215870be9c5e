//! Table-driven tests of the consistency checks on listings built for the purpose: intent,
//! stock, title products and category, and the bad input none of them may trip on.

mod common;

use loomguard::contract::{Finding, Kind};
use loomguard::moderator::Moderator;
use serde_json::{json, Value};

fn moderator() -> &'static Moderator {
    static MODERATOR: std::sync::OnceLock<Moderator> = std::sync::OnceLock::new();
    MODERATOR.get_or_init(common::moderator)
}

/// The findings of `kind` for a listing made of `listing` (merged over a clean upsert).
fn findings(listing: Value, kind: Kind) -> Vec<Finding> {
    let mut event = json!({
        "schema": "listing-event/v1",
        "event_id": "e-table",
        "op": "upsert",
        "occurred_at": "2026-12-02T09:15:00+08:00",
        "seller": { "id": "S-table" },
        "listing": {
            "id": "P-table", "intent": "supply", "title": "全棉府绸",
            "category": ["面料", "棉类面料"], "attributes": { "成分": "100%棉" },
            "description": "", "stock": 100
        }
    });
    for (key, value) in listing.as_object().unwrap() {
        event["listing"][key] = value.clone();
    }
    common::decide(moderator(), &event.to_string())
        .findings
        .into_iter()
        .filter(|f| f.kind == kind)
        .collect()
}

/// (listing fields, expected field and text of the one finding, or None)
type Row = (Value, Option<(&'static str, &'static str)>);

fn check_rows(kind: Kind, rows: Vec<Row>) {
    let mut failures = Vec::new();
    for (listing, expected) in rows {
        let found = findings(listing.clone(), kind);
        let got: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.field.as_str(), f.text.as_str()))
            .collect();
        let want: Vec<(&str, &str)> = expected.into_iter().collect();
        if got != want {
            failures.push(format!("{listing}: got {found:?}, wanted {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn intent_words_against_the_declared_intent_and_each_other() {
    check_rows(
        Kind::TitleIntent,
        vec![
            (
                json!({ "title": "求购 全棉府绸 大量" }),
                Some(("title", "求购")),
            ),
            (json!({ "title": "采购全棉府绸" }), Some(("title", "采购"))),
            (
                json!({ "title": "供应 全棉府绸", "intent": "purchase" }),
                Some(("title", "供应")),
            ),
            (
                json!({ "title": "出售二手剑杆织机", "intent": "purchase" }),
                Some(("title", "出售")),
            ),
            (
                json!({ "title": "求购 全棉府绸", "intent": "purchase" }),
                None,
            ),
            (json!({ "title": "供应 全棉府绸" }), None),
            (
                json!({ "title": "供应 全棉府绸", "description": "长期求购全棉府绸。" }),
                Some(("description", "求购")),
            ),
            (
                json!({ "title": "全棉府绸", "description": "本厂常年收购棉纱。" }),
                Some(("description", "收购")),
            ),
            (
                json!({ "title": "全棉府绸", "description": "本厂长期供应全棉府绸，欢迎采购。" }),
                None,
            ),
            (
                json!({ "title": "全棉府绸", "description": "大货与样品一致，请放心采购。" }),
                None,
            ),
            (
                json!({ "title": "全棉府绸", "description": "我们是优质供应商。" }),
                None,
            ),
            (
                json!({ "title": "求购全棉府绸", "intent": "purchase", "description": "请有货的供应商联系。" }),
                None,
            ),
            (json!({ "title": "求购 全棉府绸", "intent": "other" }), None),
            (json!({ "title": "求购 全棉府绸", "intent": null }), None),
        ],
    );
}

#[test]
fn stock_of_a_supply_listing_must_be_above_zero() {
    check_rows(
        Kind::Stock,
        vec![
            (json!({ "stock": 0 }), Some(("stock", "0"))),
            (json!({ "stock": -5 }), Some(("stock", "-5"))),
            (json!({ "stock": 0.0 }), Some(("stock", "0.0"))),
            (json!({ "stock": 1 }), None),
            (json!({ "stock": null }), None),
            (json!({ "stock": 0, "intent": "purchase" }), None),
        ],
    );
}

#[test]
fn the_head_noun_must_fit_the_category_path() {
    check_rows(
        Kind::Category,
        vec![
            (json!({ "title": "女装连衣裙面料 雪纺印花" }), None),
            (
                json!({ "title": "女装连衣裙 夏季" }),
                Some(("title", "连衣裙")),
            ),
            (
                json!({ "title": "保安服 冬季 加厚" }),
                Some(("title", "保安服")),
            ),
            (
                json!({ "title": "全棉四件套 1.8m床" }),
                Some(("title", "四件套")),
            ),
            (
                json!({ "title": "匀染剂 涤纶高温" }),
                Some(("title", "匀染剂")),
            ),
            (
                json!({ "title": "剑杆织机配件 剑带", "category": ["面料"] }),
                Some(("title", "配件")),
            ),
            (
                json!({ "title": "剑杆织机配件 剑带", "category": ["纺织机械", "纺机配件"] }),
                None,
            ),
            (
                json!({ "title": "床品面料 全棉贡缎", "category": ["家纺", "床上用品"] }),
                None,
            ),
            (
                json!({ "title": "汽车安全带织带", "category": ["产业用纺织品", "交通工具用"] }),
                None,
            ),
            (json!({ "title": "连衣裙", "category": ["工艺品"] }), None),
            (json!({ "title": "连衣裙", "category": [] }), None),
            (
                json!({ "title": "服装面料 纯棉", "category": ["纺织"] }),
                None,
            ),
            (
                json!({ "title": "男士衬衫 长袖", "category": ["纺织"] }),
                Some(("title", "衬衫")),
            ),
        ],
    );
}

#[test]
fn a_title_must_name_a_product() {
    check_rows(
        Kind::TitleNoProduct,
        vec![
            (
                json!({ "title": "新款 热卖 现货 包邮" }),
                Some(("title", "新款 热卖 现货 包邮")),
            ),
            (
                json!({ "title": "新品发布 在线咨询" }),
                Some(("title", "新品发布 在线咨询")),
            ),
            (json!({ "title": "全棉府绸" }), None),
            (
                json!({ "title": "DTY 150D/48F", "category": ["纱线"] }),
                None,
            ),
            (
                json!({ "title": "新款 热卖", "category": ["工艺品"] }),
                None,
            ),
            (json!({ "title": "!!!! ★★★" }), None),
            (json!({ "title": "" }), None),
            (
                json!({ "title": "40s×40s 133×72" }),
                Some(("title", "40s×40s 133×72")),
            ),
        ],
    );
}

#[test]
fn title_and_description_must_sell_the_same_kind_of_goods() {
    check_rows(
        Kind::TitleMismatch,
        vec![
            (
                json!({ "title": "全棉帆布 16安", "description": "本店主营剑杆织机配件，质量可靠。" }),
                Some(("title", "帆布")),
            ),
            (
                json!({ "title": "剑杆织机 高速", "category": ["纺织机械"], "description": "全棉府绸现货。" }),
                Some(("title", "剑杆织机")),
            ),
            (
                json!({ "title": "全棉府绸", "description": "精梳全棉府绸，适合衬衫、童装。" }),
                None,
            ),
            (
                json!({ "title": "全棉府绸", "description": "适合做衬衫。" }),
                None,
            ),
            (
                json!({ "title": "全棉府绸", "description": "布面平整，欢迎来电。" }),
                None,
            ),
            (
                json!({ "title": "全棉府绸", "description": "本厂面料用剑杆织机织造，设备先进。" }),
                None,
            ),
            (
                json!({ "title": "新款 热卖", "description": "剑杆织机配件。" }),
                None,
            ),
            // What the goods are for, or how they are made, is not what is sold.
            (
                json!({ "title": "涤棉纱 32S", "category": ["纱线"], "description": "适用于喷气织机、剑杆织机等多种机型。" }),
                None,
            ),
            (
                json!({ "title": "全棉帆布", "description": "环保染料印染，无异味。" }),
                None,
            ),
            (
                json!({ "title": "匀染剂", "category": ["染料助剂"], "description": "适合做衬衫、童装。" }),
                None,
            ),
            (
                json!({ "title": "全棉府绸", "description": "适合做衬衫。另有剑杆织机出售。" }),
                Some(("title", "府绸")),
            ),
        ],
    );
}

#[test]
fn stacked_products_are_counted_per_phrase() {
    check_rows(
        Kind::TitleStuffing,
        vec![
            (
                json!({ "title": "府绸 帆布 牛仔布 雪纺" }),
                Some(("title", "府绸 帆布 牛仔布 雪纺")),
            ),
            (json!({ "title": "府绸 帆布 牛仔布" }), None),
            (json!({ "title": "女装连衣裙面料 雪纺印花 衬衫面料" }), None),
            (json!({ "title": "府绸 府绸 府绸 府绸 府绸" }), None),
        ],
    );
}

/// Bad input: absent or empty fields, a title of only symbols, odd stock and attributes.
#[test]
fn bad_input_raises_no_consistency_finding() {
    let kinds = [
        Kind::TitleContact,
        Kind::TitleNoProduct,
        Kind::TitleStuffing,
        Kind::TitleMismatch,
        Kind::TitleIntent,
        Kind::Category,
        Kind::Stock,
    ];
    let listings = [
        json!({ "title": "★★★ !!! ……", "category": [] }),
        json!({ "title": "", "description": "", "attributes": {} }),
        json!({ "title": "全棉府绸", "description": "\u{0}\u{1}", "category": ["", ""] }),
        json!({ "title": "全棉府绸", "stock": null, "intent": "" }),
        json!({ "title": "全棉府绸 ①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳" }),
        json!({ "title": "全棉府绸", "attributes": { "成分": "150%棉 80%涤纶" } }),
        json!({ "title": "100%棉 府绸", "attributes": { "成分": 100, "克重": null, "规格": ["a"], "品牌": { "x": 1 } } }),
        json!({ "title": "全棉府绸", "attributes": { "成分": true } }),
        json!({ "title": "全棉府绸", "attributes": null }),
    ];
    for listing in listings {
        for kind in kinds {
            let found = findings(listing.clone(), kind);
            assert!(found.is_empty(), "{listing}: {found:?}");
        }
    }
}

/// One seller's listings in order through a fresh moderator: which earlier listing each
/// duplicates, if any.
fn duplicates_in_order(events: &[Value]) -> Vec<Option<String>> {
    let moderator = common::moderator();
    events
        .iter()
        .map(|event| {
            let decision = common::decide(&moderator, &event.to_string());
            decision
                .findings
                .iter()
                .find(|f| f.kind == Kind::DuplicateText)
                .map(|f| {
                    f.evidence.as_ref().unwrap()["duplicate_of"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
        })
        .collect()
}

fn listing_event(seller: &str, id: &str, title: &str, spec: &str, description: &str) -> Value {
    json!({
        "schema": "listing-event/v1", "event_id": format!("e-{id}"), "op": "upsert",
        "occurred_at": "2026-12-02T09:15:00+08:00", "seller": { "id": seller },
        "listing": {
            "id": id, "intent": "supply", "title": title, "category": ["面料", "棉类面料"],
            "attributes": { "成分": "100%棉", "品牌": "织云", "规格": spec },
            "description": description, "stock": 100
        }
    })
}

fn delete_event(seller: &str, id: &str) -> Value {
    json!({
        "schema": "listing-event/v1", "event_id": format!("e-del-{id}"), "op": "delete",
        "occurred_at": "2026-12-02T09:15:00+08:00", "seller": { "id": seller },
        "listing": { "id": id }
    })
}

#[test]
fn near_duplicates_of_a_sellers_live_listing_name_the_original() {
    const TITLE: &str = "精梳全棉贡缎 60s 173*124 床品面料";
    const TEXT: &str = "60支精梳全棉贡缎，适合四件套，布面光洁，手感柔软，可定织定染。";
    let found = duplicates_in_order(&[
        listing_event("S1", "P1", TITLE, "60s 173*124", TEXT),
        // Spacing, punctuation and full-width forms.
        listing_event(
            "S1",
            "P2",
            "精梳 全棉 贡缎　６０ｓ　173×124【床品面料】",
            "60s 173×124",
            TEXT,
        ),
        // A small edit of the description.
        listing_event(
            "S1",
            "P3",
            TITLE,
            "60s 173*124",
            "60支精梳全棉贡缎，适合做四件套，布面光洁，手感柔软，可定织定染。",
        ),
        // The same boilerplate around another product of the seller.
        listing_event(
            "S1",
            "P9",
            "精梳全棉府绸 60s 173*124 床品面料",
            "60s 173*124",
            TEXT,
        ),
        // Another seller's identical text.
        listing_event("S2", "P4", TITLE, "60s 173*124", TEXT),
        // The same text for another specification is another product.
        listing_event("S1", "P5", TITLE, "80s 300T", TEXT),
        // Other goods of the same seller.
        listing_event(
            "S1",
            "P6",
            "全棉府绸 40s×40s 133×72",
            "40s 133*72",
            "精梳全棉府绸，布面平整，适合衬衫、童装。",
        ),
        // Deleting the original frees its content: the next copy is the new original.
        delete_event("S1", "P1"),
        listing_event("S1", "P7", TITLE, "60s 173*124", TEXT),
        listing_event("S1", "P8", TITLE, "60s 173*124", TEXT),
    ]);
    let p = |id: &str| Some(id.to_owned());
    assert_eq!(
        found,
        vec![
            None,
            p("P1"),
            p("P1"),
            None,
            None,
            None,
            None,
            None,
            None,
            p("P7")
        ]
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Arbitrary text in title, description and 成分 never panics, and every finding's span
    /// lies inside its field.
    #[test]
    fn arbitrary_text_never_panics(
        title in "[\\PC全纯棉涤%/0-9 .TC×一三八QQ微信]{0,30}",
        description in "[\\PC适合，。%/0-9棉麻涤求购供应]{0,60}",
        composition in "[\\PC0-9%/棉涤纶氨TC ]{0,20}",
    ) {
        let listing = json!({
            "title": title, "description": description, "attributes": { "成分": composition }
        });
        let mut event = json!({
            "schema": "listing-event/v1", "event_id": "e-p", "op": "upsert",
            "occurred_at": "2026-12-02T09:15:00+08:00", "seller": { "id": "S-p" },
            "listing": { "id": "P-p", "intent": "supply", "category": ["面料"], "stock": 1 }
        });
        for (key, value) in listing.as_object().unwrap() {
            event["listing"][key] = value.clone();
        }
        let decision = common::decide(moderator(), &event.to_string());
        for finding in decision.findings {
            let field = match finding.field.as_str() {
                "title" => title.as_str(),
                "description" => description.as_str(),
                _ => continue,
            };
            proptest::prop_assert!(finding.start <= finding.end);
            proptest::prop_assert!(finding.end <= field.chars().count());
        }
    }
}
