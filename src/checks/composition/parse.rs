//! Composition text to fibres with shares: 100%棉, 全棉, 65%涤纶35%棉, T/C 65/35, CVC 60/40,
//! T65/C35, 涤65/棉35, 涤棉, 棉麻, 95%cotton 5%spandex, 天丝 (lyocell) …
//!
//! Two steps over the folded text. A lexer reads fibre names and trade shorthand (one
//! automaton over the names of `fibres.tsv` and `composition.toml`, leftmost-longest, so that
//! 仿真丝 shadows 真丝), numbers with or without `%`, trade codes (T, C, SP …) standing alone,
//! and the slashes and separators between them; a number followed by a unit letter (40s, 190T,
//! 150D) is a specification, not a share. Then claims are read off the tokens: ratio forms
//! (names / names then numbers / numbers, or the other way round), code-number pairs, runs of
//! share-and-fibre pairs in either order, shorthand, and 纯 / 全 + fibre.
//!
//! In free text a share needs its `%`, and a bare fibre name is no claim in a description. In
//! a title it is a weak one: 涤纶塔夫绸 says the taffeta holds polyester, not that it is all
//! polyester, so it can contradict only a 成分 that leaves polyester out (names of one
//! character, and names read as a colour or a look, are left out: see `composition.toml`). In
//! the 成分 attribute everything is about composition, so bare names and bare numbers count.

use rustc_hash::FxHashMap;

use crate::checks::folded::{Folded, Hit, Lexicon, LexiconBuilder, Words};
use crate::rules::CompositionRules;

const FIBRE: u32 = 0;
const BLEND: u32 = 1 << 24;
const HAND_FEEL: u32 = 2 << 24;
const KIND_MASK: u32 = 0xFF << 24;

/// One fibre of a claim with its share in percent, where the text gives one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Part {
    pub fibre: usize,
    pub share: Option<f64>,
    /// Claimed by 纯 / 全 (or shorthand such as 全涤): the fibre is all of it.
    pub pure: bool,
}

/// One composition claim: where it is (characters of the field) and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub start: usize,
    pub end: usize,
    pub parts: Vec<Part>,
    /// The fibre a shorthand says is the larger share (涤棉: polyester).
    pub major: Option<usize>,
    /// The claim names every fibre (a blend, a pure fibre, shares adding up to 100 %).
    pub complete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Num {
        value: f64,
        percent: bool,
    },
    /// `named`: a bare name the title's product name makes a claim of (see [`Mode::Title`]).
    Fibre {
        fibre: usize,
        pure: bool,
        named: bool,
    },
    Blend(usize),
    Code(usize),
    Slash,
    Sep,
    Break,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

/// Buffers the parser reuses from one text to the next.
#[derive(Debug, Default)]
pub struct LexBuffers {
    hits: Vec<Hit>,
    tokens: Vec<Token>,
}

/// Whether the text is an attribute (everything is composition), a title or free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Attribute,
    /// Free text, where a bare fibre name of the product name also claims the fibre is in
    /// it (亚麻面料), within the limits `composition.toml` sets.
    Title,
    FreeText,
}

/// The fibre and shorthand names, compiled.
#[derive(Debug)]
pub struct CompositionParser {
    words: Words,
    // A fixed map from the rules, only looked up: a fast hash without flooding resistance.
    codes: FxHashMap<String, usize>,
    pure_prefixes: Vec<char>,
    named_min_chars: usize,
    named_not_after: Vec<Vec<char>>,
    named_not_before: Vec<Vec<char>>,
}

impl CompositionParser {
    pub fn new(rules: &CompositionRules, lexicon: &mut LexiconBuilder) -> CompositionParser {
        // Both shadow the fibre names inside them, leftmost-longest.
        let hand_feel = rules
            .hand_feel
            .iter()
            .chain(&rules.not_fibres)
            .map(|w| (w.as_str(), HAND_FEEL));
        let blends = rules
            .blends
            .iter()
            .enumerate()
            .flat_map(|(i, b)| b.names.iter().map(move |n| (n.as_str(), BLEND | i as u32)));
        let names = rules
            .names
            .iter()
            .map(|(n, f)| (n.as_str(), FIBRE | *f as u32));
        CompositionParser {
            words: lexicon.list(hand_feel.chain(blends).chain(names)),
            codes: rules.codes.iter().cloned().collect(),
            pure_prefixes: rules.pure_prefixes.clone(),
            named_min_chars: rules.named_min_chars,
            named_not_after: rules
                .named_not_after
                .iter()
                .map(|w| w.chars().collect())
                .collect(),
            named_not_before: rules
                .named_not_before
                .iter()
                .map(|w| w.chars().collect())
                .collect(),
        }
    }

