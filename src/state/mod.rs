//! State shared by the workers through compacted Kafka topics, so that it survives a worker's
//! restart and reaches every worker of the group.
//!
//! Sits beside the Kafka source and sink. Two kinds of state travel this way, each in a topic
//! of its own and each a [`Replica`]: the duplicate check's live listings ([`listings`]) and
//! the image index log ([`images`]). Whatever the state, the mechanism is the same: a record's
//! key names the thing it describes, so that compaction keeps only its latest record, and a
//! tombstone (no value) removes it. Before it consumes any event, a worker replays each topic
//! from the beginning up to its end as it found it; then a thread tails it and applies what
//! other workers write. Each worker writes the records of every batch together with the
//! batch's results, before the batch's offsets are stored (or inside the batch's
//! transaction), so the state is as durable as the decisions. A header names the worker that
//! wrote a record, so that it skips its own. [`StateTopics`] is a worker's set of them, as its
//! configuration names them.

pub mod images;
pub mod listings;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::future_producer::DeliveryFuture;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::checks::images::ImageCheck;
use crate::moderator::Moderator;
use crate::sink::kafka::send_record;
use crate::source::kafka::{KafkaConfig, WorkerContext};
use images::ImageIndex;
use listings::Listings;

/// The header naming the worker that wrote a state record.
pub const WRITER_HEADER: &str = "loomguard-writer";

/// Why the shared state could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create the topic {topic}: {source}")]
    Create {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("cannot read the state topic {topic}: {source}")]
    Read {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("the replay of the state topic {topic} made no progress for {timeout:?}")]
    Timeout { topic: String, timeout: Duration },
}

/// How long a replay may go without reading a record before the worker gives up starting. A
/// bound on the whole replay would fail a large topic that is being read steadily.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(120);

/// How often a long replay says how far it is.
const REPLAY_REPORT: Duration = Duration::from_secs(10);

/// Records read between two looks at the consumer's position, which copies the state of
/// every partition.
const POSITION_EVERY: u32 = 4096;

/// One record for a state topic: what it is about, and its value or `None` for a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRecord {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// A state a topic replicates: how a record read from the topic is applied.
pub trait Replica: Send + Sync + 'static {
    /// Applies one record (`value` `None` for a tombstone); `false` when the record is not one
    /// of this state's, which is then skipped.
    fn apply(&self, key: &[u8], value: Option<&[u8]>) -> bool;
}

/// A worker's end of a state topic.
pub struct SharedState {
    topic: String,
    writer: String,
    stop: Arc<AtomicBool>,
    tail: Option<std::thread::JoinHandle<()>>,
}

