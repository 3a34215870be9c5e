//! The duplicate check's state shared through a compacted Kafka topic, so that it survives a
//! worker's restart and follows a seller's partition to whichever worker owns it next.
//!
//! Sits beside the Kafka source and sink. The topic holds one record per live listing, keyed
//! by listing id, its value the [`LiveListing`] as JSON; a listing that is deleted or found to
//! be a copy gets a tombstone (no value), which compaction turns into its removal. Before it
//! consumes any event, a worker replays the topic from the beginning up to its end as it
//! found it; then a thread tails it and applies what other workers write. Each worker writes
//! the changes of every batch together with the batch's results, before the batch's offsets
//! are stored (or inside the batch's transaction), so the state is as durable as the
//! decisions. A header names the worker that wrote a record, so that it skips its own.

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

use crate::checks::duplicates::{LiveListing, StateChange};
use crate::moderator::Moderator;
use crate::sink::kafka::send_record;
use crate::source::kafka::{KafkaConfig, WorkerContext};

/// The header naming the worker that wrote a state record.
pub const WRITER_HEADER: &str = "loomguard-writer";

/// Why the shared state could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create the state topic {topic}: {source}")]
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
    #[error("the state topic {topic} was not replayed within {timeout:?}")]
    Timeout { topic: String, timeout: Duration },
}

/// How long a replay may take before the worker gives up starting.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(120);

/// A worker's end of the state topic.
pub struct SharedState {
    topic: String,
    writer: String,
    stop: Arc<AtomicBool>,
    tail: Option<std::thread::JoinHandle<()>>,
}

impl SharedState {
    /// Creates the topic if it is missing (compacted), replays it into `moderator`, and starts
    /// tailing it. Returns once the replay is complete, with the number of records applied.
    pub async fn start(
        config: &KafkaConfig,
        topic: &str,
        writer: &str,
        moderator: Arc<Moderator>,
    ) -> Result<(SharedState, u64), StateError> {
        create_compacted(config, topic).await?;
        moderator.keep_state_journal();
        let consumer = assigned_consumer(config, topic)?;
        let ends = tokio::task::block_in_place(|| ends(&consumer, topic))?;
        let replayed = tokio::task::block_in_place(|| replay(&consumer, &ends, &moderator))
            .map_err(|_| StateError::Timeout {
                topic: topic.to_owned(),
                timeout: REPLAY_TIMEOUT,
            })?;

        let stop = Arc::new(AtomicBool::new(false));
        let tail = {
            let stop = stop.clone();
            let writer = writer.to_owned();
            std::thread::Builder::new()
                .name("state-tail".to_owned())
                .spawn(move || tail(&consumer, &writer, &moderator, &stop))
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

    /// Queues a batch's state changes and returns their pending acknowledgements.
    pub async fn send(
        &self,
        producer: &FutureProducer<WorkerContext>,
        changes: &[StateChange],
    ) -> Result<Vec<DeliveryFuture>, KafkaError> {
        let mut deliveries = Vec::with_capacity(changes.len());
        for change in changes {
            let (key, value) = match change {
                StateChange::Live(live) => (
                    live.listing.as_str(),
                    // A plain struct of strings and numbers always serialises.
                    Some(serde_json::to_vec(live).unwrap_or_default()),
                ),
                StateChange::Gone(listing) => (listing.as_str(), None),
            };
            let headers = OwnedHeaders::new().insert(Header {
                key: WRITER_HEADER,
                value: Some(self.writer.as_bytes()),
            });
            let mut record = FutureRecord::to(&self.topic)
                .key(key.as_bytes())
                .headers(headers);
            if let Some(value) = &value {
                record = record.payload(value.as_slice());
            }
            deliveries.push(send_record(producer, record).await?);
        }
        Ok(deliveries)
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

/// Creates `topic` with `cleanup.policy=compact` and the broker's default partitions and
/// replication, unless it exists.
async fn create_compacted(config: &KafkaConfig, topic: &str) -> Result<(), StateError> {
    let error = |source| StateError::Create {
        topic: topic.to_owned(),
        source,
    };
    let admin: AdminClient<_> = client(config, &[]).create().map_err(error)?;
    let new =
        NewTopic::new(topic, -1, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics([&new], &options).await.map_err(error)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
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
    ends: &[(i32, i64)],
    moderator: &Moderator,
) -> Result<u64, ()> {
    let started = Instant::now();
    let mut applied = 0;
    // The position, not the last record seen: transaction markers take offsets too, and an
    // aborted transaction's records never arrive.
    while !reached_all(consumer, ends) {
        if started.elapsed() > REPLAY_TIMEOUT {
            return Err(());
        }
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        if let Some(change) = change_of(&message) {
            moderator.apply_state_changes([change]);
            applied += 1;
        }
    }
    Ok(applied)
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
    moderator: &Moderator,
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
        if let Some(change) = change_of(&message) {
            moderator.apply_state_changes([change]);
        }
    }
}

/// The state change a record holds; `None` for a record that is not one of ours.
fn change_of<M: Message>(message: &M) -> Option<StateChange> {
    let listing = std::str::from_utf8(message.key()?).ok()?;
    match message.payload() {
        None => Some(StateChange::Gone(listing.to_owned())),
        Some(value) => match serde_json::from_slice::<LiveListing>(value) {
            Ok(live) if live.listing == listing => Some(StateChange::Live(live)),
            _ => {
                tracing::debug!(listing, "state record that is no live listing skipped");
                None
            }
        },
    }
}
