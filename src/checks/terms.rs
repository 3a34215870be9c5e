//! Banned terms: prohibited goods by tier (handbook 3.3), Advertising-Law words (3.4) and the
//! licence-gated goods of tier 5 and tier 2's hazardous chemicals.
//!
//! Each pack holds its banned terms and its allow-list, read leftmost-longest over the
//! normalised text. Longest-wins is what makes the rule files work: a more specific term (tier
//! 3's 枪支配件) beats the general one it contains (tier 1's 枪支), and an allow term beats the
//! banned word inside it (最低起订量 over 最低). The packs share one charwise double-array
//! Aho-Corasick automaton (daachorse), so that every title, description and attribute value is
//! normalised once and read once: the automaton reports every occurrence, overlaps included,
//! and each pack picks its own leftmost-longest matches from them, as if it had an automaton of
//! its own.

use super::patterns::{Patterns, PatternsBuilder, Stepper};
use super::{BuildError, Scratch};
use crate::contract::{FieldName, Finding, Kind, ListingEvent};
use crate::normalize::{LocateCursor, Normalized, Normalizer};
use crate::rules::{ContextRule, LicenceVoid, Pack, TermRule, TermRules};

/// What a pattern stands for in one pack.
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

#[derive(Debug)]
struct CompiledPack {
    pack: Pack,
    patterns: usize,
    rules: Vec<TermRule>,
    contexts: Vec<ContextRule>,
}

/// The compiled term packs of one rule set.
pub struct TermMatcher {
    packs: Vec<CompiledPack>,
    /// Every pack's terms, each pack a list of its own.
    patterns: Patterns<Entry>,
    licence_void: LicenceVoid,
}

impl std::fmt::Debug for TermMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TermMatcher")
            .field("packs", &self.packs)
            .field("patterns", &self.patterns.len())
            .finish()
    }
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

/// One occurrence of a pattern in the normalised text, in bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Occurrence {
    start: usize,
    end: usize,
    pattern: u32,
}

/// The term automaton stepped one normalised character at a time, for a caller that makes the
/// normalised text character by character anyway ([`crate::checks::folded::Folded::fold_normalizing`]).
pub(crate) struct TermStepper<'a> {
    stepper: Option<Stepper<'a>>,
    patterns: &'a Patterns<Entry>,
    /// Where the occurrences go.
    out: &'a mut Vec<Occurrence>,
}

impl TermStepper<'_> {
    /// Feeds the next character of the normalised text, by its code in the term automaton;
    /// `end` is the text's length in bytes with the character. Records the occurrences
    /// ending there.
    #[inline(always)]
    pub(crate) fn consume(&mut self, code: u32, end: usize) {
        let Some(stepper) = &mut self.stepper else {
            return;
        };
        if !stepper.consume(code) {
            return;
        }
        for pattern in stepper.matches() {
            self.out.push(Occurrence {
                start: end - self.patterns.bytes(pattern) as usize,
                end,
                pattern,
            });
        }
    }
}

/// Puts occurrences in the order a leftmost-longest reading takes them: by start, and then
/// longest first.
pub(crate) fn sort_occurrences(occurrences: &mut [Occurrence]) {
    occurrences.sort_unstable_by_key(|o| (o.start, std::cmp::Reverse(o.end)));
}

