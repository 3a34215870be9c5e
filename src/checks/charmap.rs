//! Everything the title and description pass needs to know of a character, for one rule set,
//! in one lookup: its folded form, its normal form, and the codes the word lists' automaton
//! and the term automaton read it by ([`super::patterns`]).
//!
//! That pass runs over every character of every listing, and on a CJK text each separate
//! table it reads (the normaliser's, each automaton's own character table) costs a cache miss
//! per character more often than not; one table of eight bytes a character costs one.

use rustc_hash::FxHashMap;

use crate::normalize::{char_table, NORMAL_IS_FOLDED};

use super::patterns::{Patterns, NO_CODE};

/// One character's entry ([`CharMap::get`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CharInfo {
    /// Full-width to half-width, lower case, traditional to simplified.
    pub folded: char,
    /// [`NORMAL_IS_FOLDED`] where the normal form is `folded`, else a code for
    /// [`crate::normalize::Normalized::push_normal`].
    pub normal: u32,
    /// The code of `folded` in the word lists' automaton.
    pub word: u32,
    /// The code of the normal form in the term automaton, where that is `folded`.
    pub term: u32,
}

/// The Basic Multilingual Plane's entries, and how to compute the others.
pub(crate) struct CharMap {
    /// Bits 0–20 the folded character, 21–31 the normal form's code, 32–47 the word code,
    /// 48–63 the term code.
    bmp: Box<[u64]>,
    /// The term codes of the ASCII digits, which a number's normal form is written in.
    digits: [u32; 10],
    /// The codes of the patterns' characters outside the Basic Multilingual Plane.
    astral_words: FxHashMap<char, u32>,
    astral_terms: FxHashMap<char, u32>,
}

impl CharMap {
    /// The table for automata `words` (read over folded text) and `terms` (over normalised
    /// text), whose codes fit 16 bits ([`Patterns`] makes sure of it).
    pub(crate) fn new<W: Copy, T: Copy>(words: &Patterns<W>, terms: &Patterns<T>) -> CharMap {
        let table = char_table();
        let bmp = (0..0x10000u32)
            .map(|code| {
                // Surrogates are no chars; they never occur in a str either.
                let Some(c) = char::from_u32(code) else {
                    return 0;
                };
                let info = info(table.get(c), |c| words.code(c), |c| terms.code(c));
                u64::from(info.folded)
                    | u64::from(info.normal) << 21
                    | u64::from(info.word) << 32
                    | u64::from(info.term) << 48
            })
            .collect();
        let digits = std::array::from_fn(|d| terms.code(char::from(b'0' + d as u8)));
        let astral = |alphabet: Vec<(char, u32)>| {
            alphabet
                .into_iter()
                .filter(|&(c, _)| c as u32 >= 0x10000)
                .collect()
        };
        CharMap {
            bmp,
            digits,
            astral_words: astral(words.alphabet()),
            astral_terms: astral(terms.alphabet()),
        }
    }

    /// What the pass needs of `c`. Outside the Basic Multilingual Plane (rare: emoji, rare
    /// CJK) it is computed, which [`Patterns::code`] makes slower but no different.
    #[inline(always)]
    pub(crate) fn get(&self, c: char) -> CharInfo {
        match self.bmp.get(c as usize) {
            Some(&entry) => CharInfo {
                // Made from chars in `new`.
                folded: char::from_u32((entry & 0x1F_FFFF) as u32).unwrap_or(c),
                normal: (entry >> 21) as u32 & 0x7FF,
                word: (entry >> 32) as u32 & 0xFFFF,
                term: (entry >> 48) as u32,
            },
            // The folded character may be in the plane the table holds: 𝟏 folds to 1.
            None => info(
                char_table().get(c),
                |f| match self.bmp.get(f as usize) {
                    Some(&entry) => (entry >> 32) as u32 & 0xFFFF,
                    None => self.astral_words.get(&f).copied().unwrap_or(NO_CODE),
                },
                |f| match self.bmp.get(f as usize) {
                    Some(&entry) => (entry >> 48) as u32,
                    None => self.astral_terms.get(&f).copied().unwrap_or(NO_CODE),
                },
            ),
        }
    }

    /// The term code of the ASCII digit `digit` (`'0'..='9'`).
    #[inline(always)]
    pub(crate) fn digit(&self, digit: char) -> u32 {
        self.digits[(digit as usize).wrapping_sub('0' as usize) % 10]
    }
}

impl std::fmt::Debug for CharMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CharMap").finish_non_exhaustive()
    }
}

fn info(
    (folded, normal): (char, u32),
    word: impl Fn(char) -> u32,
    term: impl Fn(char) -> u32,
) -> CharInfo {
    CharInfo {
        folded,
        normal,
        word: word(folded),
        term: if normal == NORMAL_IS_FOLDED {
            term(folded)
        } else {
            NO_CODE
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::patterns::PatternsBuilder;

    fn patterns(words: &[&str]) -> Patterns<u32> {
        let mut builder = PatternsBuilder::default();
        for word in words {
            builder.add(word, 0, 0);
        }
        builder.build("test patterns").unwrap()
    }

    #[test]
    fn an_entry_holds_what_computing_it_gives_for_every_character() {
        let words = patterns(&["纯棉", "qq", "+v", "🧵线"]);
        let terms = patterns(&["最好", "1等", "顶级", "%", "𠀀"]);
        let map = CharMap::new(&words, &terms);
        let samples = [
            'a',
            'Q',
            'Ｑ',
            '+',
            '＋',
            ' ',
            '%',
            '1',
            '１',
            '一',
            '①',
            '⑫',
            '棉',
            '純',
            '纯',
            '頂',
            '顶',
            '最',
            '好',
            '，',
            '。',
            '🧵',
            '\u{20000}',
        ];
        for c in samples
            .into_iter()
            .chain((0..0x3000).filter_map(char::from_u32))
        {
            let computed = info(char_table().get(c), |c| words.code(c), |c| terms.code(c));
            assert_eq!(map.get(c), computed, "{c:?}");
        }
        let q = map.get('Ｑ');
        assert_eq!((q.folded, q.word), ('q', words.code('q')));
        assert_ne!(q.word, NO_CODE);
        let top = map.get('頂');
        assert_eq!((top.folded, top.term), ('顶', terms.code('顶')));
        assert_ne!(top.term, NO_CODE);
        // A digit in another form has a number for its normal form, read through `digit`.
        let one = map.get('一');
        assert_ne!(one.normal, NORMAL_IS_FOLDED);
        assert_eq!(one.term, NO_CODE);
        assert_eq!(map.digit('1'), terms.code('1'));
        assert_eq!(map.digit('7'), NO_CODE);
        assert_eq!(map.get('棉').term, NO_CODE);
        // Outside the Basic Multilingual Plane too.
        assert_ne!(map.get('🧵').word, NO_CODE);
        assert_ne!(map.get('\u{20000}').term, NO_CODE);
    }
}
