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
//! 2. full-width → half-width, ASCII upper → lower case;
//! 3. Chinese, financial and enclosed digits → ASCII digits (⑫ becomes "12");
//! 4. anything that is not a letter, a digit, a CJK character or `%` is dropped.

use std::sync::OnceLock;

/// A normalised field: the text the automata run over, and the way back to the original.
#[derive(Debug, Default, Clone)]
pub struct Normalized {
    text: String,
    /// For each byte of `text`, the index of the original character it came from.
    origin: Vec<u32>,
    /// For each original character, its normalised form (`'\0'` if it normalises to nothing),
    /// so that a match can look at its neighbours in the original text.
    mapped: Vec<char>,
    /// Byte offset of each original character, plus the original length at the end.
    original_bytes: Vec<u32>,
}

impl Normalized {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The original character range `[start, end)` that produced `text[byte_start..byte_end]`.
    /// `byte_start < byte_end` must be a match inside `text`.
    pub fn original_span(&self, byte_start: usize, byte_end: usize) -> (usize, usize) {
        let start = self.origin[byte_start] as usize;
        let end = self.origin[byte_end - 1] as usize + 1;
        (start, end)
    }

    /// The original text of a character range from [`Normalized::original_span`].
    pub fn original_text<'a>(&self, original: &'a str, start: usize, end: usize) -> &'a str {
        let from = self.original_bytes[start] as usize;
        let to = self.original_bytes[end] as usize;
        &original[from..to]
    }

    /// The normalised form of the original character at `index`, if there is one.
    pub fn mapped_char(&self, index: usize) -> Option<char> {
        self.mapped.get(index).copied().filter(|c| *c != '\0')
    }

    /// Number of characters in the original text.
    pub fn original_len(&self) -> usize {
        self.mapped.len()
    }
}

/// Normalises text; cheap to share, holds only the static tables.
#[derive(Debug, Clone, Copy, Default)]
pub struct Normalizer;

impl Normalizer {
    /// Normalises `original` into `out`, reusing its buffers.
    pub fn normalize_into(&self, original: &str, out: &mut Normalized) {
        out.text.clear();
        out.origin.clear();
        out.mapped.clear();
        out.original_bytes.clear();

        let mut digits = [0u8; 2];
        for (index, (byte, c)) in original.char_indices().enumerate() {
            out.original_bytes.push(byte as u32);
            let folded = fold(c);
            let expansion = digit_value(folded).map(|value| {
                if value < 10 {
                    digits[0] = b'0' + value;
                    &digits[..1]
                } else {
                    digits = [b'0' + value / 10, b'0' + value % 10];
                    &digits[..2]
                }
            });
            match expansion {
                Some(ascii) => {
                    out.mapped.push(ascii[0] as char);
                    for &b in ascii {
                        out.text.push(b as char);
                        out.origin.push(index as u32);
                    }
                }
                None if folded.is_alphanumeric() || folded == '%' => {
                    out.mapped.push(folded);
                    out.text.push(folded);
                    out.origin
                        .extend(std::iter::repeat_n(index as u32, folded.len_utf8()));
                }
                None => out.mapped.push('\0'),
            }
        }
        out.original_bytes.push(original.len() as u32);
    }

    /// The normalised form of `text` on its own, for rule terms and tests.
    pub fn normalize(&self, text: &str) -> String {
        let mut out = Normalized::default();
        self.normalize_into(text, &mut out);
        out.text
    }
}

/// Steps 1 and 2: traditional → simplified, full-width → half-width, lower case.
fn fold(c: char) -> char {
    match c {
        'A'..='Z' => c.to_ascii_lowercase(),
        '\u{FF01}'..='\u{FF5E}' => {
            let half = char::from_u32(c as u32 - 0xFEE0).unwrap_or(c);
            half.to_ascii_lowercase()
        }
        '\u{3000}' => ' ',
        _ if (c as u32) < 0x3400 => c,
        _ => simplified(c),
    }
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
        _ => return None,
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
    }

    #[test]
    fn spans_map_back_to_original_characters() {
        let original = "买 最*好 的布";
        let mut out = Normalized::default();
        Normalizer.normalize_into(original, &mut out);
        let at = out.text().find("最好").unwrap();
        let (start, end) = out.original_span(at, at + "最好".len());
        assert_eq!((start, end), (2, 5));
        assert_eq!(out.original_text(original, start, end), "最*好");
    }

    #[test]
    fn an_enclosed_number_maps_both_digits_to_one_character() {
        let original = "第⑫名";
        let mut out = Normalized::default();
        Normalizer.normalize_into(original, &mut out);
        assert_eq!(out.text(), "第12名");
        assert_eq!(out.original_span(3, 5), (1, 2));
    }

    proptest! {
        #[test]
        fn every_normalised_span_maps_inside_the_original(original in "\\PC{0,40}") {
            let mut out = Normalized::default();
            Normalizer.normalize_into(&original, &mut out);
            let count = original.chars().count();
            prop_assert_eq!(out.original_len(), count);
            for (start, c) in out.text().char_indices() {
                let (from, to) = out.original_span(start, start + c.len_utf8());
                prop_assert!(from < to && to <= count);
                // Slicing must land on character boundaries.
                let _ = out.original_text(&original, from, to);
            }
        }

        #[test]
        fn normalising_is_idempotent(original in "\\PC{0,40}") {
            let once = norm(&original);
            prop_assert_eq!(norm(&once), once.clone());
        }
    }
}
