//! Measures the log cleaner on this machine: builds a compacted log of updates to a few keys
//! in a temporary directory, cleans it once, and prints the throughput and the sizes before
//! and after.
//!
//! ```sh
//! cargo run -p weir-broker --example cleaner_throughput -- [MiB] [keys] [codec]
//! ```
//!
//! Defaults: 64 MiB of 100-byte values over 10000 keys, uncompressed (`none`, `gzip`,
//! `snappy`, `lz4` or `zstd`). Numbers from a debug build measure the debug build.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::RwLock;
use weir_broker::clock::{Clock, SystemClock};
use weir_broker::log::cleaner::{Cleaner, CleanerConfig};
use weir_broker::log::{CleanupPolicy, Log, LogConfig};

const RECORDS_PER_BATCH: usize = 50;
const VALUE_BYTES: usize = 100;

fn batch(first: usize, keys: usize, codec: Compression, now: i64) -> Bytes {
    let records: Vec<Record> = (0..RECORDS_PER_BATCH)
        .map(|i| {
            let n = first + i;
            let mut value = format!("value-{n:012}-").into_bytes();
            let mut x = n as u64;
            while value.len() < VALUE_BYTES {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                value.extend_from_slice(format!("{:x}", x >> 40).as_bytes());
            }
            value.truncate(VALUE_BYTES);
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32 - 1,
                timestamp: now,
                key: Some(Bytes::from(format!("key-{:08}", n % keys))),
                value: Some(Bytes::from(value)),
                headers: IndexMap::new(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: codec,
        },
    )
    .expect("encoding a batch");
    buf.freeze()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: u64 = args.first().map_or(Ok(64), |a| a.parse())?;
    let keys: usize = args.get(1).map_or(Ok(10_000), |a| a.parse())?;
    let codec = match args.get(2).map_or("none", String::as_str) {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => return Err(format!("unknown codec {other}").into()),
    };
    let dir = tempfile::tempdir()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = LogConfig {
        segment_bytes: 16 << 20,
        retention_ms: -1,
        cleanup_policy: CleanupPolicy::COMPACT,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, clock.clone())?;
    let mut written = 0;
    while log.size_in_bytes() < mib << 20 {
        log.append_as_leader(&batch(written, keys, codec, clock.now_ms()), 0)?;
        written += RECORDS_PER_BATCH;
    }
    log.roll()?;
    let end = log.log_end_offset();
    log.update_high_watermark(end);
    let before = log.size_in_bytes();
    let segments_before = log.num_segments();
    let log = RwLock::new(log);
    let mut cleaner = Cleaner::new(CleanerConfig::default());
    let started = Instant::now();
    let stats = cleaner.clean(&log)?;
    let seconds = started.elapsed().as_secs_f64();
    let after = log.read().size_in_bytes();
    println!(
        "{written} records ({keys} keys, {codec:?}), {:.1} MiB in {segments_before} segments \
         -> {:.2} MiB in {} segments",
        before as f64 / (1 << 20) as f64,
        after as f64 / (1 << 20) as f64,
        log.read().num_segments()
    );
    let mib_of = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!(
        "pass: {seconds:.2} s for {:.1} MiB of log = {:.1} MiB/s (read {:.1} MiB: map, then \
         rewrite), {} records removed",
        mib_of(before),
        mib_of(before) / seconds,
        mib_of(stats.bytes_read),
        stats.records_removed
    );
    Ok(())
}
