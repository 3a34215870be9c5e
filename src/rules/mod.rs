//! Rule sets: the plain files under `rules/` that rule maintainers edit.
//!
//! A [`RuleSet`] is loaded from a directory, validated as a whole (every problem is reported
//! with its file and line, not just the first), and named by a content hash of its files, the
//! `rules_version` every decision carries. Each check owns the parsing of its own files; this
//! module ties them together.
//!
//! Files read today:
//! - `prohibited.toml`: handbook 3.3, the five tiers of prohibited goods;
//! - `adlaw.toml`: handbook 3.4, the Advertising-Law word classes;
//! - `allow.toml`: ordinary words that contain a banned one, and context exceptions;
//! - `fibres.tsv`: fibre names, used by the exceptions (100% + a fibre is a content label);
//! - `listing.toml`: handbook 3.1, what each listing-violation check costs;
//! - `prices.toml`: handbook 3.1.2 (4), units, currencies and market price bands.
//! - `title.toml`: handbook 3.1.2 (1), contact-detail markers and intent words;
//! - `categories.toml`: handbook 3.1.2 (1), (2), the textile taxonomy and its product nouns;
//! - `composition.toml` (with `fibres.tsv`): handbook 3.1.2 (3), fibre shorthand and tolerances;
//! - `duplicates.toml`: handbook 3.1.2 (6), what makes two listings of a seller the same.
//! - `images.toml`: handbook 3.1.2 (6) and 3.2, image match thresholds and decoder limits;
//! - `holidays.toml`: public holidays, for the working days of an infringement appeal.

mod categories;
mod duplicates;
mod fibres;
mod holidays;
mod images;
mod listing;
mod prices;
mod terms;
mod title;

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use categories::{Category, Taxonomy};
pub use duplicates::DuplicateRules;
pub use fibres::{Blend, CompositionRules, Fibre};
pub use holidays::{Holidays, CHINA};
pub use images::ImageRules;
pub use listing::{ListingRule, ListingRules};
pub use prices::{
    normalize_spelling, Band, CanonicalUnit, Currency, Learning, PriceRules, Quantity, UnitId,
    UnitSpelling,
};
pub use terms::{ContextRule, LicenceVoid, Pack, PackRules, TermRule, TermRules};
pub use title::{ContactRules, IntentRules, TitleRules};

/// One thing wrong with the rule files, located for the person who has to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the file as a whole.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// A rule directory that cannot be used, with everything found wrong in it.
#[derive(Debug, thiserror::Error)]
#[error("invalid rules in {}:\n{}", dir.display(), render(problems))]
pub struct InvalidRules {
    pub dir: PathBuf,
    pub problems: Vec<Problem>,
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Everything the checks need from `rules/`, validated.
#[derive(Debug)]
pub struct RuleSet {
    /// Content hash of every file in the directory: equal versions decide alike.
    pub version: String,
    pub dir: PathBuf,
    pub terms: TermRules,
    pub listing: ListingRules,
    pub prices: PriceRules,
    pub title: TitleRules,
    pub taxonomy: Taxonomy,
    pub composition: CompositionRules,
    pub duplicates: DuplicateRules,
    pub images: ImageRules,
    pub holidays: Holidays,
}

impl RuleSet {
    /// Loads and validates every rule file in `dir`.
    pub fn load(dir: &Path) -> Result<RuleSet, InvalidRules> {
        let mut problems = Vec::new();
        let version = match content_hash(dir) {
            Ok(version) => version,
            Err(err) => {
                problems.push(Problem {
                    file: dir.to_owned(),
                    line: 0,
                    message: format!("cannot read the rule directory: {err}"),
                });
                String::new()
            }
        };
        let terms = TermRules::load(dir, &mut problems);
        let listing = ListingRules::load(dir, &mut problems);
        let prices = PriceRules::load(dir, &mut problems);
        let title = TitleRules::load(dir, &mut problems);
        let taxonomy = Taxonomy::load(dir, &mut problems);
        let composition = CompositionRules::load(dir, &mut problems);
        let duplicates = DuplicateRules::load(dir, &mut problems);
        let images = ImageRules::load(dir, &mut problems);
        let holidays = Holidays::load(dir, &mut problems);

        if problems.is_empty() {
            Ok(RuleSet {
                version,
                dir: dir.to_owned(),
                terms,
                listing,
                prices,
                title,
                taxonomy,
                composition,
                duplicates,
                images,
                holidays,
            })
        } else {
            Err(InvalidRules {
                dir: dir.to_owned(),
                problems,
            })
        }
    }
}

/// SHA-256 over the relative path and bytes of every file under `dir`, in path order; the
/// first 16 hex digits name the rule set.
fn content_hash(dir: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();

    let mut hasher = Sha256::new();
    for relative in &files {
        let bytes = std::fs::read(dir.join(relative))?;
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    let digest = hasher.finalize();
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        // Editors' swap and backup files are not rules.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect_files(root, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push(relative.to_owned());
        }
    }
    Ok(())
}

/// Reads a rule file, reporting a missing or unreadable one as a problem.
pub(crate) fn read_rule_file(path: &Path, problems: &mut Vec<Problem>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(err) => {
            problems.push(Problem {
                file: path.to_owned(),
                line: 0,
                message: format!("cannot read: {err}"),
            });
            None
        }
    }
}

/// 1-based line of a byte offset in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses a TOML rule file into `T`, reporting a syntax or shape error with its line.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match toml::from_str(text) {
        Ok(value) => Some(value),
        Err(err) => {
            let line = err
                .span()
                .map(|span| line_of(text, span.start))
                .unwrap_or(0);
            problems.push(Problem {
                file: path.to_owned(),
                line,
                message: err.message().trim().to_owned(),
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_counts_from_one() {
        let text = "a\nb\nc";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 2), 2);
        assert_eq!(line_of(text, 4), 3);
    }
}
