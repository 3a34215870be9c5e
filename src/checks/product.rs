//! What a listing sells, read from its product nouns (handbook 3.1.2 (1)): the title checks
//! `title.no_product` (no product named), `title.stuffing` (many products stacked to catch
//! searches) and `title.mismatch` (title and description sell different kinds of goods), and
//! the head noun that the category check ([`super::category`]) compares with the category path.
//!
//! Runs in the parallel half on the folded title and description. Nouns come from
//! `rules/categories.toml`, found leftmost-longest, so 纱卡 is a fabric and not 纱 yarn. A title
//! is cut into phrases at spaces and punctuation; the product being sold is the last noun of
//! the first phrase that holds one (女装连衣裙面料 sells 面料, 女装连衣裙 a garment,
//! 剑杆织机配件 a part), since Chinese puts modifiers before the noun they modify. Numbers
//! and specifications (40s×40s, 190T, 150D/48F) hold no noun and only separate phrases.

use serde_json::json;

use super::folded::{Folded, Hit, Lexicon, LexiconBuilder, Words};
use super::{BuildError, Checks, Scratch};
use crate::contract::{Finding, Kind, Listing};
use crate::rules::{IntentRules, Taxonomy};

/// A word that contains a noun but names no product; it shadows the noun inside it.
const IGNORED: u32 = u32::MAX;
/// A word after which the clause names what goods are for (适合做衬衫).
const USAGE: u32 = u32::MAX - 1;
/// Intent words share the automaton, so that title and description are searched once for
/// both (see [`super::intent`]); no noun contains an intent word or the other way round.
pub(super) const SUPPLY: u32 = u32::MAX - 2;
pub(super) const PURCHASE: u32 = u32::MAX - 3;
const NEUTRAL: u32 = u32::MAX - 4;

/// One product noun in a text: its character span and its category's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Noun {
    pub start: usize,
    pub end: usize,
    pub category: usize,
}

/// What a title names: the head noun of its first product phrase and the head of every phrase.
#[derive(Debug, Default, Clone)]
pub struct TitleProducts {
    pub head: Option<Noun>,
    /// The last noun of each phrase, in order.
    pub phrase_heads: Vec<Noun>,
}

/// The product nouns of the taxonomy, compiled.
#[derive(Debug)]
pub struct ProductNouns {
    words: Words,
}

impl ProductNouns {
    pub fn new(
        taxonomy: &Taxonomy,
        intent: &IntentRules,
        lexicon: &mut LexiconBuilder,
    ) -> Result<ProductNouns, BuildError> {
        // Ignored words first, so that a word listed both ways is ignored.
        let ignored = taxonomy.ignore.iter().map(|w| (w.as_str(), IGNORED));
        let usage = taxonomy.usage.iter().map(|w| (w.as_str(), USAGE));
        let nouns = taxonomy
            .nouns
            .iter()
            .map(|(noun, category)| (noun.as_str(), *category as u32));
        // Sharing one leftmost-longest automaton is only the same as two when no word of one
        // list overlaps a word of the other inside it.
        let intent_words = intent
            .supply
            .iter()
            .chain(&intent.purchase)
            .chain(&intent.neutral);
        for word in intent_words {
            let taxonomy_words = taxonomy
                .nouns
                .iter()
                .map(|(n, _)| n)
                .chain(&taxonomy.ignore);
            if let Some(clash) = taxonomy_words
                .chain(&taxonomy.usage)
                .find(|t| t.contains(word.as_str()) || word.contains(t.as_str()))
            {
                return Err(BuildError {
                    what: "product and intent words".to_owned(),
                    reason: format!("`{clash}` and the intent word `{word}` overlap"),
                });
            }
        }
        let intents = intent
            .neutral
            .iter()
            .map(|w| (w.as_str(), NEUTRAL))
            .chain(intent.supply.iter().map(|w| (w.as_str(), SUPPLY)))
            .chain(intent.purchase.iter().map(|w| (w.as_str(), PURCHASE)));
        let words = ignored.chain(usage).chain(intents).chain(nouns);
        Ok(ProductNouns {
            words: lexicon.list(words),
        })
    }

