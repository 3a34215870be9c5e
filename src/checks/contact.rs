//! Contact details in the title (handbook 3.1.2 (1), 标题带有联系方式), kind `title.contact`:
//! telephone numbers, QQ numbers, WeChat ids, URLs, domains and e-mail addresses.
//!
//! Runs in the parallel half, on the folded title (see [`super::folded`]) rather than the
//! normalised one: normalising drops spaces and symbols, which glues the numbers of a fabric
//! specification together (`40s×40s 133×72` would read `4040133 72`). Here a number is a run of
//! digits in any form (ASCII, full-width, Chinese, circled) whose groups are separated only by
//! what people put inside a telephone number (a space, `-`, `.`, brackets), never by the `×`,
//! `*`, `/` or unit letters of a specification, and that does not touch a letter (190T, RL-230).
//! The run is a telephone number only by its shape: a mobile number (11 digits, 1[3-9]…), a
//! landline with its area code (0…, 10–12 digits), a 400/800 number (10 digits), or seven or
//! more digits right after a word such as 电话. An eight-digit batch or date number is none.

use super::folded::{Folded, Hit, Lexicon, LexiconBuilder, Words};
use crate::normalize::digit_of;
use crate::rules::ContactRules;

/// What sort of contact detail a title holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactKind {
    Mobile,
    Landline,
    TollFree,
    /// Digits after a word such as 电话 that fit no shape above (a local number).
    Phone,
    Qq,
    Wechat,
    Url,
    Email,
}

impl ContactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactKind::Mobile => "mobile",
            ContactKind::Landline => "landline",
            ContactKind::TollFree => "toll_free",
            ContactKind::Phone => "phone",
            ContactKind::Qq => "qq",
            ContactKind::Wechat => "wechat",
            ContactKind::Url => "url",
            ContactKind::Email => "email",
        }
    }
}

/// One contact detail: its character span in the title and its value as read (digits in
/// ASCII, ids and hosts in lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub kind: ContactKind,
    pub start: usize,
    pub end: usize,
    pub value: String,
}

const QQ: u32 = 0;
const WECHAT: u32 = 1;
const PHONE: u32 = 2;

/// Finds contact details in a folded title.
#[derive(Debug)]
pub struct ContactDetector {
    markers: Words,
    domains: Vec<String>,
    gap: Vec<char>,
}

/// Characters people put between the digit groups of one telephone number.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '—' | '–' | '.' | '·' | '_' | '(' | ')' | '~')
}

/// Characters between a marker word and what it introduces, besides the rule file's.
fn is_gap(c: char) -> bool {
    matches!(c, ' ' | ':' | '-' | '_' | '=' | '(' | ')')
}

impl ContactDetector {
    pub fn new(rules: &ContactRules, lexicon: &mut LexiconBuilder) -> ContactDetector {
        let patterns = rules
            .qq
            .iter()
            .map(|w| (w.as_str(), QQ))
            .chain(rules.wechat.iter().map(|w| (w.as_str(), WECHAT)))
            .chain(rules.phone.iter().map(|w| (w.as_str(), PHONE)));
        let markers = lexicon.list(patterns);
        ContactDetector {
            markers,
            domains: rules.domains.clone(),
            gap: rules.gap.iter().filter_map(|g| g.chars().next()).collect(),
        }
    }

    /// Appends every contact detail of `title` to `out`, in order of position.
    /// `title` is folded with the lexicon the detector was built into.
    pub fn find(
        &self,
        lexicon: &Lexicon,
        title: &Folded,
        hits: &mut Vec<Hit>,
        out: &mut Vec<Contact>,
    ) {
        let chars = title.chars();
        let first = out.len();

        // Marker words first: what follows them is read by the marker's rule, and the digits
        // they claim are not read again as a bare number.
        hits.clear();
        self.markers.find(lexicon, title, hits);
        for hit in hits.iter() {
            if !ascii_bounded(chars, hit.start, hit.end) {
                continue;
            }
            if let Some(contact) =
                read_after_marker(chars, hit.start, hit.end, hit.value, &self.gap)
            {
                out.push(contact);
            }
        }

        let mut claimed = Claimed::new(&out[first..]);
        // The furthest end of the numbers this loop found: they start at growing positions.
        let mut numbers_reach = 0;
        let mut i = 0;
        while i < chars.len() {
            if digit_of(chars[i]).is_none() || i < numbers_reach || claimed.overlaps(i + 1, i) {
                i += 1;
                continue;
            }
            let run = read_digits(chars, i);
            if starts_clean(chars, i) && ends_clean(chars, run.end) {
                if let Some(kind) = phone_shape(run.digits()) {
                    numbers_reach = numbers_reach.max(run.end);
                    out.push(Contact {
                        kind,
                        start: i,
                        end: run.end,
                        value: run.digits().to_owned(),
                    });
                }
            }
            // A number glued to the one before it by a space (230 13800138000) is read again
            // from its own first group.
            i = run.second_group.unwrap_or(run.end).max(i + 1);
        }

        if title
            .chars()
            .iter()
            .any(|c| matches!(c, '.' | '。' | '@' | ':'))
        {
            self.find_addresses(chars, first, out);
        }
        out[first..].sort_by_key(|c| c.start);
    }

