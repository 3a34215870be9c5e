//! The composition parser on real composition strings as Chinese and English listings write
//! them, and the composition check on the contradictions the handbook and GB/T 29862 name.

mod common;

use loomguard::checks::composition::parse::Mode;
use loomguard::checks::composition::read;
use loomguard::contract::{Finding, Kind};
use loomguard::moderator::Moderator;
use serde_json::json;

fn moderator() -> &'static Moderator {
    static MODERATOR: std::sync::OnceLock<Moderator> = std::sync::OnceLock::new();
    MODERATOR.get_or_init(common::moderator)
}

const A: Mode = Mode::Attribute;
const F: Mode = Mode::FreeText;
const T: Mode = Mode::Title;
const COTTON: &str = "棉";
const POLY: &str = "聚酯纤维";
const NYLON: &str = "聚酰胺纤维";
const SPANDEX: &str = "氨纶";
const VISCOSE: &str = "粘胶纤维";
const LYOCELL: &str = "莱赛尔纤维";
const SILK: &str = "蚕丝";
const WOOL: &str = "羊毛";
const LINEN: &str = "亚麻";
const BAST: &str = "麻";
const CASHMERE: &str = "山羊绒";

type Parts = &'static [(&'static str, Option<f64>, bool)];

/// (text, mode, claims: each a list of (standard fibre, share, pure))
const TABLE: &[(&str, Mode, &[Parts])] = &[
    ("100%棉", A, &[&[(COTTON, Some(100.0), false)]]),
    ("100％棉", A, &[&[(COTTON, Some(100.0), false)]]),
    ("全棉", F, &[&[(COTTON, None, true)]]),
    ("纯棉", F, &[&[(COTTON, None, true)]]),
    ("100%纯棉", F, &[&[(COTTON, Some(100.0), true)]]),
    (
        "65%涤纶35%棉",
        A,
        &[&[(POLY, Some(65.0), false), (COTTON, Some(35.0), false)]],
    ),
    (
        "65%涤纶 35%棉",
        F,
        &[&[(POLY, Some(65.0), false), (COTTON, Some(35.0), false)]],
    ),
    (
        "涤纶65% 棉35%",
        F,
        &[&[(POLY, Some(65.0), false), (COTTON, Some(35.0), false)]],
    ),
    (
        "涤65/棉35",
        A,
        &[&[(POLY, Some(65.0), false), (COTTON, Some(35.0), false)]],
    ),
    (
        "T/C 65/35",
        F,
        &[&[(POLY, Some(65.0), false), (COTTON, Some(35.0), false)]],
    ),
    (
        "T/C 80/20 45×45 110×76",
        F,
        &[&[(POLY, Some(80.0), false), (COTTON, Some(20.0), false)]],
    ),
    (
        "TC 65/35",
        F,
        &[&[(POLY, Some(65.0), false), (COTTON, Some(35.0), false)]],
    ),
    (
        "T65/C35",
        F,
        &[&[(POLY, Some(65.0), false), (COTTON, Some(35.0), false)]],
    ),
    (
        "CVC 60/40",
        F,
        &[&[(COTTON, Some(60.0), false), (POLY, Some(40.0), false)]],
    ),
    (
        "65/35涤棉",
        F,
        &[&[(POLY, Some(65.0), false), (COTTON, Some(35.0), false)]],
    ),
    (
        "涤/棉 65/35",
        F,
        &[&[(POLY, Some(65.0), false), (COTTON, Some(35.0), false)]],
    ),
    ("涤棉", A, &[&[(POLY, None, false), (COTTON, None, false)]]),
    ("全涤", F, &[&[(POLY, None, true)]]),
    ("纯涤纶", F, &[&[(POLY, None, true)]]),
    ("棉麻", F, &[&[(COTTON, None, false), (BAST, None, false)]]),
    (
        "95%cotton 5%spandex",
        F,
        &[&[(COTTON, Some(95.0), false), (SPANDEX, Some(5.0), false)]],
    ),
    (
        "95% Cotton 5% Spandex",
        F,
        &[&[(COTTON, Some(95.0), false), (SPANDEX, Some(5.0), false)]],
    ),
    (
        "cotton 97% elastane 3%",
        F,
        &[&[(COTTON, Some(97.0), false), (SPANDEX, Some(3.0), false)]],
    ),
    ("100% polyester", F, &[&[(POLY, Some(100.0), false)]]),
    ("100%天丝", F, &[&[(LYOCELL, Some(100.0), false)]]),
    (
        "70%莫代尔 30%天丝",
        A,
        &[&[
            ("莫代尔纤维", Some(70.0), false),
            (LYOCELL, Some(30.0), false),
        ]],
    ),
    ("100%桑蚕丝", A, &[&[(SILK, Some(100.0), false)]]),
    ("100%真丝", F, &[&[(SILK, Some(100.0), false)]]),
    ("100%羊绒", A, &[&[("山羊绒", Some(100.0), false)]]),
    (
        "30%羊毛 70%涤纶",
        A,
        &[&[(WOOL, Some(30.0), false), (POLY, Some(70.0), false)]],
    ),
    ("纯羊毛", F, &[&[(WOOL, None, true)]]),
    ("100%亚麻", A, &[&[(LINEN, Some(100.0), false)]]),
    ("纯亚麻", F, &[&[(LINEN, None, true)]]),
    ("亚麻", A, &[&[(LINEN, None, false)]]),
    (
        "55%亚麻 45%棉",
        A,
        &[&[(LINEN, Some(55.0), false), (COTTON, Some(45.0), false)]],
    ),
    ("人造棉", A, &[&[(VISCOSE, None, false)]]),
    ("100%人棉", F, &[&[(VISCOSE, Some(100.0), false)]]),
    (
        "92%锦纶 8%氨纶",
        A,
        &[&[(NYLON, Some(92.0), false), (SPANDEX, Some(8.0), false)]],
    ),
    (
        "尼龙92% 莱卡8%",
        F,
        &[&[(NYLON, Some(92.0), false), (SPANDEX, Some(8.0), false)]],
    ),
    ("100%聚酯纤维", A, &[&[(POLY, Some(100.0), false)]]),
    (
        "100%棉(全棉)",
        A,
        &[&[(COTTON, Some(100.0), false)], &[(COTTON, None, true)]],
    ),
    (
        "精梳棉 × 锦纶丝 (棉锦)",
        A,
        &[
            &[(COTTON, None, false), (NYLON, None, false)],
            &[(COTTON, None, false), (NYLON, None, false)],
        ],
    ),
    (
        "60%棉 40%涤纶",
        A,
        &[&[(COTTON, Some(60.0), false), (POLY, Some(40.0), false)]],
    ),
    (
        "50%粘胶 45%锦纶 5%氨纶",
        A,
        &[&[
            (VISCOSE, Some(50.0), false),
            (NYLON, Some(45.0), false),
            (SPANDEX, Some(5.0), false),
        ]],
    ),
    // Not claims: hand-feel words, fabric names, specifications, counts.
    ("仿真丝缎面", F, &[]),
    ("真丝手感 垂感好", F, &[]),
    ("涤纶塔夫绸 190T", F, &[]),
    ("C32S 普梳棉纱", F, &[]),
    ("40s×40s 133×72", F, &[]),
    ("DTY 150D/48F", F, &[]),
    ("100%正品", F, &[]),
    ("缩水率控制在3%以内", F, &[]),
    ("S-XL码", F, &[]),
    // In a title, a bare name of two characters or more is a claim that the fibre is there.
    ("涤纶塔夫绸 190T", T, &[&[(POLY, None, false)]]),
    ("真丝双绉 16姆米", T, &[&[(SILK, None, false)]]),
    ("亚麻面料 本色", T, &[&[(LINEN, None, false)]]),
    ("linen fabric", T, &[&[(LINEN, None, false)]]),
    ("羊绒大衣", T, &[&[(CASHMERE, None, false)]]),
    // … but not one of one character, a look, a colour, an id, or another thing's name.
    ("C32S 普梳棉纱", T, &[]),
    ("棉服 加厚", T, &[]),
    ("仿真丝缎面", T, &[]),
    ("亚麻色 窗帘布", T, &[]),
    ("羊绒手感 针织衫", T, &[]),
    ("仿羊绒 围巾", T, &[]),
    ("真丝风 衬衫", T, &[]),
    ("微信 linen_2024", T, &[]),
    ("藏羚羊绒 披肩", T, &[]),
    ("珍珠棉 包装", A, &[]),
];

