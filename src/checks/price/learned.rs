//! The online half of the price check: per (category path, canonical unit) series, a streaming
//! estimate of what passing listings charge, and the rule that blends it with the seeded band.
//!
//! A [`Series`] is a log-scale histogram with exponential forgetting. Prices are spread over
//! orders of magnitude (a button and a loom) and their errors are relative, so bins are equal
//! in log10 price: 64 per decade from 0.001 to 10⁹ CNY, every quantile read within ±1.8 % of
//! the truth whatever the price level, in a fixed 3 KiB per series. Every `decay_every` samples
//! all weights are multiplied by `decay`, so a series follows a market that moves instead of
//! averaging 2005 with 2025. Everything is plain arithmetic in input order: the same input
//! gives the same state, bit for bit.

use crate::rules::{Band, Learning};

const BINS_PER_DECADE: f64 = 64.0;
const LOWEST_LOG10: f64 = -3.0;
const BINS: usize = 768;

/// Samples between two refreshes of a series' cached quantiles. The ordered half runs on one
/// thread for the whole pipeline, so the scan of 768 bins is spread over this many samples
/// instead of being paid on every price checked.
const REFRESH_EVERY: u64 = 32;

/// One series' histogram of passing prices.
#[derive(Debug, Clone)]
pub struct Series {
    weights: Box<[f32]>,
    /// The sum of `weights`, kept alongside.
    total: f64,
    samples: u64,
    since_decay: u32,
    quantiles: Option<Quantiles>,
}

/// Quantiles of a series, as of its last refresh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantiles {
    pub low: f64,
    pub median: f64,
    pub high: f64,
    /// Decayed weight of the samples behind them.
    pub weight: f64,
    /// Samples seen in all.
    pub samples: u64,
}

/// Where the band a price was checked against came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Seed,
    Learned,
    Blended,
}

/// The band a price is checked against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub low: f64,
    pub high: f64,
    pub source: Source,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            weights: vec![0.0; BINS].into_boxed_slice(),
            total: 0.0,
            samples: 0,
            since_decay: 0,
            quantiles: None,
        }
    }
}

impl Series {
    /// Learns one passing price (CNY per canonical unit, positive and finite).
    pub fn add(&mut self, price: f64, learning: &Learning) {
        self.weights[bin(price)] += 1.0;
        self.total += 1.0;
        self.samples += 1;

        self.since_decay += 1;
        if self.since_decay >= learning.decay_every {
            self.since_decay = 0;
            let decay = learning.decay as f32;
            let mut total = 0.0;
            for weight in self.weights.iter_mut() {
                *weight *= decay;
                total += f64::from(*weight);
            }
            self.total = total;
        }

        if self.samples >= learning.min_samples
            && (self.samples - learning.min_samples).is_multiple_of(REFRESH_EVERY)
        {
            self.quantiles = Some(self.compute(learning));
        }
    }

    /// The quantiles the band is learned from, once the series has seen enough prices.
    pub fn quantiles(&self) -> Option<Quantiles> {
        self.quantiles
    }

    /// Prices learned in all, decayed or not.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    fn compute(&self, learning: &Learning) -> Quantiles {
        let targets = [
            learning.lower_quantile * self.total,
            0.5 * self.total,
            learning.upper_quantile * self.total,
        ];
        let mut found = [bin_value(BINS - 1); 3];
        let mut next = 0;
        let mut cumulative = 0.0;
        for (index, weight) in self.weights.iter().enumerate() {
            if *weight <= 0.0 {
                continue;
            }
            cumulative += f64::from(*weight);
            while next < targets.len() && cumulative >= targets[next] {
                found[next] = bin_value(index);
                next += 1;
            }
            if next == targets.len() {
                break;
            }
        }
        Quantiles {
            low: found[0],
            median: found[1],
            high: found[2],
            weight: self.total,
            samples: self.samples,
        }
    }
}

fn bin(price: f64) -> usize {
    let position = (price.log10() - LOWEST_LOG10) * BINS_PER_DECADE;
    // `as` saturates, and NaN (which callers never pass) would land in bin 0.
    (position.floor().max(0.0) as usize).min(BINS - 1)
}

/// The geometric middle of a bin.
fn bin_value(bin: usize) -> f64 {
    10f64.powf(LOWEST_LOG10 + (bin as f64 + 0.5) / BINS_PER_DECADE)
}

