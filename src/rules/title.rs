//! `title.toml`: the words the title checks look for, contact-detail markers and intent words
//! (handbook 3.1.2 (1)).

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{line_of, parse_toml, read_rule_file, Problem};

/// The words that introduce contact details in a title.
#[derive(Debug, Clone, Default)]
pub struct ContactRules {
    /// After these, a number is a QQ number.
    pub qq: Vec<String>,
    /// After these, an id is a WeChat id.
    pub wechat: Vec<String>,
    /// After these, seven or more digits are a telephone number.
    pub phone: Vec<String>,
    /// Top-level domains that make `label.tld` a domain.
    pub domains: Vec<String>,
    /// Characters allowed between a marker and its number or id.
    pub gap: Vec<String>,
}

/// The words that state whether a listing sells or buys.
#[derive(Debug, Clone, Default)]
pub struct IntentRules {
    pub supply: Vec<String>,
    pub purchase: Vec<String>,
    /// Longer words that contain an intent word but state no intent.
    pub neutral: Vec<String>,
}

/// Everything in `title.toml`.
#[derive(Debug, Clone, Default)]
pub struct TitleRules {
    pub contact: ContactRules,
    pub intent: IntentRules,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TitleFile {
    contact: ContactFile,
    intent: IntentFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactFile {
    qq: Vec<Spanned<String>>,
    wechat: Vec<Spanned<String>>,
    phone: Vec<Spanned<String>>,
    gap: Vec<Spanned<String>>,
    domains: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentFile {
    supply: Vec<Spanned<String>>,
    purchase: Vec<Spanned<String>>,
    neutral: Vec<Spanned<String>>,
}

impl TitleRules {
    pub(super) fn load(dir: &Path, problems: &mut Vec<Problem>) -> TitleRules {
        let path = dir.join("title.toml");
        let Some(text) = read_rule_file(&path, problems) else {
            return TitleRules::default();
        };
        let Some(file): Option<TitleFile> = parse_toml(&path, &text, problems) else {
            return TitleRules::default();
        };
        let mut words = |list: Vec<Spanned<String>>| -> Vec<String> {
            let mut out = Vec::with_capacity(list.len());
            for word in list {
                let value = word.get_ref().trim();
                if value.is_empty() || value.chars().any(|c| c.is_ascii_uppercase()) {
                    problems.push(Problem {
                        file: path.clone(),
                        line: line_of(&text, word.span().start),
                        message: format!("`{value}` must be a non-empty lower-case word"),
                    });
                    continue;
                }
                out.push(value.to_owned());
            }
            out
        };
        TitleRules {
            contact: ContactRules {
                qq: words(file.contact.qq),
                wechat: words(file.contact.wechat),
                phone: words(file.contact.phone),
                domains: words(file.contact.domains),
                gap: words(file.contact.gap),
            },
            intent: IntentRules {
                supply: words(file.intent.supply),
                purchase: words(file.intent.purchase),
                neutral: words(file.intent.neutral),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upper_case_word_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("title.toml"),
            "[contact]\nqq = [\"QQ\"]\nwechat = []\nphone = []\ngap = []\ndomains = []\n\
             [intent]\nsupply = []\npurchase = []\nneutral = []\n",
        )
        .unwrap();
        let mut problems = Vec::new();
        TitleRules::load(dir.path(), &mut problems);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 2);
    }
}
