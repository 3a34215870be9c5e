//! Decisions and dead letters to Kafka topics.
//!
//! The producer is idempotent with `acks=all`, so a retried send never duplicates or
//! reorders a partition's records; in exactly-once mode it is also transactional. Decisions are keyed by listing id (one listing's decisions
//! stay in order on one partition) and carry the source position in headers, so that a
//! consumer can drop the redeliveries at-least-once implies.

use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::DeliveryFuture;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::source::kafka::{KafkaConfig, WorkerContext};

/// Header names on every decision and dead letter.
pub const HEADER_SOURCE_TOPIC: &str = "loomguard-source-topic";
pub const HEADER_SOURCE_PARTITION: &str = "loomguard-source-partition";
pub const HEADER_SOURCE_OFFSET: &str = "loomguard-source-offset";

pub fn producer(config: &KafkaConfig) -> KafkaResult<FutureProducer<WorkerContext>> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set_log_level(RDKafkaLogLevel::Info);
    if config.exactly_once {
        client
            .set("transactional.id", &config.transactional_id)
            // A worker that dies mid-transaction holds back read_committed readers until its
            // transaction times out; keep that short.
            .set("transaction.timeout.ms", "10000");
    }
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    client.create_with_context(WorkerContext::producer())
}

/// The source position of a record, as headers.
pub fn source_headers(topic: &str, partition: i32, offset: i64) -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(3)
        .insert(Header {
            key: HEADER_SOURCE_TOPIC,
            value: Some(topic),
        })
        .insert(Header {
            key: HEADER_SOURCE_PARTITION,
            value: Some(&partition.to_string()),
        })
        .insert(Header {
            key: HEADER_SOURCE_OFFSET,
            value: Some(&offset.to_string()),
        })
}

/// Queues one record, waiting while the producer's bounded queue is full; returns the pending
/// acknowledgement.
pub async fn send_record(
    producer: &FutureProducer<WorkerContext>,
    mut record: FutureRecord<'_, [u8], [u8]>,
) -> Result<DeliveryFuture, KafkaError> {
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}