    /// URLs, bare domains and e-mail addresses: runs of ASCII letters, digits and the
    /// characters of an address, with `。` read as a dot.
    fn find_addresses(&self, chars: &[char], first: usize, out: &mut Vec<Contact>) {
        let mut claimed = Claimed::new(&out[first..]);
        let is_address_char = |c: char| {
            c.is_ascii_alphanumeric()
                || matches!(c, '.' | '。' | '-' | '_' | '@' | ':' | '/' | '%' | '+')
        };
        let mut i = 0;
        while i < chars.len() {
            if !is_address_char(chars[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < chars.len() && is_address_char(chars[i]) {
                i += 1;
            }
            let token: String = chars[start..i]
                .iter()
                .map(|&c| if c == '。' { '.' } else { c })
                .collect();
            if claimed.overlaps(i, start) {
                continue;
            }
            if let Some((kind, value, offset, len)) = self.address(&token) {
                out.push(Contact {
                    kind,
                    start: start + offset,
                    end: start + offset + len,
                    value,
                });
            }
        }
    }

    /// Reads one token as an address: kind, value, and the character range it covers.
    fn address(&self, token: &str) -> Option<(ContactKind, String, usize, usize)> {
        // Leading and trailing punctuation belongs to the sentence, not the address.
        let trimmed_start = token.len()
            - token
                .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
                .len();
        let token_trimmed = token.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if token_trimmed.is_empty() {
            return None;
        }
        let offset = token[..trimmed_start].chars().count();
        let len = token_trimmed.chars().count();

        if let Some((local, host)) = token_trimmed.split_once('@') {
            let valid_local = !local.is_empty()
                && local
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '%'));
            if valid_local && self.is_domain(host) {
                return Some((ContactKind::Email, token_trimmed.to_owned(), offset, len));
            }
            return None;
        }

        let (scheme, rest) = match token_trimmed.split_once("://") {
            Some((scheme, rest)) if scheme == "http" || scheme == "https" => (true, rest),
            Some(_) => return None,
            None => (false, token_trimmed),
        };
        let host = rest.split(['/', ':']).next().unwrap_or("");
        let www = host.starts_with("www.") && host.len() > 4;
        if self.is_domain(host) || (scheme && !host.is_empty()) || www {
            return Some((ContactKind::Url, token_trimmed.to_owned(), offset, len));
        }
        None
    }

    /// `label(.label)*.tld` with a known top-level domain and labels of letters, digits, `-`.
    fn is_domain(&self, host: &str) -> bool {
        let labels: Vec<&str> = host.split('.').collect();
        if labels.len() < 2 {
            return false;
        }
        let valid = labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let tld = labels[labels.len() - 1];
        let name = labels[labels.len() - 2];
        // A name of digits alone (1.5cn) is a measurement more often than a site.
        valid
            && self.domains.iter().any(|d| d == tld)
            && name
                .chars()
                .any(|c| c.is_ascii_alphabetic() || name.len() >= 3)
    }
}

/// An ASCII marker (qq, vx, wx) must stand alone: not inside a longer Latin word.
fn ascii_bounded(chars: &[char], start: usize, end: usize) -> bool {
    let before_ok = start == 0
        || !(chars[start].is_ascii_alphanumeric() && chars[start - 1].is_ascii_alphanumeric());
    let last = chars[end - 1];
    let after_ok =
        end >= chars.len() || !(last.is_ascii_alphabetic() && chars[end].is_ascii_alphabetic());
    before_ok && after_ok
}

/// The spans of contacts already found, asked about at positions that only grow, so that
/// a title of 100,000 contact details is read in one pass, not one pass a character.
struct Claimed {
    /// Sorted by start.
    spans: Vec<(usize, usize)>,
    /// The first span not yet passed.
    next: usize,
    /// The furthest end of the spans passed.
    reach: usize,
}

impl Claimed {
    fn new(contacts: &[Contact]) -> Claimed {
        let mut spans: Vec<_> = contacts.iter().map(|c| (c.start, c.end)).collect();
        spans.sort_unstable();
        Claimed {
            spans,
            next: 0,
            reach: 0,
        }
    }

    /// Whether a span that starts before `before` ends after `after`; `before` must not
    /// decrease from one call to the next.
    fn overlaps(&mut self, before: usize, after: usize) -> bool {
        while let Some(&(start, end)) = self.spans.get(self.next) {
            if start >= before {
                break;
            }
            self.reach = self.reach.max(end);
            self.next += 1;
        }
        self.reach > after
    }
}

