//! The term rule files: prohibited goods (handbook 3.3), Advertising-Law words (3.4) and the
//! allow-list with its context exceptions.
//!
//! Every term is normalised here, once, with the same [`Normalizer`] the listing text goes
//! through, so that duplicate and conflict checks see what the matcher will see.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::{line_of, parse_toml, read_rule_file, Problem};
use crate::contract::{Action, Kind};
use crate::normalize::Normalizer;

/// A group of term rules compiled into one automaton.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pack {
    Prohibited,
    Adlaw,
}

impl Pack {
    pub const ALL: [Pack; 2] = [Pack::Prohibited, Pack::Adlaw];

    pub fn name(self) -> &'static str {
        match self {
            Pack::Prohibited => "prohibited",
            Pack::Adlaw => "adlaw",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Pack::Prohibited => "prohibited.toml",
            Pack::Adlaw => "adlaw.toml",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Pack::Prohibited => Kind::TermsProhibited,
            Pack::Adlaw => Kind::TermsAdlaw,
        }
    }

    fn from_name(name: &str) -> Option<Pack> {
        Pack::ALL.into_iter().find(|pack| pack.name() == name)
    }
}

/// One rule: an item of a prohibited-goods tier or an Advertising-Law class.
#[derive(Debug, Clone)]
pub struct TermRule {
    pub id: String,
    /// `terms.prohibited` or `terms.adlaw`; a licence-gated rule reports `licence` instead.
    pub kind: Kind,
    pub action: Action,
    pub points: u32,
    /// Where the handbook says it, e.g. `3.3.2 2) 4`.
    pub handbook: String,
    /// Normalised terms.
    pub terms: Vec<String>,
    /// Licence names that lift the rule, as written in the rule file.
    pub licences: Vec<String>,
    /// The same names normalised, for comparing with a seller's licences.
    pub licences_normalized: Vec<String>,
}

/// A banned term that does not count when the text right after it matches a pattern.
#[derive(Debug, Clone)]
pub struct ContextRule {
    pub id: String,
    /// Normalised banned terms the exception applies to.
    pub terms: Vec<String>,
    /// Anchored at the end of the match, run over the normalised text.
    pub skip_if_followed_by: Regex,
}

/// The rules, allow-list and exceptions of one pack.
#[derive(Debug, Clone)]
pub struct PackRules {
    pub pack: Pack,
    pub rules: Vec<TermRule>,
    /// Normalised allow-list terms that apply to this pack.
    pub allow: Vec<String>,
    pub contexts: Vec<ContextRule>,
}

#[derive(Debug, Clone)]
pub struct TermRules {
    pub packs: Vec<PackRules>,
    pub licence_void: LicenceVoid,
}

