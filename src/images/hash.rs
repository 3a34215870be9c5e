//! Hash: the 64-bit perceptual hash of a thumbnail, and how much detail it has.
//!
//! Second step after decoding. The hash is a DCT hash (pHash): the 32 × 32 grey thumbnail
//! (its clamped levels, see [`Thumbnail::clamped`]) is transformed with a 2-D DCT-II, and each of 64 low-frequency coefficients gives one bit,
//! set when the coefficient is above their median. Low frequencies describe the layout of
//! light and dark, which resizing, re-encoding, a watermark or a brightness change hardly
//! move; the DC term (mean brightness) is left out, the (8, 0) term stands in for it.
//!
//! Pictures with almost no detail (a solid colour, a two-tone split, a blank page) hash to
//! nearly the same bits whatever they are, so they must never match: [`Perceptual`] carries
//! the plain thumbnail's spread of grey levels and its share of edges, which the rules' thresholds
//! turn into a [`Detail`] verdict.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use super::decode::{Thumbnail, SIDE};

/// Coefficients per axis the hash reads (0..=8: the 8 × 8 block and the (8, 0) term).
const FREQUENCIES: usize = 9;

/// A 64-bit perceptual hash; two hashes' Hamming distance measures how different two
/// pictures look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageHash(pub u64);

impl ImageHash {
    pub fn distance(self, other: ImageHash) -> u32 {
        (self.0 ^ other.0).count_ones()
    }
}

impl fmt::Display for ImageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A hash written other than as 16 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an image hash is 16 hexadecimal digits, not {0:?}")]
pub struct BadHash(pub String);

impl FromStr for ImageHash {
    type Err = BadHash;

    fn from_str(text: &str) -> Result<ImageHash, BadHash> {
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadHash(text.chars().take(40).collect()));
        }
        u64::from_str_radix(text, 16)
            .map(ImageHash)
            .map_err(|_| BadHash(text.to_owned()))
    }
}

impl serde::Serialize for ImageHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ImageHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether a picture has enough detail to be matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detail {
    Enough,
    /// Almost one grey level: a solid colour or an empty page.
    Blank,
    /// Few edges: a two-tone split, a gradient, a page with a line on it.
    Low,
}

/// A picture's hash, the hash of its mirror image, and its detail measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perceptual {
    pub hash: ImageHash,
    pub mirrored: ImageHash,
    /// Hashes of the picture with [`super::ORIGINAL_INSETS`] cut off each side, when it was
    /// hashed from its bytes: what the duplicate check compares a cropped copy with.
    pub crops: Option<[ImageHash; super::ORIGINAL_INSETS.len()]>,
    /// Standard deviation of the thumbnail's grey levels.
    pub spread: f32,
    /// Share of neighbouring thumbnail pixels (across and down) that differ by more than
    /// [`EDGE_STEP`] grey levels.
    pub edges: f32,
}

/// Grey levels two neighbouring thumbnail pixels must differ by to count as an edge.
pub const EDGE_STEP: f32 = 8.0;

impl Perceptual {
    /// The verdict of the rules' thresholds on this picture's detail.
    pub fn detail(&self, min_spread: f32, min_edges: f32) -> Detail {
        if self.spread < min_spread {
            Detail::Blank
        } else if self.edges < min_edges {
            Detail::Low
        } else {
            Detail::Enough
        }
    }
}

/// Hashes a thumbnail and measures its detail.
pub fn hash_thumbnail(thumbnail: &Thumbnail) -> Perceptual {
    Perceptual {
        hash: dct_hash(&thumbnail.clamped),
        mirrored: dct_hash(&thumbnail.mirrored().clamped),
        crops: None,
        spread: spread(&thumbnail.pixels),
        edges: edges(&thumbnail.pixels),
    }
}

/// The hash of a thumbnail alone, without its mirror image or detail measures.
pub fn hash_only(thumbnail: &Thumbnail) -> ImageHash {
    dct_hash(&thumbnail.clamped)
}

/// `cos(π (2x + 1) u / 2N)` for u in 0..FREQUENCIES, x in 0..SIDE.
fn cosines() -> &'static [[f32; SIDE]; FREQUENCIES] {
    static TABLE: OnceLock<[[f32; SIDE]; FREQUENCIES]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [[0f32; SIDE]; FREQUENCIES];
        for (u, row) in table.iter_mut().enumerate() {
            for (x, c) in row.iter_mut().enumerate() {
                let angle =
                    std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / (2 * SIDE) as f64;
                *c = angle.cos() as f32;
            }
        }
        table
    })
}