    /// Every claim in `text`, in order.
    /// `text` is folded with the lexicon the parser was built into.
    pub fn claims(
        &self,
        lexicon: &Lexicon,
        rules: &CompositionRules,
        text: &Folded,
        mode: Mode,
        buffers: &mut LexBuffers,
    ) -> Vec<Claim> {
        buffers.hits.clear();
        self.words.find(lexicon, text, &mut buffers.hits);
        // Every claim names a fibre, a blend or a fibre code: most descriptions name none, and
        // need no lexing at all.
        if !self.names_a_fibre(text, &buffers.hits) {
            return Vec::new();
        }
        self.lex(text, &buffers.hits, mode, &mut buffers.tokens);
        read_claims(rules, &buffers.tokens, mode)
    }

    /// Whether `text` holds a fibre or blend word (among `hits`) or a Latin fibre code.
    fn names_a_fibre(&self, text: &Folded, hits: &[Hit]) -> bool {
        if hits
            .iter()
            .any(|h| matches!(h.value & KIND_MASK, FIBRE | BLEND))
        {
            return true;
        }
        let chars = text.chars();
        let mut p = 0;
        while p < chars.len() {
            if !chars[p].is_ascii_alphabetic() {
                p += 1;
                continue;
            }
            let start = p;
            while p < chars.len() && chars[p].is_ascii_alphabetic() {
                p += 1;
            }
            if self.code(&chars[start..p]).is_some() {
                return true;
            }
        }
        false
    }

    /// The fibre a run of ASCII letters is the trade code of.
    fn code(&self, letters: &[char]) -> Option<usize> {
        let mut buf = [0u8; TOKEN_BYTES];
        self.codes.get(ascii(letters, &mut buf)?).copied()
    }

    /// Whether the bare fibre name at `start..end` of a title claims the fibre.
    fn named(&self, chars: &[char], start: usize, end: usize) -> bool {
        // A Latin name counts as a word of its own only: linen_2024 is a WeChat id.
        let word = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
        let latin_inside = chars[start].is_ascii_alphabetic()
            && ((start > 0 && word(&chars[start - 1])) || chars.get(end).is_some_and(word));
        !latin_inside
            && end - start >= self.named_min_chars
            && !self
                .named_not_after
                .iter()
                .any(|w| chars[..start].ends_with(w))
            && !self
                .named_not_before
                .iter()
                .any(|w| chars[end..].starts_with(w))
    }

