//! Topics, producing and reading back against the test broker, for the Kafka tests that run
//! workers as `common::service::Service`s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// A name no other test run uses: `prefix-test-pid-millis`.
pub fn unique(prefix: &str, test: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{prefix}-{test}-{}-{millis}", std::process::id())
}

/// Creates each `(name, partitions)` topic.
pub fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for result in runtime
        .block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .expect("the broker answers")
    {
        result.expect("the topic is created");
    }
}

/// Produces `(key, payload)` records and waits until every one is acknowledged.
pub fn produce<P: AsRef<[u8]>>(brokers: &str, topic: &str, records: &[(String, P)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for (key, payload) in records {
        let mut record = BaseRecord::to(topic)
            .key(key.as_str())
            .payload(payload.as_ref());
        while let Err((_, back)) = producer.send(record) {
            record = back;
            producer.poll(Duration::from_millis(50));
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("the test records are acknowledged");
}

/// One record of a topic: key, and value (`None` for a tombstone).
#[derive(Debug, Clone)]
pub struct Record {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// A reader of `topic` from its beginning, outside any consumer group's offsets.
pub struct Reader {
    consumer: BaseConsumer,
}

impl Reader {
    pub fn new(brokers: &str, topic: &str) -> Reader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", unique("reader", topic))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        Reader { consumer }
    }

    /// Reads on until `done` holds for what was read so far, at most `timeout`; returns
    /// every record read by this reader.
    pub fn read_until(
        &self,
        read: &mut Vec<Record>,
        timeout: Duration,
        done: impl Fn(&[Record]) -> bool,
    ) -> bool {
        let started = Instant::now();
        while !done(read) {
            if started.elapsed() > timeout {
                return false;
            }
            if let Some(Ok(message)) = self.consumer.poll(Duration::from_millis(200)) {
                read.push(Record {
                    key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                    value: message.payload().map(<[u8]>::to_vec),
                });
            }
        }
        true
    }
}

/// The JSON values of `records` (tombstones left out).
pub fn values(records: &[Record]) -> Vec<serde_json::Value> {
    records
        .iter()
        .filter_map(|r| r.value.as_deref())
        .map(|v| serde_json::from_slice(v).expect("the record is JSON"))
        .collect()
}

/// The decisions among `records`, by event id (the latest of each).
pub fn decisions_by_event(records: &[Record]) -> BTreeMap<String, serde_json::Value> {
    values(records)
        .into_iter()
        .map(|d| (d["event_id"].as_str().unwrap_or_default().to_owned(), d))
        .collect()
}
