//! Fibre composition (handbook 3.1.2 (3), 属性不实), kind `attributes.composition`: the 成分
//! attribute against every composition claim in the title and description, with the
//! tolerances of GB/T 29862-2013. The handbook's own example: 成分 says 涤棉, the description
//! says 100%纯棉.
//!
//! Runs in the parallel half. [`parse`] turns each text into claims; two claims contradict
//! when a fibre one of them names is missing from the other (beyond a trace, and where the
//! other names all its fibres), when the shares of one fibre differ beyond the tolerance, when
//! a 纯 / 全 claim meets a share below what those words allow, or when shorthand that names
//! the larger fibre (涤棉: polyester) meets shares the other way round. An attribute that does
//! not parse, or whose shares add up to more than 100 %, is not judged.

pub mod parse;

use serde_json::{json, Value};

use super::folded::{Folded, Slicer};
use super::{Checks, Scratch};
use crate::contract::{Finding, Kind, Listing};
use crate::rules::CompositionRules;
use parse::{Claim, Mode, Part};

/// How two compositions disagree, for the evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Contradiction {
    pub reason: &'static str,
    pub fibre: usize,
    pub attribute_share: Option<f64>,
    pub claim_share: Option<f64>,
    pub limit: Option<f64>,
}

pub(super) fn check(
    checks: &Checks,
    listing: &Listing,
    scratch: &mut Scratch,
    out: &mut Vec<Finding>,
) {
    let rules = &checks.composition;
    let Some(attribute) = listing.attributes.get(rules.attribute.as_str()) else {
        return;
    };
    scratch.attribute.fold(attribute, &checks.lexicon);
    let claims = checks.fibres.claims(
        &checks.lexicon,
        rules,
        &scratch.attribute,
        Mode::Attribute,
        &mut scratch.lex,
    );
    let Some(declared) = merge(rules, claims) else {
        return;
    };

    let title = listing.title.as_deref().unwrap_or("");
    for (field, folded, original, mode) in [
        ("title", &scratch.title, title, Mode::Title),
        (
            "description",
            &scratch.description,
            listing.description.as_str(),
            Mode::FreeText,
        ),
    ] {
        // Claims come in order of their start.
        let mut slicer = Slicer::default();
        for claim in checks
            .fibres
            .claims(&checks.lexicon, rules, folded, mode, &mut scratch.lex)
        {
            if !valid(&claim) {
                continue;
            }
            let Some(contradiction) = contradiction(rules, &declared, &claim) else {
                continue;
            };
            let evidence = json!({
                "attribute": { "text": attribute, "parts": parts_json(rules, &declared.parts) },
                "claim": { "parts": parts_json(rules, &claim.parts) },
                "reason": contradiction.reason,
                "fibre": rules.fibres[contradiction.fibre].standard,
                "attribute_share": contradiction.attribute_share,
                "claim_share": contradiction.claim_share,
                "limit": contradiction.limit,
            });
            let text = slicer.slice(original, claim.start, claim.end).to_owned();
            out.extend(checks.finding_of(
                Kind::AttributesComposition,
                field,
                (claim.start, claim.end, text),
                evidence,
            ));
        }
    }
}

/// The attribute's claims as one composition, or `None` when it says nothing usable.
pub fn merge(rules: &CompositionRules, claims: Vec<Claim>) -> Option<Claim> {
    let mut merged = Claim {
        start: 0,
        end: 0,
        parts: Vec::new(),
        major: None,
        complete: false,
    };
    for claim in claims {
        merged.complete |= claim.complete;
        merged.major = merged.major.or(claim.major);
        for part in claim.parts {
            match merged
                .parts
                .iter_mut()
                .find(|p| rules.same_fibre(p.fibre, part.fibre))
            {
                Some(existing) => {
                    existing.share = existing.share.or(part.share);
                    existing.pure |= part.pure;
                }
                None => merged.parts.push(part),
            }
        }
    }
    (!merged.parts.is_empty() && valid(&merged)).then_some(merged)
}

/// Shares between 0 and 100 that add up to no more than 100 % (half a point for rounding).
fn valid(claim: &Claim) -> bool {
    let shares = claim.parts.iter().filter_map(|p| p.share);
    shares.clone().all(|s| (0.0..=100.0).contains(&s)) && shares.sum::<f64>() <= 100.5
}

