//! Sources: where listing events come from.
//!
//! [`file`] reads JSON lines from a file or standard input, the embedded default that needs
//! no broker; [`kafka`] is a consumer-group member on the input topic. A source hands out raw
//! records with their positions; decoding is the next stage's job, so that a bad record never
//! stops the source.

pub mod file;
pub mod kafka;

pub use file::{Batch, Input, LineReader, RecordMeta};
