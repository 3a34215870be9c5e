//! Sinks: where decisions and dead letters go.
//!
//! [`file`] writes JSON lines to a file or standard output; [`kafka`] produces to the
//! decision and dead-letter topics. Records arrive already encoded and in input order; a sink
//! only has to write them and report a write it could not make, which is the one failure that
//! stops a run.

pub mod file;
pub mod kafka;

pub use file::{Output, OutputWriter};