fn dct_hash(pixels: &[f32]) -> ImageHash {
    let cos = cosines();

    // Rows first: the low horizontal frequencies of every row.
    let mut rows = [[0f32; FREQUENCIES]; SIDE];
    for (y, out) in rows.iter_mut().enumerate() {
        let line = &pixels[y * SIDE..(y + 1) * SIDE];
        for (u, coefficient) in out.iter_mut().enumerate() {
            *coefficient = line.iter().zip(&cos[u]).map(|(p, c)| p * c).sum();
        }
    }
    // Then down the columns, for the vertical frequencies that are read.
    let coefficient = |u: usize, v: usize| -> f32 {
        rows.iter()
            .zip(&cos[v])
            .map(|(row, c)| row[u] * c)
            .sum::<f32>()
    };
    let mut values = [0f32; 64];
    for v in 0..8 {
        for u in 0..8 {
            values[v * 8 + u] = if (u, v) == (0, 0) {
                coefficient(8, 0)
            } else {
                coefficient(u, v)
            };
        }
    }

    let mut sorted = values;
    sorted.sort_unstable_by(f32::total_cmp);
    let median = (sorted[31] + sorted[32]) / 2.0;
    let bits = values.iter().enumerate().fold(0u64, |bits, (i, &value)| {
        bits | (u64::from(value > median) << i)
    });
    ImageHash(bits)
}

fn spread(pixels: &[f32]) -> f32 {
    let n = pixels.len() as f32;
    let mean = pixels.iter().sum::<f32>() / n;
    (pixels.iter().map(|p| (p - mean) * (p - mean)).sum::<f32>() / n).sqrt()
}

fn edges(pixels: &[f32]) -> f32 {
    let mut count = 0u32;
    for y in 0..SIDE {
        for x in 0..SIDE {
            let here = pixels[y * SIDE + x];
            if x + 1 < SIDE && (here - pixels[y * SIDE + x + 1]).abs() > EDGE_STEP {
                count += 1;
            }
            if y + 1 < SIDE && (here - pixels[(y + 1) * SIDE + x]).abs() > EDGE_STEP {
                count += 1;
            }
        }
    }
    count as f32 / (2 * SIDE * (SIDE - 1)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thumbnail(f: impl Fn(usize, usize) -> f32) -> Thumbnail {
        let mut pixels = vec![0f32; SIDE * SIDE];
        for y in 0..SIDE {
            for x in 0..SIDE {
                pixels[y * SIDE + x] = f(x, y);
            }
        }
        Thumbnail::unclamped(pixels)
    }

    #[test]
    fn hashes_read_and_write_as_sixteen_hex_digits() {
        let hash: ImageHash = "00ff00ff00ff00fA".parse().unwrap();
        assert_eq!(hash.0, 0x00ff_00ff_00ff_00fa);
        assert_eq!(hash.to_string(), "00ff00ff00ff00fa");
        assert!("00ff".parse::<ImageHash>().is_err());
        assert!("+0ff00ff00ff00fa".parse::<ImageHash>().is_err());
        assert!("zzzzzzzzzzzzzzzz".parse::<ImageHash>().is_err());
    }

    #[test]
    fn half_the_bits_are_set() {
        // Distinct grey levels, so that no coefficient ties with the median.
        let mut rng = fastrand::Rng::with_seed(3);
        let levels: Vec<f32> = (0..SIDE * SIDE).map(|_| rng.f32() * 255.0).collect();
        let p = hash_thumbnail(&thumbnail(|x, y| levels[y * SIDE + x]));
        assert_eq!(p.hash.0.count_ones(), 32);
    }

    #[test]
    fn a_solid_colour_is_blank_and_a_two_tone_split_low_detail() {
        let solid = hash_thumbnail(&thumbnail(|_, _| 128.0));
        assert_eq!(solid.spread, 0.0);
        assert_eq!(solid.detail(4.0, 0.08), Detail::Blank);

        let split = hash_thumbnail(&thumbnail(|x, _| if x < 16 { 0.0 } else { 255.0 }));
        // One edge between columns 15 and 16, in each of the 32 rows.
        assert_eq!(split.edges, 32.0 / 1984.0);
        assert_eq!(split.detail(4.0, 0.08), Detail::Low);
    }

    #[test]
    fn a_brightness_shift_leaves_the_hash_alone() {
        let picture = |shift: f32| {
            hash_thumbnail(&thumbnail(move |x, y| {
                (((x * 31 + y * 17) % 97) as f32 + shift).min(255.0)
            }))
        };
        assert_eq!(picture(0.0).hash, picture(40.0).hash);
    }

    #[test]
    fn the_mirrored_hash_is_the_hash_of_the_mirror_image() {
        let f = |x: usize, y: usize| ((x * x + 3 * y) % 41) as f32 * 6.0;
        let picture = thumbnail(f);
        let mirror = thumbnail(|x, y| f(SIDE - 1 - x, y));
        assert_eq!(
            hash_thumbnail(&picture).mirrored,
            hash_thumbnail(&mirror).hash
        );
    }
}
