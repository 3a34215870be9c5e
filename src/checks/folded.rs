//! A field folded one character at a time (full-width → ASCII, upper → lower case,
//! traditional → simplified) for the consistency checks of the title and description, and
//! scanned for their words while it is folded.
//!
//! The term matchers read the normalised text, which drops spaces and symbols; the consistency
//! checks need them (a space ends a product phrase, `×` separates two numbers of a fabric
//! specification), and they need positions in the original. Folding keeps one character per
//! original character, so a position in the folded text is the finding's span as it is.
//!
//! The word lists of those checks (product nouns and intent words, fibre names, contact-detail
//! markers) share one [`Lexicon`]: one automaton, stepped through each character as it is
//! folded, so that a field is read once however many lists there are. Each list is still
//! read leftmost-longest on its own ([`Words::find_in`]): the automaton reports every
//! occurrence, overlaps included, and a list picks its own from them.

use std::cell::OnceCell;

use super::charmap::CharMap;
use super::duplicates::{Shingles, SketchBuilder};
use super::patterns::{Patterns, PatternsBuilder, Stepper};
use super::terms::TermStepper;
use super::BuildError;
use crate::normalize::{char_table, Normalized, NORMAL_IS_FOLDED};

/// One folded field, as characters (and as a string when a caller asks), with the lexicon's
/// words in it; reused from event to event.
#[derive(Debug, Default, Clone)]
pub struct Folded {
    chars: Vec<char>,
    /// Every occurrence of a lexicon word, by start and then longest first.
    occurrences: Vec<Occurrence>,
    /// The characters as a string, made on the first call that needs it: most fields are
    /// only ever read as characters, and encoding every character again would cost the hot
    /// path as much as folding it.
    text: OnceCell<FoldedText>,
}

#[derive(Debug, Default, Clone)]
struct FoldedText {
    text: String,
    /// Byte offset in `text` of each character, plus the end.
    offsets: Vec<u32>,
}

/// A lexicon word somewhere in a folded text, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Occurrence {
    start: u32,
    end: u32,
    pattern: u32,
}

impl Folded {
    /// Folds `original` into this buffer and finds the words of `lexicon` in it.
    pub fn fold(&mut self, original: &str, lexicon: &Lexicon) {
        self.clear(original.len());
        let table = char_table();
        let mut words = lexicon.patterns.stepper();
        for c in original.chars() {
            let (folded, _) = table.get(c);
            let code = lexicon.patterns.code(folded);
            self.push(folded, code, lexicon, words.as_mut());
        }
        self.finish();
    }

    /// [`Folded::fold`] through the rule set's character table `chars` (built for
    /// `lexicon`), and in the same pass the normal form of `original` into `normalized`,
    /// stepped through the term automaton `terms` and fed to the duplicate check's
    /// `shingles` of `sketch` as it is made: the title and description are read once for every
    /// check.
    ///
    /// Written out rather than through closures: this loop runs for every character of every
    /// listing, and the compiler does not inline a closure per character into it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fold_normalizing(
        &mut self,
        original: &str,
        lexicon: &Lexicon,
        chars: &CharMap,
        normalized: &mut Normalized,
        terms: &mut TermStepper<'_>,
        shingles: &mut Shingles,
        sketch: &mut SketchBuilder<'_>,
    ) {
        self.clear(original.len());
        normalized.clear(original.len());
        let mut words = lexicon.patterns.stepper();
        for c in original.chars() {
            let info = chars.get(c);
            self.push(info.folded, info.word, lexicon, words.as_mut());
            if info.normal == NORMAL_IS_FOLDED {
                // The normal form is the folded character: nearly every character of a text.
                normalized.push(info.folded);
                terms.consume(info.term, normalized.len());
                shingles.push(info.folded, sketch);
            } else {
                normalized.push_normal(info.normal, |n, end| {
                    terms.consume(chars.digit(n), end);
                    shingles.push(n, sketch);
                });
            }
        }
        self.finish();
    }

    fn clear(&mut self, capacity: usize) {
        self.chars.clear();
        self.occurrences.clear();
        self.text.take();
        // Characters are at most as many as bytes.
        self.chars.reserve(capacity);
    }

    /// Appends one folded character, whose code in the lexicon's automaton is `code`, and
    /// records the lexicon words that end with it.
    #[inline(always)]
    fn push(
        &mut self,
        folded: char,
        code: u32,
        lexicon: &Lexicon,
        words: Option<&mut Stepper<'_>>,
    ) {
        self.chars.push(folded);
        let Some(words) = words else {
            return;
        };
        if !words.consume(code) {
            return;
        }
        let end = self.chars.len() as u32;
        for pattern in words.matches() {
            self.occurrences.push(Occurrence {
                start: end - lexicon.patterns.chars(pattern),
                end,
                pattern,
            });
        }
    }

    fn finish(&mut self) {
        // Found by end; lists read them leftmost-longest.
        self.occurrences
            .sort_unstable_by_key(|o| (o.start, std::cmp::Reverse(o.end)));
    }

    fn folded_text(&self) -> &FoldedText {
        self.text.get_or_init(|| {
            let mut text = String::with_capacity(self.chars.len());
            let mut offsets = Vec::with_capacity(self.chars.len() + 1);
            for &c in &self.chars {
                offsets.push(text.len() as u32);
                text.push(c);
            }
            offsets.push(text.len() as u32);
            FoldedText { text, offsets }
        })
    }

    pub fn text(&self) -> &str {
        &self.folded_text().text
    }

    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// Appends the folded characters `start..end` to `out`, without making the whole string.
    pub fn write_slice(&self, start: usize, end: usize, out: &mut String) {
        let end = end.min(self.chars.len());
        out.extend(&self.chars[start.min(end)..end]);
    }

    /// The folded characters `start..end` as a string.
    pub fn slice(&self, start: usize, end: usize) -> &str {
        let end = end.min(self.chars.len());
        let start = start.min(end);
        let folded = self.folded_text();
        &folded.text[folded.offsets[start] as usize..folded.offsets[end] as usize]
    }
}

