//! What a partition costs in open files, and that the indexes written only at flush and roll
//! survive a SIGKILL.
//!
//! A partition holds one descriptor, its active segment's `.log` (as Kafka does): the offset
//! and time indexes are kept in memory and written through a descriptor opened for the write,
//! at a flush, at a roll, and at a clean shutdown. With three descriptors per partition a
//! broker under the usual 20,000-file limit stopped at ~6,660 partitions.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use weir_tests::{clients, unique_topic, Broker, BrokerOptions};

/// Partitions created to count descriptors: well above the broker's own fixed set.
const PARTITIONS: i32 = 2000;
/// They are created as this many topics: one CreateTopics of 2,000 partitions can outlast the
/// broker's wait for its own apply on a loaded machine (each new log costs a few fsyncs).
const TOPICS: i32 = 8;
/// Descriptors a broker may hold beyond one per partition: listeners, the metadata log,
/// epoll, runtime threads' pipes, client connections of the test (a generous bound: two or
/// three per partition would exceed it by thousands).
const FIXED_DESCRIPTORS: usize = 150;

fn open_descriptors(broker: &Broker) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", broker.pid()))
        .expect("the broker's /proc/PID/fd")
        .count()
}

/// The broker's descriptors that are files under `dir` with this extension.
fn open_files_with_extension(broker: &Broker, dir: &Path, extension: &str) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", broker.pid()))
        .expect("the broker's /proc/PID/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| {
            target.starts_with(dir) && target.extension().is_some_and(|e| e == extension)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_holds_one_open_file() {
    let broker = Broker::start_default();
    let before = open_descriptors(&broker);
    let per_topic = PARTITIONS / TOPICS;
    let mut topics = Vec::new();
    for _ in 0..TOPICS {
        let topic = unique_topic("fds");
        clients::create_topic(&broker, &topic, per_topic).await;
        topics.push(topic);
    }
    // Records in every partition: appends must not open the index files either.
    let producer = clients::producer(&broker, &[("linger.ms", "5")]);
    let mut pending = Vec::new();
    for topic in &topics {
        for partition in 0..per_topic {
            let record = FutureRecord::<(), str>::to(topic)
                .partition(partition)
                .payload("x");
            pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        }
    }
    for delivery in pending {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }

    let data_dir = broker.data_dir().to_path_buf();
    let logs = open_files_with_extension(&broker, &data_dir, "log");
    let indexes = open_files_with_extension(&broker, &data_dir, "index")
        + open_files_with_extension(&broker, &data_dir, "timeindex");
    let after = open_descriptors(&broker);
    println!(
        "{PARTITIONS} partitions: {before} descriptors before, {after} after, {logs} open .log \
         files, {indexes} open index files"
    );
    assert!(
        logs >= PARTITIONS as usize,
        "{logs} open .log files for {PARTITIONS} partitions"
    );
    assert_eq!(indexes, 0, "index files held open");
    assert!(
        after >= before + PARTITIONS as usize
            && after <= before + PARTITIONS as usize + FIXED_DESCRIPTORS,
        "{PARTITIONS} partitions took {} descriptors ({before} before, {after} after): \
         expected about one each",
        after.saturating_sub(before)
    );
}

/// Whole seconds, an hour ago: every record gets its own, increasing timestamp.
fn base_timestamp() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 3_600_000) / 1000 * 1000
}