/// The band a price is checked against: the seeded band, the learned one, or their blend (see
/// `[learning]` in `prices.toml`); `None` when neither exists.
pub fn bounds(
    seed: Option<&Band>,
    learned: Option<Quantiles>,
    learning: &Learning,
) -> Option<Bounds> {
    let learned_band = learned.map(|q| (q.low / learning.fence, q.high * learning.fence, q.weight));
    match (seed, learned_band) {
        (None, None) => None,
        (Some(seed), None) => Some(Bounds {
            low: seed.low,
            high: seed.high,
            source: Source::Seed,
        }),
        (None, Some((low, high, _))) => Some(Bounds {
            low,
            high,
            source: Source::Learned,
        }),
        (Some(seed), Some((low, high, weight))) => {
            let w = weight / (weight + learning.seed_weight);
            // Within `max_shift` of the seed: a flood of listings at one price, honest or
            // not, can narrow or widen the band only so far.
            let shift = learning.max_shift;
            let blend = |seeded: f64, learned: f64| {
                (seeded.ln() * (1.0 - w) + learned.ln() * w)
                    .exp()
                    .clamp(seeded / shift, seeded * shift)
            };
            let (low, high) = (blend(seed.low, low), blend(seed.high, high));
            if low >= high {
                // Only a seeded band narrower than max_shift² can cross; it stands alone then.
                return Some(Bounds {
                    low: seed.low,
                    high: seed.high,
                    source: Source::Seed,
                });
            }
            Some(Bounds {
                low,
                high,
                source: Source::Blended,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learning() -> Learning {
        Learning {
            min_samples: 100,
            seed_weight: 100.0,
            lower_quantile: 0.01,
            upper_quantile: 0.99,
            fence: 2.0,
            decay_every: 64,
            decay: 0.9,
            max_series: 8,
            max_shift: 4.0,
        }
    }

    #[test]
    fn a_flood_at_one_price_moves_the_band_at_most_max_shift_from_the_seed() {
        // The seed of cotton fabrics, and 20,000 listings at 4–6 元/米 (or sellers posting at
        // the band's edge to drag it): the band narrows, but never past [8, 75].
        let learning = learning();
        let seed = Band {
            category: vec!["面料".to_owned(), "棉类面料".to_owned()],
            unit: 0,
            low: 2.0,
            high: 300.0,
        };
        let mut series = Series::default();
        for i in 0..20_000 {
            series.add(4.0 + f64::from(i % 21) * 0.1, &learning);
        }
        let narrowed = bounds(Some(&seed), series.quantiles(), &learning).unwrap();
        assert_eq!(narrowed.source, Source::Blended);
        // 4.0 / the test's fence of 2: the learned low bound is the seed's already.
        assert!((narrowed.low - 2.0).abs() < 0.01, "{narrowed:?}");
        assert!((narrowed.high - 75.0).abs() < 1e-9, "{narrowed:?}");
        // An honest 45 元/米 shirting still passes.
        assert!(narrowed.low <= 45.0 && 45.0 <= narrowed.high);

        let mut series = Series::default();
        for _ in 0..20_000 {
            series.add(0.01, &learning);
        }
        let dragged = bounds(Some(&seed), series.quantiles(), &learning).unwrap();
        assert!((dragged.low - 0.5).abs() < 1e-9, "{dragged:?}");
    }

    #[test]
    fn bins_are_within_two_percent_of_the_price() {
        for price in [0.0011, 0.5, 1.45, 9.6, 21.5, 21_500.0, 52_000.0, 9.9e8] {
            let value = bin_value(bin(price));
            assert!((value / price - 1.0).abs() < 0.019, "{price}: {value}");
        }
        assert_eq!(bin(1e-9), 0);
        assert_eq!(bin(1e15), BINS - 1);
    }

    #[test]
    fn quantiles_appear_once_there_are_enough_samples() {
        let learning = learning();
        let mut series = Series::default();
        for i in 0..99 {
            series.add(10.0 + f64::from(i) / 10.0, &learning);
        }
        assert_eq!(series.quantiles(), None);
        series.add(15.0, &learning);
        let q = series.quantiles().unwrap();
        assert_eq!(q.samples, 100);
        // Prices 10.0 … 19.8: the median is near 14.9, the 1st and 99th percentiles near the ends.
        assert!((q.median / 14.9 - 1.0).abs() < 0.04, "{q:?}");
        assert!((q.low / 10.0 - 1.0).abs() < 0.04, "{q:?}");
        assert!((q.high / 19.7 - 1.0).abs() < 0.04, "{q:?}");
    }

    #[test]
    fn decay_lets_a_moving_market_replace_the_old_one() {
        let learning = learning();
        let mut series = Series::default();
        for _ in 0..2000 {
            series.add(10.0, &learning);
        }
        for _ in 0..2000 {
            series.add(20.0, &learning);
        }
        let q = series.quantiles().unwrap();
        assert!((q.median / 20.0 - 1.0).abs() < 0.02, "{q:?}");
        // 2000 samples with a decay of 0.9 every 64 leave 10.0 about 0.9^31 ≈ 4 % of the weight.
        assert!((q.low / 10.0 - 1.0).abs() < 0.02, "{q:?}");
        assert!(q.weight < 700.0, "{q:?}");
    }

    #[test]
    fn the_blend_weighs_the_seed_as_seed_weight_samples() {
        let learning = learning();
        let seed = Band {
            category: vec!["面料".to_owned()],
            unit: 0,
            low: 1.0,
            high: 1000.0,
        };
        let learned = Quantiles {
            low: 8.0,
            median: 10.0,
            high: 50.0,
            weight: 100.0,
            samples: 500,
        };
        let blended = bounds(Some(&seed), Some(learned), &learning).unwrap();
        // w = 100 / (100 + 100) = 0.5: the geometric mean of 1 and 8 / 2, of 1000 and 50 × 2.
        assert!((blended.low - 2.0).abs() < 1e-9, "{blended:?}");
        assert!((blended.high - 316.227_766).abs() < 1e-5, "{blended:?}");
        assert_eq!(blended.source, Source::Blended);

        let learned_only = bounds(None, Some(learned), &learning).unwrap();
        assert_eq!((learned_only.low, learned_only.high), (4.0, 100.0));
        let seeded = bounds(Some(&seed), None, &learning).unwrap();
        assert_eq!(
            (seeded.low, seeded.high, seeded.source),
            (1.0, 1000.0, Source::Seed)
        );
        assert_eq!(bounds(None, None, &learning), None);
    }
}
