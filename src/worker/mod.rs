//! The Kafka worker: consume a batch, decide it, produce the results, and commit the batch's
//! offsets only once its results are safe: acknowledged by the broker (`at_least_once`) or
//! committed with them in one transaction (`exactly_once`).
//!
//! This module starts the clients and the shared state (waiting for a broker that is not
//! there yet), fetches batches, runs the checks on them and sends their results, for either
//! mode. Per partition, the results are produced in offset order through an idempotent
//! producer, which keeps them in that order. Memory is bounded by a few batches plus
//! librdkafka's bounded queues.
//!
//! On SIGTERM or SIGINT the worker stops fetching, finishes the batches it holds, flushes the
//! producer, commits and exits, within the shutdown deadline.

mod at_least_once;
mod exactly_once;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::future_producer::DeliveryFuture;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use time::OffsetDateTime;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::contract::SourcePosition;
use crate::metrics::ErrorStage;
use crate::moderator::{timestamp, Moderator, Outcome};
use crate::pipeline::{prepare_batch, PreparedBatch, Record, Stages, Summary};
use crate::sink::kafka::{producer, send_record, source_headers};
use crate::source::kafka::{consumer, KafkaConfig, WorkerContext};
use crate::state::{create_missing, Cleanup, SharedState, StateRecord, StateTopics};

/// A Kafka run.
#[derive(Debug, Clone)]
pub struct KafkaRun {
    pub config: KafkaConfig,
    /// Messages per batch at most.
    pub batch_records: usize,
    /// How long a batch waits for more messages after its first.
    pub linger: Duration,
    /// Bytes of a message kept for its dead letter when it is over the size limit.
    pub max_record_bytes: usize,
    /// Time allowed, after a stop signal, to finish the batch, flush and commit.
    pub shutdown_deadline: Duration,
    /// Batches whose results may await the broker's acknowledgement at once (at least one);
    /// past it the partitions are paused.
    pub batches_in_flight: usize,
}

