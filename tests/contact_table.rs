//! The contact-detail detector (`title.contact`), table-driven: contact details in the forms
//! sellers write them, and fabric specifications, batch numbers and prices that must pass.

mod common;

use loomguard::contract::{Finding, Kind};

fn contacts(title: &str) -> Vec<Finding> {
    static MODERATOR: std::sync::OnceLock<loomguard::moderator::Moderator> =
        std::sync::OnceLock::new();
    let moderator = MODERATOR.get_or_init(common::moderator);
    let event = common::event_with("title", title, &[]);
    let line = serde_json::to_string(&event).unwrap();
    common::decide(moderator, &line)
        .findings
        .into_iter()
        .filter(|f| f.kind == Kind::TitleContact)
        .collect()
}

/// (title, kind of contact, value read, text of the finding)
const POSITIVES: &[(&str, &str, &str, &str)] = &[
    (
        "全棉府绸 13800138000",
        "mobile",
        "13800138000",
        "13800138000",
    ),
    (
        "全棉府绸13800138000",
        "mobile",
        "13800138000",
        "13800138000",
    ),
    (
        "府绸 138 0013 8000",
        "mobile",
        "13800138000",
        "138 0013 8000",
    ),
    (
        "府绸 138-0013-8000",
        "mobile",
        "13800138000",
        "138-0013-8000",
    ),
    (
        "府绸 138.0013.8000 咨询",
        "mobile",
        "13800138000",
        "138.0013.8000",
    ),
    (
        "府绸 1 3 8 0 0 1 3 8 0 0 0",
        "mobile",
        "13800138000",
        "1 3 8 0 0 1 3 8 0 0 0",
    ),
    (
        "府绸 １３８００１３８０００",
        "mobile",
        "13800138000",
        "１３８００１３８０００",
    ),
    (
        "府绸 一三八〇〇一三八〇〇〇",
        "mobile",
        "13800138000",
        "一三八〇〇一三八〇〇〇",
    ),
    ("府绸 ①③⑧⓪⓪①③⑧⓪⓪⓪", "mobile", "13800138000", "①③⑧⓪⓪①③⑧⓪⓪⓪"),
    (
        "府绸 壹叁捌零零壹叁捌零零零",
        "mobile",
        "13800138000",
        "壹叁捌零零壹叁捌零零零",
    ),
    (
        "府绸 +86 138 0013 8000",
        "mobile",
        "13800138000",
        "138 0013 8000",
    ),
    (
        "府绸 008613800138000",
        "mobile",
        "008613800138000",
        "008613800138000",
    ),
    (
        "帆布 0571-88776655",
        "landline",
        "057188776655",
        "0571-88776655",
    ),
    (
        "帆布 (0571)88776655",
        "landline",
        "057188776655",
        "0571)88776655",
    ),
    (
        "帆布 010-12345678",
        "landline",
        "01012345678",
        "010-12345678",
    ),
    (
        "帆布 0575 8512 3456",
        "landline",
        "057585123456",
        "0575 8512 3456",
    ),
    (
        "帆布 400-820-8820",
        "toll_free",
        "4008208820",
        "400-820-8820",
    ),
    (
        "帆布 800 820 8820",
        "toll_free",
        "8008208820",
        "800 820 8820",
    ),
    ("帆布 电话 88776655", "phone", "88776655", "电话 88776655"),
    ("帆布 tel:85123456", "phone", "85123456", "tel:85123456"),
    ("纯棉布 QQ 12345678", "qq", "12345678", "QQ 12345678"),
    ("纯棉布 qq:987654321", "qq", "987654321", "qq:987654321"),
    ("纯棉布 扣扣 12345678", "qq", "12345678", "扣扣 12345678"),
    (
        "纯棉布 企鹅 一二三四五六七",
        "qq",
        "1234567",
        "企鹅 一二三四五六七",
    ),
    (
        "纯棉布 ＱＱ：１２３４５６７８",
        "qq",
        "12345678",
        "ＱＱ：１２３４５６７８",
    ),
    (
        "涤纶面料 加微信 fab2026 咨询",
        "wechat",
        "fab2026",
        "微信 fab2026",
    ),
    (
        "涤纶面料 威信 fabric_88",
        "wechat",
        "fabric_88",
        "威信 fabric_88",
    ),
    (
        "涤纶面料 VX:tex-shop01",
        "wechat",
        "tex-shop01",
        "VX:tex-shop01",
    ),
    (
        "涤纶面料 加vx abc_12345",
        "wechat",
        "abc_12345",
        "加vx abc_12345",
    ),
    (
        "涤纶面料 加vx:abc12345",
        "wechat",
        "abc12345",
        "加vx:abc12345",
    ),
    ("涤纶面料 Q Q 12345678", "qq", "12345678", "Q Q 12345678"),
    (
        "府绸 幺三八幺二三四五六七八",
        "mobile",
        "13812345678",
        "幺三八幺二三四五六七八",
    ),
    (
        "涤纶面料 V信 textile66",
        "wechat",
        "textile66",
        "V信 textile66",
    ),
    (
        "涤纶面料 wx 13800138000",
        "mobile",
        "13800138000",
        "wx 13800138000",
    ),
    (
        "涤纶面料 微信是abc12345",
        "wechat",
        "abc12345",
        "微信是abc12345",
    ),
    (
        "涤纶面料 +V abcdef123",
        "wechat",
        "abcdef123",
        "+V abcdef123",
    ),
    (
        "雪纺 www.fabric-city.com",
        "url",
        "www.fabric-city.com",
        "www.fabric-city.com",
    ),
    (
        "雪纺 https://shop.example.cn/p/1",
        "url",
        "https://shop.example.cn/p/1",
        "https://shop.example.cn/p/1",
    ),
    (
        "雪纺 fabric88.com 批发",
        "url",
        "fabric88.com",
        "fabric88.com",
    ),
    (
        "雪纺 ｗｗｗ．ｔｅｘ．ｃｎ",
        "url",
        "www.tex.cn",
        "ｗｗｗ．ｔｅｘ．ｃｎ",
    ),
    ("雪纺 www。tex。com", "url", "www.tex.com", "www。tex。com"),
    (
        "雪纺 sales@tex.com.cn",
        "email",
        "sales@tex.com.cn",
        "sales@tex.com.cn",
    ),
    (
        "雪纺 ｓａｌｅｓ＠ｔｅｘ．ｃｏｍ",
        "email",
        "sales@tex.com",
        "ｓａｌｅｓ＠ｔｅｘ．ｃｏｍ",
    ),
    (
        "型号RL-230 13800138000",
        "mobile",
        "13800138000",
        "13800138000",
    ),
];

