//! Banned terms: prohibited goods by tier (handbook 3.3), Advertising-Law words (3.4) and the
//! licence-gated goods of tier 5 and tier 2's hazardous chemicals.
//!
//! Each pack is one charwise double-array Aho-Corasick automaton (daachorse) holding the
//! pack's banned terms and its allow-list, searched leftmost-longest over the normalised
//! text. Longest-wins is what makes the rule files work: a more specific term (tier 3's 枪支配件)
//! beats the general one it contains (tier 1's 枪支), and an allow term beats the banned word
//! inside it (最低起订量 over 最低). Every title, description and attribute value is normalised
//! once and scanned by every pack.

use daachorse::{CharwiseDoubleArrayAhoCorasick, CharwiseDoubleArrayAhoCorasickBuilder, MatchKind};

use super::{BuildError, Scratch};
use crate::contract::{FieldName, Finding, Kind, ListingEvent};
use crate::normalize::{Normalized, Normalizer};
use crate::rules::{ContextRule, Pack, TermRule, TermRules};

/// What a pattern in an automaton stands for.
#[derive(Debug, Clone, Copy)]
enum Entry {
    Banned {
        rule: u32,
        context: Option<u32>,
        /// The term starts or ends with an ASCII letter or digit, so it only counts where the
        /// original text does not continue with one (`no1` is not inside `no12`).
        left_boundary: bool,
        right_boundary: bool,
    },
    Allowed,
}

struct CompiledPack {
    pack: Pack,
    automaton: CharwiseDoubleArrayAhoCorasick<u32>,
    entries: Vec<Entry>,
    rules: Vec<TermRule>,
    contexts: Vec<ContextRule>,
}

impl std::fmt::Debug for CompiledPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPack")
            .field("pack", &self.pack)
            .field("patterns", &self.entries.len())
            .field("rules", &self.rules.len())
            .finish()
    }
}

/// The compiled term packs of one rule set.
#[derive(Debug)]
pub struct TermMatcher {
    packs: Vec<CompiledPack>,
}

/// A banned term found in a piece of text, before it is turned into a finding.
#[derive(Debug, Clone)]
pub struct TermMatch<'r> {
    pub pack: Pack,
    pub rule: &'r TermRule,
    /// Character offsets into the original text.
    pub start: usize,
    pub end: usize,
    /// Byte offsets of the same range.
    pub byte_start: usize,
    pub byte_end: usize,
}

impl TermMatcher {
    pub fn new(rules: &TermRules) -> Result<TermMatcher, BuildError> {
        let mut packs = Vec::with_capacity(rules.packs.len());
        for pack in &rules.packs {
            let mut patterns: Vec<(&str, u32)> = Vec::new();
            let mut entries = Vec::new();
            for (rule_index, rule) in pack.rules.iter().enumerate() {
                for term in &rule.terms {
                    let context = pack
                        .contexts
                        .iter()
                        .position(|c| c.terms.contains(term))
                        .map(|i| i as u32);
                    patterns.push((term, entries.len() as u32));
                    entries.push(Entry::Banned {
                        rule: rule_index as u32,
                        context,
                        left_boundary: term.starts_with(|c: char| c.is_ascii_alphanumeric()),
                        right_boundary: term.ends_with(|c: char| c.is_ascii_alphanumeric()),
                    });
                }
            }
            for term in &pack.allow {
                patterns.push((term, entries.len() as u32));
                entries.push(Entry::Allowed);
            }
            if patterns.is_empty() {
                continue;
            }

            let automaton = CharwiseDoubleArrayAhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .use_prefilter(false)
                .build_with_values(patterns)
                .map_err(|err| BuildError {
                    what: format!("{} automaton", pack.pack.name()),
                    reason: err.to_string(),
                })?;
            packs.push(CompiledPack {
                pack: pack.pack,
                automaton,
                entries,
                rules: pack.rules.clone(),
                contexts: pack.contexts.clone(),
            });
        }
        Ok(TermMatcher { packs })
    }

