//! The Kafka worker: consume a batch, decide it, produce the results, wait for the broker's
//! acknowledgement, and only then store the batch's offsets.
//!
//! Batches keep the ordering argument simple: every message of a batch has its decision or
//! dead letter acknowledged before any of the batch's offsets is stored, and batches are
//! acknowledged and stored in order, so a stored offset never passes a message whose result
//! could still be lost. While the broker acknowledges a batch, the next ones are fetched and
//! decided, a bounded number of batches ahead. Per partition, the results are
//! produced in offset order through an idempotent producer, which keeps them in that order.
//! Memory is bounded by one batch plus librdkafka's bounded queues.
//!
//! With `--exactly-once` each batch is one Kafka transaction: its results and its input
//! offsets commit together or not at all, so a `read_committed` reader sees each decision once
//! even across crashes. A batch whose transaction fails is aborted and its partitions are
//! rewound to the batch's first messages, to be decided again after a back-off.
//!
//! On SIGTERM or SIGINT the worker stops fetching, finishes the batch it holds, flushes the
//! producer, commits and exits, within the shutdown deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
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
use crate::metrics::{now_unix_seconds, ErrorStage, Source, Tally};
use crate::moderator::{timestamp, Moderator, Outcome};
use crate::pipeline::{finish_batch, prepare_batch, PreparedBatch, Record, Stages, Summary};
use crate::sink::kafka::{producer, send_record, source_headers};
use crate::source::kafka::{consumer, KafkaConfig, WorkerContext};
use crate::state::{
    create_missing, latest_per_key, Cleanup, SharedState, StateRecord, StateTopics,
};

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
        resume(&stop, || producer.init_transactions(TRANSACTION_TIMEOUT))
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
            (transact_each(&worker, &mut summary).await, Ok(()))
        } else {
            // While the broker acknowledges one batch, the next ones are sent, decided and
            // fetched. The acknowledger takes batches in order and stores each one's offsets
            // after all its results are acknowledged; its channel bounds how many batches
            // await the broker.
            let (acks, acks_rx) = tokio::sync::mpsc::channel(run.batches_in_flight.max(1));
            let acknowledger = tokio::spawn(acknowledge_in_order(consumer.clone(), acks_rx));
            let result = decide_pipelined(&worker, acks, &mut summary).await;
            (result, acknowledger.await.unwrap_or(Ok(())))
        }
    };
    // librdkafka waits for an acknowledgement as long as message.timeout.ms (five minutes by
    // default), which a broker gone at shutdown would make the worker wait out.
    let drained = tokio::select! {
        done = work => Some(done),
        () = past_deadline(stop.clone(), run.shutdown_deadline) => None,
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
    if let Err(error) = producer.flush(run.shutdown_deadline) {
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

/// Returns `deadline` after the stop signal; never without one.
async fn past_deadline(mut stop: watch::Receiver<bool>, deadline: Duration) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        // The signal task is gone, so no stop will come.
        std::future::pending::<()>().await;
    }
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

/// Exactly-once: each batch fetched, decided and committed in a transaction before the next
/// one is fetched, since a batch whose transaction aborts rewinds its partitions, and so
/// every batch fetched after it.
async fn transact_each(worker: &Worker<'_>, summary: &mut Summary) -> Result<(), WorkerError> {
    let Worker {
        consumer,
        run,
        moderator,
        shared,
        stop,
        ..
    } = worker;
    let metrics = crate::metrics::global();
    let mut group_watch = GroupWatch::default();
    // The state records of an aborted transaction. The batch is decided again, but this
    // worker's state took its changes already and will not make them twice: they must go
    // with the next attempt.
    let mut carried: Vec<(&SharedState, Vec<StateRecord>)> = Vec::new();
    let mut aborts_in_a_row = 0;
    loop {
        let batch = next_batch(consumer, run, (*stop).clone()).await;
        // librdkafka rejoins on the next poll by itself; what the worker must not do is go on
        // unaware, or keep going when it leaves again and again.
        group_watch.check(consumer.context())?;
        if !batch.is_empty() {
            metrics.in_flight().add(batch.len() as i64);
            let outcomes = decide_batch(moderator, &batch);
            let state = carry(std::mem::take(&mut carried), shared.take_records(moderator));
            let mut tally = Tally::new(Source::Kafka);
            for outcome in &outcomes {
                tally.count(outcome);
            }
            let committed = transact(worker, &batch, &outcomes, &state).await;
            // Committed or not, this batch is no longer in flight: an aborted one is fetched
            // again after the rewind.
            metrics.in_flight().sub(batch.len() as i64);
            match committed {
                Ok(true) => {
                    aborts_in_a_row = 0;
                    metrics.add(&tally, now_unix_seconds());
                    for outcome in &outcomes {
                        summary.count(outcome);
                    }
                }
                Ok(false) => {
                    carried = state;
                    aborts_in_a_row += 1;
                    let mut stopped = (*stop).clone();
                    tokio::select! {
                        _ = tokio::time::sleep(abort_back_off(aborts_in_a_row)) => {}
                        _ = stopped.wait_for(|stop| *stop) => {}
                    }
                }
                Err(_) => {}
            }
            committed?;
        }
        if *stop.borrow() {
            return Ok(());
        }
    }
}

/// The state records of aborted attempts followed by this attempt's, one record per key and
/// topic: the latest, which is what compaction keeps. A batch aborted again and again (a
/// result the broker keeps refusing) thus sends no more records each time.
fn carry<'a>(
    carried: Vec<(&'a SharedState, Vec<StateRecord>)>,
    fresh: Vec<(&'a SharedState, Vec<StateRecord>)>,
) -> Vec<(&'a SharedState, Vec<StateRecord>)> {
    if carried.is_empty() {
        return fresh;
    }
    let mut merged = carried;
    for (shared, records) in fresh {
        match merged
            .iter_mut()
            .find(|(kept, _)| std::ptr::eq(*kept, shared))
        {
            Some((_, kept)) => kept.extend(records),
            None => merged.push((shared, records)),
        }
    }
    merged
        .into_iter()
        .map(|(shared, records)| (shared, latest_per_key(records)))
        .collect()
}

/// How long a worker waits before deciding an aborted batch again: 100 ms after one abort,
/// doubling with each further one in a row up to 6.4 s, so that a broker refusing a result
/// for a while is not asked again and again in a tight loop.
fn abort_back_off(aborts_in_a_row: u32) -> Duration {
    Duration::from_millis(100 << aborts_in_a_row.clamp(1, 7).saturating_sub(1))
}

/// At-least-once: batches go through four stages at once. This task fetches one; a thread
/// of its own runs the parallel checks of the one before on the rayon workers; another runs
/// the ordered stage of the one before that; and a second task sends the results of the
/// oldest and hands them to the acknowledger. Each stage holds one batch, so a worker holds
/// a few batches besides those awaiting acknowledgement, and each stage sees them in
/// fetch order, which keeps each partition's results in offset order.
async fn decide_pipelined(
    worker: &Worker<'_>,
    acks: tokio::sync::mpsc::Sender<InFlight>,
    summary: &mut Summary,
) -> Result<(), WorkerError> {
    let &Worker {
        consumer,
        producer,
        run,
        moderator,
        shared,
        stop,
    } = worker;
    let (batch_tx, mut batch_rx) = tokio::sync::mpsc::channel::<Vec<Consumed>>(1);
    let (prepared_tx, prepared_rx) =
        std::sync::mpsc::sync_channel::<(Vec<Consumed>, PreparedBatch<Moderator>)>(1);
    let (decided_tx, mut decided_rx) =
        tokio::sync::mpsc::channel::<(Vec<Consumed>, Vec<Outcome>)>(1);

    let checker = moderator.clone();
    let checking = std::thread::Builder::new()
        .name("kafka-checks".into())
        .spawn(move || {
            while let Some(batch) = batch_rx.blocking_recv() {
                let prepared = prepare_kafka_batch(&checker, &batch);
                if prepared_tx.send((batch, prepared)).is_err() {
                    break;
                }
            }
        })
        .map_err(WorkerError::Threads)?;
    let observer = moderator.clone();
    let ordering = std::thread::Builder::new()
        .name("kafka-ordered".into())
        .spawn(move || {
            for (batch, prepared) in prepared_rx {
                let outcomes = finish_batch(observer.as_ref(), prepared);
                if decided_tx.blocking_send((batch, outcomes)).is_err() {
                    break;
                }
            }
        })
        .map_err(WorkerError::Threads)?;

    let fetching = async move {
        let metrics = crate::metrics::global();
        let mut group_watch = GroupWatch::default();
        loop {
            let batch = next_batch(consumer, run, stop.clone()).await;
            // librdkafka rejoins on the next poll by itself; what the worker must not do is
            // go on unaware, or keep going when it leaves again and again.
            group_watch.check(consumer.context())?;
            if !batch.is_empty() {
                metrics.in_flight().add(batch.len() as i64);
                if batch_tx.send(batch).await.is_err() {
                    // The checks' thread ended; joining it below says why.
                    return Ok(());
                }
            }
            if *stop.borrow() {
                // Dropping the sender lets the stages drain and end.
                return Ok(());
            }
        }
    };
    let sending = async move {
        while let Some((batch, outcomes)) = decided_rx.recv().await {
            // The ordered stage may have observed the next batch already, so its state
            // records can leave with this batch: early, which does no harm, never late.
            let state = shared.take_records(moderator);
            let mut tally = Tally::new(Source::Kafka);
            for outcome in &outcomes {
                tally.count(outcome);
            }
            let mut deliveries = send_all(producer, &run.config, &batch, &outcomes).await?;
            deliveries.extend(send_state(producer, &state).await?);
            let Some(slot) = reserve_in_flight(consumer, &acks).await else {
                // The acknowledger stopped on a failed delivery; it says why.
                return Ok(());
            };
            slot.send(InFlight {
                deliveries,
                offsets: next_offsets(&batch),
                tally,
                events: batch.len(),
            });
            for outcome in &outcomes {
                summary.count(outcome);
            }
        }
        Ok(())
    };
    // On an error the other future is dropped with its end of the channels, so that both
    // threads see their channels close and end.
    let result = tokio::try_join!(fetching, sending).map(|_| ());
    tokio::task::block_in_place(|| {
        for stage in [checking, ordering] {
            if let Err(panic) = stage.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    result
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

/// Decides a batch on the rayon workers; the tokio thread waits, as there is nothing else
/// for it to do until the results exist.
fn decide_batch(moderator: &Moderator, batch: &[Consumed]) -> Vec<Outcome> {
    tokio::task::block_in_place(|| finish_batch(moderator, prepare_kafka_batch(moderator, batch)))
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

/// How long the worker waits at the in-flight bound before it pauses its partitions.
/// Resuming is not free: librdkafka drops what it prefetched for a paused partition, and
/// resumed partitions were seen to wait up to a second for their next fetch. A wait this
/// short, which small batches under light load hit now and then, is better sat out.
const PAUSE_AFTER: Duration = Duration::from_millis(50);

/// A place for one more batch among those awaiting acknowledgement. When all are taken for
/// longer than [`PAUSE_AFTER`], the worker's partitions are paused until one frees up, so
/// that librdkafka stops fetching for a worker that cannot take more (its prefetch queue is
/// bounded too, but need not fill). `None` once the acknowledger has stopped.
async fn reserve_in_flight<'a>(
    consumer: &StreamConsumer<WorkerContext>,
    acks: &'a tokio::sync::mpsc::Sender<InFlight>,
) -> Option<tokio::sync::mpsc::Permit<'a, InFlight>> {
    match acks.try_reserve() {
        Ok(slot) => return Some(slot),
        Err(tokio::sync::mpsc::error::TrySendError::Closed(())) => return None,
        Err(tokio::sync::mpsc::error::TrySendError::Full(())) => {}
    }
    if let Ok(slot) = tokio::time::timeout(PAUSE_AFTER, acks.reserve()).await {
        return slot.ok();
    }
    let metrics = crate::metrics::global();
    let paused = consumer
        .assignment()
        .ok()
        .filter(|partitions| match consumer.pause(partitions) {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "cannot pause the assigned partitions");
                false
            }
        });
    if let Some(partitions) = &paused {
        metrics.count_pause(partitions.count());
        tracing::debug!(
            partitions = partitions.count(),
            "acknowledgements behind: partitions paused"
        );
    }
    let slot = acks.reserve().await.ok();
    if let Some(partitions) = &paused {
        // A partition revoked meanwhile is no longer this worker's to resume.
        if let Err(error) = consumer.resume(partitions) {
            tracing::debug!(%error, "cannot resume every paused partition");
        }
        metrics.count_resume();
        tracing::debug!(partitions = partitions.count(), "partitions resumed");
    }
    slot
}

/// A batch whose results are sent but not yet acknowledged.
struct InFlight {
    deliveries: Vec<DeliveryFuture>,
    offsets: TopicPartitionList,
    /// Its results, counted into the metrics once acknowledged.
    tally: Tally,
    events: usize,
}

/// Waits for each batch's acknowledgements, in order, then stores its offsets. Stops at the
/// first failed delivery: the offsets from that batch on stay unstored, so those messages are
/// decided again by whoever consumes the partitions next.
async fn acknowledge_in_order(
    consumer: Arc<StreamConsumer<WorkerContext>>,
    mut batches: tokio::sync::mpsc::Receiver<InFlight>,
) -> Result<(), WorkerError> {
    let metrics = crate::metrics::global();
    while let Some(batch) = batches.recv().await {
        for delivery in batch.deliveries {
            acknowledge(delivery.await)?;
        }
        metrics.add(&batch.tally, now_unix_seconds());
        metrics.in_flight().sub(batch.events as i64);
        // A partition revoked while its batch was decided can no longer be stored; its new
        // owner decides those messages again, which at-least-once allows.
        if let Err(error) = consumer.store_offsets(&batch.offsets) {
            tracing::debug!(%error, "offsets of revoked partitions not stored");
        }
    }
    Ok(())
}

/// Sends every result of a batch and waits until the broker acknowledged all of them.
async fn produce(
    producer: &FutureProducer<WorkerContext>,
    config: &KafkaConfig,
    batch: &[Consumed],
    outcomes: &[Outcome],
) -> Result<(), WorkerError> {
    for delivery in send_all(producer, config, batch, outcomes).await? {
        acknowledge(delivery.await)?;
    }
    Ok(())
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

/// Time allowed for each transactional call to the broker.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// One batch as one transaction. Returns whether it committed; a batch that did not is
/// aborted and its partitions rewound, so that it is decided again.
async fn transact(
    worker: &Worker<'_>,
    batch: &[Consumed],
    outcomes: &[Outcome],
    state: &[(&SharedState, Vec<StateRecord>)],
) -> Result<bool, WorkerError> {
    let &Worker {
        consumer,
        producer,
        run,
        stop,
        ..
    } = worker;
    let offsets = next_offsets(batch);
    let attempt = async {
        tokio::task::block_in_place(|| producer.begin_transaction())
            .map_err(WorkerError::Delivery)?;
        produce(producer, &run.config, batch, outcomes).await?;
        for delivery in send_state(producer, state).await? {
            acknowledge(delivery.await)?;
        }
        let group = consumer
            .group_metadata()
            .ok_or(WorkerError::Delivery(KafkaError::NoMessageReceived))?;
        tokio::task::block_in_place(|| {
            producer.send_offsets_to_transaction(&offsets, &group, TRANSACTION_TIMEOUT)
        })
        .map_err(WorkerError::Delivery)?;
        resume(stop, || producer.commit_transaction(TRANSACTION_TIMEOUT))
            .map_err(WorkerError::Delivery)
    };
    let Err(error) = attempt.await else {
        return Ok(true);
    };

    crate::metrics::global().count_error(ErrorStage::Transaction);
    tracing::warn!(
        %error,
        events = batch.len(),
        state_records = state.iter().map(|(_, records)| records.len()).sum::<usize>(),
        "transaction failed; aborting and deciding the batch again"
    );
    resume(stop, || producer.abort_transaction(TRANSACTION_TIMEOUT))
        .map_err(WorkerError::Fenced)?;
    rewind(consumer, batch)?;
    Ok(false)
}

/// Calls a transactional operation again while it times out: librdkafka goes on with it in
/// the background and lets it be resumed (a broker restarting, say). A stopping worker gives
/// up instead; the coordinator aborts what it leaves open once the transaction times out.
fn resume(
    stop: &watch::Receiver<bool>,
    operation: impl Fn() -> Result<(), KafkaError>,
) -> Result<(), KafkaError> {
    loop {
        let result = tokio::task::block_in_place(&operation);
        let timed_out = match &result {
            Err(KafkaError::Transaction(error)) => error.is_retriable(),
            // Committing flushes first, which says so in an error of its own.
            Err(KafkaError::Flush(code)) => *code == RDKafkaErrorCode::OperationTimedOut,
            _ => false,
        };
        if !timed_out || *stop.borrow() {
            return result;
        }
        if let Err(error) = result {
            tracing::warn!(%error, "a transactional call timed out; resuming it");
        }
    }
}

/// Moves each of the batch's partitions back to where the next attempt must start: its
/// committed offset, or when the broker cannot say, the batch's first message there. A
/// partition revoked meanwhile is skipped, as its new owner starts from the committed offset;
/// one still assigned that cannot be rewound stops the worker, which would otherwise go on
/// past the aborted messages and commit offsets beyond them.
fn rewind(consumer: &StreamConsumer<WorkerContext>, batch: &[Consumed]) -> Result<(), WorkerError> {
    let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for message in batch {
        let entry = first
            .entry((&message.topic, message.partition))
            .or_insert(message.offset);
        *entry = (*entry).min(message.offset);
    }
    let mut partitions = TopicPartitionList::with_capacity(first.len());
    for &(topic, partition) in first.keys() {
        partitions.add_partition(topic, partition);
    }
    let committed = tokio::task::block_in_place(|| {
        consumer.committed_offsets(partitions, TRANSACTION_TIMEOUT)
    })
    .inspect_err(|error| {
        tracing::warn!(%error, "cannot read the committed offsets; rewinding to the batch's first messages");
    })
    .ok();

    for ((topic, partition), first) in first {
        let target = committed
            .as_ref()
            .and_then(|committed| committed.find_partition(topic, partition))
            .and_then(|element| match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            })
            .unwrap_or(first);
        let sought = tokio::task::block_in_place(|| {
            consumer.seek(
                topic,
                partition,
                Offset::Offset(target),
                TRANSACTION_TIMEOUT,
            )
        });
        let Err(error) = sought else {
            continue;
        };
        let assigned = consumer
            .assignment()
            .is_ok_and(|assignment| assignment.find_partition(topic, partition).is_some());
        if assigned {
            return Err(WorkerError::Rewind {
                topic: topic.to_owned(),
                partition,
                source: error,
            });
        }
        tracing::debug!(%error, topic, partition, "revoked meanwhile: not rewound");
    }
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aborted_batch_waits_longer_with_each_abort_in_a_row_up_to_a_bound() {
        let waits: Vec<u128> = (1..=9).map(|n| abort_back_off(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 6400, 6400, 6400]);
    }
}