/// The offset `offsets_for_times` answers for `timestamp` on partition 0.
fn offset_for_time(broker: &Broker, topic: &str, timestamp: i64) -> i64 {
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset(topic, 0, Offset::Offset(timestamp))
        .unwrap();
    let answer = clients::consumer(broker)
        .offsets_for_times(query, clients::CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("ListOffsets for timestamp {timestamp}: {e}"));
    match answer.find_partition(topic, 0).unwrap().offset() {
        Offset::Offset(offset) => offset,
        other => panic!("unexpected answer {other:?} for timestamp {timestamp}"),
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_written_at_flush_and_roll_are_rebuilt_after_sigkill() {
    const RECORDS: i64 = 3000;
    // No periodic recovery-point checkpoint (a flush) while the test looks at the files.
    let mut broker = Broker::start(
        BrokerOptions::default().set("log.flush.offset.checkpoint.interval.ms", "3600000"),
    );
    let topic = unique_topic("lazy-index");
    // An index entry every ~1 KiB and a segment every ~16 KiB, batches of at most 10 records
    // (~1.2 KiB): many rolled segments (their indexes written at the roll) and an active one
    // whose entries are only in memory.
    clients::create_topic_with(
        &broker,
        &topic,
        1,
        &[("index.interval.bytes", "1024"), ("segment.bytes", "16384")],
    )
    .await;
    let base = base_timestamp();
    let producer = clients::producer(&broker, &[("linger.ms", "0"), ("batch.num.messages", "10")]);
    let mut pending = Vec::new();
    for index in 0..RECORDS {
        let value = format!("{index:08}-{}", "v".repeat(90));
        let record = FutureRecord::<(), String>::to(&topic)
            .partition(0)
            .payload(&value)
            .timestamp(base + index * 10);
        pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for (index, delivery) in pending.into_iter().enumerate() {
        let delivery = delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
        assert_eq!(delivery.offset, index as i64);
    }

    let dir = broker.partition_dir(&topic, 0);
    let mut bases: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "log").then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    bases.sort();
    assert!(bases.len() >= 3, "segments: {bases:?}");
    let (rolled, active) = bases.split_at(bases.len() - 1);
    for base in rolled {
        assert!(
            file_len(&dir.join(format!("{base}.index"))) > 0,
            "rolled segment {base}: its offset index was written at the roll"
        );
    }
    let active_index = dir.join(format!("{}.index", active[0]));
    assert_eq!(
        file_len(&active_index),
        0,
        "the active segment's index entries are in memory until a flush"
    );

    broker.kill9();
    broker.restart();

    // Recovery rebuilt (and wrote) the active segment's index: it has an entry once more
    // than an index interval and a batch are in it.
    let active_log = dir.join(format!("{}.log", active[0]));
    if file_len(&active_log) > 3 * 1024 {
        assert!(file_len(&active_index) > 0, "index rebuilt after SIGKILL");
    }
    let stored = clients::read_all(&broker, &topic, 0);
    clients::assert_contiguous_offsets(&stored, 0);
    assert_eq!(stored.len() as i64, RECORDS);
    for (index, record) in stored.iter().enumerate() {
        assert_eq!(record.timestamp, Some(base + index as i64 * 10));
        assert!(record
            .value
            .as_deref()
            .unwrap()
            .starts_with(format!("{index:08}-").as_bytes()));
    }
    // Lookups through both indexes, in rolled and active segments.
    for index in [0, 1, 499, 1234, 2000, RECORDS - 2, RECORDS - 1] {
        assert_eq!(
            offset_for_time(&broker, &topic, base + index * 10),
            index,
            "timestamp of record {index}"
        );
        let from = clients::read_partition(&broker, &topic, 0, index, 1);
        assert_eq!(from[0].offset, index, "a fetch from offset {index}");
    }
    // The log carries on after the recovered end.
    let next = clients::produce_one(&producer, &topic, Some(0), None, b"after").await;
    assert_eq!(next, (0, RECORDS));

    // A clean stop writes every index; the next start opens them without recovery.
    broker.stop();
    let written = file_len(&active_index);
    broker.restart();
    assert_eq!(file_len(&active_index), written);
    assert_eq!(clients::watermarks(&broker, &topic, 0), (0, RECORDS + 1));
    let records = clients::read_partition(&broker, &topic, 0, 1500, 1);
    assert_eq!(records[0].offset, 1500);
}