    fn lex(&self, text: &Folded, hits: &[Hit], mode: Mode, tokens: &mut Vec<Token>) {
        let chars = text.chars();
        tokens.clear();
        let push = |tokens: &mut Vec<Token>, tok: Tok, start: usize, end: usize| {
            // Runs of separators or of unknown text are one token each.
            if let Some(last) = tokens.last_mut() {
                if last.tok == tok && matches!(tok, Tok::Sep | Tok::Break) {
                    last.end = end;
                    return;
                }
            }
            tokens.push(Token { tok, start, end });
        };
        let mut next_hit = 0;
        let mut p = 0;
        while p < chars.len() {
            while next_hit < hits.len() && hits[next_hit].start < p {
                next_hit += 1;
            }
            if let Some(hit) = hits.get(next_hit).filter(|h| h.start == p) {
                let tok = if !latin_bounded(chars, hit.start, hit.end) {
                    Tok::Break
                } else {
                    match hit.value & KIND_MASK {
                        FIBRE => {
                            let first = chars[hit.start];
                            let before = hit.start.checked_sub(1).map(|b| chars[b]);
                            let pure = self.pure_prefixes.contains(&first)
                                || before.is_some_and(|b| self.pure_prefixes.contains(&b));
                            Tok::Fibre {
                                fibre: (hit.value & !KIND_MASK) as usize,
                                pure,
                                named: mode == Mode::Title
                                    && !pure
                                    && self.named(chars, hit.start, hit.end),
                            }
                        }
                        BLEND => Tok::Blend((hit.value & !KIND_MASK) as usize),
                        _ => Tok::Break,
                    }
                };
                push(tokens, tok, hit.start, hit.end);
                p = hit.end;
                continue;
            }
            let c = chars[p];
            if c.is_ascii_digit() {
                let start = p;
                while p < chars.len()
                    && (chars[p].is_ascii_digit()
                        || (chars[p] == '.' && chars.get(p + 1).is_some_and(char::is_ascii_digit)))
                {
                    p += 1;
                }
                let value = number_of(&chars[start..p]);
                let percent = chars.get(p) == Some(&'%');
                if percent {
                    p += 1;
                }
                let unit_follows =
                    !percent && chars.get(p).is_some_and(|c| c.is_ascii_alphabetic());
                let tok = if unit_follows || !value.is_finite() {
                    Tok::Break
                } else {
                    Tok::Num { value, percent }
                };
                push(tokens, tok, start, p);
            } else if c.is_ascii_alphabetic() {
                let start = p;
                while p < chars.len() && chars[p].is_ascii_alphabetic() {
                    p += 1;
                }
                let tok = match self.code(&chars[start..p]) {
                    Some(fibre) => Tok::Code(fibre),
                    None => Tok::Break,
                };
                push(tokens, tok, start, p);
            } else {
                let tok = match c {
                    '/' => Tok::Slash,
                    ' ' | '+' | ',' | '、' | ':' | ';' | '(' | ')' | '×' | '*' | '-' | '·'
                    | '\t' | '&' => Tok::Sep,
                    _ => Tok::Break,
                };
                push(tokens, tok, p, p + 1);
                p += 1;
            }
        }
    }
}

/// Longest ASCII token read without allocating: longer letter runs are no trade code, and
/// longer numbers are read through a string.
const TOKEN_BYTES: usize = 64;

/// `chars`, all ASCII, as a string in `buf`; `None` when they do not fit.
fn ascii<'b>(chars: &[char], buf: &'b mut [u8; TOKEN_BYTES]) -> Option<&'b str> {
    let bytes = buf.get_mut(..chars.len())?;
    for (b, &c) in bytes.iter_mut().zip(chars) {
        *b = u8::try_from(c).ok().filter(u8::is_ascii)?;
    }
    std::str::from_utf8(bytes).ok()
}

/// The value of a run of digits with at most one decimal point, NaN where it reads as none.
fn number_of(chars: &[char]) -> f64 {
    let mut buf = [0u8; TOKEN_BYTES];
    let parsed = match ascii(chars, &mut buf) {
        Some(text) => text.parse(),
        None => chars.iter().collect::<String>().parse(),
    };
    parsed.unwrap_or(f64::NAN)
}

/// A Latin name (cotton, t/c) must not sit inside a longer Latin word.
fn latin_bounded(chars: &[char], start: usize, end: usize) -> bool {
    let latin = |c: char| c.is_ascii_alphabetic();
    let before = start == 0 || !(latin(chars[start]) && latin(chars[start - 1]));
    let after = end >= chars.len() || !(latin(chars[end - 1]) && latin(chars[end]));
    before && after
}

/// Reads claims off the tokens, left to right, each token used once.
fn read_claims(rules: &CompositionRules, tokens: &[Token], mode: Mode) -> Vec<Claim> {
    let mut claims = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Some((claim, next)) = ratio(rules, tokens, i)
            .or_else(|| code_pairs(tokens, i))
            .or_else(|| share_pairs(tokens, i, mode))
            .or_else(|| single(rules, tokens, i, mode))
        {
            claims.push(claim);
            i = next;
        } else {
            i += 1;
        }
    }
    claims
}

/// The index of the next token that is not a separator, from `i` on.
fn skip_sep(tokens: &[Token], mut i: usize) -> usize {
    while i < tokens.len() && tokens[i].tok == Tok::Sep {
        i += 1;
    }
    i
}

