//! Topics, producing and reading back against the test broker, for the Kafka tests that run
//! workers as `common::service::Service`s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

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
    let topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    create(brokers, &topics);
}

/// Creates `name` with `partitions` and the topic settings `config`.
pub fn create_topic_with(brokers: &str, name: &str, partitions: i32, config: &[(&str, &str)]) {
    let topic = config.iter().fold(
        NewTopic::new(name, partitions, TopicReplication::Fixed(1)),
        |topic, (key, value)| topic.set(key, value),
    );
    create(brokers, &[topic]);
}

fn create(brokers: &str, topics: &[NewTopic<'_>]) {
    let admin = admin(brokers);
    for result in runtime()
        .block_on(admin.create_topics(topics, &AdminOptions::new()))
        .expect("the broker answers")
    {
        result.expect("the topic is created");
    }
}

/// Sets one setting of an existing topic.
pub fn alter_topic(brokers: &str, name: &str, key: &str, value: &str) {
    let admin = admin(brokers);
    let change = AlterConfig::new(ResourceSpecifier::Topic(name)).set(key, value);
    for result in runtime()
        .block_on(admin.alter_configs([&change], &AdminOptions::new()))
        .expect("the broker answers")
    {
        result.expect("the topic setting is changed");
    }
}

fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every record of `topic`, from its beginning to its end as it is when called, as a reader
/// with `isolation` (`read_committed` or `read_uncommitted`) sees it. The end is reached by
/// position, not by the last record read: transaction markers take offsets too. A committed
/// reader waits while a transaction is still open; after 90 s this panics.
pub fn read_all(brokers: &str, topic: &str, isolation: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("whole", topic))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    let timeout = Duration::from_secs(30);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("the broker answers");
    let mut partitions = TopicPartitionList::new();
    let mut ends = Vec::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition.id(), timeout)
            .expect("the broker answers");
        partitions
            .add_partition_offset(topic, partition.id(), Offset::Beginning)
            .unwrap();
        ends.push((partition.id(), high));
    }
    assert!(!ends.is_empty(), "{topic} has no partitions");
    consumer.assign(&partitions).unwrap();

    let started = Instant::now();
    let mut read = Vec::new();
    loop {
        let positions = consumer.position().unwrap();
        let at_end = ends.iter().all(|&(partition, end)| {
            end == 0
                || positions
                    .find_partition(topic, partition)
                    .is_some_and(|p| matches!(p.offset(), Offset::Offset(at) if at >= end))
        });
        if at_end {
            return read;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{topic}: not at its end {ends:?} after 90 s, at {positions:?}"
        );
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            read.push(Record {
                key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                value: message.payload().map(<[u8]>::to_vec),
            });
        }
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
