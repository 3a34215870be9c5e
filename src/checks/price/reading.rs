//! Reading a listing's price as sellers enter it: an amount that may be a number or a decimal
//! string (full-width digits, thousands separators, a ¥ in front), a currency, and a unit in
//! any of the forms sellers write (米, 元/米, ／米, 元每米, RMB/m, 碼), into CNY per canonical unit.
//!
//! This runs in the parallel half of the check, once per event. Whatever it cannot make sense
//! of is [`Unreadable`], never a guess: a price nobody can read gets no finding.

use serde_json::Value;

use crate::contract::Price;
use crate::normalize::Normalized;
use crate::rules::{normalize_spelling, PriceRules, UnitId};

/// Longest amount string read; anything longer is not a price someone typed.
const MAX_AMOUNT_CHARS: usize = 32;

/// Amounts above this many CNY are taken for garbage, not for a price.
const MAX_AMOUNT: f64 = 1e12;

/// A listing's price, as far as it can be read.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Reading {
    /// No price, or a delete.
    #[default]
    Absent,
    /// 面议: agreed with each buyer.
    Negotiable,
    Price(UnitPrice),
    Unreadable(Unreadable),
}

/// A price in CNY per canonical unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitPrice {
    pub amount: f64,
    pub unit: UnitId,
}

/// Why a price could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Not a positive, finite number of a sane length.
    Amount,
    /// Missing, or a spelling `prices.toml` does not know.
    Unit,
    /// A currency without a rate, or a unit naming another currency than `currency`.
    Currency,
}

/// An amount before units: a number, 面议 written as the amount, or nothing usable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Number(f64),
    Negotiable,
    Unreadable,
}

/// Buffers a thread reuses for reading units.
#[derive(Debug, Default)]
pub struct UnitScratch {
    spelled: String,
    normalized: Normalized,
}

/// Reads `price` with the units and currencies of `rules`.
pub fn read(price: Option<&Price>, rules: &PriceRules, scratch: &mut UnitScratch) -> Reading {
    let Some(price) = price else {
        return Reading::Absent;
    };
    let amount = match &price.amount {
        _ if price.negotiable => return Reading::Negotiable,
        None => return Reading::Absent,
        Some(value) => parse_amount(value),
    };
    let amount = match amount {
        Amount::Number(amount) => amount,
        Amount::Negotiable => return Reading::Negotiable,
        Amount::Unreadable => return Reading::Unreadable(Unreadable::Amount),
    };

    let Some(unit) = price.unit.as_deref() else {
        return Reading::Unreadable(Unreadable::Unit);
    };
    let (spelling, unit_currency) = match parse_unit(unit, rules, scratch) {
        Some(parsed) => parsed,
        None => return Reading::Unreadable(Unreadable::Unit),
    };

    let field_currency = match price.currency.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(code) => {
            normalize_spelling(code, &mut scratch.spelled, &mut scratch.normalized);
            match rules.currency(scratch.normalized.text()) {
                Some(currency) => Some(currency),
                None => return Reading::Unreadable(Unreadable::Currency),
            }
        }
    };
    let currency = match (field_currency, unit_currency) {
        (Some(a), Some(b)) if a != b => return Reading::Unreadable(Unreadable::Currency),
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => match rules.currency("cny") {
            Some(cny) => cny,
            None => return Reading::Unreadable(Unreadable::Currency),
        },
    };

    let rate = rules.currencies[currency].rate;
    let per_unit = amount * rate / spelling.size;
    if !(per_unit.is_finite() && per_unit > 0.0 && amount * rate <= MAX_AMOUNT) {
        return Reading::Unreadable(Unreadable::Amount);
    }
    Reading::Price(UnitPrice {
        amount: per_unit,
        unit: spelling.unit,
    })
}

/// Parses an amount: a JSON number, or a string holding one.
pub fn parse_amount(value: &Value) -> Amount {
    let number = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => return parse_amount_text(text),
        _ => None,
    };
    match number {
        Some(n) if n.is_finite() && n > 0.0 && n <= MAX_AMOUNT => Amount::Number(n),
        _ => Amount::Unreadable,
    }
}

fn parse_amount_text(text: &str) -> Amount {
    let text = text.trim();
    if matches!(text, "面议" | "面議" | "电议" | "電議" | "议价" | "議價") {
        return Amount::Negotiable;
    }
    if text.chars().count() > MAX_AMOUNT_CHARS {
        return Amount::Unreadable;
    }

    // Keep only what a decimal number is made of, folding full-width forms; a currency sign in
    // front or 元 behind is allowed, thousands separators are dropped, anything else refuses.
    let text = text.strip_prefix(['¥', '￥']).unwrap_or(text);
    let text = text.strip_suffix('元').unwrap_or(text);
    let mut digits = [0u8; MAX_AMOUNT_CHARS];
    let mut len = 0;
    for c in text.chars() {
        let ascii = match c {
            '０'..='９' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '．' => '.',
            ',' | '，' | ' ' => continue,
            _ => c,
        };
        if !(ascii.is_ascii_digit() || ascii == '.') || len == digits.len() {
            return Amount::Unreadable;
        }
        digits[len] = ascii as u8;
        len += 1;
    }
    let parsed = std::str::from_utf8(&digits[..len])
        .ok()
        .and_then(|s| s.parse::<f64>().ok());
    match parsed {
        Some(n) if n.is_finite() && n > 0.0 && n <= MAX_AMOUNT => Amount::Number(n),
        _ => Amount::Unreadable,
    }
}

