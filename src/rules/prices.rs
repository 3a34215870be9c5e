//! `prices.toml`: what the fake-price check (handbook 3.1.2 (4)) compares prices with: the
//! units and currencies it understands, the seeded market band of each (category, canonical
//! unit), and how far the bands learned from the stream may move them.

use std::collections::HashMap;
use std::path::Path;

use rustc_hash::FxHashMap;
use serde::Deserialize;
use toml::Spanned;

use super::{line_of, parse_toml, read_rule_file, Problem};
use crate::normalize::{Normalized, Normalizer};

/// Index of a canonical unit in [`PriceRules::units`].
pub type UnitId = u16;

/// A canonical unit: the one every spelling of its quantity is converted to.
#[derive(Debug, Clone, PartialEq)]
pub struct CanonicalUnit {
    /// As it is shown in evidence, e.g. `米` (so a price reads `元/米`).
    pub name: String,
    pub quantity: Quantity,
}

/// What a unit measures; only units of one quantity convert into each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantity {
    Length,
    Mass,
    Area,
    Count,
}

/// One spelling of a unit: which canonical unit, and how many of it one of these is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitSpelling {
    pub unit: UnitId,
    pub size: f64,
}

/// A currency and its rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Currency {
    pub code: String,
    /// CNY per one of this currency.
    pub rate: f64,
}

/// A seeded plausible band for a category path prefix and one canonical unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub category: Vec<String>,
    pub unit: UnitId,
    /// CNY per canonical unit.
    pub low: f64,
    pub high: f64,
}

/// How learned estimates become bands; see the comment on `[learning]` in `prices.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Learning {
    /// Prices a series must have seen before its learned band is used.
    pub min_samples: u64,
    /// How many listings' worth of evidence the seeded band counts as in the blend.
    pub seed_weight: f64,
    pub lower_quantile: f64,
    pub upper_quantile: f64,
    /// Factor the learned quantiles are widened by.
    pub fence: f64,
    /// Samples of a series between two decays of its histogram.
    pub decay_every: u32,
    /// What the weights are multiplied by at each decay.
    pub decay: f64,
    /// Series remembered at most.
    pub max_series: usize,
    /// Factor a blended bound may move from its seeded bound, either way.
    #[serde(default = "default_max_shift")]
    pub max_shift: f64,
}

fn default_max_shift() -> f64 {
    4.0
}

impl Default for Learning {
    fn default() -> Self {
        Learning {
            min_samples: 200,
            seed_weight: 500.0,
            lower_quantile: 0.01,
            upper_quantile: 0.99,
            fence: 3.0,
            decay_every: 256,
            decay: 0.9,
            max_series: 2048,
            max_shift: default_max_shift(),
        }
    }
}

