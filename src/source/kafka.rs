//! Listing events from a Kafka topic: one member of a consumer group that stores offsets only
//! when told to.
//!
//! Auto-commit stays on but auto-store is off: librdkafka commits, periodically and on
//! revoke, only offsets the worker has stored, and the worker stores an offset only after the
//! broker acknowledged the decisions of that message and every earlier one of its partition.
//! That is what makes the pipeline at-least-once.

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};

/// Where a worker connects and what it reads and writes. Defaults are the platform's topic
/// names from DESIGN.md.
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
    /// librdkafka properties passed through to both clients (TLS, SASL, timeouts …); they
    /// override loomguard's own settings.
    pub properties: Vec<(String, String)>,
    /// Consume-transform-produce in Kafka transactions, the input offsets sent to each.
    pub exactly_once: bool,
    /// The producer's `transactional.id` in exactly-once mode.
    pub transactional_id: String,
}

/// Routes librdkafka's logs and errors into `tracing`, commits on revoke, and notices when
/// the consumer has left its group.
#[derive(Debug, Clone, Default)]
pub struct WorkerContext {
    left_group: Arc<AtomicBool>,
}

impl WorkerContext {
    /// Whether the consumer left its group since the last call. librdkafka leaves the group
    /// when the application has not polled for `max.poll.interval.ms` (a stalled process, a
    /// paused container) and says so only in a log line; it rejoins on the next poll, but the
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
        if facility == "MAXPOLL" {
            self.note_left_group();
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(facility, "librdkafka: {message}"),
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
        tracing::warn!(%error, "kafka client error: {reason}");
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

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
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
        .set("session.timeout.ms", "10000")
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
        client.create_with_context(WorkerContext::default())?;
    consumer.subscribe(&[&config.input_topic])?;
    Ok(consumer)
}
