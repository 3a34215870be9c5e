//! `duplicates.toml`: what makes two listings of a seller the same (handbook 3.1.2 (6)).

use std::path::Path;

use serde::Deserialize;

use super::{parse_toml, read_rule_file, Problem};

/// The duplicate check's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DuplicateRules {
    /// Attributes two duplicates share (brand, model, specification, composition).
    pub key_attributes: Vec<String>,
    /// Bits two near-duplicate SimHashes may differ in.
    pub max_distance: u32,
    /// Live listings remembered per seller.
    pub per_seller_capacity: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DuplicatesFile {
    key_attributes: Vec<String>,
    max_distance: u32,
    per_seller_capacity: usize,
}

impl DuplicateRules {
    pub(super) fn load(dir: &Path, problems: &mut Vec<Problem>) -> DuplicateRules {
        let path = dir.join("duplicates.toml");
        let Some(text) = read_rule_file(&path, problems) else {
            return DuplicateRules::default();
        };
        let Some(file): Option<DuplicatesFile> = parse_toml(&path, &text, problems) else {
            return DuplicateRules::default();
        };
        if file.max_distance >= 32 || file.per_seller_capacity == 0 {
            problems.push(Problem {
                file: path,
                line: 0,
                message: "max_distance must be below 32 (unrelated texts differ in about 32 bits) \
                          and per_seller_capacity above 0"
                    .to_owned(),
            });
        }
        DuplicateRules {
            key_attributes: file.key_attributes,
            max_distance: file.max_distance,
            per_seller_capacity: file.per_seller_capacity,
        }
    }
}
