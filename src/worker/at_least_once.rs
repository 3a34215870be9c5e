//! At-least-once, the default: batches are fetched, checked, put in order and sent at once,
//! and a task of its own takes them in order, waits until the broker acknowledged every
//! result of each, and only then stores its offsets, which librdkafka commits.
//!
//! Batches keep the ordering argument simple: batches are acknowledged and stored in order, so
//! a stored offset never passes a message whose result could still be lost. A bounded number
//! of batches await the broker at once; past it the worker pauses its partitions.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::future_producer::DeliveryFuture;
use rdkafka::TopicPartitionList;

use super::{
    acknowledge, next_batch, next_offsets, prepare_kafka_batch, send_all, send_state, Consumed,
    GroupWatch, Worker, WorkerError,
};
use crate::metrics::{now_unix_seconds, Source, Tally};
use crate::moderator::{Moderator, Outcome};
use crate::pipeline::{finish_batch, PreparedBatch, Summary};
use crate::source::kafka::WorkerContext;

/// At-least-once: batches go through four stages at once. This task fetches one; a thread
/// of its own runs the parallel checks of the one before on the rayon workers; another runs
/// the ordered stage of the one before that; and a second task sends the results of the
/// oldest and hands them to the acknowledger. Each stage holds one batch, so a worker holds
/// a few batches besides those awaiting acknowledgement, and each stage sees them in
/// fetch order, which keeps each partition's results in offset order.
pub(super) async fn decide_pipelined(
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
pub(super) struct InFlight {
    deliveries: Vec<DeliveryFuture>,
    offsets: TopicPartitionList,
    /// Its results, counted into the metrics once acknowledged.
    tally: Tally,
    events: usize,
}

/// Waits for each batch's acknowledgements, in order, then stores its offsets. Stops at the
/// first failed delivery: the offsets from that batch on stay unstored, so those messages are
/// decided again by whoever consumes the partitions next.
pub(super) async fn acknowledge_in_order(
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
