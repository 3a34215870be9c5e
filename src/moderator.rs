//! One record through decode → checks → decide, as every source and sink needs it.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::checks::{BuildError, Checks, Scratch};
use crate::contract::{Action, DeadLetter, DeadLetterReason, Decision, SourcePosition};
use crate::decide::decide;
use crate::decode::{decode, DecodeError, Decoded};
use crate::rules::RuleSet;

/// What became of one input record, already encoded as a JSON line.
#[derive(Debug)]
pub enum Outcome {
    Decision {
        action: Action,
        line: Vec<u8>,
    },
    DeadLetter {
        reason: DeadLetterReason,
        line: Vec<u8>,
    },
}

/// The rules and the checks compiled from them: everything needed to decide an event.
#[derive(Debug)]
pub struct Moderator {
    rules: Arc<RuleSet>,
    checks: Checks,
    max_event_bytes: u64,
}

impl Moderator {
    pub fn new(rules: Arc<RuleSet>, max_event_bytes: u64) -> Result<Moderator, BuildError> {
        let checks = Checks::new(&rules)?;
        Ok(Moderator {
            rules,
            checks,
            max_event_bytes,
        })
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn checks(&self) -> &Checks {
        &self.checks
    }

    /// The decision for a decoded event.
    pub fn decide(&self, decoded: &Decoded, scratch: &mut Scratch, decided_at: String) -> Decision {
        let findings = self.checks.run(&decoded.event, scratch);
        decide(&decoded.event, findings, &self.rules.version, decided_at)
    }

    /// Decodes and decides one record. `kept` is what the source held of it, `total_len` its
    /// full length; `now` is the time the decision or dead letter is stamped with.
    pub fn process(
        &self,
        kept: &[u8],
        total_len: u64,
        position: &dyn Fn() -> SourcePosition,
        scratch: &mut Scratch,
        now: &str,
    ) -> Outcome {
        let decoded = if total_len > self.max_event_bytes {
            Err(DecodeError {
                reason: DeadLetterReason::TooLarge,
                message: format!(
                    "the record is {total_len} bytes, over the limit of {} bytes",
                    self.max_event_bytes
                ),
            })
        } else {
            decode(kept)
        };

        match decoded {
            Ok(decoded) => {
                let decision = self.decide(&decoded, scratch, now.to_owned());
                Outcome::Decision {
                    action: decision.action,
                    line: encode_line(&decision),
                }
            }
            Err(err) => {
                let position = position();
                let letter = DeadLetter::new(
                    err.reason,
                    format!("{position}: {}", err.message),
                    position,
                    kept,
                    total_len,
                    now.to_owned(),
                );
                Outcome::DeadLetter {
                    reason: err.reason,
                    line: encode_line(&letter),
                }
            }
        }
    }
}

fn encode_line<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut line = Vec::with_capacity(512);
    // Serialising these plain structs into memory cannot fail: no maps with non-string keys,
    // no failing Serialize impls, no I/O.
    serde_json::to_writer(&mut line, value).expect("decisions and dead letters always serialise");
    line.push(b'\n');
    line
}

/// The current time in the form decisions and dead letters carry: RFC 3339, UTC, milliseconds.
pub fn timestamp(now: OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}
