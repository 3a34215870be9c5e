//! `images.toml`: the thresholds of the image checks (handbook 3.1.2 (6), 3.2) and the
//! decoder's limits.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{line_of, parse_toml, read_rule_file, Problem};
use crate::images::DecodeLimits;

/// The image checks' settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRules {
    /// Images of one listing hashed at most; the rest are counted, not fetched.
    pub max_images_per_listing: usize,
    /// Bits a repeated image of the same seller may differ in.
    pub duplicate_distance: u32,
    /// Bits a copy of a protected original may differ in.
    pub infringement_distance: u32,
    /// Working days a seller has to answer an infringement suppression.
    pub appeal_working_days: u32,
    /// Widest distance the search API accepts.
    pub search_distance: u32,
    /// Below this spread of grey levels an image is blank.
    pub min_spread: f32,
    /// Below this share of edges an image has too little detail.
    pub min_edges: f32,
    pub decode: DecodeLimits,
}

impl Default for ImageRules {
    fn default() -> Self {
        ImageRules {
            max_images_per_listing: 32,
            duplicate_distance: 10,
            infringement_distance: 12,
            appeal_working_days: 2,
            search_distance: 16,
            min_spread: 6.0,
            min_edges: 0.06,
            decode: DecodeLimits::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagesFile {
    listing: ListingFile,
    duplicate: Distance,
    infringement: Infringement,
    search: Distance,
    detail: DetailFile,
    decode: DecodeFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListingFile {
    max_images: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Distance {
    max_distance: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Infringement {
    max_distance: Spanned<u32>,
    appeal_working_days: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailFile {
    min_spread: Spanned<f32>,
    min_edges: Spanned<f32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecodeFile {
    max_pixels: Spanned<u64>,
    max_side: Spanned<u32>,
    min_side: Spanned<u32>,
    max_alloc_bytes: Spanned<u64>,
}

/// Unrelated pictures' 64-bit hashes differ in about 32 bits; a threshold near that matches
/// anything.
const MAX_MATCH_DISTANCE: u32 = 24;

/// A listing's images are fetched together with its batch's; beyond a few hundred one event
/// would hold the batch up for minutes.
const MAX_IMAGES_PER_LISTING: u32 = 256;

impl ImageRules {
    pub(super) fn load(dir: &Path, problems: &mut Vec<Problem>) -> ImageRules {
        let path = dir.join("images.toml");
        let Some(text) = read_rule_file(&path, problems) else {
            return ImageRules::default();
        };
        let Some(file): Option<ImagesFile> = parse_toml(&path, &text, problems) else {
            return ImageRules::default();
        };
        let mut problem = |ok: bool, span: std::ops::Range<usize>, message: &str| {
            if !ok {
                problems.push(Problem {
                    file: path.clone(),
                    line: line_of(&text, span.start),
                    message: message.to_owned(),
                });
            }
        };

        let max_images = &file.listing.max_images;
        problem(
            (1..=MAX_IMAGES_PER_LISTING).contains(max_images.get_ref()),
            max_images.span(),
            &format!("max_images must be between 1 and {MAX_IMAGES_PER_LISTING}"),
        );
        let distance = |d: &Spanned<u32>| *d.get_ref();
        for (value, what) in [
            (&file.duplicate.max_distance, "duplicate"),
            (&file.infringement.max_distance, "infringement"),
            (&file.search.max_distance, "search"),
        ] {
            problem(
                distance(value) <= MAX_MATCH_DISTANCE,
                value.span(),
                &format!(
                    "{what} max_distance must be at most {MAX_MATCH_DISTANCE} of 64 bits \
                     (unrelated images differ in about 32)"
                ),
            );
        }
        let days = &file.infringement.appeal_working_days;
        problem(
            (1..=30).contains(days.get_ref()),
            days.span(),
            "appeal_working_days must be between 1 and 30",
        );
        let spread = &file.detail.min_spread;
        problem(
            (0.0..=128.0).contains(spread.get_ref()),
            spread.span(),
            "min_spread is a standard deviation of grey levels, between 0 and 128",
        );
        let edges = &file.detail.min_edges;
        problem(
            (0.0..=1.0).contains(edges.get_ref()),
            edges.span(),
            "min_edges is a share, between 0 and 1",
        );
        let decode = &file.decode;
        problem(
            *decode.max_pixels.get_ref() > 0,
            decode.max_pixels.span(),
            "max_pixels must be above 0",
        );
        problem(
            decode.min_side.get_ref() <= decode.max_side.get_ref(),
            decode.min_side.span(),
            "min_side must not exceed max_side",
        );
        problem(
            *decode.max_alloc_bytes.get_ref() >= 1024 * 1024,
            decode.max_alloc_bytes.span(),
            "max_alloc_bytes must be at least 1 MiB",
        );

        ImageRules {
            max_images_per_listing: *max_images.get_ref() as usize,
            duplicate_distance: distance(&file.duplicate.max_distance),
            infringement_distance: distance(&file.infringement.max_distance),
            appeal_working_days: *days.get_ref(),
            search_distance: distance(&file.search.max_distance),
            min_spread: *spread.get_ref(),
            min_edges: *edges.get_ref(),
            decode: DecodeLimits {
                max_pixels: *decode.max_pixels.get_ref(),
                max_side: *decode.max_side.get_ref(),
                min_side: *decode.min_side.get_ref(),
                max_alloc_bytes: *decode.max_alloc_bytes.get_ref(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_loads() {
        let mut problems = Vec::new();
        let rules = ImageRules::load(Path::new("rules"), &mut problems);
        assert_eq!(problems, []);
        assert_eq!(rules.appeal_working_days, 2);
        assert_eq!(rules.max_images_per_listing, 32);
    }

    /// The problems of the shipped file with one line changed, and that line's number.
    fn problems_with(line: &str, changed: &str) -> (Vec<Problem>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string("rules/images.toml")
            .unwrap()
            .replace(line, changed);
        std::fs::write(dir.path().join("images.toml"), &text).unwrap();
        let mut problems = Vec::new();
        ImageRules::load(dir.path(), &mut problems);
        let number = text.lines().position(|l| l == changed).unwrap() + 1;
        (problems, number)
    }

    #[test]
    fn a_threshold_out_of_range_is_reported_at_its_line() {
        let (problems, line) = problems_with("max_distance = 12", "max_distance = 40");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, line);
        assert!(problems[0].message.starts_with("infringement max_distance"));
    }

    #[test]
    fn a_listing_limit_of_no_images_is_reported_at_its_line() {
        let (problems, line) = problems_with("max_images = 32", "max_images = 0");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, line);
        assert_eq!(problems[0].message, "max_images must be between 1 and 256");
    }
}
