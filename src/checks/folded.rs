//! A field folded one character at a time (full-width → ASCII, upper → lower case,
//! traditional → simplified) for the consistency checks of the title and description.
//!
//! The term matchers read the normalised text, which drops spaces and symbols; the consistency
//! checks need them (a space ends a product phrase, `×` separates two numbers of a fabric
//! specification), and they need positions in the original. Folding keeps one character per
//! original character, so a position in the folded text is the finding's span as it is.

use daachorse::{CharwiseDoubleArrayAhoCorasick, CharwiseDoubleArrayAhoCorasickBuilder, MatchKind};

use super::BuildError;
use crate::normalize::fold_char;

/// One folded field, as a string and as characters, reused from event to event.
#[derive(Debug, Default, Clone)]
pub struct Folded {
    text: String,
    chars: Vec<char>,
    /// Byte offset in `text` of each character, plus the end.
    offsets: Vec<usize>,
}

impl Folded {
    /// Folds `original` into this buffer.
    pub fn fold(&mut self, original: &str) {
        self.text.clear();
        self.chars.clear();
        self.offsets.clear();
        for c in original.chars() {
            let folded = fold_char(c);
            self.offsets.push(self.text.len());
            self.text.push(folded);
            self.chars.push(folded);
        }
        self.offsets.push(self.text.len());
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The character offset of a byte offset in [`Folded::text`] (which must fall on a
    /// character boundary, as automaton matches do).
    pub fn char_at(&self, byte: usize) -> usize {
        self.offsets.partition_point(|&offset| offset < byte)
    }

    /// The folded characters `start..end` as a string.
    pub fn slice(&self, start: usize, end: usize) -> &str {
        let end = end.min(self.chars.len());
        let start = start.min(end);
        &self.text[self.offsets[start]..self.offsets[end]]
    }
}

/// A word list searched leftmost-longest over folded text, each word carrying a value.
pub struct Words {
    automaton: Option<CharwiseDoubleArrayAhoCorasick<u32>>,
    len: usize,
}

/// One word found: its character span in the folded text and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub start: usize,
    pub end: usize,
    pub value: u32,
}

impl Words {
    /// Compiles `words` (already folded: lower case, simplified), naming the list in errors.
    pub fn new<'a>(
        what: &str,
        words: impl IntoIterator<Item = (&'a str, u32)>,
    ) -> Result<Words, BuildError> {
        let mut seen = std::collections::HashSet::new();
        let patterns: Vec<(&str, u32)> = words
            .into_iter()
            .filter(|(word, _)| !word.is_empty() && seen.insert(*word))
            .collect();
        let len = patterns.len();
        if patterns.is_empty() {
            return Ok(Words {
                automaton: None,
                len,
            });
        }
        let automaton = CharwiseDoubleArrayAhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build_with_values(patterns)
            .map_err(|err| BuildError {
                what: what.to_owned(),
                reason: err.to_string(),
            })?;
        Ok(Words {
            automaton: Some(automaton),
            len,
        })
    }

    /// Every word in `folded` between characters `from..to`, left to right.
    pub fn find_in(&self, folded: &Folded, from: usize, to: usize, out: &mut Vec<Hit>) {
        let Some(automaton) = &self.automaton else {
            return;
        };
        let base = folded.offsets[from.min(folded.chars.len())];
        for m in automaton.leftmost_find_iter(folded.slice(from, to)) {
            out.push(Hit {
                start: folded.char_at(base + m.start()),
                end: folded.char_at(base + m.end()),
                value: m.value(),
            });
        }
    }

    /// Every word in the whole of `folded`.
    pub fn find(&self, folded: &Folded, out: &mut Vec<Hit>) {
        self.find_in(folded, 0, folded.chars.len(), out);
    }
}

impl std::fmt::Debug for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Words").field("words", &self.len).finish()
    }
}

/// The original characters `start..end` of `text`, for a finding's `text`.
pub fn original_slice(text: &str, start: usize, end: usize) -> String {
    text.chars()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_keeps_one_character_per_character() {
        let mut folded = Folded::default();
        folded.fold("ＱＱ 頂級 ①③");
        assert_eq!(folded.text(), "qq 顶级 ①③");
        assert_eq!(folded.chars().len(), "ＱＱ 頂級 ①③".chars().count());
        assert_eq!(folded.char_at("qq 顶".len()), 4);
        assert_eq!(folded.slice(3, 5), "顶级");
        assert_eq!(original_slice("ＱＱ 頂級", 3, 5), "頂級");
    }
}