/// `a / b / c` of one kind of token read by `item`, from `i`: the items and the index after.
/// Only a list of two or more is a list: a single item gives none (and no allocation, as
/// every fibre name and number of a text is tried as the start of one).
fn slash_list<T>(tokens: &[Token], i: usize, item: impl Fn(Tok) -> Option<T>) -> (Vec<T>, usize) {
    let is_item = |at: usize| tokens.get(at).and_then(|t| item(t.tok)).is_some();
    let mut at = i;
    let mut count = 0;
    while is_item(at) {
        count += 1;
        at += 1;
        if tokens.get(at).map(|t| t.tok) == Some(Tok::Slash) && is_item(at + 1) {
            at += 1;
        } else {
            break;
        }
    }
    if count < 2 {
        return (Vec::new(), at);
    }
    let items = (i..at)
        .step_by(2)
        .filter_map(|at| tokens.get(at).and_then(|t| item(t.tok)))
        .collect();
    (items, at)
}

fn number(tok: Tok) -> Option<f64> {
    match tok {
        Tok::Num { value, .. } => Some(value),
        _ => None,
    }
}

fn name(tok: Tok) -> Option<usize> {
    match tok {
        Tok::Fibre { fibre, .. } | Tok::Code(fibre) => Some(fibre),
        _ => None,
    }
}

/// The fibres a token group names: `涤/棉`, `t/c`, or one shorthand (涤棉, CVC).
fn names_at<'r>(
    rules: &'r CompositionRules,
    tokens: &[Token],
    i: usize,
) -> Option<(std::borrow::Cow<'r, [usize]>, Option<usize>, usize)> {
    if let Some(Tok::Blend(b)) = tokens.get(i).map(|t| t.tok) {
        let blend = &rules.blends[b];
        return Some((
            std::borrow::Cow::Borrowed(&blend.fibres),
            blend.major,
            i + 1,
        ));
    }
    let (names, next) = slash_list(tokens, i, name);
    (names.len() >= 2).then_some((std::borrow::Cow::Owned(names), None, next))
}

/// T/C 65/35, CVC 60/40, 涤/棉 65/35, 65/35 涤棉.
fn ratio(rules: &CompositionRules, tokens: &[Token], i: usize) -> Option<(Claim, usize)> {
    if let Some((fibres, major, after_names)) = names_at(rules, tokens, i) {
        let at = skip_sep(tokens, after_names);
        let (shares, next) = slash_list(tokens, at, number);
        if shares.len() == fibres.len() && shares.len() >= 2 {
            return Some((shared_claim(tokens, i, next, &fibres, &shares, major), next));
        }
    }
    let (shares, after_numbers) = slash_list(tokens, i, number);
    if shares.len() >= 2 {
        let at = skip_sep(tokens, after_numbers);
        if let Some((fibres, major, next)) = names_at(rules, tokens, at) {
            if fibres.len() == shares.len() {
                return Some((shared_claim(tokens, i, next, &fibres, &shares, major), next));
            }
        }
    }
    None
}

fn shared_claim(
    tokens: &[Token],
    from: usize,
    to: usize,
    fibres: &[usize],
    shares: &[f64],
    major: Option<usize>,
) -> Claim {
    Claim {
        start: tokens[from].start,
        end: tokens[to - 1].end,
        parts: fibres
            .iter()
            .zip(shares)
            .map(|(&fibre, &share)| Part {
                fibre,
                share: Some(share),
                pure: false,
            })
            .collect(),
        major,
        complete: true,
    }
}

/// T65/C35, T65C35: trade codes each followed by its share.
fn code_pairs(tokens: &[Token], i: usize) -> Option<(Claim, usize)> {
    let mut parts = Vec::new();
    let mut at = i;
    let mut end = i;
    while let (Some(Tok::Code(fibre)), Some(Tok::Num { value, .. })) = (
        tokens.get(at).map(|t| t.tok),
        tokens.get(at + 1).map(|t| t.tok),
    ) {
        parts.push(Part {
            fibre,
            share: Some(value),
            pure: false,
        });
        end = at + 2;
        at = if tokens.get(end).map(|t| t.tok) == Some(Tok::Slash) {
            end + 1
        } else {
            end
        };
    }
    (parts.len() >= 2).then(|| (claim_of(tokens, i, end, parts, None), end))
}

