//! The checks: independent functions of a listing event and the rules to findings.
//!
//! [`Checks`] is built once per rule set and shared by every worker thread; each call to
//! [`Checks::run`] looks at one event and never at another, which is what lets the pipeline
//! spread events over threads. A thread keeps its buffers in a [`Scratch`] so that the hot path
//! does not allocate for text it only reads.
//!
//! | module | kinds | handbook |
//! | --- | --- | --- |
//! | [`terms`] | `terms.prohibited`, `terms.adlaw`, `licence` | 3.3, 3.4 |

pub mod terms;

use crate::contract::{Finding, ListingEvent, Op};
use crate::normalize::Normalized;
use crate::rules::RuleSet;

pub use terms::TermMatcher;

/// Every check, compiled for one rule set.
#[derive(Debug)]
pub struct Checks {
    terms: TermMatcher,
}

/// Per-thread buffers the checks reuse from one event to the next.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) normalized: Normalized,
    pub(crate) seller_licences: Vec<String>,
}

impl Checks {
    pub fn new(rules: &RuleSet) -> Result<Checks, BuildError> {
        Ok(Checks {
            terms: TermMatcher::new(&rules.terms)?,
        })
    }

    /// All findings for one event, in the order the checks produce them.
    pub fn run(&self, event: &ListingEvent, scratch: &mut Scratch) -> Vec<Finding> {
        let mut findings = Vec::new();
        if event.op == Op::Delete {
            return findings;
        }
        self.terms.scan(event, scratch, &mut findings);
        findings
    }

    pub fn terms(&self) -> &TermMatcher {
        &self.terms
    }
}

/// A rule set that validated but could not be compiled into a matcher.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the {what}: {reason}")]
pub struct BuildError {
    pub what: String,
    pub reason: String,
}