impl TermMatcher {
    pub fn new(rules: &TermRules) -> Result<TermMatcher, BuildError> {
        let mut patterns = PatternsBuilder::default();
        let mut packs = Vec::with_capacity(rules.packs.len());
        for pack in &rules.packs {
            let list = packs.len() as u32;
            // The rule files hold no term twice in one pack (`rules check` refuses it).
            let mut count = 0;
            for (rule_index, rule) in pack.rules.iter().enumerate() {
                for term in &rule.terms {
                    let context = pack
                        .contexts
                        .iter()
                        .position(|c| c.terms.contains(term))
                        .map(|i| i as u32);
                    let entry = Entry::Banned {
                        rule: rule_index as u32,
                        context,
                        left_boundary: term.starts_with(|c: char| c.is_ascii_alphanumeric()),
                        right_boundary: term.ends_with(|c: char| c.is_ascii_alphanumeric()),
                    };
                    patterns.add(term, list, entry);
                    count += 1;
                }
            }
            for term in &pack.allow {
                patterns.add(term, list, Entry::Allowed);
                count += 1;
            }
            packs.push(CompiledPack {
                pack: pack.pack,
                patterns: count,
                rules: pack.rules.clone(),
                contexts: pack.contexts.clone(),
            });
        }
        Ok(TermMatcher {
            packs,
            patterns: patterns.build("term automaton")?,
            licence_void: rules.licence_void.clone(),
        })
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
                &mut scratch.occurrences,
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

    /// Adds a finding for every banned term in one field, given its normalised form;
    /// `occurrences` is a buffer.
    pub(crate) fn scan_field(
        &self,
        field: FieldName<'_>,
        original: &str,
        normalized: &Normalized,
        seller_licences: &[String],
        occurrences: &mut Vec<Occurrence>,
        out: &mut Vec<Finding>,
    ) {
        self.occurrences(normalized, occurrences);
        self.report_field(
            field,
            original,
            normalized,
            seller_licences,
            occurrences,
            out,
        );
    }

    /// The rule set's character table for this automaton and the word lists of `lexicon`.
    pub(crate) fn char_map(&self, lexicon: &super::folded::Lexicon) -> super::charmap::CharMap {
        super::charmap::CharMap::new(lexicon.patterns(), &self.patterns)
    }

    /// The term automaton, to step through a normalised text as it is made, recording the
    /// occurrences in `out`.
    pub(crate) fn stepper<'a>(&'a self, out: &'a mut Vec<Occurrence>) -> TermStepper<'a> {
        TermStepper {
            stepper: self.patterns.stepper(),
            patterns: &self.patterns,
            out,
        }
    }

    /// [`TermMatcher::scan_field`] given the field's occurrences, from a [`TermStepper`] and
    /// [`sort_occurrences`].
    pub(crate) fn report_field(
        &self,
        field: FieldName<'_>,
        original: &str,
        normalized: &Normalized,
        seller_licences: &[String],
        occurrences: &[Occurrence],
        out: &mut Vec<Finding>,
    ) {
        for pack in 0..self.packs.len() {
            for found in self.pack_matches(pack, original, normalized, occurrences) {
                let rule = found.rule;
                let gated = !rule.licences_normalized.is_empty();
                if gated
                    && holds_any(
                        seller_licences,
                        &rule.licences_normalized,
                        &self.licence_void,
                    )
                {
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
    }

    /// Every banned term in `text`, pack by pack and in order, for tools and tests.
    pub fn find(&self, text: &str) -> Vec<TermMatch<'_>> {
        let mut normalized = Normalized::default();
        Normalizer.normalize_into(text, &mut normalized);
        let mut occurrences = Vec::new();
        self.occurrences(&normalized, &mut occurrences);
        (0..self.packs.len())
            .flat_map(|pack| self.pack_matches(pack, text, &normalized, &occurrences))
            .collect()
    }

    /// Every occurrence of every pattern in the normalised text, by start and then longest
    /// first, the order a leftmost-longest reading takes them in.
    pub(crate) fn occurrences(&self, normalized: &Normalized, out: &mut Vec<Occurrence>) {
        out.clear();
        let mut stepper = self.stepper(out);
        for (at, c) in normalized.text().char_indices() {
            stepper.consume(self.patterns.code(c), at + c.len_utf8());
        }
        sort_occurrences(out);
    }

    /// One pack's leftmost-longest matches among `occurrences`, with its allow terms, word
    /// boundaries and context exceptions applied.
    fn pack_matches<'s>(
        &'s self,
        pack: usize,
        original: &str,
        normalized: &Normalized,
        occurrences: &[Occurrence],
    ) -> Vec<TermMatch<'s>> {
        let mut found = Vec::new();
        let mut next = 0;
        let mut cursor = LocateCursor::default();
        for o in occurrences {
            if o.start < next {
                continue;
            }
            let Some(entry) = self.patterns.entry(o.pattern, pack as u32) else {
                continue;
            };
            next = o.end;
            found.extend(self.packs[pack].accept(
                original,
                normalized,
                &mut cursor,
                (o.start, o.end),
                entry,
            ));
        }
        found
    }

    /// Number of patterns (banned and allowed) per pack, for `rules check`.
    pub fn pattern_counts(&self) -> Vec<(Pack, usize)> {
        self.packs.iter().map(|p| (p.pack, p.patterns)).collect()
    }
}

impl CompiledPack {
    /// Turns an automaton match into a banned-term match, or `None` where an allow term, a
    /// word boundary or a context exception says it does not count.
    fn accept(
        &self,
        original: &str,
        normalized: &Normalized,
        cursor: &mut LocateCursor,
        (byte_start, byte_end): (usize, usize),
        entry: Entry,
    ) -> Option<TermMatch<'_>> {
        let Entry::Banned {
            rule,
            context,
            left_boundary,
            right_boundary,
        } = entry
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