impl SharedState {
    /// Creates the topic if it is missing (compacted), replays it into `replica`, and starts
    /// tailing it. Returns once the replay is complete, with the number of records applied.
    pub async fn start(
        config: &KafkaConfig,
        topic: &str,
        writer: &str,
        replica: Arc<dyn Replica>,
    ) -> Result<(SharedState, u64), StateError> {
        create_missing(config, topic, Cleanup::Compact).await?;
        let consumer = assigned_consumer(config, topic)?;
        let ends = tokio::task::block_in_place(|| ends(&consumer, topic))?;
        let replayed =
            tokio::task::block_in_place(|| replay(&consumer, topic, &ends, replica.as_ref()))
                .map_err(|_| StateError::Timeout {
                    topic: topic.to_owned(),
                    timeout: REPLAY_TIMEOUT,
                })?;

        let stop = Arc::new(AtomicBool::new(false));
        let tail = {
            let stop = stop.clone();
            let writer = writer.to_owned();
            std::thread::Builder::new()
                .name(format!("tail-{topic}"))
                .spawn(move || tail(&consumer, &writer, replica.as_ref(), &stop))
                .ok()
        };
        Ok((
            SharedState {
                topic: topic.to_owned(),
                writer: writer.to_owned(),
                stop,
                tail,
            },
            replayed,
        ))
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Queues records and returns their pending acknowledgements.
    pub async fn send(
        &self,
        producer: &FutureProducer<WorkerContext>,
        records: &[StateRecord],
    ) -> Result<Vec<DeliveryFuture>, KafkaError> {
        send_records(producer, &self.topic, &self.writer, records).await
    }
}

/// Queues records for a state topic as written by `writer`, and returns their pending
/// acknowledgements. The complaint API writes through this too, beside the worker's stream.
pub async fn send_records(
    producer: &FutureProducer<WorkerContext>,
    topic: &str,
    writer: &str,
    records: &[StateRecord],
) -> Result<Vec<DeliveryFuture>, KafkaError> {
    let mut deliveries = Vec::with_capacity(records.len());
    for StateRecord { key, value } in records {
        let headers = OwnedHeaders::new().insert(Header {
            key: WRITER_HEADER,
            value: Some(writer.as_bytes()),
        });
        let mut record = FutureRecord::to(topic).key(key.as_bytes()).headers(headers);
        if let Some(value) = value {
            record = record.payload(value.as_slice());
        }
        deliveries.push(send_record(producer, record).await?);
    }
    Ok(deliveries)
}

/// `records` with only the last of each key, in the order of those last ones: what a
/// compacted topic keeps of them.
pub fn latest_per_key(records: Vec<StateRecord>) -> Vec<StateRecord> {
    let mut seen = std::collections::HashSet::with_capacity(records.len());
    let mut latest: Vec<StateRecord> = records
        .into_iter()
        .rev()
        .filter(|record| seen.insert(record.key.clone()))
        .collect();
    latest.reverse();
    latest
}

/// The worker's ends of the state topics it shares with the rest of the group.
pub struct StateTopics {
    /// The duplicate check's live listings.
    listings: Option<SharedState>,
    /// The image index log, and the image check whose records it carries.
    images: Option<(SharedState, Arc<ImageCheck>)>,
}

impl StateTopics {
    /// Replays every state topic the configuration names, and starts tailing them.
    pub async fn start(
        config: &KafkaConfig,
        moderator: &Arc<Moderator>,
    ) -> Result<StateTopics, StateError> {
        let writer = &config.transactional_id;
        let listings = match &config.state_topic {
            Some(topic) => {
                moderator.keep_state_journal();
                let replica = Arc::new(Listings(moderator.clone()));
                let (shared, replayed) = SharedState::start(config, topic, writer, replica).await?;
                tracing::info!(topic, replayed, "shared state replayed");
                Some(shared)
            }
            None => None,
        };
        let images = match (&config.image_topic, moderator.images()) {
            (Some(topic), Some(check)) => {
                check.keep_journal();
                let replica = Arc::new(ImageIndex(check.clone()));
                let (shared, replayed) = SharedState::start(config, topic, writer, replica).await?;
                check.flush();
                check.set_replayed();
                let (listing_images, original_hashes) = {
                    let state = check.state();
                    (state.listing_images(), state.original_hashes())
                };
                tracing::info!(
                    topic,
                    replayed,
                    listing_images,
                    original_hashes,
                    "image index replayed"
                );
                Some((shared, check.clone()))
            }
            _ => None,
        };
        Ok(StateTopics { listings, images })
    }

    /// The records a batch's decisions made, per state topic.
    pub fn take_records(&self, moderator: &Moderator) -> Vec<(&SharedState, Vec<StateRecord>)> {
        let mut records = Vec::new();
        // Taken whether or not it is shared, so that an unshared journal never grows.
        let changes = moderator.take_state_changes();
        if let Some(shared) = &self.listings {
            records.push((shared, listings::records(&changes)));
        }
        if let Some((shared, check)) = &self.images {
            records.push((shared, images::records(&check.take_journal())));
        }
        records.retain(|(_, records)| !records.is_empty());
        records
    }
}

impl Drop for SharedState {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(tail) = self.tail.take() {
            let _ = tail.join();
        }
    }
}

/// How a topic created by a worker drops its old records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Keeps the latest record of each key: the state topics.
    Compact,
    /// The broker's default: the decision and dead-letter topics.
    BrokerDefault,
}

/// Creates `topic` with the broker's default partitions and replication unless it exists, and
/// says so at info when it did. A broker that does not create topics on first use would
/// otherwise refuse every record of a worker whose output topic was never made.
pub async fn create_missing(
    config: &KafkaConfig,
    topic: &str,
    cleanup: Cleanup,
) -> Result<(), StateError> {
    let error = |source| StateError::Create {
        topic: topic.to_owned(),
        source,
    };
    let admin: AdminClient<_> = client(config, &[]).create().map_err(error)?;
    let mut new = NewTopic::new(topic, -1, TopicReplication::Fixed(-1));
    if cleanup == Cleanup::Compact {
        new = new.set("cleanup.policy", "compact");
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics([&new], &options).await.map_err(error)?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, ?cleanup, "created the missing topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(error(KafkaError::AdminOp(code))),
        }
    }
    Ok(())
}

/// A client of the worker's brokers with `own` settings, then the operator's properties.
fn client(config: &KafkaConfig, own: &[(&str, &str)]) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.brokers);
    for (key, value) in own {
        client.set(*key, *value);
    }
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    client
}