    /// Every product noun in characters `from..to` of `text`, left to right.
    pub fn nouns(
        &self,
        lexicon: &Lexicon,
        text: &Folded,
        from: usize,
        to: usize,
        hits: &mut Vec<Hit>,
        out: &mut Vec<Noun>,
    ) {
        hits.clear();
        self.words.find_in(lexicon, text, from, to, hits);
        out.extend(hits.iter().filter(|h| h.value < NEUTRAL).map(|h| Noun {
            start: h.start,
            end: h.end,
            category: h.value as usize,
        }));
    }

    /// The nouns of a description that name what it sells: those not in the part of a clause
    /// that says what the goods are for (after 适合, 用于 …).
    /// `hits` are the words of `text` ([`ProductNouns::scan`]).
    pub fn sold_in(&self, text: &Folded, hits: &[Hit], out: &mut Vec<Noun>) {
        let chars = text.chars();
        let mut in_usage = false;
        let mut last_end = 0;
        for hit in hits.iter() {
            if chars[last_end..hit.start].iter().any(|&c| ends_clause(c)) {
                in_usage = false;
            }
            last_end = hit.end;
            match hit.value {
                USAGE => in_usage = true,
                category if !in_usage && category < NEUTRAL => out.push(Noun {
                    start: hit.start,
                    end: hit.end,
                    category: category as usize,
                }),
                _ => {}
            }
        }
    }

    /// Every word of `text`: nouns, usage, ignored and intent words, left to right.
    pub fn scan(&self, lexicon: &Lexicon, text: &Folded, hits: &mut Vec<Hit>) {
        hits.clear();
        self.words.find(lexicon, text, hits);
    }

    /// The head noun and phrase heads of a title; `hits` is left holding every word of the
    /// title, for the intent check.
    pub fn title(
        &self,
        lexicon: &Lexicon,
        title: &Folded,
        hits: &mut Vec<Hit>,
        nouns: &mut Vec<Noun>,
        out: &mut TitleProducts,
    ) {
        nouns.clear();
        out.head = None;
        out.phrase_heads.clear();
        self.nouns(lexicon, title, 0, title.chars().len(), hits, nouns);

        let chars = title.chars();
        for (i, noun) in nouns.iter().enumerate() {
            let phrase_ends = match nouns.get(i + 1) {
                None => true,
                Some(next) => chars[noun.end..next.start].iter().any(|&c| ends_phrase(c)),
            };
            if phrase_ends {
                out.phrase_heads.push(*noun);
            }
        }
        out.head = out.phrase_heads.first().copied();
    }
}

/// Sentence punctuation ends a clause of a description (the enumeration comma 、 does not).
fn ends_clause(c: char) -> bool {
    matches!(c, ',' | '。' | ';' | '!' | '?' | '.' | '\n' | ':')
}

/// Spaces and punctuation end a phrase; letters, digits and ideographs do not.
fn ends_phrase(c: char) -> bool {
    !c.is_alphanumeric()
}

/// Does the text hold a word at all (letters or ideographs), as opposed to only symbols and
/// numbers? A title without one is bad input, not a listing that names no product.
pub fn has_words(text: &Folded) -> bool {
    text.chars().iter().any(|c| c.is_alphabetic())
}

/// The distinct products among phrase heads, by their folded text, in order.
pub fn distinct_products<'a>(title: &'a Folded, heads: &[Noun]) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::with_capacity(heads.len());
    for head in heads {
        let word = title.slice(head.start, head.end);
        if !seen.contains(&word) {
            seen.push(word);
        }
    }
    seen
}

