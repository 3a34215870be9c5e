//! Several pattern lists in one charwise double-array Aho-Corasick automaton (daachorse).
//!
//! A text is stepped through the automaton once however many lists there are; the automaton
//! reports every occurrence, overlaps included, and each list then reads its own patterns
//! from them leftmost-longest, as if it had an automaton of its own. The term packs
//! ([`super::terms`]) and the consistency checks' word lists ([`super::folded`]) are built on
//! this.

use std::collections::HashMap;

use daachorse::charwise::iter::FindOverlappingStepper;
use daachorse::{CharwiseDoubleArrayAhoCorasick, CharwiseDoubleArrayAhoCorasickBuilder, MatchKind};

use super::BuildError;

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
        let lengths = self
            .patterns
            .iter()
            .map(|p| p.chars().count() as u32)
            .collect();
        let mut first = Vec::with_capacity(self.entries.len() + 1);
        let mut entries = Vec::new();
        for pattern_entries in &self.entries {
            first.push(entries.len() as u32);
            entries.extend_from_slice(pattern_entries);
        }
        first.push(entries.len() as u32);
        let automaton = if self.patterns.is_empty() {
            None
        } else {
            let with_values = self
                .patterns
                .iter()
                .enumerate()
                .map(|(i, p)| (p.as_str(), i as u32));
            Some(
                CharwiseDoubleArrayAhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    .build_with_values(with_values)
                    .map_err(|err| BuildError {
                        what: what.to_owned(),
                        reason: err.to_string(),
                    })?,
            )
        };
        Ok(Patterns {
            automaton,
            lengths,
            first,
            entries,
        })
    }
}

/// The compiled lists.
pub struct Patterns<E> {
    automaton: Option<CharwiseDoubleArrayAhoCorasick<u32>>,
    /// Length in characters of each pattern.
    lengths: Vec<u32>,
    /// The (list, entry) pairs of pattern `p` are `entries[first[p]..first[p + 1]]`.
    first: Vec<u32>,
    entries: Vec<(u32, E)>,
}

impl<E: Copy> Patterns<E> {
    /// A stepper through the automaton, `None` when there are no patterns at all.
    pub fn stepper(&self) -> Option<FindOverlappingStepper<'_, u32>> {
        self.automaton
            .as_ref()
            .map(|a| a.find_overlapping_stepper())
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

    /// Number of distinct patterns over all lists.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }
}