#[test]
fn composition_strings_parse_into_fibres_and_shares() {
    assert!(TABLE.len() >= 40);
    let checks = moderator().checks();
    let mut failures = Vec::new();
    for &(text, mode, expected) in TABLE {
        let got = read(&checks, text, mode);
        let want: Vec<Vec<(String, Option<f64>, bool)>> = expected
            .iter()
            .map(|claim| {
                claim
                    .iter()
                    .map(|&(f, s, p)| (f.to_owned(), s, p))
                    .collect()
            })
            .collect();
        if got != want {
            failures.push(format!("{text}: got {got:?}, wanted {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn composition_findings(attribute: &str, title: &str, description: &str) -> Vec<Finding> {
    let event = json!({
        "schema": "listing-event/v1", "event_id": "e-c", "op": "upsert",
        "occurred_at": "2026-12-02T09:15:00+08:00", "seller": { "id": "S-c" },
        "listing": {
            "id": "P-c", "intent": "supply", "title": title, "category": ["面料"],
            "attributes": { "成分": attribute }, "description": description, "stock": 10
        }
    });
    common::decide(moderator(), &event.to_string())
        .findings
        .into_iter()
        .filter(|f| f.kind == Kind::AttributesComposition)
        .collect()
}

/// (成分, title, description, expected: field, text and reason of the first finding, or None)
type Expected = Option<(&'static str, &'static str, &'static str)>;

const CHECKS: &[(&str, &str, &str, Expected)] = &[
    (
        "涤棉",
        "100%纯棉 府绸",
        "",
        Some(("title", "100%纯棉", "fibre_not_claimed")),
    ),
    (
        "涤棉",
        "府绸",
        "100%纯棉，亲肤透气。",
        Some(("description", "100%纯棉", "fibre_not_claimed")),
    ),
    (
        "100%棉",
        "棉麻 混纺 面料",
        "",
        Some(("title", "棉麻", "fibre_not_declared")),
    ),
    (
        "30%羊毛 70%涤纶",
        "纯羊毛 大衣呢",
        "",
        Some(("title", "纯羊毛", "not_pure")),
    ),
    (
        "65%涤纶 35%棉",
        "T/C 80/20 府绸",
        "",
        Some(("title", "T/C 80/20", "share_differs")),
    ),
    (
        "65%涤纶 35%棉",
        "CVC 60/40 府绸",
        "",
        Some(("title", "CVC 60/40", "share_differs")),
    ),
    (
        "60%棉 40%涤纶",
        "涤棉府绸",
        "",
        Some(("title", "涤棉", "majority_differs")),
    ),
    (
        "100%涤纶",
        "全棉帆布",
        "",
        Some(("title", "全棉", "fibre_not_declared")),
    ),
    (
        "95%棉 5%氨纶",
        "100%棉 弹力布",
        "",
        Some(("title", "100%棉", "fibre_not_claimed")),
    ),
    (
        "92%锦纶 8%氨纶",
        "锦纶88% 氨纶12%",
        "",
        Some(("title", "锦纶88% 氨纶12%", "share_differs")),
    ),
    // Within tolerance, or agreeing.
    (
        "65%涤纶 35%棉",
        "T/C 65/35 涤棉府绸",
        "涤棉府绸，T65/C35。",
        None,
    ),
    ("65%涤纶 35%棉", "T/C 63/37 府绸", "", None),
    ("100%棉", "全棉府绸", "精梳全棉府绸。", None),
    ("95%棉 5%氨纶", "纯棉弹力布", "", None),
    (
        "100%涤纶",
        "仿真丝缎面 100%涤纶",
        "仿真丝效果，真丝手感，垂感好。",
        None,
    ),
    ("100%聚酯纤维", "女装连衣裙面料 雪纺印花", "", None),
    ("100%亚麻", "亚麻面料", "纯亚麻平纹布。", None),
    ("涤65/棉35", "T65/C35 32S涤棉纱", "", None),
    ("100%棉", "100%正品 全棉床单", "", None),
    ("99.6%棉 0.4%涤纶", "100%棉 府绸", "", None),
    ("100%桑蚕丝", "真丝双绉 16姆米", "", None),
    (
        "亚麻",
        "棉麻 面料",
        "",
        Some(("title", "棉麻", "fibre_not_declared")),
    ),
    // A fibre the title's product name names, missing from a complete 成分.
    (
        "100%聚酯纤维",
        "亚麻面料 平纹 本白",
        "",
        Some(("title", "亚麻", "fibre_not_declared")),
    ),
    (
        "100%腈纶",
        "羊绒围巾 秋冬",
        "",
        Some(("title", "羊绒", "fibre_not_declared")),
    ),
    (
        "65%涤纶 35%棉",
        "真丝双绉 16姆米",
        "",
        Some(("title", "真丝", "fibre_not_declared")),
    ),
    (
        "亚麻",
        "真丝亚麻 面料",
        "",
        Some(("title", "真丝", "fibre_not_declared")),
    ),
    // … but a blend that holds the named fibre, a 成分 that does not name every fibre, a
    // colour or a look, and the description are not judged so.
    ("30%羊毛 70%涤纶", "羊毛呢 大衣面料", "", None),
    ("55%亚麻 45%棉", "亚麻面料", "", None),
    ("55%亚麻", "真丝亚麻 面料", "", None),
    ("100%涤纶", "亚麻色 窗帘布 遮光", "", None),
    ("100%涤纶", "仿羊绒 围巾", "", None),
    ("100%棉", "全棉府绸", "适合做真丝衬衫的里布。", None),
    // Bad input: nothing to compare, or shares over 100 %.
    ("150%棉 80%涤纶", "100%棉", "", None),
    ("", "100%棉", "", None),
    ("见描述", "100%棉", "", None),
    ("100%棉", "", "", None),
];

#[test]
fn the_attribute_is_checked_against_title_and_description() {
    let mut failures = Vec::new();
    for &(attribute, title, description, expected) in CHECKS {
        let found = composition_findings(attribute, title, description);
        let got = found.first().map(|f| {
            let reason = f.evidence.as_ref().unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_owned();
            (f.field.clone(), f.text.clone(), reason)
        });
        let want = expected.map(|(f, t, r)| (f.to_owned(), t.to_owned(), r.to_owned()));
        if got != want {
            failures.push(format!(
                "{attribute} | {title} | {description}: got {found:?}, wanted {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