/// Why a worker stopped other than by a signal.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot start the Kafka clients: {0}")]
    Start(#[source] KafkaError),
    #[error("the broker did not acknowledge a result ({0}); offsets from this batch on stay uncommitted and will be decided again")]
    Delivery(#[source] KafkaError),
    #[error("cannot start the worker's threads: {0}")]
    Threads(#[source] std::io::Error),
    #[error("cannot listen for stop signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error("the transaction cannot be aborted ({0}): the producer was fenced, by a newer one with its transactional id or by the coordinator timing the transaction out; exiting so that the worker is restarted")]
    Fenced(#[source] KafkaError),
    #[error("cannot rewind {topic} [{partition}] after an aborted transaction ({source}); exiting so that the batch is decided again from the committed offset")]
    Rewind {
        topic: String,
        partition: i32,
        #[source]
        source: KafkaError,
    },
    #[error("the worker did not drain within the shutdown deadline of {0:?}; results not acknowledged by then are decided again by the partitions' next owner")]
    Deadline(Duration),
    #[error("the consumer left its group {0} times within {LEFT_GROUP_WINDOW:?}; exiting so that the worker is restarted")]
    LeftGroup(usize),
}

/// How often the consumer may leave its group within [`LEFT_GROUP_WINDOW`] before the worker
/// gives up: once is a stall the worker survives, again and again is a worker that cannot
/// keep up and is better restarted.
const LEFT_GROUP_LIMIT: usize = 3;
const LEFT_GROUP_WINDOW: Duration = Duration::from_secs(600);

/// Times the consumer was found outside its group, within the window.
#[derive(Default)]
struct GroupWatch {
    left_at: std::collections::VecDeque<Instant>,
}

impl GroupWatch {
    /// Notes whether the consumer left its group since the last look; an error once it has
    /// left too often.
    fn check(&mut self, context: &WorkerContext) -> Result<(), WorkerError> {
        if !context.take_left_group() {
            return Ok(());
        }
        let now = Instant::now();
        self.left_at.push_back(now);
        while self
            .left_at
            .front()
            .is_some_and(|at| now.duration_since(*at) > LEFT_GROUP_WINDOW)
        {
            self.left_at.pop_front();
        }
        tracing::warn!(
            times = self.left_at.len(),
            "the consumer left its group (no poll within max.poll.interval.ms, or its session timed out); rejoining. \
             Offsets not yet committed are decided again by whoever owns the partitions now"
        );
        if self.left_at.len() >= LEFT_GROUP_LIMIT {
            return Err(WorkerError::LeftGroup(self.left_at.len()));
        }
        Ok(())
    }
}

/// One consumed message, copied out of librdkafka's buffer.
struct Consumed {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    kept: Vec<u8>,
    total_len: u64,
}

/// Runs until a stop signal, then drains and returns what it did.
pub async fn run_kafka(run: KafkaRun, moderator: Arc<Moderator>) -> Result<Summary, WorkerError> {
    let started = Instant::now();
    let stop = stop_signal()?;
    // The shared state first: no event is decided before the state it depends on is in.
    let Some(shared) = start_state(&run.config, &moderator, &stop).await else {
        return Ok(Summary::default());
    };
    let consumer = consumer(&run.config).map_err(WorkerError::Start)?;
    let producer = producer(&run.config).map_err(WorkerError::Start)?;
    let exactly_once = run.config.exactly_once;
    if exactly_once {
        // It waits for the transaction coordinator, which a broker down at start is not.
        exactly_once::resume(&stop, &producer, |producer| {
            producer.init_transactions(TRANSACTION_CALL)
        })
        .await
        .map_err(WorkerError::Start)?;
    }
    tracing::info!(
        exactly_once,
        brokers = %run.config.brokers,
        group = %run.config.group_id,
        input = %run.config.input_topic,
        "worker started"
    );

    let consumer = Arc::new(consumer);
    let worker = Worker {
        consumer: &consumer,
        producer: &producer,
        run: &run,
        moderator: &moderator,
        shared: &shared,
        stop: &stop,
    };
    let mut summary = Summary::default();
    let work = async {
        if exactly_once {
            (
                exactly_once::transact_each(&worker, &mut summary).await,
                Ok(()),
            )
        } else {
            // While the broker acknowledges one batch, the next ones are sent, decided and
            // fetched. The acknowledger takes batches in order and stores each one's offsets
            // after all its results are acknowledged; its channel bounds how many batches
            // await the broker.
            let (acks, acks_rx) = tokio::sync::mpsc::channel(run.batches_in_flight.max(1));
            let acknowledger = tokio::spawn(at_least_once::acknowledge_in_order(
                consumer.clone(),
                acks_rx,
            ));
            let result = at_least_once::decide_pipelined(&worker, acks, &mut summary).await;
            (result, acknowledger.await.unwrap_or(Ok(())))
        }
    };
    // librdkafka waits for an acknowledgement as long as message.timeout.ms (five minutes by
    // default), which a broker gone at shutdown would make the worker wait out.
    let stopped_at = OnceLock::new();
    let drained = tokio::select! {
        done = work => Some(done),
        () = past_deadline(stop.clone(), run.shutdown_deadline, &stopped_at) => None,
    };

    // Drain: whatever was acknowledged gets committed, also after a delivery error.
    let Some((result, acknowledged)) = drained else {
        tracing::warn!(
            deadline = ?run.shutdown_deadline,
            "results still unacknowledged at the shutdown deadline; committing what was acknowledged"
        );
        if !exactly_once {
            if let Err(error) = consumer.commit_consumer_state(CommitMode::Async) {
                tracing::debug!(%error, "nothing to commit at shutdown");
            }
        }
        return Err(WorkerError::Deadline(run.shutdown_deadline));
    };
    tracing::info!("stopping: flushing and committing");
    // What is left of the deadline after the drain, not a whole one more.
    let left = stopped_at.get().map_or(run.shutdown_deadline, |at| {
        run.shutdown_deadline.saturating_sub(at.elapsed())
    });
    if let Err(error) = producer.flush(left) {
        tracing::warn!(%error, "producer did not flush within the deadline");
    }
    if !exactly_once {
        if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(%error, "nothing to commit at shutdown");
        }
    }
    result?;
    acknowledged?;

    let seconds = started.elapsed().as_secs_f64();
    Ok(Summary {
        seconds,
        events_per_second: summary.events as f64 / seconds.max(f64::EPSILON),
        peak_rss_bytes: crate::pipeline::peak_rss_bytes(),
        ..summary
    })
}

/// Returns `deadline` after the stop signal, which it notes in `stopped_at`; never without
/// one.
async fn past_deadline(
    mut stop: watch::Receiver<bool>,
    deadline: Duration,
    stopped_at: &OnceLock<Instant>,
) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        // The signal task is gone, so no stop will come.
        std::future::pending::<()>().await;
    }
    let _ = stopped_at.set(Instant::now());
    tokio::time::sleep(deadline).await;
}

