//! Text normalisation in front of the term matchers.
//!
//! Sellers dodge word lists with full-width forms (ＴＯＰ１), case, traditional characters
//! (頂級), other digit forms (第壹, 第①) and symbols or spaces between the characters of a word
//! (最*好, 秒 杀, 高-仿). Rule terms and listing text pass through the same [`Normalizer`], so a
//! term matches every one of those spellings. Normalisation keeps a map from each byte of the
//! normalised text back to the character it came from, so that a finding's span points into
//! the text the seller wrote.
//!
//! Normalising one character:
//! 1. traditional → simplified, one character at a time (the table comes from OpenCC's
//!    character dictionary; phrase-level conversion would break the offset map);
//! 2. full-width → half-width, ASCII upper → lower case, and look-alikes that Unicode
//!    decomposes to one character (Kangxi radicals such as ⾼, compatibility ideographs,
//!    mathematical letters and digits such as 𝟏) → that character;
//! 3. Chinese, financial and enclosed digits, and the decimal digits of every script
//!    (١, ๑ …) → ASCII digits (⑫ becomes "12");
//! 4. anything that is not a letter, a digit, a CJK character or `%` is dropped, and so are
//!    the letters Unicode means to be invisible (the Hangul fillers).

use std::sync::OnceLock;

/// A normalised field: the text the automata run over. The way back to the original is found
/// only for the rare match that needs it ([`Normalized::locate`]), so that the hot path does
/// nothing but build this one string.
#[derive(Debug, Default, Clone)]
pub struct Normalized {
    text: String,
}

/// Where a match in the normalised text lies in the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// Character offsets into the original text, end exclusive.
    pub start: usize,
    pub end: usize,
    /// Byte offsets of the same range.
    pub byte_start: usize,
    pub byte_end: usize,
    /// The normalised form of the original characters right before and after the range, where
    /// they normalise to a letter or digit the seller wrote as such (not 一 or ①).
    pub before: Option<char>,
    pub after: Option<char>,
}

impl Normalized {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Empties the text, for [`Normalized::push_normal`].
    pub(crate) fn clear(&mut self, capacity: usize) {
        self.text.clear();
        self.text.reserve(capacity);
    }

    /// Appends a character that is its own normal form.
    #[inline(always)]
    pub(crate) fn push(&mut self, c: char) {
        self.text.push(c);
    }

    /// Appends the normal form of a character from its code ([`CharTable::get`]) when it is not
    /// the folded character, what [`Normalizer::normalize_into`] does for such a character,
    /// for a caller that walks the characters anyway; `pushed` sees every character appended,
    /// with the length of the text once it is.
    #[inline]
    pub(crate) fn push_normal(&mut self, code: u32, mut pushed: impl FnMut(char, usize)) {
        if code & 3 != NORMAL_NUMBER {
            return;
        }
        let value = (code >> 2) as u8;
        let tens = (value >= 10).then(|| char::from(b'0' + value / 10));
        for digit in tens.into_iter().chain([char::from(b'0' + value % 10)]) {
            self.text.push(digit);
            pushed(digit, self.text.len());
        }
    }

    /// Length of the text in bytes.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    /// Maps `text[byte_start..byte_end]` (a non-empty match inside the normalised text of
    /// `original`) back to `original` by normalising it again up to the end of the match.
    pub fn locate(&self, original: &str, byte_start: usize, byte_end: usize) -> Located {
        self.locate_from(&mut LocateCursor::default(), original, byte_start, byte_end)
    }

    /// [`Normalized::locate`] for matches taken in order: the scan starts where the
    /// `cursor`'s last one stopped, when the new match starts after that, so that locating
    /// every match of a text reads it once, not once a match (a description of 300,000
    /// banned words took minutes).
    pub fn locate_from(
        &self,
        cursor: &mut LocateCursor,
        original: &str,
        byte_start: usize,
        byte_end: usize,
    ) -> Located {
        if cursor.emitted > byte_start {
            *cursor = LocateCursor::default();
        }
        let mut located = Located {
            start: 0,
            end: 0,
            byte_start: 0,
            byte_end: original.len(),
            before: None,
            after: None,
        };
        let LocateCursor {
            mut index,
            mut emitted,
            mut previous,
            ..
        } = *cursor;
        let mut found_start = false;
        for (offset, c) in original[cursor.byte..].char_indices() {
            let byte = cursor.byte + offset;
            let normal = normalize_char(c);
            if found_start && emitted >= byte_end {
                located.after = normal.latin();
                *cursor = LocateCursor {
                    index,
                    byte,
                    emitted,
                    previous,
                };
                return located;
            }
            let width = normal.width();
            if !found_start && width > 0 && emitted + width > byte_start {
                found_start = true;
                located.start = index;
                located.byte_start = byte;
                located.before = previous;
            }
            emitted += width;
            if found_start && width > 0 && emitted >= byte_end && located.end == 0 {
                located.end = index + 1;
                located.byte_end = byte + c.len_utf8();
            }
            previous = normal.latin();
            index += 1;
        }
        *cursor = LocateCursor {
            index,
            byte: original.len(),
            emitted,
            previous,
        };
        located
    }
}