/// The word lists of the consistency checks in one automaton; see the module documentation.
pub struct Lexicon {
    patterns: Patterns<u32>,
}

/// Collects word lists, each returning the [`Words`] handle it is read through.
#[derive(Default)]
pub struct LexiconBuilder {
    patterns: PatternsBuilder<u32>,
    lists: u32,
}

/// One word list of a [`Lexicon`]: words found leftmost-longest, each carrying a value.
#[derive(Debug, Clone, Copy)]
pub struct Words {
    list: u32,
    len: usize,
}

/// One word found: its character span in the folded text and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub start: usize,
    pub end: usize,
    pub value: u32,
}

impl LexiconBuilder {
    /// Adds a list of `words` (already folded: lower case, simplified); of a word listed twice,
    /// the first value counts.
    pub fn list<'a>(&mut self, words: impl IntoIterator<Item = (&'a str, u32)>) -> Words {
        let list = self.lists;
        self.lists += 1;
        let len = words
            .into_iter()
            .filter(|&(word, value)| self.patterns.add(word, list, value))
            .count();
        Words { list, len }
    }

    pub fn build(self) -> Result<Lexicon, BuildError> {
        Ok(Lexicon {
            patterns: self
                .patterns
                .build("word lists of the consistency checks")?,
        })
    }
}

impl Words {
    /// Every word of the list in `folded` (folded with `lexicon`, the lexicon the list belongs
    /// to) between characters `from..to`, leftmost-longest, left to right.
    pub fn find_in(
        &self,
        lexicon: &Lexicon,
        folded: &Folded,
        from: usize,
        to: usize,
        out: &mut Vec<Hit>,
    ) {
        let mut next = from;
        for o in &folded.occurrences {
            let (start, end) = (o.start as usize, o.end as usize);
            if start < next || end > to {
                continue;
            }
            if let Some(value) = lexicon.patterns.entry(o.pattern, self.list) {
                out.push(Hit { start, end, value });
                next = end;
            }
        }
    }

    /// Every word of the list in the whole of `folded`.
    pub fn find(&self, lexicon: &Lexicon, folded: &Folded, out: &mut Vec<Hit>) {
        self.find_in(lexicon, folded, 0, folded.chars.len(), out);
    }

    /// Words in the list.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Lexicon {
    /// The automaton of every list, for the rule set's character table.
    pub(crate) fn patterns(&self) -> &Patterns<u32> {
        &self.patterns
    }
}

impl std::fmt::Debug for Lexicon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lexicon")
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

/// The original characters `start..end` of `text`, for a finding's `text`.
pub fn original_slice(text: &str, start: usize, end: usize) -> String {
    Slicer::default().slice(text, start, end).to_owned()
}

