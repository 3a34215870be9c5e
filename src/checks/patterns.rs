//! Several pattern lists in one charwise double-array Aho-Corasick automaton (daachorse).
//!
//! A text is stepped through the automaton once however many lists there are; the automaton
//! reports every occurrence, overlaps included, and each list then reads its own patterns
//! from them leftmost-longest, as if it had an automaton of its own. The term packs
//! ([`super::terms`]) and the consistency checks' word lists ([`super::folded`]) are built on
//! this.
//!
//! The automaton does not read the patterns' characters as they are but a code for each
//! (1, 2, … in the order they first occur), fed by [`Stepper::consume`]: the automaton's own
//! character table then has as many entries as the patterns have distinct characters,
//! instead of one per code point up to the largest CJK one, and stays in the processor's
//! cache; a text character no pattern holds ([`NO_CODE`]) sends the automaton back to its
//! root without touching it at all. The hot path finds each character's code in one lookup
//! of a table built for the rule set ([`super::charmap::CharMap`]); [`Patterns::code`] is
//! the way for everything else.

use std::collections::HashMap;

use daachorse::charwise::iter::FindOverlappingStepper;
use daachorse::{CharwiseDoubleArrayAhoCorasick, CharwiseDoubleArrayAhoCorasickBuilder, MatchKind};
use rustc_hash::FxHashMap;

use super::BuildError;

/// The code of a character that no pattern holds.
pub const NO_CODE: u32 = 0;

/// Codes fit the 16 bits [`super::charmap::CharMap`] keeps for each.
const MAX_CODE: u32 = u16::MAX as u32;

/// Collects `(pattern, list, entry)` triples for [`Patterns`].
pub struct PatternsBuilder<E> {
    patterns: Vec<String>,
    index: HashMap<String, usize>,
    entries: Vec<Vec<(u32, E)>>,
}

impl<E> Default for PatternsBuilder<E> {
    fn default() -> Self {
        PatternsBuilder {
            patterns: Vec::new(),
            index: HashMap::new(),
            entries: Vec::new(),
        }
    }
}

impl<E: Copy> PatternsBuilder<E> {
    /// Adds `pattern` to `list` with `entry`; `false` when the pattern is empty or the list
    /// has it already (the first entry counts).
    pub fn add(&mut self, pattern: &str, list: u32, entry: E) -> bool {
        if pattern.is_empty() {
            return false;
        }
        let p = match self.index.get(pattern) {
            Some(&p) => p,
            None => {
                self.patterns.push(pattern.to_owned());
                self.entries.push(Vec::new());
                self.index
                    .insert(pattern.to_owned(), self.patterns.len() - 1);
                self.patterns.len() - 1
            }
        };
        let entries = &mut self.entries[p];
        if entries.iter().any(|&(l, _)| l == list) {
            return false;
        }
        entries.push((list, entry));
        true
    }

    /// Compiles the automaton; `what` names it in errors.
    pub fn build(self, what: &str) -> Result<Patterns<E>, BuildError> {
        let error = |reason: String| BuildError {
            what: what.to_owned(),
            reason,
        };
        let mut alphabet = FxHashMap::default();
        let mut coded = Vec::with_capacity(self.patterns.len());
        for pattern in &self.patterns {
            let mut codes = String::with_capacity(pattern.len());
            for c in pattern.chars() {
                let next = alphabet.len() as u32 + 1;
                let code = *alphabet.entry(c).or_insert(next);
                if code > MAX_CODE {
                    return Err(error(format!(
                        "the patterns hold more than {MAX_CODE} distinct characters"
                    )));
                }
                // Codes stay below the surrogates, so every one is a char.
                codes.push(char::from_u32(code).ok_or_else(|| error(format!("code {code}")))?);
            }
            coded.push(codes);
        }
        let lengths = self
            .patterns
            .iter()
            .map(|p| p.chars().count() as u32)
            .collect();
        let bytes = self.patterns.iter().map(|p| p.len() as u32).collect();
        let mut first = Vec::with_capacity(self.entries.len() + 1);
        let mut entries = Vec::new();
        for pattern_entries in &self.entries {
            first.push(entries.len() as u32);
            entries.extend_from_slice(pattern_entries);
        }
        first.push(entries.len() as u32);
        let automaton = if coded.is_empty() {
            None
        } else {
            let with_values = coded
                .iter()
                .enumerate()
                .map(|(i, p)| (p.as_str(), i as u32));
            Some(
                CharwiseDoubleArrayAhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    .build_with_values(with_values)
                    .map_err(|err| error(err.to_string()))?,
            )
        };
        Ok(Patterns {
            automaton,
            alphabet,
            lengths,
            bytes,
            first,
            entries,
        })
    }
}