/// A consumer of every partition of `topic` from its beginning, outside any group.
fn assigned_consumer(
    config: &KafkaConfig,
    topic: &str,
) -> Result<BaseConsumer<WorkerContext>, StateError> {
    let error = |source| StateError::Read {
        topic: topic.to_owned(),
        source,
    };
    let group = format!("{}-state", config.group_id);
    // The session timeout as the worker's own consumer has it, so that the operator's
    // properties (a max.poll.interval.ms of theirs) fit both.
    let client = client(
        config,
        &[
            ("group.id", &group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("isolation.level", "read_committed"),
            ("session.timeout.ms", "10000"),
        ],
    );
    let consumer: BaseConsumer<WorkerContext> = client
        .create_with_context(WorkerContext::default())
        .map_err(error)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .map_err(error)?;
    let mut partitions = TopicPartitionList::new();
    for found in metadata.topics().iter().filter(|t| t.name() == topic) {
        for partition in found.partitions() {
            partitions
                .add_partition_offset(topic, partition.id(), Offset::Beginning)
                .map_err(error)?;
        }
    }
    consumer.assign(&partitions).map_err(error)?;
    Ok(consumer)
}

/// Per partition, the offset the replay must reach: the end of the topic when it started.
fn ends(
    consumer: &BaseConsumer<WorkerContext>,
    topic: &str,
) -> Result<Vec<(i32, i64)>, StateError> {
    let assignment = consumer.assignment().map_err(|source| StateError::Read {
        topic: topic.to_owned(),
        source,
    })?;
    let mut ends = Vec::new();
    for element in assignment.elements() {
        let (low, high) = consumer
            .fetch_watermarks(topic, element.partition(), Duration::from_secs(30))
            .map_err(|source| StateError::Read {
                topic: topic.to_owned(),
                source,
            })?;
        if high > low {
            ends.push((element.partition(), high));
        }
    }
    Ok(ends)
}

/// Applies every record up to `ends`; `Err` when that takes longer than the replay timeout.
fn replay(
    consumer: &BaseConsumer<WorkerContext>,
    topic: &str,
    ends: &[(i32, i64)],
    replica: &dyn Replica,
) -> Result<u64, ()> {
    let started = Instant::now();
    let mut last_read = started;
    let mut last_report = started;
    let mut applied = 0;
    let mut unchecked = 0;
    // The position, not the last record seen: transaction markers take offsets too, and an
    // aborted transaction's records never arrive. It is looked at after every few thousand
    // records, and whenever a poll comes back empty, which it does once the ends are read.
    loop {
        if unchecked == 0 && reached_all(consumer, ends) {
            return Ok(applied);
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                if apply(replica, &message) {
                    applied += 1;
                }
                last_read = Instant::now();
                unchecked = (unchecked + 1) % POSITION_EVERY;
            }
            _ => {
                if last_read.elapsed() > REPLAY_TIMEOUT {
                    return Err(());
                }
                unchecked = 0;
            }
        }
        if last_report.elapsed() > REPLAY_REPORT {
            last_report = Instant::now();
            tracing::info!(
                topic,
                applied,
                seconds = started.elapsed().as_secs(),
                "replaying the state topic"
            );
        }
    }
}

/// Whether the consumer's position in every partition is at its end or beyond.
fn reached_all(consumer: &BaseConsumer<WorkerContext>, ends: &[(i32, i64)]) -> bool {
    let Ok(positions) = consumer.position() else {
        return false;
    };
    ends.iter().all(|&(partition, end)| {
        positions.elements().iter().any(|element| {
            element.partition() == partition
                && matches!(element.offset(), Offset::Offset(at) if at >= end)
        })
    })
}

/// Applies what other workers write, until told to stop.
fn tail(
    consumer: &BaseConsumer<WorkerContext>,
    writer: &str,
    replica: &dyn Replica,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Acquire) {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let own = message.headers().is_some_and(|headers| {
            headers
                .iter()
                .any(|h| h.key == WRITER_HEADER && h.value == Some(writer.as_bytes()))
        });
        if own {
            continue;
        }
        apply(replica, &message);
    }
}

/// Applies a record that has a key; a keyless one is no state's.
fn apply<M: Message>(replica: &dyn Replica, message: &M) -> bool {
    match message.key() {
        Some(key) => replica.apply(key, message.payload()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: Option<&str>) -> StateRecord {
        StateRecord {
            key: key.to_owned(),
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    #[test]
    fn latest_per_key_keeps_the_last_record_of_each_key_in_their_order() {
        let records = vec![
            record("P1", Some("a")),
            record("P2", Some("b")),
            record("P1", None),
            record("P3", Some("c")),
            record("P2", Some("d")),
        ];
        assert_eq!(
            latest_per_key(records),
            [
                record("P1", None),
                record("P3", Some("c")),
                record("P2", Some("d"))
            ]
        );
    }
}
