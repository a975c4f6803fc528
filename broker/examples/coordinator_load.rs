//! Measures what compaction of `__consumer_offsets` buys a group coordinator: writes a history
//! of offset commits to one offsets partition (as the coordinator writes them: one batch per
//! OffsetCommit, one record per partition), replays it as a new coordinator does when it takes
//! the partition over, cleans it once, and replays it again.
//!
//! ```sh
//! cargo run --release -p weir-broker --example coordinator_load -- [commits] [groups] [partitions]
//! ```
//!
//! Defaults: 1,000,000 commits by 100 groups of 10 partitions each (100,000 OffsetCommit
//! requests). Both replays must find the same offsets, or it fails.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use uuid::Uuid;
use weir_broker::clock::{Clock, SystemClock};
use weir_broker::group::loader::LoadedPartition;
use weir_broker::group::records::{OffsetCommitValue, RecordKey};
use weir_broker::log::cleaner::{Cleaner, CleanerConfig};
use weir_broker::log::{CleanupPolicy, LogConfig};
use weir_broker::partition::Partition;

/// One OffsetCommit of `group` for `partitions` partitions of topic `t`, at `offset`.
fn commit_batch(group: &str, partitions: i32, offset: i64, now: i64) -> Bytes {
    let records: Vec<Record> = (0..partitions)
        .map(|p| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(p),
            sequence: -1,
            timestamp: now,
            key: Some(
                RecordKey::Offset {
                    group: group.to_string(),
                    topic: "t".to_string(),
                    partition: p,
                }
                .encode(),
            ),
            value: Some(
                OffsetCommitValue {
                    offset,
                    leader_epoch: 0,
                    metadata: String::new(),
                    commit_timestamp: now,
                }
                .encode(),
            ),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encoding a batch");
    buf.freeze()
}

/// Replays the partition; the time it took and every (group, partition, offset) found.
fn replay(partition: &Partition) -> (f64, Vec<(String, i32, i64)>) {
    let started = Instant::now();
    let loaded = LoadedPartition::replay(partition);
    let seconds = started.elapsed().as_secs_f64();
    let mut offsets: Vec<(String, i32, i64)> = loaded
        .offsets
        .iter()
        .flat_map(|(group, offsets)| {
            offsets
                .iter()
                .map(move |((_, p), (v, _))| (group.clone(), *p, v.offset))
        })
        .collect();
    offsets.sort();
    (seconds, offsets)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let commits: i64 = args.first().map_or(Ok(1_000_000), |a| a.parse())?;
    let groups: i64 = args.get(1).map_or(Ok(100), |a| a.parse())?;
    let partitions: i32 = args.get(2).map_or(Ok(10), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // `offsets.topic.segment.bytes`' default, compacted, as the coordinator creates the topic.
    let config = LogConfig {
        segment_bytes: 100 << 20,
        retention_ms: -1,
        cleanup_policy: CleanupPolicy::COMPACT,
        ..LogConfig::default()
    };
    let partition = Partition::open(
        dir.path(),
        Arc::from("__consumer_offsets"),
        Uuid::new_v4(),
        0,
        config,
        clock.clone(),
    )?;
    let requests = commits / i64::from(partitions);
    let started = Instant::now();
    {
        let mut log = partition.log_lock().write();
        for n in 0..requests {
            let group = format!("group-{}", n % groups);
            log.append_as_leader(&commit_batch(&group, partitions, n, clock.now_ms()), 0)?;
        }
        log.roll()?;
        let end = log.log_end_offset();
        log.update_high_watermark(end);
    }
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let before = partition.stats();
    println!(
        "{} commits ({requests} OffsetCommit requests, {groups} groups x {partitions} partitions) \
         written in {:.1} s: {:.1} MiB in {} segments",
        requests * i64::from(partitions),
        started.elapsed().as_secs_f64(),
        mib(before.size_bytes),
        before.segments
    );
    let (load_before, offsets_before) = replay(&partition);

    let started = Instant::now();
    let stats = Cleaner::new(CleanerConfig::default()).clean(partition.log_lock())?;
    let clean_seconds = started.elapsed().as_secs_f64();
    let after = partition.stats();
    let (load_after, offsets_after) = replay(&partition);
    if offsets_before != offsets_after {
        return Err("the compacted partition replays to other offsets".into());
    }
    println!(
        "cleaned in {clean_seconds:.1} s ({} records removed): {:.2} MiB in {} segments",
        stats.records_removed,
        mib(after.size_bytes),
        after.segments
    );
    println!(
        "coordinator load: {load_before:.3} s before compaction, {load_after:.3} s after \
         ({:.0}x faster), {} committed offsets either way",
        load_before / load_after.max(1e-9),
        offsets_after.len()
    );
    Ok(())
}