/// The compiled lists.
pub struct Patterns<E> {
    automaton: Option<CharwiseDoubleArrayAhoCorasick<u32>>,
    /// The code the automaton reads for each character of the patterns.
    alphabet: FxHashMap<char, u32>,
    /// Length in characters of each pattern.
    lengths: Vec<u32>,
    /// Length in bytes of each pattern.
    bytes: Vec<u32>,
    /// The (list, entry) pairs of pattern `p` are `entries[first[p]..first[p + 1]]`.
    first: Vec<u32>,
    entries: Vec<(u32, E)>,
}

/// The automaton stepped one character code at a time.
pub struct Stepper<'a> {
    automaton: &'a CharwiseDoubleArrayAhoCorasick<u32>,
    inner: FindOverlappingStepper<'a, u32>,
}

impl Stepper<'_> {
    /// Feeds the next character, by its code ([`Patterns::code`]); true when patterns may end
    /// there ([`Stepper::matches`]).
    #[inline(always)]
    pub fn consume(&mut self, code: u32) -> bool {
        match char::from_u32(code) {
            Some(c) if code != NO_CODE => {
                self.inner.consume(c);
                true
            }
            // No pattern holds the character: every pattern that was under way ends here.
            _ => {
                self.inner = self.automaton.find_overlapping_stepper();
                false
            }
        }
    }

    /// The patterns that end with the character fed last.
    #[inline(always)]
    pub fn matches(&self) -> impl Iterator<Item = u32> + '_ {
        self.inner.matches().map(|m| m.value())
    }
}

impl<E: Copy> Patterns<E> {
    /// A stepper through the automaton, `None` when there are no patterns at all.
    pub fn stepper(&self) -> Option<Stepper<'_>> {
        self.automaton.as_ref().map(|automaton| Stepper {
            automaton,
            inner: automaton.find_overlapping_stepper(),
        })
    }

    /// The code [`Stepper::consume`] takes for `c`: [`NO_CODE`] when no pattern holds it.
    pub fn code(&self, c: char) -> u32 {
        self.alphabet.get(&c).copied().unwrap_or(NO_CODE)
    }

    /// Every character of the patterns with its code.
    pub fn alphabet(&self) -> Vec<(char, u32)> {
        self.alphabet.iter().map(|(&c, &code)| (c, code)).collect()
    }

    /// What `list` holds for `pattern`, if the pattern is one of its.
    pub fn entry(&self, pattern: u32, list: u32) -> Option<E> {
        let p = pattern as usize;
        let range = self.first[p] as usize..self.first[p + 1] as usize;
        self.entries[range]
            .iter()
            .find(|&&(l, _)| l == list)
            .map(|&(_, entry)| entry)
    }

    /// Length of `pattern` in characters.
    pub fn chars(&self, pattern: u32) -> u32 {
        self.lengths[pattern as usize]
    }

    /// Length of `pattern` in bytes.
    pub fn bytes(&self, pattern: u32) -> u32 {
        self.bytes[pattern as usize]
    }

    /// Number of distinct patterns over all lists.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }
}