/// Where [`Normalized::locate_from`] stopped reading an original: the next character's
/// index and byte offset, the normalised bytes before it, and the Latin letter or digit
/// just before it, if any.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocateCursor {
    index: usize,
    byte: usize,
    emitted: usize,
    previous: Option<char>,
}

/// Normalises text; cheap to share, holds only the static tables.
#[derive(Debug, Clone, Copy, Default)]
pub struct Normalizer;

impl Normalizer {
    /// Normalises `original` into `out`, reusing its buffer.
    ///
    /// This runs over every byte of every listing, so it walks bytes rather than chars: ASCII
    /// is handled inline, two- and three-byte characters are decoded by hand and looked up in
    /// the table, and a character that normalises to itself is pushed as it is.
    pub fn normalize_into(&self, original: &str, out: &mut Normalized) {
        out.text.clear();
        out.text.reserve(original.len());
        let table = bmp_table();
        let bytes = original.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b0 = bytes[i];
            if b0 < 0x80 {
                match b0 {
                    b'a'..=b'z' | b'0'..=b'9' | b'%' => out.text.push(b0 as char),
                    b'A'..=b'Z' => out.text.push(b0.to_ascii_lowercase() as char),
                    _ => {}
                }
                i += 1;
                continue;
            }
            // `original` is valid UTF-8, so the lead byte says how long the character is and
            // its continuation bytes are there.
            let (code, len) = match b0 {
                0xC0..=0xDF => (
                    (u32::from(b0 & 0x1F) << 6) | u32::from(bytes[i + 1] & 0x3F),
                    2,
                ),
                0xE0..=0xEF => (
                    (u32::from(b0 & 0x0F) << 12)
                        | (u32::from(bytes[i + 1] & 0x3F) << 6)
                        | u32::from(bytes[i + 2] & 0x3F),
                    3,
                ),
                _ => {
                    // Outside the Basic Multilingual Plane: rare enough to take the slow path.
                    let c = original[i..].chars().next().unwrap_or('\0');
                    push_normal(&mut out.text, normalize_slow(c));
                    i += c.len_utf8().max(1);
                    continue;
                }
            };
            let mapped = table[code as usize];
            if mapped == code {
                // Pushing the char encodes it inline; copying the three bytes would call memcpy.
                if let Some(c) = char::from_u32(code) {
                    out.text.push(c);
                }
            } else {
                push_normal(&mut out.text, decode_normal(mapped));
            }
            i += len;
        }
    }

    /// The normalised form of `text` on its own, for rule terms and tests.
    pub fn normalize(&self, text: &str) -> String {
        let mut out = Normalized::default();
        self.normalize_into(text, &mut out);
        out.text
    }
}

/// What one original character normalises to.
#[derive(Debug, Clone, Copy)]
enum Normal {
    Char(char),
    /// A digit or an enclosed number in another form than ASCII, 0–20.
    Number(u8),
    Dropped,
}

impl Normal {
    /// Bytes it adds to the normalised text.
    fn width(self) -> usize {
        match self {
            Normal::Char(c) => c.len_utf8(),
            Normal::Number(value) if value >= 10 => 2,
            Normal::Number(_) => 1,
            Normal::Dropped => 0,
        }
    }

    /// The character, if it is a Latin letter or digit the seller wrote as one.
    fn latin(self) -> Option<char> {
        match self {
            Normal::Char(c) if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        }
    }
}

/// All four steps for one character: ASCII inline, the rest of the Basic Multilingual Plane
/// (where nearly every character of a listing lives) by one lookup in a table computed once
/// by [`normalize_slow`], other planes by computing.
#[inline]
fn normalize_char(c: char) -> Normal {
    if c.is_ascii() {
        return match c {
            'a'..='z' | '0'..='9' | '%' => Normal::Char(c),
            'A'..='Z' => Normal::Char(c.to_ascii_lowercase()),
            _ => Normal::Dropped,
        };
    }
    match bmp_table().get(c as usize) {
        Some(&code) => decode_normal(code),
        None => normalize_slow(c),
    }
}

