//! Every Prometheus metric loomguard exposes, in one place.
//!
//! The pipeline, the Kafka worker, the checks and the rule reloader report here; the HTTP
//! listener ([`crate::api`]) renders [`Metrics::render`] at `/metrics`. The names are a
//! contract (README, "Metrics and HTTP"): `loomguard_<name>_<unit>`, `_total` on counters,
//! base units, and only labels with a small fixed set of values (an action, a finding kind, a
//! dead-letter reason class, a check, a partition), never a listing or seller id.
//!
//! The metrics live in a registry of their own rather than the `prometheus` crate's default
//! one, so that nothing a dependency registers leaks into the contract. Every labelled family
//! is created with all its known label values at zero, so that a dashboard or alert query
//! finds the series from the first scrape on.
//!
//! Keeping the hot path cheap: per-event counts are added up per batch by the one thread that
//! writes or acknowledges results ([`Tally`]) and added to the shared counters once per batch;
//! per-check latency is timed on one event in [`CHECK_SAMPLE_EVERY`] per thread.

mod labels;
mod tally;

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::contract::{Action, Kind};

pub use labels::{
    Check, ErrorStage, ReasonClass, ReloadOutcome, Source, IMAGE_OUTCOMES, IMAGE_OVER_LIMIT,
};
pub use tally::{now_unix_seconds, unix_seconds, CheckClock, KindCounts, Tally};

/// One event in this many per thread has its checks timed.
pub const CHECK_SAMPLE_EVERY: u32 = 32;

/// Every metric, each family resolved to its label values once so that counting is an
/// atomic add with no lookup.
pub struct Metrics {
    registry: Registry,
    events_received: [[IntCounter; 2]; 2],
    decisions: [IntCounter; Action::ALL.len()],
    findings: [IntCounter; Kind::ALL.len()],
    dead_letters: [IntCounter; ReasonClass::ALL.len()],
    check_seconds: [Histogram; Check::ALL.len()],
    end_to_end_seconds: Histogram,
    in_flight: IntGauge,
    rules_info: IntGaugeVec,
    rule_reloads: [IntCounter; ReloadOutcome::ALL.len()],
    errors: [IntCounter; ErrorStage::ALL.len()],
    kafka_lag: IntGaugeVec,
    /// The (topic, partition) series `kafka_lag` holds, to drop those no longer assigned.
    lag_series: Mutex<BTreeSet<(String, i32)>>,
    kafka_assigned: IntGauge,
    kafka_pauses: IntCounter,
    kafka_paused: IntGauge,
    /// The version `rules_info` names, if rules are loaded.
    rules_version: Mutex<Option<String>>,
    /// Filled by the image check, per image of a listing.
    pub image_fetches: IntCounterVec,
    /// Filled by the image check, per image that was fetched.
    pub image_decodes: IntCounterVec,
    /// Listing images and protected originals in the image index, after every batch.
    pub image_index_entries: IntGauge,
}

/// Buckets of the per-check histogram: 1 µs to about 65 ms, by factors of 4.
const CHECK_BUCKETS: [f64; 9] = [
    1e-6, 4e-6, 16e-6, 64e-6, 256e-6, 1.024e-3, 4.096e-3, 16.384e-3, 65.536e-3,
];

/// Buckets of the end-to-end histogram: from a few milliseconds (a live stream) to an hour
/// (a replayed backlog).
const END_TO_END_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