    /// Adds a finding to `out` for every banned term in the event's text fields.
    pub fn scan(&self, event: &ListingEvent, scratch: &mut Scratch, out: &mut Vec<Finding>) {
        self.prepare_seller(event, scratch);
        for (field, text) in event.text_fields() {
            Normalizer.normalize_into(text, &mut scratch.normalized);
            self.scan_field(
                field,
                text,
                &scratch.normalized,
                &scratch.seller_licences,
                out,
            );
        }
    }

    /// Normalises the seller's licence names into `scratch`, for [`TermMatcher::scan_field`].
    pub fn prepare_seller(&self, event: &ListingEvent, scratch: &mut Scratch) {
        scratch.seller_licences.clear();
        scratch.seller_licences.extend(
            event
                .seller
                .licences
                .iter()
                .map(|name| Normalizer.normalize(name)),
        );
    }

    /// Adds a finding for every banned term in one field, given its normalised form.
    pub fn scan_field(
        &self,
        field: FieldName<'_>,
        original: &str,
        normalized: &Normalized,
        seller_licences: &[String],
        out: &mut Vec<Finding>,
    ) {
        for found in self.find_normalized(original, normalized) {
            let rule = found.rule;
            let gated = !rule.licences_normalized.is_empty();
            if gated && holds_any(seller_licences, &rule.licences_normalized) {
                continue;
            }
            let (kind, evidence) = if gated {
                let evidence = serde_json::json!({ "requires_any_of": rule.licences });
                (Kind::Licence, Some(evidence))
            } else {
                (rule.kind, None)
            };
            out.push(Finding {
                kind,
                rule: rule.id.clone(),
                field: field.to_string(),
                start: found.start,
                end: found.end,
                text: original[found.byte_start..found.byte_end].to_owned(),
                action: rule.action,
                points: rule.points,
                evidence,
            });
        }
    }

    /// Every banned term in `text`, in order, for tools and tests.
    pub fn find(&self, text: &str) -> Vec<TermMatch<'_>> {
        let mut normalized = Normalized::default();
        Normalizer.normalize_into(text, &mut normalized);
        self.find_normalized(text, &normalized).collect()
    }

    fn find_normalized<'s, 'n>(
        &'s self,
        original: &'n str,
        normalized: &'n Normalized,
    ) -> impl Iterator<Item = TermMatch<'s>> + use<'s, 'n> {
        let text = normalized.text();
        self.packs.iter().flat_map(move |pack| {
            pack.automaton
                .leftmost_find_iter(text)
                .filter_map(move |m| {
                    pack.accept(original, normalized, m.start(), m.end(), m.value())
                })
        })
    }

    /// Number of patterns (banned and allowed) per pack, for `rules check`.
    pub fn pattern_counts(&self) -> Vec<(Pack, usize)> {
        self.packs
            .iter()
            .map(|p| (p.pack, p.entries.len()))
            .collect()
    }
}

impl CompiledPack {
    /// Turns an automaton match into a banned-term match, or `None` where an allow term, a
    /// word boundary or a context exception says it does not count.
    fn accept<'s>(
        &'s self,
        original: &str,
        normalized: &Normalized,
        byte_start: usize,
        byte_end: usize,
        value: u32,
    ) -> Option<TermMatch<'s>> {
        let Entry::Banned {
            rule,
            context,
            left_boundary,
            right_boundary,
        } = self.entries[value as usize]
        else {
            return None;
        };
        if let Some(context) = context {
            let after = &normalized.text()[byte_end..];
            if self.contexts[context as usize]
                .skip_if_followed_by
                .is_match(after)
            {
                return None;
            }
        }

        let located = normalized.locate(original, byte_start, byte_end);
        if (left_boundary && located.before.is_some())
            || (right_boundary && located.after.is_some())
        {
            return None;
        }
        Some(TermMatch {
            pack: self.pack,
            rule: &self.rules[rule as usize],
            start: located.start,
            end: located.end,
            byte_start: located.byte_start,
            byte_end: located.byte_end,
        })
    }
}

