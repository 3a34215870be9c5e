//! `fibres.tsv` and `composition.toml`: fibre names and the rules of the composition check
//! (handbook 3.1.2 (3); GB/T 29862-2013 tolerances).
//!
//! A synonym listed under two standard names (麻 under 亚麻 and 苎麻) becomes a fibre of its
//! own that stands for either: a label that says 麻 agrees with one that says 亚麻.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{line_of, parse_toml, read_rule_file, Problem};

/// One fibre: a standard name of GB/T 4146, or a trade word standing for several.
#[derive(Debug, Clone, PartialEq)]
pub struct Fibre {
    pub standard: String,
    pub english: String,
    /// For a word that stands for several fibres, those fibres; empty otherwise.
    pub members: Vec<usize>,
}

/// Trade shorthand for a blend or a pure fibre (涤棉, CVC, 全涤).
#[derive(Debug, Clone, PartialEq)]
pub struct Blend {
    pub names: Vec<String>,
    pub fibres: Vec<usize>,
    pub major: Option<usize>,
    pub shares: Option<Vec<f64>>,
}

/// Everything the composition parser and check need.
#[derive(Debug, Clone, Default)]
pub struct CompositionRules {
    /// The attribute that declares the composition (成分).
    pub attribute: String,
    pub fibres: Vec<Fibre>,
    /// Names and synonyms (Chinese and English, lower case) to fibres.
    pub names: Vec<(String, usize)>,
    /// Trade codes (t, c, sp …, lower case) to fibres; codes two fibres share are left out.
    pub codes: Vec<(String, usize)>,
    pub blends: Vec<Blend>,
    pub hand_feel: Vec<String>,
    /// A bare fibre name in the title is a claim only when it has this many characters,
    /// does not follow one of `named_not_after` and is not followed by one of
    /// `named_not_before` (亚麻色 is a colour, 仿羊绒 a look).
    pub named_min_chars: usize,
    /// Words that hold a fibre name but are no fibre (珍珠棉 is a foam): they shadow it.
    pub not_fibres: Vec<String>,
    pub named_not_after: Vec<String>,
    pub named_not_before: Vec<String>,
    /// Characters that make the fibre name after them a pure claim (纯, 全).
    pub pure_prefixes: Vec<char>,
    pub tolerance: f64,
    pub small_share: f64,
    pub small_tolerance: f64,
    pub trace: f64,
    pub pure_min: f64,
    pub pure_min_by_fibre: HashMap<usize, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompositionFile {
    attribute: String,
    tolerance: f64,
    small_share: f64,
    small_tolerance: f64,
    trace: f64,
    pure_min: f64,
    pure_min_by_fibre: BTreeMap<String, f64>,
    pure_prefixes: Vec<String>,
    exclude_names: Vec<String>,
    hand_feel: Vec<String>,
    named_min_chars: usize,
    not_fibres: Vec<String>,
    named_not_after: Vec<String>,
    named_not_before: Vec<String>,
    blend: Vec<BlendDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlendDef {
    names: Vec<String>,
    fibres: Vec<Spanned<String>>,
    major: Option<Spanned<String>>,
    shares: Option<Vec<f64>>,
}

impl CompositionRules {
    pub(super) fn load(dir: &Path, problems: &mut Vec<Problem>) -> CompositionRules {
        let path = dir.join("composition.toml");
        let Some(text) = read_rule_file(&path, problems) else {
            return CompositionRules::default();
        };
        let Some(file): Option<CompositionFile> = parse_toml(&path, &text, problems) else {
            return CompositionRules::default();
        };
        let mut rules = CompositionRules {
            attribute: file.attribute,
            tolerance: file.tolerance,
            small_share: file.small_share,
            small_tolerance: file.small_tolerance,
            trace: file.trace,
            pure_min: file.pure_min,
            hand_feel: file.hand_feel,
            named_min_chars: file.named_min_chars,
            not_fibres: file.not_fibres,
            named_not_after: file.named_not_after,
            named_not_before: file.named_not_before,
            pure_prefixes: file
                .pure_prefixes
                .iter()
                .filter_map(|p| p.chars().next())
                .collect(),
            ..CompositionRules::default()
        };
        read_fibres(dir, &file.exclude_names, &mut rules, problems);

        let by_name: HashMap<&str, usize> = rules
            .fibres
            .iter()
            .enumerate()
            .map(|(i, f)| (f.standard.as_str(), i))
            .collect();
        let resolve = |name: &Spanned<String>, problems: &mut Vec<Problem>| {
            let found = by_name.get(name.get_ref().as_str()).copied();
            if found.is_none() {
                problems.push(Problem {
                    file: path.clone(),
                    line: line_of(&text, name.span().start),
                    message: format!(
                        "`{}` is no standard fibre name of fibres.tsv",
                        name.get_ref()
                    ),
                });
            }
            found
        };
        for def in file.blend {
            let fibres: Vec<usize> = def
                .fibres
                .iter()
                .filter_map(|f| resolve(f, problems))
                .collect();
            let major = def.major.as_ref().and_then(|m| resolve(m, problems));
            if fibres.len() != def.fibres.len() {
                continue;
            }
            if let Some(shares) = &def.shares {
                if shares.len() != fibres.len() {
                    problems.push(Problem {
                        file: path.clone(),
                        line: line_of(&text, def.fibres[0].span().start),
                        message: "`shares` must give one share per fibre".to_owned(),
                    });
                    continue;
                }
            }
            rules.blends.push(Blend {
                names: def.names.iter().map(|n| n.to_lowercase()).collect(),
                fibres,
                major,
                shares: def.shares,
            });
        }
        for (name, min) in file.pure_min_by_fibre {
            match by_name.get(name.as_str()) {
                Some(&fibre) => {
                    rules.pure_min_by_fibre.insert(fibre, min);
                }
                None => problems.push(Problem {
                    file: path.clone(),
                    line: 0,
                    message: format!("pure_min_by_fibre: `{name}` is no standard fibre name"),
                }),
            }
        }
        rules
    }

    /// The least share a 纯 / 全 claim allows for `fibre`.
    pub fn pure_min(&self, fibre: usize) -> f64 {
        self.pure_min_by_fibre
            .get(&fibre)
            .copied()
            .unwrap_or(self.pure_min)
    }

    /// Whether two fibres agree: the same, or one a word that stands for the other.
    pub fn same_fibre(&self, a: usize, b: usize) -> bool {
        a == b || self.fibres[a].members.contains(&b) || self.fibres[b].members.contains(&a)
    }
}

fn read_fibres(
    dir: &Path,
    exclude: &[String],
    rules: &mut CompositionRules,
    problems: &mut Vec<Problem>,
) {
    let path = dir.join("fibres.tsv");
    let Some(text) = read_rule_file(&path, problems) else {
        return;
    };
    let mut synonyms: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut codes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() || line.starts_with("standard\t") {
            continue;
        }
        let columns: Vec<&str> = line.split('\t').collect();
        if columns.len() != 4 || columns[0].trim().is_empty() {
            problems.push(Problem {
                file: path.clone(),
                line: number + 1,
                message: "a fibre line needs four tab-separated columns: standard, synonyms, english, codes".to_owned(),
            });
            continue;
        }
        let list = |column: &str| -> Vec<String> {
            column
                .split(',')
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let fibre = rules.fibres.len();
        let english = list(columns[2]);
        rules.fibres.push(Fibre {
            standard: columns[0].trim().to_owned(),
            english: english.first().cloned().unwrap_or_default(),
            members: Vec::new(),
        });
        let names = std::iter::once(columns[0].trim().to_owned())
            .chain(list(columns[1]))
            .chain(english);
        for name in names {
            if !exclude.contains(&name) {
                let owners = synonyms.entry(name).or_default();
                if !owners.contains(&fibre) {
                    owners.push(fibre);
                }
            }
        }
        for code in list(columns[3]) {
            codes.entry(code).or_default().push(fibre);
        }
    }
    for (name, owners) in synonyms {
        let fibre = if owners.len() == 1 {
            owners[0]
        } else {
            rules.fibres.push(Fibre {
                standard: name.clone(),
                english: String::new(),
                members: owners,
            });
            rules.fibres.len() - 1
        };
        rules.names.push((name, fibre));
    }
    rules.codes = codes
        .into_iter()
        .filter(|(_, owners)| owners.len() == 1)
        .map(|(code, owners)| (code, owners[0]))
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synonym_of_two_fibres_stands_for_either() {
        let mut problems = Vec::new();
        let rules = CompositionRules::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let fibre = |name: &str| rules.names.iter().find(|(n, _)| n == name).map(|(_, f)| *f);
        let generic = fibre("麻").unwrap();
        assert!(rules.same_fibre(generic, fibre("亚麻").unwrap()));
        assert!(rules.same_fibre(fibre("苎麻").unwrap(), generic));
        assert!(!rules.same_fibre(fibre("亚麻").unwrap(), fibre("苎麻").unwrap()));
        assert_eq!(fibre("天丝"), fibre("lyocell"));
        assert_eq!(fibre("丝"), None);
        assert_eq!(rules.pure_min(fibre("羊毛").unwrap()), 93.0);
    }

    #[test]
    fn an_unknown_fibre_in_a_blend_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        std::fs::copy(rules.join("fibres.tsv"), dir.path().join("fibres.tsv")).unwrap();
        std::fs::write(
            dir.path().join("composition.toml"),
            "attribute = \"a\"\ntolerance = 5.0\nsmall_share = 10.0\nsmall_tolerance = 3.0\ntrace = 0.5\n\
             pure_min = 95.0\npure_min_by_fibre = {}\npure_prefixes = []\nexclude_names = []\nhand_feel = []\n\
             named_min_chars = 2\nnot_fibres = []\nnamed_not_after = []\nnamed_not_before = []\n\
             [[blend]]\nnames = [\"x\"]\nfibres = [\"棉\", \"unobtainium\"]\n",
        )
        .unwrap();
        let mut problems = Vec::new();
        CompositionRules::load(dir.path(), &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 17);
    }
}