/// Creates the output topics if they are missing and sets up the shared state, trying again
/// after a growing pause (1 s doubling to 30 s) while it cannot: a broker down or a topic
/// that cannot be created or read at start makes the worker wait and say so, not exit into a
/// restart loop. `None` when a stop signal came first.
async fn start_state(
    config: &KafkaConfig,
    moderator: &Arc<Moderator>,
    stop: &watch::Receiver<bool>,
) -> Option<StateTopics> {
    let set_up = || async {
        for topic in [&config.output_topic, &config.dead_letter_topic] {
            create_missing(config, topic, Cleanup::BrokerDefault).await?;
        }
        StateTopics::start(config, moderator).await
    };
    let mut pause = Duration::from_secs(1);
    loop {
        match set_up().await {
            Ok(shared) => return Some(shared),
            Err(error) => tracing::warn!(
                %error,
                retry_in = ?pause,
                "cannot set up the output and state topics; trying again"
            ),
        }
        let mut stopped = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped.wait_for(|stop| *stop) => return None,
        }
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// What a worker runs with.
struct Worker<'a> {
    consumer: &'a Arc<StreamConsumer<WorkerContext>>,
    producer: &'a FutureProducer<WorkerContext>,
    run: &'a KafkaRun,
    moderator: &'a Arc<Moderator>,
    shared: &'a StateTopics,
    stop: &'a watch::Receiver<bool>,
}

/// Queues a batch's state records and returns their pending acknowledgements.
async fn send_state(
    producer: &FutureProducer<WorkerContext>,
    state: &[(&SharedState, Vec<StateRecord>)],
) -> Result<Vec<DeliveryFuture>, WorkerError> {
    let mut deliveries = Vec::new();
    for (shared, records) in state {
        let sent = shared.send(producer, records).await.map_err(|error| {
            crate::metrics::global().count_error(ErrorStage::Delivery);
            WorkerError::Delivery(error)
        })?;
        deliveries.extend(sent);
    }
    Ok(deliveries)
}

