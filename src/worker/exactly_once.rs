//! Exactly-once (`--exactly-once`): each batch is one Kafka transaction holding its results,
//! its state records and its input offsets, so that they commit together or not at all and a
//! `read_committed` reader sees each decision once, even across crashes.
//!
//! Batches go one at a time: a batch whose transaction fails is aborted, its partitions are
//! rewound, and it is decided again after a back-off, which every batch fetched after it
//! would have to follow. The state records an aborted attempt made go with the next one, as
//! the worker's own state took them already and will not make them again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::{
    acknowledge, next_batch, next_offsets, prepare_kafka_batch, send_all, send_state, Consumed,
    GroupWatch, Worker, WorkerError, TRANSACTION_CALL, TRANSACTION_TIMEOUT,
};
use crate::metrics::{now_unix_seconds, ErrorStage, Source, Tally};
use crate::moderator::{Moderator, Outcome};
use crate::pipeline::{finish_batch, Summary};
use crate::source::kafka::{KafkaConfig, WorkerContext};
use crate::state::{latest_per_key, SharedState, StateRecord};

/// Exactly-once: each batch fetched, decided and committed in a transaction before the next
/// one is fetched, since a batch whose transaction aborts rewinds its partitions, and so
/// every batch fetched after it.
pub(super) async fn transact_each(
    worker: &Worker<'_>,
    summary: &mut Summary,
) -> Result<(), WorkerError> {
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

/// Decides a batch on the rayon workers; the tokio thread waits, as there is nothing else
/// for it to do until the results exist.
fn decide_batch(moderator: &Moderator, batch: &[Consumed]) -> Vec<Outcome> {
    tokio::task::block_in_place(|| finish_batch(moderator, prepare_kafka_batch(moderator, batch)))
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
        off_task(producer, |producer| producer.begin_transaction())
            .await
            .map_err(WorkerError::Delivery)?;
        produce(producer, &run.config, batch, outcomes).await?;
        for delivery in send_state(producer, state).await? {
            acknowledge(delivery.await)?;
        }
        let group = consumer
            .group_metadata()
            .ok_or(WorkerError::Delivery(KafkaError::NoMessageReceived))?;
        resume(stop, producer, move |producer| {
            producer.send_offsets_to_transaction(&offsets, &group, TRANSACTION_CALL)
        })
        .await
        .map_err(WorkerError::Delivery)?;
        resume(stop, producer, |producer| {
            producer.commit_transaction(TRANSACTION_CALL)
        })
        .await
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
    resume(stop, producer, |producer| {
        producer.abort_transaction(TRANSACTION_CALL)
    })
    .await
    .map_err(WorkerError::Fenced)?;
    if *stop.borrow() {
        // No batch follows (the loop ends on a stop) and nothing more is committed: the
        // partitions' next owner starts from their committed offsets.
        return Ok(false);
    }
    // Reading the committed offsets and seeking may each take their whole timeout with the
    // broker gone; on a blocking thread they leave the task free to see the shutdown
    // deadline pass.
    let first = first_offsets(batch);
    let consumer = Arc::clone(consumer);
    match tokio::task::spawn_blocking(move || rewind(&consumer, &first)).await {
        Ok(rewound) => rewound?,
        Err(failed) => std::panic::resume_unwind(failed.into_panic()),
    }
    Ok(false)
}

/// Each of the batch's partitions with the offset of its first message in the batch.
fn first_offsets(batch: &[Consumed]) -> BTreeMap<(String, i32), i64> {
    let mut first: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for message in batch {
        let entry = first
            .entry((message.topic.to_string(), message.partition))
            .or_insert(message.offset);
        *entry = (*entry).min(message.offset);
    }
    first
}

/// Calls a transactional operation again while it times out: librdkafka goes on with it in
/// the background and lets it be resumed (a broker restarting, say). A stopping worker gives
/// up instead; the coordinator aborts what it leaves open once the transaction times out.
/// Each call is given [`TRANSACTION_CALL`], so that a stop is seen within that time, and runs
/// [`off_task`], so that the shutdown deadline can cut short a call that overstays it.
pub(super) async fn resume(
    stop: &watch::Receiver<bool>,
    producer: &TransactionalProducer,
    operation: impl Fn(&TransactionalProducer) -> Result<(), KafkaError> + Send + Sync + 'static,
) -> Result<(), KafkaError> {
    let operation = Arc::new(operation);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let call = Arc::clone(&operation);
        let result = off_task(producer, move |producer| call(producer)).await;
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
            // Once is news; every TRANSACTION_CALL after that while the broker is away is not.
            if attempts == 1 {
                tracing::warn!(%error, "a transactional call timed out; resuming it");
            } else {
                tracing::debug!(%error, attempts, "a transactional call timed out again");
            }
        }
    }
}

pub(super) type TransactionalProducer = FutureProducer<WorkerContext>;

/// Runs a call of the producer's on a blocking thread and waits for it without holding the
/// task. librdkafka does not always return by the timeout it is given: with the broker gone,
/// a send of offsets to the transaction was seen waiting on long past the shutdown deadline,
/// which a call on the task itself would have kept from ever firing. A call the deadline
/// cuts short is left to finish (or not) on its thread, which the runtime's shutdown then
/// abandons.
pub(super) async fn off_task(
    producer: &TransactionalProducer,
    call: impl FnOnce(&TransactionalProducer) -> Result<(), KafkaError> + Send + 'static,
) -> Result<(), KafkaError> {
    let producer = producer.clone();
    match tokio::task::spawn_blocking(move || call(&producer)).await {
        Ok(result) => result,
        Err(failed) => std::panic::resume_unwind(failed.into_panic()),
    }
}

/// Moves each of the batch's partitions back to where the next attempt must start: its
/// committed offset, or when the broker cannot say, the batch's first message there. A
/// partition revoked meanwhile is skipped, as its new owner starts from the committed offset;
/// one still assigned that cannot be rewound stops the worker, which would otherwise go on
/// past the aborted messages and commit offsets beyond them.
fn rewind(
    consumer: &StreamConsumer<WorkerContext>,
    first: &BTreeMap<(String, i32), i64>,
) -> Result<(), WorkerError> {
    let mut partitions = TopicPartitionList::with_capacity(first.len());
    for (topic, partition) in first.keys() {
        partitions.add_partition(topic, *partition);
    }
    let committed = consumer
        .committed_offsets(partitions, TRANSACTION_TIMEOUT)
        .inspect_err(|error| {
        tracing::warn!(%error, "cannot read the committed offsets; rewinding to the batch's first messages");
    })
    .ok();

    for (&(ref topic, partition), &first) in first {
        let target = committed
            .as_ref()
            .and_then(|committed| committed.find_partition(topic, partition))
            .and_then(|element| match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            })
            .unwrap_or(first);
        let sought = consumer.seek(
            topic,
            partition,
            Offset::Offset(target),
            TRANSACTION_TIMEOUT,
        );
        let Err(error) = sought else {
            continue;
        };
        let assigned = consumer
            .assignment()
            .is_ok_and(|assignment| assignment.find_partition(topic, partition).is_some());
        if assigned {
            return Err(WorkerError::Rewind {
                topic: topic.clone(),
                partition,
                source: error,
            });
        }
        tracing::debug!(%error, %topic, partition, "revoked meanwhile: not rewound");
    }
    Ok(())
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