impl Metrics {
    /// A fresh registry with every metric registered and every known series at zero.
    pub fn new() -> Metrics {
        let registry = Registry::new();

        let events = counter_vec(
            &registry,
            "loomguard_events_received_total",
            "Records read from a source, by source and by what became of them.",
            &["source", "outcome"],
        );
        let events_received = Source::ALL.map(|source| {
            ["decided", "dead_letter"]
                .map(|outcome| events.with_label_values(&[source.as_str(), outcome]))
        });

        let decisions = counter_vec(
            &registry,
            "loomguard_decisions_total",
            "Decisions written or acknowledged, by action.",
            &["action"],
        );
        let decisions = Action::ALL.map(|a| decisions.with_label_values(&[a.as_str()]));

        let findings = counter_vec(
            &registry,
            "loomguard_findings_total",
            "Findings in decisions, by kind.",
            &["kind"],
        );
        let findings = Kind::ALL.map(|k| findings.with_label_values(&[k.as_str()]));

        let dead_letters = counter_vec(
            &registry,
            "loomguard_dead_letters_total",
            "Records that were not valid events, by reason class.",
            &["reason"],
        );
        let dead_letters = ReasonClass::ALL.map(|r| dead_letters.with_label_values(&[r.as_str()]));

        let check_seconds = histogram_vec(
            &registry,
            "loomguard_check_duration_seconds",
            "Time one check took on one event, sampled on one event in 32 per thread.",
            &["check"],
            CHECK_BUCKETS.to_vec(),
        );
        let check_seconds = Check::ALL.map(|c| check_seconds.with_label_values(&[c.as_str()]));

        let end_to_end_seconds = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "loomguard_end_to_end_latency_seconds",
                    "From an event's occurred_at to its decision being written or acknowledged.",
                )
                .buckets(END_TO_END_BUCKETS.to_vec()),
            ),
        );

        let in_flight = register(
            &registry,
            IntGauge::new(
                "loomguard_in_flight_events",
                "Events read from a source whose results are not yet written or acknowledged.",
            ),
        );

        let rules_info = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "loomguard_rules_info",
                    "The rule set deciding now: 1 for its version.",
                ),
                &["version"],
            ),
        );

        let reloads = counter_vec(
            &registry,
            "loomguard_rule_reloads_total",
            "Rule reloads (SIGHUP or a change in the rule directory), by outcome.",
            &["outcome"],
        );
        let rule_reloads = ReloadOutcome::ALL.map(|o| reloads.with_label_values(&[o.as_str()]));

        let errors = counter_vec(
            &registry,
            "loomguard_errors_total",
            "Failures reading or writing, by stage.",
            &["stage"],
        );
        let errors = ErrorStage::ALL.map(|s| errors.with_label_values(&[s.as_str()]));

        let kafka_lag = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "loomguard_kafka_consumer_lag_messages",
                    "Messages between the consumer's position and the partition's end, per assigned partition (from librdkafka statistics).",
                ),
                &["topic", "partition"],
            ),
        );
        let kafka_assigned = register(
            &registry,
            IntGauge::new(
                "loomguard_kafka_assigned_partitions",
                "Input partitions assigned to this worker.",
            ),
        );
        let kafka_pauses = register(
            &registry,
            IntCounter::new(
                "loomguard_kafka_pauses_total",
                "Times the worker paused its partitions because its bound of batches awaiting acknowledgement held for over 50 ms.",
            ),
        );
        let kafka_paused = register(
            &registry,
            IntGauge::new(
                "loomguard_kafka_paused_partitions",
                "Input partitions paused now, until a batch awaiting acknowledgement is acknowledged.",
            ),
        );

        let image_fetches = counter_vec(
            &registry,
            "loomguard_image_fetches_total",
            "Listing image fetches, by outcome.",
            &["outcome"],
        );
        let image_decodes = counter_vec(
            &registry,
            "loomguard_image_decodes_total",
            "Listing image decodes, by outcome.",
            &["outcome"],
        );
        for outcome in IMAGE_OUTCOMES {
            image_fetches.with_label_values(&[outcome]);
            image_decodes.with_label_values(&[outcome]);
        }
        image_fetches.with_label_values(&[IMAGE_OVER_LIMIT]);
        let image_index_entries = register(
            &registry,
            IntGauge::new(
                "loomguard_image_index_entries",
                "Image hashes held in the in-memory image index.",
            ),
        );

        let build = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "loomguard_build_info",
                    "The running build: 1 for its version.",
                ),
                &["version"],
            ),
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);

        Metrics {
            registry,
            events_received,
            decisions,
            findings,
            dead_letters,
            check_seconds,
            end_to_end_seconds,
            in_flight,
            rules_info,
            rule_reloads,
            errors,
            kafka_lag,
            lag_series: Mutex::new(BTreeSet::new()),
            kafka_assigned,
            kafka_pauses,
            kafka_paused,
            rules_version: Mutex::new(None),
            image_fetches,
            image_decodes,
            image_index_entries,
        }
    }

    /// The text exposition format, as `/metrics` serves it.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding gathered families into memory fails only on invalid families, which
        // `new` cannot build (every name and label is a constant checked by the tests).
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "cannot encode the metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Adds up a batch's results; `now` (Unix seconds) is when they were written or
    /// acknowledged, the end of their end-to-end latency.
    pub fn add(&self, tally: &Tally, now: f64) {
        for (source, counters) in Source::ALL.iter().zip(&self.events_received) {
            if *source == tally.source {
                counters[0].inc_by(tally.decided());
                counters[1].inc_by(tally.dead());
            }
        }
        for (counter, n) in self.decisions.iter().zip(tally.decisions) {
            counter.inc_by(n);
        }
        for (counter, n) in self.findings.iter().zip(tally.findings) {
            counter.inc_by(n);
        }
        for (counter, n) in self.dead_letters.iter().zip(tally.dead_letters) {
            counter.inc_by(n);
        }
        for occurred in &tally.occurred {
            // A producer's clock ahead of ours would make it negative: count it as zero.
            self.end_to_end_seconds.observe((now - occurred).max(0.0));
        }
    }

    pub fn in_flight(&self) -> &IntGauge {
        &self.in_flight
    }

    pub fn check_seconds(&self, check: Check) -> &Histogram {
        &self.check_seconds[check as usize]
    }

    /// Names the rule set deciding from now on.
    pub fn set_rules_version(&self, version: &str) {
        let mut current = self
            .rules_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Set the new series before removing the old one: a scrape in between sees two
        // versions for an instant, never none.
        self.rules_info.with_label_values(&[version]).set(1);
        if let Some(old) = current.as_deref().filter(|old| *old != version) {
            let _ = self.rules_info.remove_label_values(&[old]);
        }
        *current = Some(version.to_owned());
    }

    /// Whether a rule set is loaded (and named by `loomguard_rules_info`).
    pub fn rules_loaded(&self) -> bool {
        self.rules_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    pub fn count_reload(&self, outcome: ReloadOutcome) {
        self.rule_reloads[outcome as usize].inc();
    }

    pub fn reloads(&self, outcome: ReloadOutcome) -> u64 {
        self.rule_reloads[outcome as usize].get()
    }

    pub fn count_error(&self, stage: ErrorStage) {
        self.errors[stage as usize].inc();
    }

    pub fn set_assigned_partitions(&self, count: usize) {
        self.kafka_assigned
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The worker paused `partitions` partitions.
    pub fn count_pause(&self, partitions: usize) {
        self.kafka_pauses.inc();
        self.kafka_paused
            .set(i64::try_from(partitions).unwrap_or(i64::MAX));
    }

    /// The worker resumed the partitions it had paused.
    pub fn count_resume(&self) {
        self.kafka_paused.set(0);
    }

    pub fn assigned_partitions(&self) -> i64 {
        self.kafka_assigned.get()
    }

    /// Replaces the lag series with `lags` (topic, partition, lag): partitions no longer
    /// assigned disappear.
    pub fn set_consumer_lag(&self, lags: &[(String, i32, i64)]) {
        let mut series = self
            .lag_series
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut now = BTreeSet::new();
        for (topic, partition, lag) in lags {
            self.kafka_lag
                .with_label_values(&[topic.as_str(), &partition.to_string()])
                .set(*lag);
            now.insert((topic.clone(), *partition));
        }
        for (topic, partition) in series.difference(&now) {
            let _ = self
                .kafka_lag
                .remove_label_values(&[topic.as_str(), &partition.to_string()]);
        }
        *series = now;
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The process's metrics, which `/metrics` serves.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    // Names and labels are constants: a failure here is a programming error the unit tests
    // catch, never something input can cause.
    let metric = metric.expect("metric names and labels are valid constants");
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once");
    metric
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels))
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> prometheus::HistogramVec {
    register(
        registry,
        prometheus::HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::DeadLetterReason;

    #[test]
    fn every_labelled_family_is_exposed_from_the_start() {
        let text = Metrics::new().render();
        for line in [
            "loomguard_decisions_total{action=\"close_account\"} 0",
            "loomguard_findings_total{kind=\"infringement\"} 0",
            "loomguard_dead_letters_total{reason=\"schema\"} 0",
            "loomguard_events_received_total{outcome=\"dead_letter\",source=\"kafka\"} 0",
            "loomguard_rule_reloads_total{outcome=\"failure\"} 0",
            "loomguard_errors_total{stage=\"delivery\"} 0",
            "loomguard_image_fetches_total{outcome=\"timeout\"} 0",
            "loomguard_check_duration_seconds_count{check=\"duplicates\"} 0",
            "loomguard_end_to_end_latency_seconds_count 0",
            "loomguard_kafka_assigned_partitions 0",
            "loomguard_in_flight_events 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("loomguard_build_info{version=\"0.1.0\"} 1"));
    }

    #[test]
    fn a_tally_adds_up_by_label() {
        let metrics = Metrics::new();
        let mut tally = Tally::new(Source::File);
        let kinds = KindCounts::of(&[Kind::TermsAdlaw, Kind::TermsAdlaw, Kind::Price]);
        tally.decision(Action::Suppress, &kinds, Some(100.0));
        tally.decision(Action::Pass, &KindCounts::default(), None);
        tally.dead_letter(DeadLetterReason::NulByte);
        metrics.add(&tally, 100.5);
        let text = metrics.render();
        for line in [
            "loomguard_decisions_total{action=\"suppress\"} 1",
            "loomguard_decisions_total{action=\"pass\"} 1",
            "loomguard_findings_total{kind=\"terms.adlaw\"} 2",
            "loomguard_findings_total{kind=\"price\"} 1",
            "loomguard_dead_letters_total{reason=\"encoding\"} 1",
            "loomguard_events_received_total{outcome=\"decided\",source=\"file\"} 2",
            "loomguard_events_received_total{outcome=\"dead_letter\",source=\"file\"} 1",
            "loomguard_end_to_end_latency_seconds_sum 0.5",
            "loomguard_end_to_end_latency_seconds_count 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_rules_version_is_replaced_not_added() {
        let metrics = Metrics::new();
        assert!(!metrics.rules_loaded());
        metrics.set_rules_version("aaaa");
        metrics.set_rules_version("bbbb");
        let text = metrics.render();
        assert!(text.contains("loomguard_rules_info{version=\"bbbb\"} 1"));
        assert!(!text.contains("aaaa"));
        assert!(metrics.rules_loaded());
    }

    #[test]
    fn lag_of_revoked_partitions_disappears() {
        let metrics = Metrics::new();
        metrics.set_consumer_lag(&[("t".into(), 0, 5), ("t".into(), 1, 7)]);
        metrics.set_consumer_lag(&[("t".into(), 1, 3)]);
        let text = metrics.render();
        assert!(
            text.contains("loomguard_kafka_consumer_lag_messages{partition=\"1\",topic=\"t\"} 3")
        );
        assert!(!text.contains("partition=\"0\""));
    }

    #[test]
    fn every_dead_letter_reason_has_a_class() {
        let classes: std::collections::BTreeSet<&str> = DeadLetterReason::ALL
            .iter()
            .map(|r| ReasonClass::of(*r).as_str())
            .collect();
        assert_eq!(classes.len(), ReasonClass::ALL.len());
    }

    #[test]
    fn occurred_at_reads_with_its_offset() {
        assert_eq!(unix_seconds("1970-01-01T08:00:01+08:00"), Some(1.0));
        assert_eq!(unix_seconds("yesterday"), None);
    }
}
