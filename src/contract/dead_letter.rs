//! The dead-letter record: input loomguard could not decide, kept with the reason.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The value of `schema` in every dead letter this version writes.
pub const DEAD_LETTER_SCHEMA: &str = "dead-letter/v1";

/// Why an input was not decided. A closed set, so that it can label a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    EmptyLine,
    TooLarge,
    InvalidUtf8,
    NulByte,
    MalformedJson,
    NotAnObject,
    MissingField,
    WrongType,
    UnsupportedSchema,
    InvalidValue,
}

impl DeadLetterReason {
    pub const ALL: [DeadLetterReason; 10] = [
        DeadLetterReason::EmptyLine,
        DeadLetterReason::TooLarge,
        DeadLetterReason::InvalidUtf8,
        DeadLetterReason::NulByte,
        DeadLetterReason::MalformedJson,
        DeadLetterReason::NotAnObject,
        DeadLetterReason::MissingField,
        DeadLetterReason::WrongType,
        DeadLetterReason::UnsupportedSchema,
        DeadLetterReason::InvalidValue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::EmptyLine => "empty_line",
            DeadLetterReason::TooLarge => "too_large",
            DeadLetterReason::InvalidUtf8 => "invalid_utf8",
            DeadLetterReason::NulByte => "nul_byte",
            DeadLetterReason::MalformedJson => "malformed_json",
            DeadLetterReason::NotAnObject => "not_an_object",
            DeadLetterReason::MissingField => "missing_field",
            DeadLetterReason::WrongType => "wrong_type",
            DeadLetterReason::UnsupportedSchema => "unsupported_schema",
            DeadLetterReason::InvalidValue => "invalid_value",
        }
    }
}

/// Where an input came from, so that an operator can find it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SourcePosition {
    File {
        file: String,
        line: u64,
    },
    Kafka {
        topic: String,
        partition: i32,
        offset: i64,
    },
}

impl std::fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourcePosition::File { file, line } => write!(f, "{file}:{line}"),
            SourcePosition::Kafka {
                topic,
                partition,
                offset,
            } => write!(f, "{topic}/{partition}@{offset}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub schema: String,
    pub reason: DeadLetterReason,
    /// A sentence for people: what was wrong and where in the input.
    pub error: String,
    pub source: SourcePosition,
    /// The original bytes when they are UTF-8 …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// … and base64 of them when they are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_base64: Option<String>,
    /// Length of the original input in bytes; more than the kept bytes when it was cut.
    pub original_bytes: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    pub received_at: String,
}

impl DeadLetter {
    /// `kept` is what the reader held of the input (all of it unless it was over the limit),
    /// `total` the input's full length.
    pub fn new(
        reason: DeadLetterReason,
        error: String,
        source: SourcePosition,
        kept: &[u8],
        total: u64,
        received_at: String,
    ) -> DeadLetter {
        let truncated = (kept.len() as u64) < total;
        let (original, original_base64) = match std::str::from_utf8(kept) {
            Ok(text) => (Some(text.to_owned()), None),
            // A cut record may end inside a character; what comes before it is still text.
            Err(err) if truncated && err.error_len().is_none() => {
                let text = String::from_utf8_lossy(&kept[..err.valid_up_to()]).into_owned();
                (Some(text), None)
            }
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(kept)),
            ),
        };
        DeadLetter {
            schema: DEAD_LETTER_SCHEMA.to_owned(),
            reason,
            error,
            source,
            original,
            original_base64,
            original_bytes: total,
            truncated,
            received_at,
        }
    }
}