/// Parses a unit spelling, with an optional currency in front (元/米, RMB/m) and an optional
/// 每 or "per" between them: the unit, and the currency the spelling names, if any.
pub fn parse_unit(
    unit: &str,
    rules: &PriceRules,
    scratch: &mut UnitScratch,
) -> Option<(crate::rules::UnitSpelling, Option<usize>)> {
    normalize_spelling(unit, &mut scratch.spelled, &mut scratch.normalized);
    let normalized = scratch.normalized.text();
    if let Some(spelling) = rules.unit(normalized) {
        return Some((spelling, None));
    }
    let (currency, rest) = match rules.currency_prefix(normalized) {
        Some((currency, len)) => (Some(currency), &normalized[len..]),
        None => (None, normalized),
    };
    let rest = rest
        .strip_prefix("每")
        .or_else(|| rest.strip_prefix("per"))
        .unwrap_or(rest);
    rules.unit(rest).map(|spelling| (spelling, currency))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSet;
    use serde_json::json;

    fn rules() -> PriceRules {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        RuleSet::load(&dir).unwrap().prices
    }

    #[test]
    fn amounts() {
        let table: &[(Value, Amount)] = &[
            (json!(9.6), Amount::Number(9.6)),
            (json!(21000), Amount::Number(21000.0)),
            (json!("7.8"), Amount::Number(7.8)),
            (json!(" 7.8 "), Amount::Number(7.8)),
            (json!("９．５"), Amount::Number(9.5)),
            (json!("21,000"), Amount::Number(21000.0)),
            (json!("¥9.5"), Amount::Number(9.5)),
            (json!("￥12元"), Amount::Number(12.0)),
            (json!("面议"), Amount::Negotiable),
            (json!("電議"), Amount::Negotiable),
            (json!(0), Amount::Unreadable),
            (json!(-3.5), Amount::Unreadable),
            (json!("-3.5"), Amount::Unreadable),
            (json!("0.00"), Amount::Unreadable),
            (json!("NaN"), Amount::Unreadable),
            (json!("inf"), Amount::Unreadable),
            (json!("infinity"), Amount::Unreadable),
            (json!("1e400"), Amount::Unreadable),
            (json!(1e300), Amount::Unreadable),
            (json!("9.5-12"), Amount::Unreadable),
            (json!("约10"), Amount::Unreadable),
            (json!(""), Amount::Unreadable),
            (json!("."), Amount::Unreadable),
            (json!("1.2.3"), Amount::Unreadable),
            (json!("1".repeat(33)), Amount::Unreadable),
            (json!("9".repeat(32)), Amount::Unreadable),
            (json!(true), Amount::Unreadable),
            (json!(null), Amount::Unreadable),
            (json!([9.5]), Amount::Unreadable),
            (json!({"value": 9.5}), Amount::Unreadable),
        ];
        for (value, expected) in table {
            assert_eq!(parse_amount(value), *expected, "{value}");
        }
    }

    #[test]
    fn unit_spellings() {
        let rules = rules();
        let mut scratch = UnitScratch::default();
        // (canonical unit, size, currency code named in the spelling)
        type Parsed<'a> = Option<(&'a str, f64, Option<&'a str>)>;
        let table: &[(&str, Parsed)] = &[
            ("米", Some(("米", 1.0, None))),
            ("元/米", Some(("米", 1.0, Some("CNY")))),
            ("／米", Some(("米", 1.0, None))),
            ("元每米", Some(("米", 1.0, Some("CNY")))),
            ("每米", Some(("米", 1.0, None))),
            ("RMB/m", Some(("米", 1.0, Some("CNY")))),
            ("ＲＭＢ／Ｍ", Some(("米", 1.0, Some("CNY")))),
            ("¥/m", Some(("米", 1.0, Some("CNY")))),
            ("USD/m", Some(("米", 1.0, Some("USD")))),
            ("$/yd", Some(("米", 0.9144, Some("USD")))),
            ("码", Some(("米", 0.9144, None))),
            ("碼", Some(("米", 0.9144, None))),
            ("元/码", Some(("米", 0.9144, Some("CNY")))),
            ("厘米", Some(("米", 0.01, None))),
            ("公斤", Some(("公斤", 1.0, None))),
            ("千克", Some(("公斤", 1.0, None))),
            ("KG", Some(("公斤", 1.0, None))),
            ("元/kg", Some(("公斤", 1.0, Some("CNY")))),
            ("吨", Some(("公斤", 1000.0, None))),
            ("噸", Some(("公斤", 1000.0, None))),
            ("元/吨", Some(("公斤", 1000.0, Some("CNY")))),
            ("RMB/T", Some(("公斤", 1000.0, Some("CNY")))),
            ("斤", Some(("公斤", 0.5, None))),
            ("克", Some(("公斤", 0.001, None))),
            ("平方米", Some(("平方米", 1.0, None))),
            ("元/㎡", Some(("平方米", 1.0, Some("CNY")))),
            ("m²", Some(("平方米", 1.0, None))),
            ("台", Some(("台", 1.0, None))),
            ("元/台", Some(("台", 1.0, Some("CNY")))),
            ("臺", Some(("台", 1.0, None))),
            ("套", Some(("套", 1.0, None))),
            ("件", Some(("件", 1.0, None))),
            ("元/件", Some(("件", 1.0, Some("CNY")))),
            ("条", Some(("条", 1.0, None))),
            ("个", Some(("个", 1.0, None))),
            ("只", Some(("只", 1.0, None))),
            ("卷", Some(("卷", 1.0, None))),
            ("匹", Some(("匹", 1.0, None))),
            ("元", None),
            ("", None),
            ("///", None),
            ("furlong", None),
            ("米米", None),
            ("元/米/天", None),
        ];
        for (spelling, expected) in table {
            let parsed = parse_unit(spelling, &rules, &mut scratch).map(|(s, currency)| {
                (
                    rules.units[usize::from(s.unit)].name.as_str(),
                    s.size,
                    currency.map(|c| rules.currencies[c].code.as_str()),
                )
            });
            assert_eq!(parsed, *expected, "{spelling}");
        }
    }

    fn price(amount: Value, currency: Option<&str>, unit: Option<&str>) -> Price {
        Price {
            amount: Some(amount),
            currency: currency.map(Into::into),
            unit: unit.map(Into::into),
            negotiable: false,
        }
    }

    fn read_one(price: &Price) -> Reading {
        read(Some(price), &rules(), &mut UnitScratch::default())
    }

    fn canonical(reading: Reading) -> (f64, String) {
        let rules = rules();
        match reading {
            Reading::Price(p) => (p.amount, rules.units[usize::from(p.unit)].name.clone()),
            other => panic!("not a price: {other:?}"),
        }
    }

    #[test]
    fn conversions_to_cny_per_canonical_unit() {
        let table: &[(Value, Option<&str>, &str, f64, &str)] = &[
            (json!(21.5), Some("CNY"), "公斤", 21.5, "公斤"),
            (json!(21500), Some("CNY"), "吨", 21.5, "公斤"),
            (json!("21,500"), None, "元/吨", 21.5, "公斤"),
            (json!(43), Some("RMB"), "元/斤", 86.0, "公斤"),
            (json!(10), Some("CNY"), "码", 10.0 / 0.9144, "米"),
            (json!(0.25), Some("CNY"), "厘米", 25.0, "米"),
            (json!(2), Some("USD"), "米", 14.4, "米"),
            (json!(2), None, "USD/m", 14.4, "米"),
            (json!(2), Some(" "), "USD/米", 14.4, "米"),
            (json!(1), Some("CNY"), "台", 1.0, "台"),
            (json!(3.5), Some("cny"), "元/平方米", 3.5, "平方米"),
        ];
        for (amount, currency, unit, expected, expected_unit) in table {
            let (value, name) = canonical(read_one(&price(amount.clone(), *currency, Some(unit))));
            assert!((value - expected).abs() < 1e-9, "{amount} {unit}: {value}");
            assert_eq!(name, *expected_unit, "{amount} {unit}");
        }
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        let table: &[(Price, Reading)] = &[
            (
                price(json!("abc"), Some("CNY"), Some("米")),
                Reading::Unreadable(Unreadable::Amount),
            ),
            (
                price(json!(-1), Some("CNY"), Some("米")),
                Reading::Unreadable(Unreadable::Amount),
            ),
            (
                price(json!(9.5), Some("CNY"), None),
                Reading::Unreadable(Unreadable::Unit),
            ),
            (
                price(json!(9.5), Some("CNY"), Some("箩")),
                Reading::Unreadable(Unreadable::Unit),
            ),
            (
                price(json!(9.5), Some("XYZ"), Some("米")),
                Reading::Unreadable(Unreadable::Currency),
            ),
            (
                price(json!(9.5), Some("CNY"), Some("USD/m")),
                Reading::Unreadable(Unreadable::Currency),
            ),
            (
                price(json!(5e11), Some("USD"), Some("米")),
                Reading::Unreadable(Unreadable::Amount),
            ),
            (
                price(json!("面议"), Some("CNY"), Some("米")),
                Reading::Negotiable,
            ),
            (
                Price {
                    negotiable: true,
                    ..Price::default()
                },
                Reading::Negotiable,
            ),
            (Price::default(), Reading::Absent),
        ];
        for (price, expected) in table {
            assert_eq!(read_one(price), *expected, "{price:?}");
        }
        assert_eq!(
            read(None, &rules(), &mut UnitScratch::default()),
            Reading::Absent
        );
    }
}
