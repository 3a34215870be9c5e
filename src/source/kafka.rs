//! Listing events from a Kafka topic: one member of a consumer group that stores offsets only
//! when told to.
//!
//! Auto-commit stays on but auto-store is off: librdkafka commits, periodically and on
//! revoke, only offsets the worker has stored, and the worker stores an offset only after the
//! broker acknowledged the decisions of that message and every earlier one of its partition.
//! That is what makes the pipeline at-least-once.
//!
//! The consumer's context also feeds the metrics: the partitions assigned after each
//! rebalance, and the lag of each from librdkafka's statistics (`statistics.interval.ms`).

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::Statistics;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// librdkafka's errors and warnings, and client errors: at most one per 10 s at their level,
/// the rest at debug.
static WARNINGS: RateLimit = RateLimit::new(10);

/// Lets one event through per interval, across threads, without a lock.
pub struct RateLimit {
    seconds: u64,
    /// Unix second of the last event let through, plus one (0: none yet).
    last: AtomicU64,
}

impl RateLimit {
    pub const fn new(seconds: u64) -> RateLimit {
        RateLimit {
            seconds,
            last: AtomicU64::new(0),
        }
    }

    /// Whether this event may be logged at its level.
    pub fn allow(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 1;
        let last = self.last.load(Ordering::Relaxed);
        (last == 0 || now >= last + self.seconds)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// How often librdkafka reports the statistics the lag metric is read from.
pub const STATISTICS_INTERVAL_MS: &str = "5000";

/// Where a worker connects and what it reads and writes. The command line's defaults are the
/// platform's topic names, listed in the README's Kafka mode section.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port,host:port`.
    pub brokers: String,
    pub group_id: String,
    pub input_topic: String,
    pub output_topic: String,
    pub dead_letter_topic: String,
    /// The compacted topic of the shared duplicate state, if the worker shares it.
    pub state_topic: Option<String>,
    /// The compacted topic of the image index log, if the worker keeps it there.
    pub image_topic: Option<String>,
    /// librdkafka properties passed through to both clients (TLS, SASL, timeouts …); they
    /// override loomguard's own settings.
    pub properties: Vec<(String, String)>,
    /// Consume-transform-produce in Kafka transactions, the input offsets sent to each.
    pub exactly_once: bool,
    /// The producer's `transactional.id` in exactly-once mode.
    pub transactional_id: String,
}

/// Routes librdkafka's logs and errors into `tracing`, commits on revoke, feeds the
/// assigned-partitions and lag metrics, and notices when the consumer has left its group.
/// The default is a client whose statistics feed no metric (the shared state's consumer).
#[derive(Debug, Clone, Default)]
pub struct WorkerContext {
    /// Only the consumer's statistics carry the lag; a producer given
    /// `statistics.interval.ms` through `--kafka-property` must not clear it.
    consumer: bool,
    left_group: Arc<AtomicBool>,
}

impl WorkerContext {
    pub fn consumer() -> WorkerContext {
        WorkerContext {
            consumer: true,
            ..WorkerContext::default()
        }
    }

    pub fn producer() -> WorkerContext {
        WorkerContext::default()
    }

    /// Whether the consumer left its group since the last call. librdkafka leaves the group
    /// when the application has not polled for `max.poll.interval.ms`, or its session timed
    /// out (a stalled process, a paused container), and says so only in a log line; it rejoins on the next poll, but the
    /// worker must know, because its partitions may have moved meanwhile.
    pub fn take_left_group(&self) -> bool {
        self.left_group.swap(false, Ordering::AcqRel)
    }