fn read_after_marker(
    chars: &[char],
    start: usize,
    end: usize,
    marker: u32,
    gap_chars: &[char],
) -> Option<Contact> {
    let mut at = end;
    let mut gap = 0;
    while at < chars.len() && (is_gap(chars[at]) || gap_chars.contains(&chars[at])) && gap < 3 {
        at += 1;
        gap += 1;
    }
    if at >= chars.len() {
        return None;
    }
    if digit_of(chars[at]).is_some() {
        let run = read_digits(chars, at);
        if !ends_clean(chars, run.end) {
            return None;
        }
        let count = run.len;
        let kind = match marker {
            QQ if (5..=11).contains(&count) => ContactKind::Qq,
            WECHAT if count >= 6 => phone_shape(run.digits()).unwrap_or(ContactKind::Wechat),
            PHONE if count >= 7 => phone_shape(run.digits()).unwrap_or(ContactKind::Phone),
            _ => return None,
        };
        return Some(Contact {
            kind,
            start,
            end: run.end,
            value: run.digits().to_owned(),
        });
    }
    if marker != WECHAT || !chars[at].is_ascii_alphabetic() {
        return None;
    }
    let id_end = chars[at..]
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .map_or(chars.len(), |p| at + p);
    if !(6..=20).contains(&(id_end - at)) {
        return None;
    }
    Some(Contact {
        kind: ContactKind::Wechat,
        start,
        end: id_end,
        value: chars[at..id_end].iter().collect(),
    })
}

/// A run of digits from `start`: its digits in ASCII and the character after its last digit.
/// Kept on the stack: a title's specifications (40s×40s 133×72) make several runs an event.
struct DigitRun {
    /// The digits, at most [`MAX_RUN_DIGITS`] of them (a longer run is no telephone number).
    digits: [u8; MAX_RUN_DIGITS],
    len: usize,
    end: usize,
    /// Where the second digit group starts, if there is one.
    second_group: Option<usize>,
}

/// Digits read into one run at most: 24, and the two of an enclosed number that may end it.
const MAX_RUN_DIGITS: usize = 26;

impl DigitRun {
    fn digits(&self) -> &str {
        // Only ASCII digits are ever written.
        std::str::from_utf8(&self.digits[..self.len]).unwrap_or("")
    }

    fn push(&mut self, digit: u8) {
        if let Some(slot) = self.digits.get_mut(self.len) {
            *slot = b'0' + digit;
            self.len += 1;
        }
    }
}

fn read_digits(chars: &[char], start: usize) -> DigitRun {
    let mut run = DigitRun {
        digits: [0; MAX_RUN_DIGITS],
        len: 0,
        end: start,
        second_group: None,
    };
    let mut at = start;
    while at < chars.len() && run.len <= 24 {
        if let Some(value) = digit_of(chars[at]) {
            // An enclosed number such as ⑫ stands for two digits.
            if value >= 10 {
                run.push(value / 10);
            }
            run.push(value % 10);
            at += 1;
            run.end = at;
            continue;
        }
        // Up to two separators may sit between digit groups.
        let mut look = at;
        while look < chars.len() && look - at < 2 && is_separator(chars[look]) {
            look += 1;
        }
        if look > at && look < chars.len() && digit_of(chars[look]).is_some() {
            at = look;
            run.second_group.get_or_insert(at);
            continue;
        }
        break;
    }
    run
}

/// The run does not continue a Latin word or a model code (RL-230, 190T, ISO9001).
fn starts_clean(chars: &[char], start: usize) -> bool {
    match start.checked_sub(1).map(|p| chars[p]) {
        None => true,
        Some(c) if c.is_ascii_alphanumeric() || matches!(c, '/' | '*' | '×' | '%' | '+' | ':') => {
            false
        }
        Some('-' | '_' | '.') => start < 2 || !chars[start - 2].is_ascii_alphanumeric(),
        Some(_) => true,
    }
}

/// The run is not followed by a unit or a specification (150cm, 40s, 190T, 45*45, 57/58").
fn ends_clean(chars: &[char], end: usize) -> bool {
    match chars.get(end) {
        None => true,
        Some(&c) => {
            !(c.is_ascii_alphanumeric()
                || matches!(c, '/' | '*' | '×' | '%' | '"' | '\'' | '′' | '″' | ':'))
        }
    }
}

/// The kind of telephone number a run of digits is by its shape, if any.
fn phone_shape(digits: &str) -> Option<ContactKind> {
    let digits = digits
        .strip_prefix("0086")
        .or_else(|| {
            (digits.len() == 13)
                .then(|| digits.strip_prefix("86"))
                .flatten()
        })
        .unwrap_or(digits);
    let bytes = digits.as_bytes();
    match bytes.len() {
        11 if bytes[0] == b'1' && (b'3'..=b'9').contains(&bytes[1]) => Some(ContactKind::Mobile),
        10 if digits.starts_with("400") || digits.starts_with("800") => Some(ContactKind::TollFree),
        10..=12 if bytes[0] == b'0' && bytes[1] != b'0' => Some(ContactKind::Landline),
        _ => None,
    }
}