const NEGATIVES: &[&str] = &[
    "全棉府绸 40s×40s 133×72 幅宽150cm 染色",
    "全棉府绸 40s×40s 133×72 57/58\" 20261201批次",
    "全棉府绸 40S*40S 133*72 57/58\"",
    "T/C 65/35 涤棉口袋布 45*45 110*76",
    "涤纶塔夫绸 190T 里布",
    "DTY 150D/48F 涤纶低弹丝",
    "75D×225D麂皮绒",
    "粘胶短纤1.5D×38mm",
    "涤纶短纤 1.56dtex×38mm",
    "32S普梳纯棉纱 21000元/吨",
    "普梳棉纱 21500元/吨 现货",
    "批次 20261201",
    "货号 2026120108",
    "生产日期 2026-12-01",
    "2026年12月1日至12月7日 全棉帆布",
    "剑杆织机 RL-230 幅宽230cm",
    "喷气织机 JA-280 2025款",
    "符合GB 18401 B类 ISO9001",
    "全棉帆布 10安 12安 16安",
    "价格 7.8元/米 起订量500米",
    "幅宽 150 160 170 180cm",
    "全棉府绸 60s×60s 173×124",
    "真丝双绉 16姆米 19姆米 22姆米",
    "全棉贡缎 80s 300T",
    "涤纶FDY 75D/36F",
    "纯棉毛巾 32股 70×140",
    "亚麻面料 21s×21s 幅宽145cm",
    "九成新 剑杆织机 一台",
    "一等品 全棉府绸 三十万米",
    "克重 230g/m² 21s/3×21s/3",
    "微信联系 全棉府绸",
    "QQ群 纺织交流",
    "规格 1.4D×38mm 本白",
    "wxyz 面料 qqq",
    "No.1 面料 1.5cm",
    "T65/C35 32S涤棉纱",
    "拉链 5号 开尾 3号 闭尾",
];

#[test]
fn contact_details_are_found_in_every_form() {
    assert!(POSITIVES.len() >= 30);
    let mut failures = Vec::new();
    for &(title, kind, value, text) in POSITIVES {
        let found = contacts(title);
        let matching = found.iter().find(|f| {
            let evidence = f.evidence.as_ref().unwrap();
            evidence["contact"] == kind && evidence["value"] == value && f.text == text
        });
        match matching {
            Some(finding) => {
                assert_eq!(finding.rule, "listing.title_contact");
                assert_eq!(finding.field, "title");
                let chars: Vec<char> = title.chars().collect();
                let span: String = chars[finding.start..finding.end].iter().collect();
                assert_eq!(span, finding.text, "{title}");
            }
            None => failures.push(format!(
                "{title}: wanted {kind} {value} `{text}`, got {found:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn specifications_batches_and_prices_are_not_contact_details() {
    assert!(NEGATIVES.len() >= 30);
    let failures: Vec<String> = NEGATIVES
        .iter()
        .filter_map(|title| {
            let found = contacts(title);
            (!found.is_empty()).then(|| format!("{title}: {found:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_titles_raise_nothing() {
    for title in [
        "", "!!!!", "　", "①", "qq", "微信", "www.", "@", "@.com", "http://",
    ] {
        assert_eq!(contacts(title), Vec::new(), "{title}");
    }
}