fn push_normal(text: &mut String, normal: Normal) {
    match normal {
        Normal::Char(n) => text.push(n),
        Normal::Number(value) => {
            if value >= 10 {
                text.push(char::from(b'0' + value / 10));
            }
            text.push(char::from(b'0' + value % 10));
        }
        Normal::Dropped => {}
    }
}

/// Table codes: a character, a number tagged with the top bit, or `DROPPED`.
const DROPPED: u32 = u32::MAX;
const NUMBER: u32 = 1 << 31;

fn decode_normal(code: u32) -> Normal {
    if code == DROPPED {
        Normal::Dropped
    } else if code & NUMBER != 0 {
        Normal::Number((code & 0xff) as u8)
    } else {
        // Codes are only ever made from chars by `bmp_table`.
        char::from_u32(code).map_or(Normal::Dropped, Normal::Char)
    }
}

fn bmp_table() -> &'static [u32] {
    static TABLE: OnceLock<Vec<u32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=0xFFFFu32)
            .map(|code| char::from_u32(code).map_or(DROPPED, |c| encode_normal(normalize_slow(c))))
            .collect()
    })
}

/// Steps 1 and 2 and all four steps of every character at once, for the callers that need
/// both forms of each character of a field (the consistency checks' folding): one lookup of
/// four bytes for the Basic Multilingual Plane, computing for the other planes.
pub(crate) struct CharTable {
    /// The folded character in the low 21 bits, and above them its normal form relative to
    /// it ([`CharTable::get`]).
    bmp: Box<[u32; 0x10000]>,
}

/// The normal form is the folded character ([`CharTable::get`]).
pub(crate) const NORMAL_IS_FOLDED: u32 = 0;
const NORMAL_NUMBER: u32 = 1;
const NORMAL_DROPPED: u32 = 2;

impl CharTable {
    /// The folded form of `c`, and its normal form: [`NORMAL_IS_FOLDED`] where that is the
    /// folded character (nearly every character), else a code for [`Normalized::push_normal`].
    #[inline(always)]
    pub(crate) fn get(&self, c: char) -> (char, u32) {
        let code = c as u32;
        if code < 0x10000 {
            let entry = self.bmp[code as usize];
            // Made from chars by `char_table`.
            let folded = char::from_u32(entry & 0x1F_FFFF).unwrap_or(c);
            (folded, entry >> 21)
        } else {
            let folded = fold(c);
            (folded, relative_normal(normalize_slow(c), folded))
        }
    }
}

pub(crate) fn char_table() -> &'static CharTable {
    static TABLE: OnceLock<CharTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut bmp: Box<[u32; 0x10000]> = vec![0u32; 0x10000]
            .into_boxed_slice()
            .try_into()
            .unwrap_or_else(|_| unreachable!("the vector has exactly 0x10000 entries"));
        let normal = bmp_table();
        for (code, entry) in bmp.iter_mut().enumerate() {
            // Surrogates are no chars; they never occur in a str either.
            let Some(c) = char::from_u32(code as u32) else {
                continue;
            };
            let folded = fold(c);
            *entry = folded as u32 | relative_normal(decode_normal(normal[code]), folded) << 21;
        }
        CharTable { bmp }
    })
}

/// A normal form relative to the folded character it was made from: the character is its
/// own normal form, or a number (value above two tag bits), or dropped.
fn relative_normal(normal: Normal, folded: char) -> u32 {
    match normal {
        Normal::Char(n) => {
            // `normalize_slow` keeps a character only as the folded character itself.
            debug_assert_eq!(n, folded);
            NORMAL_IS_FOLDED
        }
        Normal::Number(value) => NORMAL_NUMBER | u32::from(value) << 2,
        Normal::Dropped => NORMAL_DROPPED,
    }
}

fn encode_normal(normal: Normal) -> u32 {
    match normal {
        Normal::Char(c) => c as u32,
        Normal::Number(value) => NUMBER | u32::from(value),
        Normal::Dropped => DROPPED,
    }
}