/// Cuts a text by character offsets taken in increasing order, reading it once in all
/// rather than from its start for every cut: a title may hold 100,000 findings.
#[derive(Debug, Default)]
pub struct Slicer {
    /// A character offset cut at before, and its byte offset.
    char: usize,
    byte: usize,
}

impl Slicer {
    /// Characters `start..end` of `text` (fewer where it ends first); a `start` before the
    /// previous one reads from the beginning again.
    pub fn slice<'t>(&mut self, text: &'t str, start: usize, end: usize) -> &'t str {
        if start < self.char {
            *self = Slicer::default();
        }
        // `Chars::nth` skips by counting bytes, faster than walking `char_indices`.
        let skip = |from: usize, chars: usize| {
            let mut rest = text[from..].chars();
            match chars.checked_sub(1) {
                None => from,
                Some(last) if rest.nth(last).is_some() => text.len() - rest.as_str().len(),
                Some(_) => text.len(),
            }
        };
        let from = skip(self.byte, start - self.char);
        let to = skip(from, end.saturating_sub(start));
        (self.char, self.byte) = (start, from);
        &text[from..to]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_keeps_one_character_per_character() {
        let lexicon = LexiconBuilder::default().build().unwrap();
        let mut folded = Folded::default();
        folded.fold("ＱＱ 頂級 ①③", &lexicon);
        assert_eq!(folded.text(), "qq 顶级 ①③");
        assert_eq!(folded.chars().len(), "ＱＱ 頂級 ①③".chars().count());
        assert_eq!(folded.slice(3, 5), "顶级");
        assert_eq!(original_slice("ＱＱ 頂級", 3, 5), "頂級");
        assert_eq!(original_slice("ＱＱ 頂級", 3, 9), "頂級");
        assert_eq!(original_slice("ＱＱ 頂級", 7, 9), "");
        let mut slicer = Slicer::default();
        let text = "加微信 abc123 或 QQ 12345";
        assert_eq!(slicer.slice(text, 1, 3), "微信");
        assert_eq!(slicer.slice(text, 4, 10), "abc123");
        assert_eq!(slicer.slice(text, 16, 21), "12345");
        // Back to an earlier cut: read again from the start.
        assert_eq!(slicer.slice(text, 0, 1), "加");
    }

    fn words(
        words: &Words,
        lexicon: &Lexicon,
        folded: &Folded,
        from: usize,
        to: usize,
    ) -> Vec<(usize, usize, u32)> {
        let mut hits = Vec::new();
        words.find_in(lexicon, folded, from, to, &mut hits);
        hits.iter().map(|h| (h.start, h.end, h.value)).collect()
    }

    #[test]
    fn each_list_is_read_leftmost_longest_on_its_own() {
        let mut builder = LexiconBuilder::default();
        let nouns = builder.list([("棉布", 1), ("全棉布料", 2), ("布料", 3)]);
        let fibres = builder.list([("棉", 10), ("全棉", 11), ("涤纶", 12)]);
        let lexicon = builder.build().unwrap();
        let mut folded = Folded::default();
        folded.fold("全棉布料 涤纶棉布", &lexicon);
        // 全棉布料 is one noun; the fibre list reads 全棉 there, unaware of the noun.
        assert_eq!(
            words(&nouns, &lexicon, &folded, 0, 9),
            [(0, 4, 2), (7, 9, 1)]
        );
        assert_eq!(
            words(&fibres, &lexicon, &folded, 0, 9),
            [(0, 2, 11), (5, 7, 12), (7, 8, 10)]
        );
        // A range keeps only the words inside it.
        assert_eq!(
            words(&nouns, &lexicon, &folded, 1, 9),
            [(1, 3, 1), (7, 9, 1)]
        );
        assert_eq!(
            words(&fibres, &lexicon, &folded, 0, 7),
            [(0, 2, 11), (5, 7, 12)]
        );
    }

    #[test]
    fn a_word_in_two_lists_keeps_each_lists_value() {
        let mut builder = LexiconBuilder::default();
        let a = builder.list([("涤棉", 1), ("涤棉", 9)]);
        let b = builder.list([("涤棉", 2)]);
        assert_eq!((a.len(), b.len()), (1, 1));
        let lexicon = builder.build().unwrap();
        let mut folded = Folded::default();
        folded.fold("ＴＣ涤棉", &lexicon);
        assert_eq!(words(&a, &lexicon, &folded, 0, 4), [(2, 4, 1)]);
        assert_eq!(words(&b, &lexicon, &folded, 0, 4), [(2, 4, 2)]);
    }
}