/// Everything in `prices.toml`, validated.
#[derive(Debug, Clone, Default)]
pub struct PriceRules {
    pub units: Vec<CanonicalUnit>,
    /// Normalised spelling → unit.
    spellings: FxHashMap<String, UnitSpelling>,
    pub currencies: Vec<Currency>,
    /// Normalised currency name → index into `currencies`, longest first, for prefixes.
    currency_names: Vec<(String, usize)>,
    pub bands: Vec<Band>,
    pub learning: Learning,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PricesFile {
    learning: Learning,
    currency: Vec<CurrencyDef>,
    unit: Vec<UnitDef>,
    #[serde(default)]
    band: Vec<BandDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CurrencyDef {
    code: Spanned<String>,
    rate: f64,
    names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitDef {
    canonical: Spanned<String>,
    quantity: Quantity,
    names: HashMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BandDef {
    category: Spanned<Vec<String>>,
    units: Vec<String>,
    low: f64,
    high: f64,
    #[allow(dead_code)] // where the figures come from, for people reading the file
    basis: String,
}

/// The form unit and currency spellings are compared in: the term checks' normalisation, with
/// the few symbols it would drop that mean something in a unit spelled out first.
pub fn normalize_spelling(text: &str, spelled: &mut String, out: &mut Normalized) {
    spelled.clear();
    for c in text.chars() {
        match c {
            '㎡' => spelled.push_str("m2"),
            '²' => spelled.push('2'),
            '¥' | '￥' => spelled.push('元'),
            '$' | '＄' => spelled.push_str("usd"),
            '€' => spelled.push_str("eur"),
            _ => spelled.push(c),
        }
    }
    Normalizer.normalize_into(spelled, out);
}

fn normalized(text: &str) -> String {
    let mut spelled = String::new();
    let mut out = Normalized::default();
    normalize_spelling(text, &mut spelled, &mut out);
    out.text().to_owned()
}

impl PriceRules {
    pub(super) fn load(dir: &Path, problems: &mut Vec<Problem>) -> PriceRules {
        let path = dir.join("prices.toml");
        let Some(text) = read_rule_file(&path, problems) else {
            return PriceRules::default();
        };
        let Some(file): Option<PricesFile> = parse_toml(&path, &text, problems) else {
            return PriceRules::default();
        };
        let mut problem = |offset: usize, message: String| {
            problems.push(Problem {
                file: path.clone(),
                line: if offset == usize::MAX {
                    0
                } else {
                    line_of(&text, offset)
                },
                message,
            })
        };

        let learning = file.learning;
        // Written as what must hold, so that NaN fails every comparison.
        let valid = 0.0 < learning.lower_quantile
            && learning.lower_quantile < learning.upper_quantile
            && learning.upper_quantile < 1.0
            && learning.fence >= 1.0
            && learning.fence.is_finite()
            && learning.decay > 0.0
            && learning.decay <= 1.0
            && learning.seed_weight >= 0.0
            && learning.seed_weight.is_finite()
            && learning.decay_every > 0
            && learning.min_samples > 0
            && learning.max_shift >= 1.0
            && learning.max_shift.is_finite();
        if !valid {
            problem(
                usize::MAX,
                "[learning]: quantiles must satisfy 0 < lower < upper < 1, fence ≥ 1, \
                 0 < decay ≤ 1, seed_weight ≥ 0, decay_every and min_samples > 0, max_shift ≥ 1"
                    .to_owned(),
            );
        }

        let mut currencies = Vec::new();
        let mut currency_names: Vec<(String, usize)> = Vec::new();
        for def in file.currency {
            let start = def.code.span().start;
            if !(def.rate > 0.0 && def.rate.is_finite()) {
                problem(
                    start,
                    format!("currency {}: rate must be > 0", def.code.get_ref()),
                );
            }
            let index = currencies.len();
            for name in std::iter::once(def.code.get_ref())
                .chain(&def.names)
                .map(|n| normalized(n))
            {
                if name.is_empty() {
                    continue;
                }
                match currency_names.iter().find(|(n, _)| *n == name) {
                    Some(&(_, other)) if other != index => problem(
                        start,
                        format!("currency name `{name}` also names another currency"),
                    ),
                    Some(_) => {}
                    None => currency_names.push((name, index)),
                }
            }
            currencies.push(Currency {
                code: def.code.into_inner(),
                rate: def.rate,
            });
        }
        if !currency_names.iter().any(|(name, _)| name == "cny") {
            problem(
                usize::MAX,
                "no currency named CNY, the one prices without a currency are in".to_owned(),
            );
        }
        currency_names.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));

        let mut units: Vec<CanonicalUnit> = Vec::new();
        let mut spellings = FxHashMap::default();
        for def in file.unit {
            let start = def.canonical.span().start;
            let name = def.canonical.into_inner();
            if units.iter().any(|u| u.name == name) {
                problem(start, format!("unit `{name}` is defined twice"));
                continue;
            }
            let Ok(id) = UnitId::try_from(units.len()) else {
                problem(start, "too many units".to_owned());
                break;
            };
            if def.names.get(&name) != Some(&1.0) {
                problem(start, format!("unit `{name}` must list itself with size 1"));
            }
            for (spelling, size) in &def.names {
                let key = normalized(spelling);
                if key.is_empty() || !(*size > 0.0 && size.is_finite()) {
                    problem(
                        start,
                        format!("unit `{name}`: `{spelling}` needs a normalisable spelling and a size > 0"),
                    );
                } else if spellings
                    .insert(
                        key,
                        UnitSpelling {
                            unit: id,
                            size: *size,
                        },
                    )
                    .is_some()
                {
                    problem(start, format!("unit spelling `{spelling}` is listed twice"));
                }
            }
            units.push(CanonicalUnit {
                name,
                quantity: def.quantity,
            });
        }

        let mut bands: Vec<Band> = Vec::new();
        for def in file.band {
            let start = def.category.span().start;
            let category = def.category.into_inner();
            if category.is_empty() || category.iter().any(|c| c.trim().is_empty()) {
                problem(
                    start,
                    "band: the category path needs non-empty levels".to_owned(),
                );
            }
            if !(def.low > 0.0 && def.low < def.high && def.high.is_finite()) {
                problem(
                    start,
                    format!("band {}: needs 0 < low < high", category.join("/")),
                );
            }
            for unit in &def.units {
                let Some(id) = units.iter().position(|u| u.name == *unit) else {
                    problem(
                        start,
                        format!(
                            "band {}: `{unit}` is not a canonical unit",
                            category.join("/")
                        ),
                    );
                    continue;
                };
                let id = id as UnitId; // `units` holds at most UnitId::MAX entries, checked above
                if bands.iter().any(|b| b.unit == id && b.category == category) {
                    problem(
                        start,
                        format!("band {} for `{unit}` is defined twice", category.join("/")),
                    );
                }
                bands.push(Band {
                    category: category.clone(),
                    unit: id,
                    low: def.low,
                    high: def.high,
                });
            }
        }

        PriceRules {
            units,
            spellings,
            currencies,
            currency_names,
            bands,
            learning,
        }
    }

    /// The unit a normalised spelling names.
    pub fn unit(&self, normalized: &str) -> Option<UnitSpelling> {
        self.spellings.get(normalized).copied()
    }

    /// The currency whose name `normalized` starts with, and the length of that name.
    pub fn currency_prefix(&self, normalized: &str) -> Option<(usize, usize)> {
        self.currency_names
            .iter()
            .find(|(name, _)| normalized.starts_with(name.as_str()))
            .map(|(name, index)| (*index, name.len()))
    }

    /// The currency a normalised name names exactly.
    pub fn currency(&self, normalized: &str) -> Option<usize> {
        self.currency_names
            .iter()
            .find(|(name, _)| name == normalized)
            .map(|&(_, index)| index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (PriceRules, Vec<Problem>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("prices.toml"), text).unwrap();
        let mut problems = Vec::new();
        let rules = PriceRules::load(dir.path(), &mut problems);
        (rules, problems)
    }

    const BASE: &str = r#"
[learning]
min_samples = 10
seed_weight = 5.0
lower_quantile = 0.01
upper_quantile = 0.99
fence = 2.0
decay_every = 16
decay = 0.9
max_series = 4

[[currency]]
code = "CNY"
rate = 1.0
names = ["元"]

[[unit]]
canonical = "米"
quantity = "length"
names = { "米" = 1.0, "码" = 0.9144 }
"#;

    #[test]
    fn the_project_rules_load_without_problems() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let mut problems = Vec::new();
        let rules = PriceRules::load(&dir, &mut problems);
        assert_eq!(problems, vec![]);
        assert!(rules.bands.len() > 20);
        let yard = rules.unit("码").unwrap();
        assert_eq!(rules.units[usize::from(yard.unit)].name, "米");
        assert_eq!(yard.size, 0.9144);
    }

    #[test]
    fn bad_bands_are_reported_with_their_line() {
        let text = format!(
            "{BASE}\n[[band]]\ncategory = [\"面料\"]\nunits = [\"米\"]\nlow = 5.0\nhigh = 1.0\nbasis = \"\"\n\
             \n[[band]]\ncategory = [\"面料\"]\nunits = [\"吨\"]\nlow = 1.0\nhigh = 2.0\nbasis = \"\"\n"
        );
        let (_, problems) = load(&text);
        let messages: Vec<(usize, &str)> = problems
            .iter()
            .map(|p| (p.line, p.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            vec![
                (23, "band 面料: needs 0 < low < high"),
                (30, "band 面料: `吨` is not a canonical unit"),
            ]
        );
    }

    #[test]
    fn a_spelling_listed_under_two_units_is_a_problem() {
        let text = format!(
            "{BASE}\n[[unit]]\ncanonical = \"碼\"\nquantity = \"length\"\nnames = {{ \"碼\" = 1.0 }}\n"
        );
        let (_, problems) = load(&text);
        let messages: Vec<(usize, &str)> = problems
            .iter()
            .map(|p| (p.line, p.message.as_str()))
            .collect();
        // 碼 normalises to 码, which the first unit already lists.
        assert_eq!(messages, vec![(23, "unit spelling `碼` is listed twice")]);
    }
}
