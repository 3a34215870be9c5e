//! Fake prices (handbook 3.1.2 (4)): a unit price far outside the market for its category,
//! such as a loom at 1 元/台.
//!
//! Two halves, like the duplicate check. [`PriceCheck::prepare`] runs with the parallel checks:
//! it reads the price into CNY per canonical unit ([`reading`]), finds the seeded band of the
//! listing's category and unit, and names the listing's series. [`PriceBook::observe`] runs in
//! input order: it checks the price against the band blended with what the series has learned
//! ([`learned`]), and learns the price when it passes on a listing with no other finding, so
//! that what the check learns is never what it, or another check, objects to.

pub mod learned;
pub mod reading;

use rustc_hash::FxHashMap;
use std::hash::{Hash, Hasher};

use rustc_hash::FxHasher;

use serde_json::json;

use crate::contract::{Finding, Kind, ListingEvent};
use crate::rules::{PriceRules, UnitId};
use learned::{Bounds, Series};
use reading::Reading;

pub use reading::{UnitScratch, Unreadable};

/// The compiled price rules: the rule file and its bands indexed by unit.
#[derive(Debug)]
pub struct PriceCheck {
    rules: PriceRules,
    bands_by_unit: Vec<Vec<usize>>,
}

/// What the parallel half made of a listing's price.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Prepared {
    /// No price to check: none given, 面议, or a delete.
    #[default]
    Nothing,
    Unreadable(Unreadable),
    Price(PreparedPrice),
}

/// A readable price, with where to look it up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreparedPrice {
    /// CNY per canonical unit.
    pub amount: f64,
    pub unit: UnitId,
    /// Index of the seeded band in the rules, if the category has one for this unit.
    pub band: Option<usize>,
    /// Hash of the category path and the unit: the learned series this price belongs to.
    pub series: u64,
}

/// Prices that could not be understood, by reason, since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UnreadablePrices {
    pub amount: u64,
    pub unit: u64,
    pub currency: u64,
}

impl UnreadablePrices {
    /// Every price not understood, whatever the reason.
    pub fn total(&self) -> u64 {
        self.amount + self.unit + self.currency
    }
}

impl PriceCheck {
    /// Compiles `prices.toml` for the check.
    pub fn new(rules: &PriceRules) -> PriceCheck {
        let mut bands_by_unit = vec![Vec::new(); rules.units.len()];
        for (index, band) in rules.bands.iter().enumerate() {
            if let Some(list) = bands_by_unit.get_mut(usize::from(band.unit)) {
                list.push(index);
            }
        }
        PriceCheck {
            rules: rules.clone(),
            bands_by_unit,
        }
    }

    /// The rules the check was compiled from.
    pub fn rules(&self) -> &PriceRules {
        &self.rules
    }

    /// Reads the listing's price and finds its band and series.
    pub fn prepare(&self, event: &ListingEvent, scratch: &mut UnitScratch) -> Prepared {
        let listing = &event.listing;
        let price = match reading::read(listing.price.as_ref(), &self.rules, scratch) {
            Reading::Absent | Reading::Negotiable => return Prepared::Nothing,
            Reading::Unreadable(why) => return Prepared::Unreadable(why),
            Reading::Price(price) => price,
        };

        // Each level trimmed once, not once for every band it is compared with (a path of more
        // levels than this is trimmed as it is compared).
        let category = &listing.category;
        let mut trimmed = [""; 8];
        for (slot, level) in trimmed.iter_mut().zip(category) {
            *slot = level.trim();
        }
        let level = |i: usize| {
            trimmed
                .get(i)
                .copied()
                .unwrap_or_else(|| category[i].trim())
        };

        // The longest category prefix with a band for this unit.
        let band = self
            .bands_by_unit
            .get(usize::from(price.unit))
            .into_iter()
            .flatten()
            .copied()
            .filter(|&index| {
                let path = &self.rules.bands[index].category;
                path.len() <= category.len()
                    && path.iter().enumerate().all(|(i, a)| a.as_str() == level(i))
            })
            .max_by_key(|&index| self.rules.bands[index].category.len());

        // The series lives in this process only (learned again after a restart), so any
        // fixed hash will do; a fast one, on every event's path.
        let mut hasher = FxHasher::default();
        for i in 0..category.len() {
            level(i).hash(&mut hasher);
        }
        price.unit.hash(&mut hasher);

        Prepared::Price(PreparedPrice {
            amount: price.amount,
            unit: price.unit,
            band,
            series: hasher.finish(),
        })
    }
}

/// The price check's history: one learned series per (category path, unit), bounded in
/// number, and the count of prices it could not read.
#[derive(Debug, Default)]
pub struct PriceBook {
    // Keys are hashes already.
    series: FxHashMap<u64, Series>,
    unreadable: UnreadablePrices,
}

