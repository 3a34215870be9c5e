//! `listing.toml`: the action and points of each listing-violation check (handbook 3.1).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{line_of, parse_toml, read_rule_file, Problem};
use crate::contract::{Action, Kind};

/// What one listing-violation finding costs, and the id it is reported under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingRule {
    pub rule: String,
    pub action: Action,
    pub points: u32,
    pub handbook: String,
}

/// The listing-violation rules by finding kind.
#[derive(Debug, Clone, Default)]
pub struct ListingRules {
    by_kind: HashMap<Kind, ListingRule>,
}

/// Kinds a check of this build reports; each needs an entry in `listing.toml`.
const REQUIRED: [Kind; 12] = [
    Kind::DuplicateText,
    Kind::DuplicateImage,
    Kind::Infringement,
    Kind::Price,
    Kind::TitleContact,
    Kind::TitleNoProduct,
    Kind::TitleStuffing,
    Kind::TitleMismatch,
    Kind::Category,
    Kind::TitleIntent,
    Kind::Stock,
    Kind::AttributesComposition,
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListingFile {
    check: Vec<CheckDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckDef {
    kind: Spanned<Kind>,
    rule: String,
    action: Action,
    points: u32,
    handbook: String,
    #[allow(dead_code)] // the handbook's wording, for people reading the file
    text: String,
}

impl ListingRules {
    pub(super) fn load(dir: &Path, problems: &mut Vec<Problem>) -> ListingRules {
        let path = dir.join("listing.toml");
        let Some(text) = read_rule_file(&path, problems) else {
            return ListingRules::default();
        };
        let Some(file): Option<ListingFile> = parse_toml(&path, &text, problems) else {
            return ListingRules::default();
        };

        let mut by_kind = HashMap::new();
        for check in file.check {
            let kind = *check.kind.get_ref();
            let rule = ListingRule {
                rule: check.rule,
                action: check.action,
                points: check.points,
                handbook: check.handbook,
            };
            if by_kind.insert(kind, rule).is_some() {
                problems.push(Problem {
                    file: path.clone(),
                    line: line_of(&text, check.kind.span().start),
                    message: format!("kind `{kind}` has two entries"),
                });
            }
        }
        for kind in REQUIRED {
            if !by_kind.contains_key(&kind) {
                problems.push(Problem {
                    file: path.clone(),
                    line: 0,
                    message: format!("no entry for kind `{kind}`, which a check reports"),
                });
            }
        }
        ListingRules { by_kind }
    }

    /// The rule for a kind a check reports; loading guarantees every such kind has one.
    pub fn get(&self, kind: Kind) -> Option<&ListingRule> {
        self.by_kind.get(&kind)
    }
}
