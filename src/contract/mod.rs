//! The JSON shapes loomguard shares with the rest of the platform.
//!
//! These are contracts: the publishing pipeline writes [`ListingEvent`]s, downstream systems read
//! [`Decision`]s and [`DeadLetter`]s, and dashboards group by [`Kind`]. Each shape carries a
//! `schema` field naming its version; new fields are added as optional, never by changing the
//! meaning of an existing one. `docs/contracts.md` documents them for people outside this crate.

mod dead_letter;
mod decision;
mod event;

pub use dead_letter::{DeadLetter, DeadLetterReason, SourcePosition, DEAD_LETTER_SCHEMA};
pub use decision::{Action, Decision, Finding, Kind, DECISION_SCHEMA};
pub use event::{FieldName, Listing, ListingEvent, Op, Price, Seller, EVENT_SCHEMA};