        let located = normalized.locate_from(cursor, original, byte_start, byte_end);
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
/// a seller's entry may carry more (a number, an issuing office) around the licence's name,
/// but not words that say it is not held or not valid.
fn holds_any(seller: &[String], required: &[String], void: &LicenceVoid) -> bool {
    seller.iter().any(|held| {
        required.iter().any(|name| {
            held.match_indices(name.as_str()).any(|(at, _)| {
                let (before, after) = (&held[..at], &held[at + name.len()..]);
                !void.before.iter().any(|w| before.ends_with(w.as_str()))
                    && !void.after.iter().any(|w| after.contains(w.as_str()))
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::duplicates::SketchBuilder;
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
[licence_void]
before = ["无", "未取得"]
after = ["过期"]
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
# Allow terms of one pack that start before another pack's terms: the packs share one
# automaton, and these must not hide 仿真手枪 or 枪支 from the prohibited pack.
[[allow]]
terms = ["出售枪支", "仿真手枪模型"]
reason = "r"
packs = ["adlaw"]
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
             named_min_chars = 2\nnot_fibres = []\nnamed_not_after = []\nnamed_not_before = []\nblend = []\n",
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
    fn one_packs_allow_terms_do_not_shadow_another_packs_terms() {
        // 出售枪支 and 仿真手枪模型 are adlaw allow terms (see `rules`), longer and further
        // left than the prohibited terms inside them.
        assert_eq!(
            rules_found("出售枪支 最好"),
            [pair("p.t1.guns", "枪支"), pair("a.absolute", "最好")]
        );
        assert_eq!(
            rules_found("仿真手枪模型"),
            [pair("p.t3.gun_parts", "仿真手枪")]
        );
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
        // An entry that says the licence is missing or lapsed lifts nothing; a city whose name
        // starts with 无 is no negation.
        assert_eq!(scan("医用纱布", &["无医疗器械经营许可证"]).len(), 3);
        assert_eq!(scan("医用纱布", &["未取得 医疗器械经营许可证"]).len(), 3);
        assert_eq!(scan("医用纱布", &["医疗器械经营许可证（已过期）"]).len(), 3);
        assert!(scan("医用纱布", &["无锡市医疗器械经营许可证"]).is_empty());
    }

    proptest::proptest! {
        /// The title and description are read by stepping the automaton, and shingled for the
        /// duplicate sketch, while they are normalised; other fields by searching the
        /// normalised text. Both readings must agree.
        #[test]
        fn stepping_while_normalising_finds_what_searching_finds(
            text in "[枪支配件仿真手最低好起订量出售 ①１一T0p%纯棉 ,*-]{0,60}",
        ) {
            let (_dir, rules) = rules();
            let matcher = TermMatcher::new(&rules.terms).unwrap();
            let lexicon = crate::checks::folded::LexiconBuilder::default().build().unwrap();
            let event: ListingEvent = serde_json::from_value(serde_json::json!({
                "schema": "listing-event/v1", "event_id": "e", "op": "upsert",
                "occurred_at": "2026-12-02T09:15:00+08:00", "seller": { "id": "S1" },
                "listing": { "id": "P1", "title": text }
            }))
            .unwrap();
            let chars = matcher.char_map(&lexicon);
            let mut folded = crate::checks::folded::Folded::default();
            let mut normalized = Normalized::default();
            let mut occurrences = Vec::new();
            let mut stepper = matcher.stepper(&mut occurrences);
            let mut streamed = SketchBuilder::new(&event, &[], &mut normalized);
            let mut shingles = streamed.shingles(FieldName::Title).unwrap();
            folded.fold_normalizing(
                &text, &lexicon, &chars, &mut normalized, &mut stepper, &mut shingles, &mut streamed,
            );
            streamed.add_shingled(FieldName::Title, &normalized, shingles);
            sort_occurrences(&mut occurrences);
            proptest::prop_assert_eq!(normalized.text(), Normalizer.normalize(&text));
            let mut stepped = Vec::new();
            matcher.report_field(FieldName::Title, &text, &normalized, &[], &occurrences, &mut stepped);
            let mut searched = Vec::new();
            matcher.scan_field(FieldName::Title, &text, &normalized, &[], &mut Vec::new(), &mut searched);
            let spans = |f: &[Finding]| f.iter().map(|f| (f.rule.clone(), f.start, f.end)).collect::<Vec<_>>();
            proptest::prop_assert_eq!(spans(&stepped), spans(&searched));
            let mut read = SketchBuilder::new(&event, &[], &mut Normalized::default());
            read.add(FieldName::Title, &normalized);
            proptest::prop_assert_eq!(streamed.finish(), read.finish());
        }
    }
}
