//! loomguard moderates supplier product listings of a B2B textile marketplace as they stream
//! in: every listing change gets exactly one decision (pass, suppress from search, take down,
//! close the account) with the evidence that led to it.
//!
//! # Layout
//!
//! The modules follow the data flow:
//!
//! ```text
//! source ──► decode ──► checks ──► decide ──► sink
//!   │           │                              ▲
//!   │           └── dead letters ──────────────┘
//!   └── pipeline: threads, batches and order around all of it
//! ```
//!
//! - [`source`]: where events come from (JSON lines from a file or stdin, or a Kafka topic).
//! - [`decode`]: bytes to a typed [`contract::ListingEvent`], or a dead-letter reason.
//! - [`checks`]: one module per check, each a function of an event and the rules.
//! - [`images`]: listing images from URL to perceptual hash, and the index they are matched
//!   in (used by [`checks::images`] between the parallel and the ordered checks).
//! - [`api`]: the complaint API (axum), served beside the run by `run --listen`.
//! - [`decide`]: findings to one [`contract::Decision`].
//! - [`sink`]: where decisions and dead letters go (files, or Kafka topics).
//! - [`moderator`]: one record through decode, checks and decide.
//! - [`pipeline`]: the main job over files, in parallel and in input order.
//! - [`worker`]: the main job as a Kafka consumer-group member, at-least-once or in
//!   transactions.
//! - [`state`]: state shared by the workers through compacted topics: the duplicate check's
//!   live listings and the image index log.
//! - [`contract`]: the JSON shapes shared with the rest of the platform.
//! - [`rules`]: loading and validating the rule files under `rules/`.
//! - [`config`]: `run`'s settings from a TOML file.
//! - [`normalize`]: the text normalisation the term matchers rely on.
//! - [`explain`]: a moderator's reading of one decision.
//! - [`generate`]: realistic synthetic events for benchmarks.
//! - [`metrics`]: every Prometheus metric, counted by the pipeline and the worker.
//! - [`api`]: the HTTP listener beside the pipeline: `/metrics`, `/healthz`, `/readyz`.
//! - [`reload`]: hot reload of the rules on SIGHUP and on changes to the rule directory.

pub mod api;
pub mod checks;
pub mod config;
pub mod contract;
pub mod decide;
pub mod decode;
pub mod explain;
pub mod generate;
pub mod images;
pub mod metrics;
pub mod moderator;
pub mod normalize;
pub mod pipeline;
pub mod reload;
pub mod rules;
pub mod sink;
pub mod source;
pub mod state;
pub mod worker;