impl PriceBook {
    /// Prices that could not be understood so far, by reason.
    pub fn unreadable(&self) -> UnreadablePrices {
        self.unreadable
    }

    /// Checks a prepared price in input order, and learns it when it passes on a listing with
    /// no other findings (`clean`). Returns the finding for a price outside its band.
    pub fn observe(
        &mut self,
        checks: &super::Checks,
        event: &ListingEvent,
        prepared: Prepared,
        clean: bool,
    ) -> Option<Finding> {
        let price = match prepared {
            Prepared::Nothing => return None,
            Prepared::Unreadable(why) => {
                match why {
                    Unreadable::Amount => self.unreadable.amount += 1,
                    Unreadable::Unit => self.unreadable.unit += 1,
                    Unreadable::Currency => self.unreadable.currency += 1,
                }
                return None;
            }
            Prepared::Price(price) => price,
        };
        let learning = &checks.price.rules().learning;
        if let Some(bounds) = self.bounds(checks, &price) {
            if price.amount < bounds.low || price.amount > bounds.high {
                let series = self.series.get(&price.series);
                return finding(checks, event, &price, bounds, series);
            }
        }

        if clean {
            let room = self.series.len() < learning.max_series;
            match self.series.get_mut(&price.series) {
                Some(series) => series.add(price.amount, learning),
                None if room => {
                    let mut series = Series::default();
                    series.add(price.amount, learning);
                    self.series.insert(price.series, series);
                }
                None => {}
            }
        }
        None
    }

    /// The band `price` is checked against, as of now.
    pub fn bounds(&self, checks: &super::Checks, price: &PreparedPrice) -> Option<Bounds> {
        let rules = checks.price.rules();
        let seed = price.band.and_then(|index| rules.bands.get(index));
        let quantiles = self.series.get(&price.series).and_then(Series::quantiles);
        learned::bounds(seed, quantiles, &rules.learning)
    }
}

/// The finding for a price outside `bounds`, with the evidence a moderator needs: the price in
/// canonical units, the band and where it came from, the learned quantiles, and the ratio.
fn finding(
    checks: &super::Checks,
    event: &ListingEvent,
    price: &PreparedPrice,
    bounds: Bounds,
    series: Option<&Series>,
) -> Option<Finding> {
    let rules = checks.price.rules();
    let listing = &event.listing;
    let given = listing.price.as_ref()?;
    let amount_text = match &given.amount {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let text = format!(
        "{amount_text} {}",
        given.unit.as_deref().unwrap_or_default()
    );
    let mut finding = checks.listing_finding(Kind::Price, "price", text)?;

    let unit = rules
        .units
        .get(usize::from(price.unit))
        .map_or("?", |u| u.name.as_str());
    let ratio = if price.amount < bounds.low {
        price.amount / bounds.low
    } else {
        price.amount / bounds.high
    };
    let seed = price.band.and_then(|index| rules.bands.get(index));
    let mut evidence = json!({
        "price": round(price.amount),
        "unit": format!("元/{unit}"),
        "category": listing.category.join("/"),
        "band": {
            "low": round(bounds.low),
            "high": round(bounds.high),
            "source": bounds.source,
        },
        "ratio": round(ratio),
    });
    if let Some(seed) = seed {
        evidence["seed"] = json!({
            "category": seed.category.join("/"),
            "low": seed.low,
            "high": seed.high,
        });
    }
    if let Some((q, series)) = series.and_then(|s| Some((s.quantiles()?, s))) {
        evidence["learned"] = json!({
            "samples": series.samples(),
            "weight": round(q.weight),
            "quantiles": [rules.learning.lower_quantile, 0.5, rules.learning.upper_quantile],
            "values": [round(q.low), round(q.median), round(q.high)],
        });
    }
    finding.evidence = Some(evidence);
    Some(finding)
}

/// Six significant digits: evidence people read, and tests compare. Through the decimal
/// text, as scaling by a power of ten runs out of range at either end of f64's: a price of
/// 3e-309 yuan came out as 0.
fn round(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    format!("{value:.5e}").parse().unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::round;

    #[test]
    fn evidence_keeps_six_significant_digits_at_any_magnitude() {
        assert_eq!(round(33.333333), 33.3333);
        assert_eq!(round(0.05), 0.05);
        assert_eq!(round(123_456_789.0), 123_457_000.0);
        assert_eq!(round(0.000_123_456_789), 0.000_123_457);
        assert_eq!(round(3.004659955112323e-309), 3.00466e-309);
        assert_eq!(round(1.797_693_134_862_315_7e308), 1.79769e308);
        assert_eq!(round(-2.5e-320), -2.5e-320);
        assert_eq!(round(0.0), 0.0);
    }
}