    /// Marks the consumer as having left its group.
    pub fn note_left_group(&self) {
        self.left_group.store(true, Ordering::Release);
    }
}

impl ClientContext for WorkerContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // MAXPOLL: no poll within max.poll.interval.ms; SESSTMOUT: no heartbeat answered
        // within the session (a paused process sees whichever its timers fire first).
        if matches!(facility, "MAXPOLL" | "SESSTMOUT") {
            self.note_left_group();
        }
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::error!(facility, "librdkafka: {message}")
            }
            // A broker that cannot be reached is reported as an error on every retry.
            RDKafkaLogLevel::Error if WARNINGS.allow() => {
                tracing::error!(facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Warning if WARNINGS.allow() => {
                tracing::warn!(facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning => {
                tracing::debug!(facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::debug!(facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Debug => tracing::trace!(facility, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PollExceeded) {
            self.note_left_group();
        }
        // An unreachable broker reports the same error every few hundred milliseconds.
        if WARNINGS.allow() {
            tracing::warn!(%error, "kafka client error: {reason}");
        } else {
            tracing::debug!(%error, "kafka client error: {reason}");
        }
    }

    /// Only the consumer asks for statistics; each report replaces the lag series.
    fn stats(&self, statistics: Statistics) {
        let lags = consumer_lags(&statistics);
        tracing::trace!(
            consumer = self.consumer,
            partitions = lags.len(),
            "librdkafka statistics"
        );
        if self.consumer {
            crate::metrics::global().set_consumer_lag(&lags);
        }
    }
}

/// (topic, partition, lag) of every partition the consumer fetches and knows the lag of.
/// librdkafka lists every partition of a subscribed topic; those it does not fetch have the
/// fetch state `none` (or `stopped`), and -1 stands for a lag not known yet. Partition -1 is
/// librdkafka's internal unassigned partition.
pub fn consumer_lags(statistics: &Statistics) -> Vec<(String, i32, i64)> {
    let mut lags = Vec::new();
    for (name, topic) in &statistics.topics {
        for (id, partition) in &topic.partitions {
            let fetching = !matches!(partition.fetch_state.as_str(), "none" | "stopped");
            if *id >= 0 && fetching && partition.consumer_lag >= 0 {
                lags.push((name.clone(), *id, partition.consumer_lag));
            }
        }
    }
    lags.sort();
    lags
}

/// Sets the assigned-partitions gauge from the consumer's current assignment.
fn count_assignment(consumer: &BaseConsumer<WorkerContext>) {
    match consumer.assignment() {
        Ok(assignment) => crate::metrics::global().set_assigned_partitions(assignment.count()),
        Err(error) => tracing::debug!(%error, "cannot read the assignment"),
    }
}

impl ConsumerContext for WorkerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // Everything stored so far has acknowledged decisions; commit it before another
            // member takes the partitions over, so that it starts where this one stopped.
            if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(%error, "nothing to commit on revoke");
            }
            tracing::info!(partitions = partitions.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        count_assignment(consumer);
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = partitions.count(), "partitions assigned")
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance failed"),
        }
    }
}

/// A consumer subscribed to the input topic.
pub fn consumer(config: &KafkaConfig) -> KafkaResult<StreamConsumer<WorkerContext>> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        // librdkafka's prefetch queue is the only buffer before the worker's own batch:
        // bound it so that a topic with millions of unread events costs no more memory.
        .set("queued.max.messages.kbytes", "16384")
        // With the queue that small, librdkafka's default second of back-off once it is full
        // left the worker idle for half a second every few batches.
        .set("fetch.queue.backoff.ms", "20")
        .set("session.timeout.ms", "10000")
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        .set_log_level(RDKafkaLogLevel::Info);
    if config.exactly_once {
        // Offsets travel inside the producer's transactions instead.
        client
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
    }
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    let consumer: StreamConsumer<WorkerContext> =
        client.create_with_context(WorkerContext::consumer())?;
    consumer.subscribe(&[&config.input_topic])?;
    Ok(consumer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_lets_one_through_per_interval() {
        let limit = RateLimit::new(3600);
        assert!(limit.allow());
        assert!(!limit.allow());
        assert!(!limit.allow());
    }
}