/// Whether a seller holds one of the licences a rule names. Names are compared normalised;
/// a seller's name may carry more (a number, an issuing office) around the licence's name.
fn holds_any(seller: &[String], required: &[String]) -> bool {
    seller
        .iter()
        .any(|held| required.iter().any(|name| held.contains(name.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Action, ListingEvent};
    use crate::rules::RuleSet;

    /// A small rule set written for these tests, so that they pin the matcher's behaviour
    /// whatever the project's rule files say.
    fn rules() -> (tempfile::TempDir, RuleSet) {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "prohibited.toml",
            r#"pack = "prohibited"
[[tier]]
tier = 1
action = "close_account"
points = 48
handbook = "3.3.2 1)"
text = "t1"
[[tier]]
tier = 3
action = "takedown"
points = 0
handbook = "3.3.2 3)"
text = "t3"
[[tier]]
tier = 5
action = "takedown"
points = 4
handbook = "3.3.2 5)"
text = "t5"
[[item]]
id = "p.t1.guns"
tier = 1
handbook = "3.3.2 1) 2"
text = "枪支"
terms = ["枪支", "手枪"]
[[item]]
id = "p.t3.gun_parts"
tier = 3
handbook = "3.3.2 3) 1"
text = "配件"
terms = ["枪支配件", "仿真手枪"]
[[item]]
id = "p.t5.medical"
tier = 5
handbook = "3.3.2 5) 4"
text = "医疗器械"
terms = ["医用纱布"]
licences = ["医疗器械经营许可证"]
"#,
        );
        write(
            "adlaw.toml",
            r#"pack = "adlaw"
[[class]]
id = "a.absolute"
name = "极限用语"
handbook = "3.4"
text = "x"
action = "suppress"
points = 0
terms = ["最低", "最好", "top1", "100%", "限时"]
"#,
        );
        write(
            "allow.toml",
            r#"[[allow]]
terms = ["最低起订量"]
reason = "r"
[[context]]
id = "c.fibre"
terms = ["100%"]
pack = "adlaw"
skip_if_followed_by = "纯?{fibre}"
reason = "r"
[[context]]
id = "c.period"
terms = ["限时"]
pack = "adlaw"
skip_if_followed_by = '(特价)?\d{1,2}月\d{1,2}日'
reason = "r"
"#,
        );
        write(
            "fibres.tsv",
            "standard\tsynonyms\tenglish\tcodes\n棉\t全棉,纯棉\tcotton\tC\n聚酯纤维\t涤纶\tpolyester\tT\n",
        );
        write("listing.toml", include_str!("../../rules/listing.toml"));
        write("prices.toml", include_str!("../../rules/prices.toml"));
        write("title.toml", include_str!("../../rules/title.toml"));
        write(
            "categories.toml",
            include_str!("../../rules/categories.toml"),
        );
        // The composition check's shorthand names fibres beyond this small table.
        write(
            "composition.toml",
            "attribute = \"a\"\ntolerance = 5.0\nsmall_share = 10.0\nsmall_tolerance = 3.0\ntrace = 0.5\n\
             pure_min = 95.0\npure_min_by_fibre = {}\npure_prefixes = []\nexclude_names = []\nhand_feel = []\n\
             blend = []\n",
        );
        write(
            "duplicates.toml",
            include_str!("../../rules/duplicates.toml"),
        );
        write("images.toml", include_str!("../../rules/images.toml"));
        write("holidays.toml", include_str!("../../rules/holidays.toml"));
        let rules = RuleSet::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        (dir, rules)
    }

    fn scan(text: &str, licences: &[&str]) -> Vec<Finding> {
        let (_dir, rules) = rules();
        let matcher = TermMatcher::new(&rules.terms).unwrap();
        let event: ListingEvent = serde_json::from_value(serde_json::json!({
            "schema": "listing-event/v1", "event_id": "e", "op": "upsert",
            "occurred_at": "2026-12-02T09:15:00Z",
            "seller": {"id": "S", "licences": licences},
            "listing": {"id": "P", "title": text, "description": format!("说明：{text}"),
                        "attributes": {"品名": text}}
        }))
        .unwrap();
        let mut out = Vec::new();
        matcher.scan(&event, &mut Scratch::default(), &mut out);
        out
    }

    fn rules_found(text: &str) -> Vec<(String, String)> {
        scan(text, &[])
            .into_iter()
            .filter(|f| f.field == "title")
            .map(|f| (f.rule, f.text))
            .collect()
    }

    fn pair(rule: &str, text: &str) -> (String, String) {
        (rule.to_owned(), text.to_owned())
    }

    #[test]
    fn the_more_specific_term_wins() {
        assert_eq!(
            rules_found("出售枪支配件"),
            [pair("p.t3.gun_parts", "枪支配件")]
        );
        assert_eq!(
            rules_found("仿真手枪模型"),
            [pair("p.t3.gun_parts", "仿真手枪")]
        );
        assert_eq!(rules_found("出售枪支"), [pair("p.t1.guns", "枪支")]);
    }

    #[test]
    fn an_allow_term_shadows_the_banned_word_inside_it() {
        assert!(rules_found("最低起订量300米").is_empty());
        assert_eq!(rules_found("全网最低价"), [pair("a.absolute", "最低")]);
    }

    #[test]
    fn latin_terms_match_only_at_word_boundaries() {
        assert_eq!(
            rules_found("ＴＯＰ１ 涤纶"),
            [pair("a.absolute", "ＴＯＰ１")]
        );
        assert_eq!(rules_found("涤纶top1"), [pair("a.absolute", "top1")]);
        assert!(rules_found("top10 涤纶").is_empty());
        assert!(rules_found("stop1 涤纶").is_empty());
    }

    #[test]
    fn context_exceptions_follow_the_normalised_text() {
        assert!(rules_found("100%棉").is_empty());
        assert!(rules_found("100% 纯棉").is_empty());
        assert!(rules_found("100％涤纶").is_empty());
        assert_eq!(rules_found("100%正品"), [pair("a.absolute", "100%")]);
        assert!(rules_found("限时特价 12月1日至12月7日").is_empty());
        assert_eq!(
            rules_found("限时特价 随时涨价"),
            [pair("a.absolute", "限时")]
        );
    }

    #[test]
    fn evasions_are_caught_and_spans_point_at_the_original() {
        let findings = scan("买 最 * 好 的布", &[]);
        let title = findings.iter().find(|f| f.field == "title").unwrap();
        assert_eq!(
            (title.start, title.end, title.text.as_str()),
            (2, 7, "最 * 好")
        );
        let description = findings.iter().find(|f| f.field == "description").unwrap();
        assert_eq!((description.start, description.end), (5, 10));
        let attribute = findings
            .iter()
            .find(|f| f.field == "attributes.品名")
            .unwrap();
        assert_eq!(attribute.text, "最 * 好");
    }

    #[test]
    fn a_licence_gated_rule_fires_only_without_the_licence() {
        let without = scan("医用纱布", &[]);
        assert_eq!(without[0].kind, Kind::Licence);
        assert_eq!(
            (without[0].action, without[0].points),
            (Action::Takedown, 4)
        );
        assert_eq!(
            without[0].evidence,
            Some(serde_json::json!({"requires_any_of": ["医疗器械经营许可证"]}))
        );
        assert!(scan("医用纱布", &["医疗器械经营许可证"]).is_empty());
        assert!(scan("医用纱布", &["浙江省医疗器械经营许可证（第二类）"]).is_empty());
        assert_eq!(scan("医用纱布", &["危险化学品经营许可证"]).len(), 3);
    }
}