/// A watch that turns true on SIGTERM or SIGINT.
fn stop_signal() -> Result<watch::Receiver<bool>, WorkerError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(WorkerError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(WorkerError::Signals)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("stop signal received");
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Waits for a first message, then takes more until the batch is full or has lingered long
/// enough; returns early, possibly empty, when a stop signal arrives.
async fn next_batch(
    consumer: &StreamConsumer<WorkerContext>,
    run: &KafkaRun,
    mut stop: watch::Receiver<bool>,
) -> Vec<Consumed> {
    let mut batch = Vec::with_capacity(run.batch_records);
    let mut topics: BTreeMap<String, Arc<str>> = BTreeMap::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut last_warning: Option<Instant> = None;
    while batch.len() < run.batch_records && !*stop.borrow() {
        let linger = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let message = tokio::select! {
            message = consumer.recv() => message,
            _ = linger => break,
            _ = stop.changed() => break,
        };
        match message {
            Ok(message) => {
                let payload = message.payload().unwrap_or_default();
                // One allocation per topic, not per message.
                let topic = match topics.get(message.topic()) {
                    Some(topic) => topic.clone(),
                    None => topics
                        .entry(message.topic().to_owned())
                        .or_insert_with(|| Arc::from(message.topic()))
                        .clone(),
                };
                batch.push(Consumed {
                    topic,
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    kept: payload[..payload.len().min(run.max_record_bytes)].to_vec(),
                    total_len: payload.len() as u64,
                });
                deadline.get_or_insert_with(|| tokio::time::Instant::now() + run.linger);
            }
            Err(KafkaError::MessageConsumption(RDKafkaErrorCode::PollExceeded)) => {
                consumer.context().note_left_group();
            }
            Err(error) => {
                // A missing topic or an unreachable broker repeats this every few hundred
                // milliseconds; say it once per quiet period, not each time.
                crate::metrics::global().count_error(ErrorStage::Fetch);
                if last_warning.is_none_or(|at: Instant| at.elapsed() > FETCH_WARNING_INTERVAL) {
                    tracing::warn!(%error, "cannot fetch from the input topic; retrying");
                    last_warning = Some(Instant::now());
                } else {
                    tracing::debug!(%error, "cannot fetch from the input topic; retrying");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    batch
}

/// The parallel checks of a batch, on the rayon workers.
fn prepare_kafka_batch(moderator: &Moderator, batch: &[Consumed]) -> PreparedBatch<Moderator> {
    let now = timestamp(OffsetDateTime::now_utc());
    prepare_batch(
        moderator,
        batch.len(),
        now,
        |compiled, index, scratch, now| {
            let message = &batch[index];
            let position = || SourcePosition::Kafka {
                topic: message.topic.to_string(),
                partition: message.partition,
                offset: message.offset,
            };
            let record = Record {
                kept: &message.kept,
                total_len: message.total_len,
                position: &position,
            };
            Stages::prepare(moderator, compiled, record, scratch, now)
        },
    )
}

/// Queues every result of a batch, in order, and returns the pending acknowledgements.
async fn send_all(
    producer: &FutureProducer<WorkerContext>,
    config: &KafkaConfig,
    batch: &[Consumed],
    outcomes: &[Outcome],
) -> Result<Vec<DeliveryFuture>, WorkerError> {
    let mut deliveries = Vec::with_capacity(outcomes.len());
    for (message, outcome) in batch.iter().zip(outcomes) {
        let headers = source_headers(&message.topic, message.partition, message.offset);
        let (topic, key, line): (&str, &[u8], &[u8]) = match outcome {
            Outcome::Decision { key, line, .. } => (&config.output_topic, key.as_bytes(), line),
            Outcome::DeadLetter { line, .. } => (
                &config.dead_letter_topic,
                message.key.as_deref().unwrap_or_default(),
                line,
            ),
        };
        let payload = line.strip_suffix(b"\n").unwrap_or(line);
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        match send_record(producer, record).await {
            Ok(delivery) => deliveries.push(delivery),
            Err(error) => {
                crate::metrics::global().count_error(ErrorStage::Delivery);
                return Err(WorkerError::Delivery(error));
            }
        }
    }
    Ok(deliveries)
}

/// The broker's answer to one send; a dropped delivery (the producer went away) is a failure.
fn acknowledge<Dropped>(
    delivery: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, Dropped>,
) -> Result<(), WorkerError> {
    let failed = match delivery {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err((error, _))) => error,
        Err(_) => KafkaError::Canceled,
    };
    crate::metrics::global().count_error(ErrorStage::Delivery);
    Err(WorkerError::Delivery(failed))
}

/// At most one fetch warning per interval while the input cannot be read.
const FETCH_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Time allowed for the broker calls of an aborted transaction's rewind.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one transactional call may block before the worker looks at the stop signal
/// again; [`exactly_once::resume`] calls again while the call is still under way.
const TRANSACTION_CALL: Duration = Duration::from_secs(2);

/// Per partition, the offset after the batch's last message.
fn next_offsets(batch: &[Consumed]) -> TopicPartitionList {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for message in batch {
        let entry = next.entry((&message.topic, message.partition)).or_insert(0);
        *entry = (*entry).max(message.offset + 1);
    }
    let mut offsets = TopicPartitionList::with_capacity(next.len());
    for ((topic, partition), offset) in next {
        if let Err(error) = offsets.add_partition_offset(topic, partition, Offset::Offset(offset)) {
            tracing::warn!(%error, topic, partition, "cannot record an offset");
        }
    }
    offsets
}