fn normalize_slow(c: char) -> Normal {
    let folded = fold(c);
    if let Some(value) = digit_value(folded) {
        return Normal::Number(value);
    }
    // CJK symbols and punctuation (、。「」…) never count; 〇 was taken as a digit above.
    // The Hangul fillers and the Khmer inherent vowels are letters by category but show
    // nothing, which is what a seller slips one between two characters for.
    if matches!(
        folded as u32,
        0x3000..=0x303F | 0x115F | 0x1160 | 0x3164 | 0xFFA0 | 0x17B4 | 0x17B5
    ) {
        return Normal::Dropped;
    }
    if folded.is_ascii_alphanumeric()
        || folded == '%'
        || (!folded.is_ascii() && folded.is_alphanumeric())
    {
        Normal::Char(folded)
    } else {
        Normal::Dropped
    }
}

/// The value of a digit in any form the normaliser reads (ASCII, full-width, Chinese,
/// financial, enclosed), for checks that read numbers out of unnormalised text.
pub(crate) fn digit_of(c: char) -> Option<u8> {
    // The table holds every other form's value as the character's normal form.
    let (folded, code) = char_table().get(c);
    if folded.is_ascii_digit() {
        return Some(folded as u8 - b'0');
    }
    // 幺 is how 1 is read out in a telephone number (幺三八…); elsewhere it is no digit, so
    // only number-reading checks such as the contact detector take it.
    if folded == '幺' {
        return Some(1);
    }
    (code & 3 == NORMAL_NUMBER).then_some((code >> 2) as u8)
}

/// Steps 1 and 2: traditional → simplified, full-width → half-width, lower case, and
/// look-alikes to the character they stand for.
fn fold(c: char) -> char {
    match c {
        'A'..='Z' => c.to_ascii_lowercase(),
        '\u{FF01}'..='\u{FF5E}' => {
            let half = char::from_u32(c as u32 - 0xFEE0).unwrap_or(c);
            half.to_ascii_lowercase()
        }
        '\u{3000}' => ' ',
        // CJK and Kangxi radicals (⾼ looks like 高), compatibility ideographs, mathematical
        // letters and digits (𝐀, 𝟏): written to look like a word's own characters.
        '\u{2E80}'..='\u{2FDF}' | '\u{F900}'..='\u{FAFF}' | '\u{1D400}'..='\u{1D7FF}' => {
            match compatible(c) {
                same if same == c => simplified(c),
                other => fold(other),
            }
        }
        _ if (c as u32) < 0x3400 => c,
        _ => simplified(c),
    }
}

/// The one character Unicode's compatibility decomposition gives for `c`, or `c` where it
/// gives none or several.
fn compatible(c: char) -> char {
    let (mut first, mut count) = (c, 0);
    unicode_normalization::char::decompose_compatible(c, |d| {
        first = d;
        count += 1;
    });
    if count == 1 {
        first
    } else {
        c
    }
}