/// 65%涤纶 35%棉, 涤纶65% 棉35%, 95%cotton 5%spandex; in an attribute also 涤65/棉35.
fn share_pairs(tokens: &[Token], i: usize, mode: Mode) -> Option<(Claim, usize)> {
    let share = |tok: Tok| match tok {
        Tok::Num { value, percent } if percent || mode == Mode::Attribute => Some(value),
        _ => None,
    };
    let fibre = |tok: Tok| match tok {
        Tok::Fibre { fibre, pure, .. } => Some((fibre, pure)),
        _ => None,
    };
    let first = tokens.get(i)?.tok;
    let number_first = share(first).is_some();
    if !number_first && fibre(first).is_none() {
        return None;
    }
    let mut parts = Vec::new();
    let mut at = i;
    let mut end = i;
    loop {
        let a = tokens.get(at).map(|t| t.tok);
        let b_at = skip_sep(tokens, at + 1);
        let b = tokens.get(b_at).map(|t| t.tok);
        let pair = match (a, b, number_first) {
            (Some(a), Some(b), true) => share(a).zip(fibre(b)).map(|(s, (f, p))| (f, s, p)),
            (Some(a), Some(b), false) => fibre(a).zip(share(b)).map(|((f, p), s)| (f, s, p)),
            _ => None,
        };
        let Some((fibre_id, value, pure)) = pair else {
            break;
        };
        parts.push(Part {
            fibre: fibre_id,
            share: Some(value),
            pure,
        });
        end = b_at + 1;
        at = skip_sep(tokens, end);
        if tokens.get(at).map(|t| t.tok) == Some(Tok::Slash) {
            at = skip_sep(tokens, at + 1);
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some((claim_of(tokens, i, end, parts, None), end))
}

/// 涤棉, 全涤, 纯棉, 全棉; in an attribute also a bare fibre name or a list of them, and in a
/// title a bare fibre name the product name makes a claim of.
fn single(
    rules: &CompositionRules,
    tokens: &[Token],
    i: usize,
    mode: Mode,
) -> Option<(Claim, usize)> {
    match tokens[i].tok {
        Tok::Blend(b) => {
            let blend = &rules.blends[b];
            let pure = blend.fibres.len() == 1;
            let parts = blend
                .fibres
                .iter()
                .enumerate()
                .map(|(k, &fibre)| Part {
                    fibre,
                    share: blend
                        .shares
                        .as_ref()
                        .and_then(|s| s.get(k).copied())
                        .filter(|_| !pure),
                    pure,
                })
                .collect();
            Some((
                Claim {
                    start: tokens[i].start,
                    end: tokens[i].end,
                    parts,
                    major: blend.major,
                    complete: true,
                },
                i + 1,
            ))
        }
        Tok::Fibre {
            fibre, pure: true, ..
        } => {
            let parts = vec![Part {
                fibre,
                share: None,
                pure: true,
            }];
            Some((
                Claim {
                    start: tokens[i].start,
                    end: tokens[i].end,
                    parts,
                    major: None,
                    complete: true,
                },
                i + 1,
            ))
        }
        Tok::Fibre {
            fibre, named: true, ..
        } => Some((
            Claim {
                start: tokens[i].start,
                end: tokens[i].end,
                parts: vec![Part {
                    fibre,
                    share: None,
                    pure: false,
                }],
                major: None,
                complete: false,
            },
            i + 1,
        )),
        Tok::Fibre { .. } if mode == Mode::Attribute => {
            let mut parts = Vec::new();
            let mut at = i;
            let mut end = i;
            while let Some(Tok::Fibre { fibre, pure, .. }) = tokens.get(at).map(|t| t.tok) {
                parts.push(Part {
                    fibre,
                    share: None,
                    pure,
                });
                end = at + 1;
                at = skip_sep(tokens, end);
                if tokens.get(at).map(|t| t.tok) == Some(Tok::Slash) {
                    at += 1;
                }
            }
            Some((
                Claim {
                    start: tokens[i].start,
                    end: tokens[end - 1].end,
                    parts,
                    major: None,
                    complete: true,
                },
                end,
            ))
        }
        _ => None,
    }
}

fn claim_of(
    tokens: &[Token],
    from: usize,
    to: usize,
    parts: Vec<Part>,
    major: Option<usize>,
) -> Claim {
    let total: f64 = parts.iter().filter_map(|p| p.share).sum();
    let complete = parts.iter().all(|p| p.share.is_some()) && total >= 99.5;
    Claim {
        start: tokens[from].start,
        end: tokens[to - 1].end,
        parts,
        major,
        complete,
    }
}