/// Words that make a seller's licence entry say the licence is not held or not valid (无…,
/// 未取得…, …已过期), normalised; such an entry lifts no gate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceVoid {
    /// The entry's text right before the licence name ends with one of these.
    #[serde(default)]
    pub before: Vec<String>,
    /// The entry's text after the licence name contains one of these.
    #[serde(default)]
    pub after: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProhibitedFile {
    pack: String,
    #[serde(default)]
    licence_void: LicenceVoid,
    tier: Vec<TierDef>,
    item: Vec<ItemDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierDef {
    tier: Spanned<u8>,
    action: Action,
    points: u32,
    handbook: String,
    #[allow(dead_code)] // the handbook's wording, kept for people reading the file
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemDef {
    id: Spanned<String>,
    tier: Spanned<u8>,
    handbook: String,
    #[allow(dead_code)]
    text: String,
    #[serde(default)]
    terms: Vec<Spanned<String>>,
    #[serde(default)]
    licences: Vec<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdlawFile {
    pack: String,
    class: Vec<ClassDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassDef {
    id: Spanned<String>,
    #[allow(dead_code)]
    name: String,
    handbook: String,
    #[allow(dead_code)]
    text: String,
    action: Action,
    points: u32,
    terms: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowFile {
    #[serde(default)]
    allow: Vec<AllowDef>,
    #[serde(default)]
    context: Vec<ContextDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowDef {
    terms: Vec<Spanned<String>>,
    #[allow(dead_code)]
    reason: String,
    #[serde(default)]
    packs: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextDef {
    id: Spanned<String>,
    terms: Vec<Spanned<String>>,
    pack: Spanned<String>,
    skip_if_followed_by: Spanned<String>,
    #[allow(dead_code)]
    reason: String,
}

/// Collects the problems of one file, locating spans by line.
struct FileReport<'a> {
    path: PathBuf,
    text: &'a str,
    problems: &'a mut Vec<Problem>,
}

impl FileReport<'_> {
    fn at(&mut self, span: std::ops::Range<usize>, message: String) {
        self.problems.push(Problem {
            file: self.path.clone(),
            line: line_of(self.text, span.start),
            message,
        });
    }

    fn whole(&mut self, message: String) {
        self.problems.push(Problem {
            file: self.path.clone(),
            line: 0,
            message,
        });
    }

    fn line(&self, span: &std::ops::Range<usize>) -> usize {
        line_of(self.text, span.start)
    }
}

/// Where a normalised term was first defined, to report duplicates against.
struct TermSeen {
    rule: String,
    file: PathBuf,
    line: usize,
}

impl TermRules {
    pub(super) fn load(dir: &Path, problems: &mut Vec<Problem>) -> TermRules {
        let normalizer = Normalizer;
        let mut packs = Vec::new();
        let mut seen: HashMap<(Pack, String), TermSeen> = HashMap::new();
        let mut rule_ids: BTreeSet<String> = BTreeSet::new();
        let mut licence_void = LicenceVoid::default();

        for pack in Pack::ALL {
            let path = dir.join(pack.file());
            let Some(text) = read_rule_file(&path, problems) else {
                continue;
            };
            let mut report = FileReport {
                path: path.clone(),
                text: &text,
                problems,
            };
            let rules = match pack {
                Pack::Prohibited => load_prohibited(&mut report).map(|(rules, void)| {
                    licence_void = void;
                    rules
                }),
                Pack::Adlaw => load_adlaw(&mut report),
            };
            let Some(rules) = rules else { continue };

            let mut checked = Vec::with_capacity(rules.len());
            for (rule, id_span, terms) in rules {
                if !rule_ids.insert(rule.id.clone()) {
                    report.at(
                        id_span.clone(),
                        format!("rule id `{}` is used twice", rule.id),
                    );
                }
                let mut normalized_terms = Vec::with_capacity(terms.len());
                for term in terms {
                    let Some(normalized) = checked_term(&normalizer, &term, &mut report) else {
                        continue;
                    };
                    let line = report.line(&term.span());
                    let key = (pack, normalized.clone());
                    if let Some(first) = seen.get(&key) {
                        report.at(
                            term.span(),
                            format!(
                                "term `{}` (normalised `{normalized}`) is already in rule `{}` at {}:{}",
                                term.get_ref(),
                                first.rule,
                                first.file.display(),
                                first.line
                            ),
                        );
                        continue;
                    }
                    seen.insert(
                        key,
                        TermSeen {
                            rule: rule.id.clone(),
                            file: path.clone(),
                            line,
                        },
                    );
                    normalized_terms.push(normalized);
                }
                checked.push(TermRule {
                    terms: normalized_terms,
                    ..rule
                });
            }
            packs.push(PackRules {
                pack,
                rules: checked,
                allow: Vec::new(),
                contexts: Vec::new(),
            });
        }

        load_allow(dir, &normalizer, &seen, &mut packs, problems);
        TermRules {
            packs,
            licence_void,
        }
    }

    pub fn pack(&self, pack: Pack) -> Option<&PackRules> {
        self.packs.iter().find(|p| p.pack == pack)
    }
}

type LoadedRule = (TermRule, std::ops::Range<usize>, Vec<Spanned<String>>);

fn load_prohibited(report: &mut FileReport<'_>) -> Option<(Vec<LoadedRule>, LicenceVoid)> {
    let file: ProhibitedFile = parse_toml(&report.path.clone(), report.text, report.problems)?;
    if file.pack != Pack::Prohibited.name() {
        report.whole(format!(
            "`pack` must be \"prohibited\", not {:?}",
            file.pack
        ));
    }

    let mut tiers: HashMap<u8, &TierDef> = HashMap::new();
    for tier in &file.tier {
        if tiers.insert(*tier.tier.get_ref(), tier).is_some() {
            report.at(
                tier.tier.span(),
                format!("tier {} is defined twice", tier.tier.get_ref()),
            );
        }
    }

    let mut rules = Vec::with_capacity(file.item.len());
    for item in file.item {
        let Some(tier) = tiers.get(item.tier.get_ref()) else {
            report.at(
                item.tier.span(),
                format!(
                    "item `{}` names tier {}, which is not defined",
                    item.id.get_ref(),
                    item.tier.get_ref()
                ),
            );
            continue;
        };
        if item.terms.is_empty() && item.reason.is_none() {
            report.at(
                item.id.span(),
                format!(
                    "item `{}` has no terms; give terms, or a `reason` why words cannot catch it",
                    item.id.get_ref()
                ),
            );
        }
        let licences_normalized = item
            .licences
            .iter()
            .map(|name| Normalizer.normalize(name))
            .collect();
        let rule = TermRule {
            id: item.id.get_ref().clone(),
            kind: Pack::Prohibited.kind(),
            action: tier.action,
            points: tier.points,
            handbook: if item.handbook.is_empty() {
                tier.handbook.clone()
            } else {
                item.handbook
            },
            terms: Vec::new(),
            licences: item.licences,
            licences_normalized,
        };
        rules.push((rule, item.id.span(), item.terms));
    }
    let void = LicenceVoid {
        before: file
            .licence_void
            .before
            .iter()
            .map(|w| Normalizer.normalize(w))
            .collect(),
        after: file
            .licence_void
            .after
            .iter()
            .map(|w| Normalizer.normalize(w))
            .collect(),
    };
    Some((rules, void))
}

fn load_adlaw(report: &mut FileReport<'_>) -> Option<Vec<LoadedRule>> {
    let file: AdlawFile = parse_toml(&report.path.clone(), report.text, report.problems)?;
    if file.pack != Pack::Adlaw.name() {
        report.whole(format!("`pack` must be \"adlaw\", not {:?}", file.pack));
    }
    let rules = file
        .class
        .into_iter()
        .map(|class| {
            let rule = TermRule {
                id: class.id.get_ref().clone(),
                kind: Pack::Adlaw.kind(),
                action: class.action,
                points: class.points,
                handbook: class.handbook,
                terms: Vec::new(),
                licences: Vec::new(),
                licences_normalized: Vec::new(),
            };
            (rule, class.id.span(), class.terms)
        })
        .collect();
    Some(rules)
}

/// Normalises a term, reporting one that normalises to too little to match safely.
fn checked_term(
    normalizer: &Normalizer,
    term: &Spanned<String>,
    report: &mut FileReport<'_>,
) -> Option<String> {
    let normalized = normalizer.normalize(term.get_ref());
    match normalized.chars().count() {
        0 => {
            report.at(
                term.span(),
                format!("term `{}` normalises to nothing", term.get_ref()),
            );
            None
        }
        1 => {
            report.at(
                term.span(),
                format!(
                    "term `{}` is a single character and would match inside ordinary words",
                    term.get_ref()
                ),
            );
            None
        }
        _ => Some(normalized),
    }
}

fn load_allow(
    dir: &Path,
    normalizer: &Normalizer,
    banned: &HashMap<(Pack, String), TermSeen>,
    packs: &mut [PackRules],
    problems: &mut Vec<Problem>,
) {
    let path = dir.join("allow.toml");
    let Some(text) = read_rule_file(&path, problems) else {
        return;
    };
    let fibres = fibre_alternation(&dir.join("fibres.tsv"), normalizer, problems);
    let mut report = FileReport {
        path: path.clone(),
        text: &text,
        problems,
    };
    let Some(file): Option<AllowFile> = parse_toml(&path, &text, report.problems) else {
        return;
    };

    for entry in file.allow {
        let targets = match &entry.packs {
            None => Pack::ALL.to_vec(),
            Some(names) => names
                .iter()
                .filter_map(|name| {
                    let pack = Pack::from_name(name.get_ref());
                    if pack.is_none() {
                        report.at(name.span(), format!("unknown pack `{}`", name.get_ref()));
                    }
                    pack
                })
                .collect(),
        };
        for term in &entry.terms {
            let Some(normalized) = checked_term(normalizer, term, &mut report) else {
                continue;
            };
            for &pack in &targets {
                if let Some(rule) = banned.get(&(pack, normalized.clone())) {
                    report.at(
                        term.span(),
                        format!(
                            "allow term `{}` is also a banned term of rule `{}` ({}:{})",
                            term.get_ref(),
                            rule.rule,
                            rule.file.display(),
                            rule.line
                        ),
                    );
                    continue;
                }
                if let Some(rules) = packs.iter_mut().find(|p| p.pack == pack) {
                    if !rules.allow.contains(&normalized) {
                        rules.allow.push(normalized.clone());
                    }
                }
            }
        }
    }

    let mut context_ids = BTreeSet::new();
    for context in file.context {
        if !context_ids.insert(context.id.get_ref().clone()) {
            report.at(
                context.id.span(),
                format!("context id `{}` is used twice", context.id.get_ref()),
            );
        }
        let Some(pack) = Pack::from_name(context.pack.get_ref()) else {
            report.at(
                context.pack.span(),
                format!("unknown pack `{}`", context.pack.get_ref()),
            );
            continue;
        };
        let mut terms = Vec::new();
        for term in &context.terms {
            let normalized = normalizer.normalize(term.get_ref());
            if banned.contains_key(&(pack, normalized.clone())) {
                terms.push(normalized);
            } else {
                report.at(
                    term.span(),
                    format!(
                        "context term `{}` is not a banned term of pack `{}`",
                        term.get_ref(),
                        pack.name()
                    ),
                );
            }
        }
        let pattern = context.skip_if_followed_by.get_ref();
        if pattern.contains("{fibre}") && fibres.is_none() {
            report.at(
                context.skip_if_followed_by.span(),
                "`{fibre}` needs rules/fibres.tsv, which did not load".to_owned(),
            );
            continue;
        }
        let expanded = pattern.replace("{fibre}", fibres.as_deref().unwrap_or(""));
        let anchored = if expanded.starts_with('^') {
            expanded
        } else {
            format!("^(?:{expanded})")
        };
        let regex = match Regex::new(&anchored) {
            Ok(regex) => regex,
            Err(err) => {
                report.at(
                    context.skip_if_followed_by.span(),
                    format!("`skip_if_followed_by` is not a valid regex: {err}"),
                );
                continue;
            }
        };
        if let Some(rules) = packs.iter_mut().find(|p| p.pack == pack) {
            rules.contexts.push(ContextRule {
                id: context.id.get_ref().clone(),
                terms,
                skip_if_followed_by: regex,
            });
        }
    }
}

/// `(?:name|name|…)` over every fibre name and synonym in `fibres.tsv`, normalised, longest
/// first so that the alternation prefers 涤纶 over 涤.
fn fibre_alternation(
    path: &Path,
    normalizer: &Normalizer,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let text = read_rule_file(path, problems)?;
    let mut names = BTreeSet::new();
    let mut codes = BTreeSet::new();
    let mut header_seen = false;
    for (index, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if !header_seen {
            header_seen = true;
            continue;
        }
        let columns: Vec<&str> = line.split('\t').collect();
        if columns.len() < 3 {
            problems.push(Problem {
                file: path.to_owned(),
                line: index + 1,
                message: "expected columns standard, synonyms, english, codes".to_owned(),
            });
            continue;
        }
        let words = std::iter::once(columns[0])
            .chain(columns[1].split(','))
            .chain(columns[2].split(','));
        for word in words {
            let normalized = normalizer.normalize(word);
            if !normalized.is_empty() {
                names.insert(normalized);
            }
        }
        for code in columns.get(3).into_iter().flat_map(|c| c.split(',')) {
            let normalized = normalizer.normalize(code);
            if !normalized.is_empty() {
                codes.insert(normalized);
            }
        }
    }
    let longest_first = |set: BTreeSet<String>| {
        let mut words: Vec<String> = set.into_iter().collect();
        words.sort_by(|a, b| b.chars().count().cmp(&a.chars().count()).then(a.cmp(b)));
        words
            .iter()
            .map(|n| regex::escape(n))
            .collect::<Vec<_>>()
            .join("|")
    };
    // A code (T, C, CVC …) only where no Latin letter follows: 100%T is a label, 100%top is not.
    Some(format!(
        "(?:{}|(?:{})(?:[^a-z]|$))",
        longest_first(names),
        longest_first(codes)
    ))
}