/// The zero of every run of decimal digits (general category Nd) but ASCII's and the
/// full-width one (which step 2 folds), from Unicode 14's character database: each is
/// followed by its script's 1 … 9.
const DECIMAL_ZEROS: [u32; 64] = [
    0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6,
    0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50,
    0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0x104A0,
    0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0,
    0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE,
    0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// The value of a decimal digit of another script than ASCII.
fn decimal_digit(c: char) -> Option<u8> {
    let code = c as u32;
    let run = DECIMAL_ZEROS
        .partition_point(|&zero| zero <= code)
        .checked_sub(1)?;
    let offset = code - DECIMAL_ZEROS[run];
    (offset < 10).then_some(offset as u8)
}

/// Step 3: the value of a digit written in another form than ASCII (0–20).
fn digit_value(c: char) -> Option<u8> {
    let value = match c {
        '0'..='9' => return None,
        '〇' | '零' | '⓪' | '🄀' => 0,
        '一' | '壹' => 1,
        '二' | '贰' => 2,
        '三' | '叁' => 3,
        '四' | '肆' => 4,
        '五' | '伍' => 5,
        '六' | '陆' => 6,
        '七' | '柒' => 7,
        '八' | '捌' => 8,
        '九' | '玖' => 9,
        // ① … ⑳, ⑴ … ⒇, ⒈ … ⒛
        '\u{2460}'..='\u{2473}' => (c as u32 - 0x2460 + 1) as u8,
        '\u{2474}'..='\u{2487}' => (c as u32 - 0x2474 + 1) as u8,
        '\u{2488}'..='\u{249B}' => (c as u32 - 0x2488 + 1) as u8,
        // ⓫ … ⓴, ⓵ … ⓾
        '\u{24EB}'..='\u{24F4}' => (c as u32 - 0x24EB + 11) as u8,
        '\u{24F5}'..='\u{24FE}' => (c as u32 - 0x24F5 + 1) as u8,
        // ❶ … ❿, ➀ … ➉, ➊ … ➓
        '\u{2776}'..='\u{277F}' => (c as u32 - 0x2776 + 1) as u8,
        '\u{2780}'..='\u{2789}' => (c as u32 - 0x2780 + 1) as u8,
        '\u{278A}'..='\u{2793}' => (c as u32 - 0x278A + 1) as u8,
        // ㈠ … ㈩, ㊀ … ㊉
        '\u{3220}'..='\u{3229}' => (c as u32 - 0x3220 + 1) as u8,
        '\u{3280}'..='\u{3289}' => (c as u32 - 0x3280 + 1) as u8,
        _ => return decimal_digit(c),
    };
    Some(value)
}

/// First and last code point covered by the traditional → simplified table: CJK Extension A,
/// the Unified Ideographs and the compatibility ideographs.
const TABLE_START: u32 = 0x3400;
const TABLE_END: u32 = 0xFAFF;

fn simplified(c: char) -> char {
    let code = c as u32;
    if !(TABLE_START..=TABLE_END).contains(&code) {
        return c;
    }
    let table = t2s_table();
    match table[(code - TABLE_START) as usize] {
        0 => c,
        mapped => char::from_u32(mapped).unwrap_or(c),
    }
}

/// A dense table from each code point in the covered range to its simplified form (0 where the
/// character is already simplified). Built once from OpenCC's dictionary by converting every
/// character on its own, so that the conversion never changes the number of characters.
fn t2s_table() -> &'static [u32] {
    static TABLE: OnceLock<Vec<u32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let len = (TABLE_END - TABLE_START + 1) as usize;
        let mut table = vec![0u32; len];
        let Ok(opencc) =
            ferrous_opencc::OpenCC::from_config(ferrous_opencc::config::BuiltinConfig::T2s)
        else {
            tracing::warn!(
                "OpenCC's t2s dictionary did not load; traditional text is matched as written"
            );
            return table;
        };

        let mut batch = String::with_capacity(len * 4);
        let mut codes = Vec::with_capacity(len);
        for code in TABLE_START..=TABLE_END {
            if let Some(c) = char::from_u32(code) {
                batch.push(c);
                batch.push('\n');
                codes.push(code);
            }
        }
        let converted = opencc.convert(&batch);
        let lines: Vec<&str> = converted.split('\n').collect();
        // The dictionary maps characters, and the separator keeps phrases from forming, so
        // each line is one character; if a future dictionary breaks that, keep the identity.
        if lines.len() < codes.len() {
            return table;
        }
        for (code, line) in codes.iter().zip(lines) {
            let mut chars = line.chars();
            if let (Some(s), None) = (chars.next(), chars.next()) {
                if s as u32 != *code {
                    table[(code - TABLE_START) as usize] = s as u32;
                }
            }
        }
        table
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(text: &str) -> String {
        Normalizer.normalize(text)
    }

    #[test]
    fn full_width_letters_and_digits_become_ascii_lower_case() {
        assert_eq!(norm("ＴＯＰ１ 涤纶"), "top1涤纶");
        assert_eq!(norm("ＮＯ．１"), "no1");
        assert_eq!(norm("100％纯棉"), "100%纯棉");
    }

    #[test]
    fn traditional_characters_become_simplified() {
        assert_eq!(norm("頂級 真絲面料"), "顶级真丝面料");
        assert_eq!(norm("彈簧刀"), "弹簧刀");
    }

    #[test]
    fn digit_forms_become_ascii() {
        assert_eq!(norm("第一"), "第1");
        assert_eq!(norm("第壹"), "第1");
        assert_eq!(norm("第①"), "第1");
        assert_eq!(norm("⑫"), "12");
        assert_eq!(norm("一三八"), "138");
    }

    #[test]
    fn symbols_punctuation_and_spaces_are_dropped() {
        assert_eq!(norm("最*好"), "最好");
        assert_eq!(norm("最 好"), "最好");
        assert_eq!(norm("秒　杀"), "秒杀");
        assert_eq!(norm("高-仿"), "高仿");
        assert_eq!(norm("最\u{200b}好"), "最好");
        assert_eq!(norm("「仅此一次」！"), "仅此1次");
        // Invisible letters, look-alike radicals and ideographs, other scripts' digits.
        assert_eq!(
            norm("最\u{3164}好 最\u{115F}\u{1160}好 最\u{FFA0}好"),
            "最好最好最好"
        );
        assert_eq!(norm("\u{2FBC}仿"), "高仿");
        assert_eq!(norm("\u{F900}"), "岂");
        assert_eq!(norm("第\u{1D7CF} 𝐓𝐎𝐏"), "第1top");
        assert_eq!(norm("第\u{0661}\u{0E52}\u{0967}"), "第121");
    }

    fn locate(original: &str, needle: &str) -> Located {
        let mut out = Normalized::default();
        Normalizer.normalize_into(original, &mut out);
        let at = out.text().find(needle).unwrap();
        out.locate(original, at, at + needle.len())
    }

    #[test]
    fn spans_map_back_to_original_characters() {
        let original = "买 最*好 的布";
        let located = locate(original, "最好");
        assert_eq!((located.start, located.end), (2, 5));
        assert_eq!(&original[located.byte_start..located.byte_end], "最*好");
    }

    #[test]
    fn an_enclosed_number_maps_both_digits_to_one_character() {
        let located = locate("第⑫名", "12");
        assert_eq!((located.start, located.end), (1, 2));
        let located = locate("第⑫名", "2名");
        assert_eq!((located.start, located.end), (1, 3));
    }

    #[test]
    fn neighbours_are_latin_only_where_the_seller_wrote_latin() {
        let located = locate("xtop1 y", "top1");
        assert_eq!((located.before, located.after), (Some('x'), None));
        let located = locate("唯一一家", "唯1");
        assert_eq!((located.start, located.end, located.after), (0, 2, None));
        let located = locate("ＴＯＰ１０", "top1");
        assert_eq!(located.after, Some('0'));
    }

    #[test]
    fn digits_read_through_the_table_are_the_digits_by_definition() {
        let by_definition = |c: char| {
            let folded = fold(c);
            if folded.is_ascii_digit() {
                Some(folded as u8 - b'0')
            } else if folded == '幺' {
                Some(1)
            } else {
                digit_value(folded)
            }
        };
        for c in (0..0x11000).filter_map(char::from_u32) {
            assert_eq!(digit_of(c), by_definition(c), "{c:?}");
        }
        assert_eq!(digit_of('⑫'), Some(12));
        assert_eq!(digit_of('壹'), Some(1));
        assert_eq!(digit_of('８'), Some(8));
    }

    proptest! {
        #[test]
        fn every_normalised_span_maps_inside_the_original(original in "\\PC{0,40}") {
            let mut out = Normalized::default();
            Normalizer.normalize_into(&original, &mut out);
            let count = original.chars().count();
            for (start, c) in out.text().char_indices() {
                let located = out.locate(&original, start, start + c.len_utf8());
                prop_assert!(located.start < located.end && located.end <= count);
                // The byte range is the character range, on character boundaries.
                let slice = &original[located.byte_start..located.byte_end];
                prop_assert_eq!(slice.chars().count(), located.end - located.start);
                // And it normalises to text that contains the matched character.
                prop_assert!(Normalizer.normalize(slice).contains(c));
            }
        }

        /// Spans located in order through one cursor, with a step back now and then, are
        /// located as each would be alone.
        #[test]
        fn a_cursor_locates_as_a_fresh_scan_does(
            original in "[a-z0-9 *最好①１高仿]{0,40}",
            cuts in prop::collection::vec((0usize..40, 1usize..6), 0..12),
        ) {
            let mut out = Normalized::default();
            Normalizer.normalize_into(&original, &mut out);
            let boundaries: Vec<usize> = out
                .text()
                .char_indices()
                .map(|(at, _)| at)
                .chain([out.len()])
                .collect();
            let mut cursor = LocateCursor::default();
            for (start, len) in cuts {
                if boundaries.len() < 2 {
                    break;
                }
                let start = start % (boundaries.len() - 1);
                let end = (start + len).min(boundaries.len() - 1);
                let (start, end) = (boundaries[start], boundaries[end]);
                let alone = out.locate(&original, start, end);
                let through = out.locate_from(&mut cursor, &original, start, end);
                prop_assert_eq!(
                    (through.start, through.end, through.byte_start, through.byte_end),
                    (alone.start, alone.end, alone.byte_start, alone.byte_end)
                );
                prop_assert_eq!((through.before, through.after), (alone.before, alone.after));
            }
        }

        #[test]
        fn normalising_is_idempotent(original in "\\PC{0,40}") {
            let once = norm(&original);
            prop_assert_eq!(norm(&once), once.clone());
        }
    }
}