/// The first way `claim` contradicts the `declared` composition, if any.
pub fn contradiction(
    rules: &CompositionRules,
    declared: &Claim,
    claim: &Claim,
) -> Option<Contradiction> {
    let counts = |p: &&Part| p.share.is_none_or(|s| s > rules.trace);
    let declared_parts: Vec<&Part> = declared.parts.iter().filter(counts).collect();
    let claim_parts: Vec<&Part> = claim.parts.iter().filter(counts).collect();
    fn find<'a>(rules: &CompositionRules, parts: &[&'a Part], fibre: usize) -> Option<&'a Part> {
        parts
            .iter()
            .find(|p| rules.same_fibre(p.fibre, fibre))
            .copied()
    }
    let pure_claim = claim_parts.iter().any(|p| p.pure);
    let pure_declared = declared_parts.iter().any(|p| p.pure);
    let beyond_small = |share: Option<f64>| share.is_none_or(|s| s > rules.small_tolerance);
    let found = |reason, fibre, a: Option<f64>, c: Option<f64>, limit| {
        Some(Contradiction {
            reason,
            fibre,
            attribute_share: a,
            claim_share: c,
            limit,
        })
    };

    for part in &claim_parts {
        let Some(declared_part) = find(rules, &declared_parts, part.fibre) else {
            if declared.complete
                && beyond_small(part.share)
                && !(pure_declared && part.share.is_some())
            {
                return found("fibre_not_declared", part.fibre, None, part.share, None);
            }
            continue;
        };
        if let (Some(a), Some(c)) = (declared_part.share, part.share) {
            let tolerance = if a.min(c) <= rules.small_share {
                rules.small_tolerance
            } else {
                rules.tolerance
            };
            if (a - c).abs() > tolerance {
                return found(
                    "share_differs",
                    part.fibre,
                    Some(a),
                    Some(c),
                    Some(tolerance),
                );
            }
        }
        if part.pure {
            if let Some(a) = declared_part
                .share
                .filter(|&a| a < rules.pure_min(part.fibre))
            {
                return found(
                    "not_pure",
                    part.fibre,
                    Some(a),
                    None,
                    Some(rules.pure_min(part.fibre)),
                );
            }
        }
        if declared_part.pure {
            if let Some(c) = part.share.filter(|&c| c < rules.pure_min(part.fibre)) {
                return found(
                    "not_pure",
                    part.fibre,
                    None,
                    Some(c),
                    Some(rules.pure_min(part.fibre)),
                );
            }
        }
    }
    for part in &declared_parts {
        // A 纯 claim leaves room for a few points of other fibre: its share test decides.
        if find(rules, &claim_parts, part.fibre).is_none()
            && claim.complete
            && beyond_small(part.share)
            && !(pure_claim && part.share.is_some())
        {
            return found("fibre_not_claimed", part.fibre, part.share, None, None);
        }
    }
    majority(rules, declared.major, &claim_parts, true)
        .or_else(|| majority(rules, claim.major, &declared_parts, false))
}

/// Shorthand that names the larger fibre against shares that make another one larger.
fn majority(
    rules: &CompositionRules,
    major: Option<usize>,
    parts: &[&Part],
    declared_major: bool,
) -> Option<Contradiction> {
    let major = major?;
    let major_share = parts
        .iter()
        .find(|p| rules.same_fibre(p.fibre, major))?
        .share?;
    let larger = parts
        .iter()
        .filter(|p| !rules.same_fibre(p.fibre, major))
        .filter_map(|p| p.share)
        .fold(f64::NEG_INFINITY, f64::max);
    (larger > major_share).then(|| Contradiction {
        reason: "majority_differs",
        fibre: major,
        attribute_share: (!declared_major).then_some(major_share),
        claim_share: declared_major.then_some(major_share),
        limit: Some(larger),
    })
}

fn parts_json(rules: &CompositionRules, parts: &[Part]) -> Value {
    parts
        .iter()
        .map(|p| json!({ "fibre": rules.fibres[p.fibre].standard, "share": p.share, "pure": p.pure }))
        .collect()
}

/// One parsed fibre as a reader sees it: standard name, share, whether claimed pure.
pub type ReadPart = (String, Option<f64>, bool);

/// The claims of a composition text by standard fibre name, for tests and for explaining a
/// decision.
pub fn read(checks: &Checks, text: &str, mode: Mode) -> Vec<Vec<ReadPart>> {
    let mut folded = Folded::default();
    folded.fold(text, &checks.lexicon);
    let rules = &checks.composition;
    checks
        .fibres
        .claims(
            &checks.lexicon,
            rules,
            &folded,
            mode,
            &mut parse::LexBuffers::default(),
        )
        .into_iter()
        .map(|claim| {
            claim
                .parts
                .iter()
                .map(|p| (rules.fibres[p.fibre].standard.clone(), p.share, p.pure))
                .collect()
        })
        .collect()
}
