//! Supply or purchase (handbook 3.1.2 (1), 标题描述与详细描述中的买卖意向不符), kind
//! `title.intent`: a `supply` listing whose title says 求购 or 采购, a `purchase` listing whose
//! title says 供应 or 出售, or a description that states only the opposite intent of the title
//! (or, where the title states none, of the listing).
//!
//! Runs in the parallel half on the words [`super::product`] found in the folded title and
//! description: the intent words of `rules/title.toml` share its automaton. Longer neutral words (欢迎采购, 供应商) shadow the intent word inside
//! them, since they say nothing about what this listing does. A title's intent is its first
//! intent word: 求购清仓布 buys clearance stock.

use serde_json::json;

use super::folded::Hit;
use super::product::{PURCHASE, SUPPLY};
use super::{Checks, Scratch};
use crate::contract::{Finding, Kind, Listing};

fn name(intent: u32) -> &'static str {
    if intent == SUPPLY {
        "supply"
    } else {
        "purchase"
    }
}

/// The intent words among a text's words (neutral ones are shadowed already).
fn stated(hits: &[Hit]) -> impl Iterator<Item = Hit> + '_ {
    hits.iter()
        .copied()
        .filter(|h| h.value == SUPPLY || h.value == PURCHASE)
}

/// Runs after [`super::product`]: `scratch.hits` holds the title's words and
/// `scratch.description_hits` the description's.
pub(super) fn check(
    checks: &Checks,
    listing: &Listing,
    scratch: &mut Scratch,
    out: &mut Vec<Finding>,
) {
    let declared = match listing.intent.as_deref() {
        Some("supply") => Some(SUPPLY),
        Some("purchase") => Some(PURCHASE),
        _ => None,
    };
    let title = listing.title.as_deref().unwrap_or("");

    let title_word = stated(&scratch.hits).next();
    if let (Some(declared), Some(word)) = (declared, title_word) {
        if word.value != declared {
            let evidence = json!({
                "declared": name(declared),
                "title_states": name(word.value),
                "word": scratch.title.slice(word.start, word.end),
            });
            out.extend(checks.finding_at(
                Kind::TitleIntent,
                "title",
                title,
                word.start,
                word.end,
                evidence,
            ));
            return;
        }
    }

    let Some(expected) = title_word.map(|w| w.value).or(declared) else {
        return;
    };
    let Some(first) = stated(&scratch.description_hits).next() else {
        return;
    };
    if stated(&scratch.description_hits).all(|h| h.value != expected) {
        let evidence = json!({
            "declared": declared.map(name),
            "title_states": title_word.map(|w| name(w.value)),
            "description_states": name(first.value),
            "word": scratch.description.slice(first.start, first.end),
        });
        out.extend(checks.finding_at(
            Kind::TitleIntent,
            "description",
            &listing.description,
            first.start,
            first.end,
            evidence,
        ));
    }
}
