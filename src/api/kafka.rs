//! Where the complaint API's results go in Kafka mode: its suppressions to the decision topic,
//! the originals it registers to the image index topic, so that every worker of the group
//! learns them ([`crate::state::images`]).
//!
//! The outlet has its own producer, idempotent with `acks=all` like the worker's but never
//! transactional: a complaint is no part of the stream's transactions. Each call waits for the
//! broker's acknowledgement, so that an answer of 201 means the records are in.

use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::contract::Decision;
use crate::images::state::LogRecord;
use crate::moderator::encode_line;
use crate::sink::kafka::{producer, send_record};
use crate::source::kafka::{KafkaConfig, WorkerContext};
use crate::state::send_records;

/// The complaint API's end of the decision and image index topics.
pub struct KafkaOutlet {
    producer: FutureProducer<WorkerContext>,
    output_topic: String,
    /// `None` when the image index stays in this worker (`--no-image-topic`).
    image_topic: Option<String>,
    /// The worker's writer name, so that its own tail skips what the API wrote.
    writer: String,
}

impl KafkaOutlet {
    pub fn new(config: &KafkaConfig) -> KafkaResult<KafkaOutlet> {
        let config = KafkaConfig {
            exactly_once: false,
            ..config.clone()
        };
        Ok(KafkaOutlet {
            producer: producer(&config)?,
            output_topic: config.output_topic.clone(),
            image_topic: config.image_topic.clone(),
            writer: config.transactional_id.clone(),
        })
    }

    /// Appends image index records to the image index topic and waits until the broker has
    /// them all.
    pub async fn append(&self, records: &[LogRecord]) -> Result<(), KafkaError> {
        let Some(topic) = &self.image_topic else {
            return Ok(());
        };
        let records = crate::state::images::records(records);
        for delivery in send_records(&self.producer, topic, &self.writer, &records).await? {
            acknowledged(delivery.await)?;
        }
        Ok(())
    }

    /// Produces decisions to the decision topic, keyed by listing id, and waits until the
    /// broker has them all.
    pub async fn decide(&self, decisions: &[Decision]) -> Result<(), KafkaError> {
        let mut deliveries = Vec::with_capacity(decisions.len());
        for decision in decisions {
            let line = encode_line(decision);
            let payload = line.strip_suffix(b"\n").unwrap_or(&line);
            let record = FutureRecord::to(&self.output_topic)
                .key(decision.listing_id.as_bytes())
                .payload(payload);
            deliveries.push(send_record(&self.producer, record).await?);
        }
        for delivery in deliveries {
            acknowledged(delivery.await)?;
        }
        Ok(())
    }
}

fn acknowledged<Dropped>(
    delivery: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, Dropped>,
) -> Result<(), KafkaError> {
    match delivery {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err(error),
        Err(_) => Err(KafkaError::Canceled),
    }
}