/// `title.no_product`, `title.stuffing` and `title.mismatch` on one listing whose title and
/// description are folded in `scratch`, and whose title products are in `scratch.products`.
pub(super) fn check(
    checks: &Checks,
    listing: &Listing,
    scratch: &mut Scratch,
    out: &mut Vec<Finding>,
) {
    let taxonomy = &checks.taxonomy;
    let title = listing.title.as_deref().unwrap_or("");
    let title_len = scratch.title.chars().len();
    let path_category = taxonomy.category_of_path(&listing.category);
    let products = &scratch.products;

    // A listing filed outside the taxonomy (crafts, security goods) may sell what the textile
    // nouns cannot name; only a textile category, or none, says the title should name one.
    let textile_path = listing.category.is_empty() || path_category.is_some();
    if products.head.is_none() && textile_path && has_words(&scratch.title) {
        let evidence = json!({ "category_path": listing.category, "product_nouns": 0 });
        out.extend(checks.finding_at(Kind::TitleNoProduct, "title", title, 0, title_len, evidence));
    }

    // No more distinct products than phrase heads: most titles have one or two.
    let distinct = if products.phrase_heads.len() >= taxonomy.stuffing_threshold {
        distinct_products(&scratch.title, &products.phrase_heads)
    } else {
        Vec::new()
    };
    if distinct.len() >= taxonomy.stuffing_threshold {
        let start = products.phrase_heads.first().map_or(0, |n| n.start);
        let end = products.phrase_heads.last().map_or(title_len, |n| n.end);
        let evidence = json!({
            "products": distinct,
            "count": distinct.len(),
            "threshold": taxonomy.stuffing_threshold,
        });
        out.extend(checks.finding_at(Kind::TitleStuffing, "title", title, start, end, evidence));
    }

    let Some(head) = products.head else {
        return;
    };
    let family = &taxonomy.categories[head.category].family;
    scratch.nouns.clear();
    checks.products.sold_in(
        &scratch.description,
        &scratch.description_hits,
        &mut scratch.nouns,
    );
    let Some(other) = scratch.nouns.first() else {
        return;
    };
    let same_family = scratch
        .nouns
        .iter()
        .any(|n| &taxonomy.categories[n.category].family == family);
    if !same_family {
        let evidence = json!({
            "title_product": scratch.title.slice(head.start, head.end),
            "title_category": taxonomy.categories[head.category].id,
            "description_product": scratch.description.slice(other.start, other.end),
            "description_category": taxonomy.categories[other.category].id,
            "description_start": other.start,
            "description_end": other.end,
        });
        out.extend(checks.finding_at(
            Kind::TitleMismatch,
            "title",
            title,
            head.start,
            head.end,
            evidence,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSet;

    fn heads(title: &str) -> (Option<String>, Vec<String>) {
        let rules = RuleSet::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut lexicon = LexiconBuilder::default();
        let products =
            ProductNouns::new(&rules.taxonomy, &rules.title.intent, &mut lexicon).unwrap();
        let lexicon = lexicon.build().unwrap();
        let mut folded = Folded::default();
        folded.fold(title, &lexicon);
        let mut out = TitleProducts::default();
        products.title(
            &lexicon,
            &folded,
            &mut Vec::new(),
            &mut Vec::new(),
            &mut out,
        );
        let word = |n: &Noun| folded.slice(n.start, n.end).to_owned();
        (
            out.head.as_ref().map(word),
            out.phrase_heads.iter().map(word).collect(),
        )
    }

    #[test]
    fn the_head_is_the_last_noun_of_the_first_product_phrase() {
        let cases: [(&str, Option<&str>, &[&str]); 12] = [
            ("工厂直供 全棉纱卡 16s×12s", Some("全棉纱卡"), &["全棉纱卡"]),
            ("女装连衣裙面料 雪纺印花", Some("面料"), &["面料", "雪纺"]),
            ("女装连衣裙 夏季 雪纺", Some("连衣裙"), &["连衣裙", "雪纺"]),
            ("剑杆织机配件 剑带", Some("配件"), &["配件", "剑带"]),
            ("全棉轧染纱卡", Some("纱卡"), &["纱卡"]),
            ("全棉府绸 40s×40s 133×72 幅宽150cm", Some("府绸"), &["府绸"]),
            (
                "限时特价 12月1日至12月7日 全棉帆布",
                Some("帆布"),
                &["帆布"],
            ),
            ("60S纯棉纱(含长绒棉)", Some("棉纱"), &["棉纱", "长绒棉"]),
            ("涤纶FDY", Some("fdy"), &["fdy"]),
            (
                "迷彩服 劳保工作服 耐磨",
                Some("迷彩服"),
                &["迷彩服", "工作服"],
            ),
            ("新款 热卖 现货 包邮", None, &[]),
            ("新品发布 在线咨询", None, &[]),
        ];
        for (title, head, phrase_heads) in cases {
            let (got_head, got_heads) = heads(title);
            assert_eq!(got_head.as_deref(), head, "{title}");
            assert_eq!(got_heads, phrase_heads, "{title}");
        }
    }
}
