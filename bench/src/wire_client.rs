//! The bench's own producer and catch-up consumer, written on `kafka-protocol`: what a broker
//! can take when the client costs it nothing.
//!
//! On a machine of a few cores the librdkafka rows of the producer table measure the client as
//! much as the broker: at 100-byte records librdkafka spends about a microsecond of CPU per
//! record on its own queues, compressing lz4 costs it about two seconds of CPU per GB, and that
//! CPU is taken from the broker under test (on a real deployment producers run elsewhere). This
//! producer therefore builds every Produce request **before the clock starts**, and the timed
//! part only writes them and reads the answers, so the brokers' own costs decide the rows it
//! measures. It cheats nowhere else: every record is encoded from the shared payload (the same
//! values the librdkafka rows send) with its own sequence number, each batch is compressed on
//! its own when the case says lz4 (librdkafka's fast level), and no batch is sent twice.
//!
//! The producer opens one connection per partition leader, sends one record batch of up to
//! [`BATCH_BYTES`] per Produce request, round-robin over the leader's partitions, with up to
//! [`IN_FLIGHT`] requests unanswered per connection (as librdkafka's `batch.size=1000000` and
//! a pipelining client). Every response must say success, and each partition's base offsets
//! must follow on from each other with no gap: an acknowledgement that skipped or repeated a
//! record fails the run. The consumer sends one Fetch at a time per leader (as librdkafka
//! does) with librdkafka's default sizes, checks that offsets run on with no gap and every
//! batch's CRC (the latter while its next Fetch is under way), and counts records from the
//! batch headers without decoding each record.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Barrier;
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as Codec, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::cases::{Acks, Compression, ProduceCase, Topology};
use crate::client;
use crate::frames::{
    connect, decode_response, encode_request, metadata_of, read_frame, read_frame_into, recycle,
};
use crate::payload::Payload;
use crate::results::Throughput;

/// The largest record batch the producer builds, as librdkafka's `batch.size` in the
/// librdkafka rows (below both brokers' default `message.max.bytes`, 1,048,588).
pub const BATCH_BYTES: usize = 1_000_000;
/// Produce requests a connection may have unanswered.
pub const IN_FLIGHT: usize = 5;
/// Bytes a record adds to its value in a batch, at most, with no key and no headers: length,
/// attributes, timestamp and offset deltas, key length and value length, header count.
const RECORD_OVERHEAD: usize = 16;
/// A v2 record batch header.
const BATCH_HEADER: usize = 61;

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// librdkafka's defaults: `fetch.wait.max.ms`, `fetch.max.bytes`, `max.partition.fetch.bytes`.
const FETCH_MAX_WAIT_MS: i32 = 500;
const FETCH_MAX_BYTES: i32 = 52_428_800;
const FETCH_PARTITION_MAX_BYTES: i32 = 1_048_576;
/// How long a catch-up may take in all.
const READ_TIMEOUT_SECONDS: u64 = 300;

/// Records of `record_size` bytes in one batch of at most [`BATCH_BYTES`].
pub fn records_per_batch(record_size: usize) -> usize {
    ((BATCH_BYTES - BATCH_HEADER) / (record_size + RECORD_OVERHEAD)).max(1)
}

/// Creates `topic` with the case's partitions, replicated as `topology` says, and fills it
/// with [`produce`], timing the sends.
pub fn run(
    bootstrap: &str,
    topic: &str,
    case: &ProduceCase,
    topology: &Topology,
    payload: &Payload,
) -> anyhow::Result<Throughput> {
    client::create_topic(bootstrap, topic, case.partitions, topology)?;
    produce(bootstrap_addr(bootstrap)?, topic, case, payload)
}

/// The first address of a librdkafka-style bootstrap list (`host:port,host:port`), IPv4.
pub fn bootstrap_addr(bootstrap: &str) -> anyhow::Result<SocketAddr> {
    let first = bootstrap.split(',').next().unwrap_or_default();
    first
        .to_socket_addrs()
        .with_context(|| format!("bootstrap address {first}"))?
        .find(SocketAddr::is_ipv4)
        .with_context(|| format!("bootstrap {first}: no IPv4 address"))
}

/// Sends the case's records to `topic` (which exists, with the case's partitions, and is led
/// as the broker at `bootstrap` says), timing from the first request to the last
/// acknowledgement.
pub fn produce(
    bootstrap: SocketAddr,
    topic: &str,
    case: &ProduceCase,
    payload: &Payload,
) -> anyhow::Result<Throughput> {
    let by_leader = partitions_by_leader(bootstrap, topic, case.partitions)?;
    let (acknowledged, seconds) = timed_on_each_leader(
        &by_leader,
        |addr, partitions| {
            let requests = prepare(topic, case, payload, partitions)?;
            Ok((requests, connect(addr)?))
        },
        |addr, _, (requests, connection)| {
            send(connection, requests).with_context(|| format!("producing to {topic} at {addr}"))
        },
    )?;
    let acknowledged: u64 = acknowledged.into_iter().sum();
    anyhow::ensure!(
        acknowledged == case.records,
        "{topic}: {acknowledged} of {} records acknowledged",
        case.records
    );
    Ok(Throughput {
        records: case.records,
        bytes: case.bytes(),
        seconds,
    })
}

/// Reads every partition of `topic` from offset 0 until `expected` records of `record_size`
/// bytes have arrived, timing from the first Fetch to the last record; the bytes reported are
/// payload bytes, as the librdkafka consumer counts them.
pub fn catch_up(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: u64,
    record_size: usize,
) -> anyhow::Result<Throughput> {
    let by_leader = partitions_by_leader(bootstrap_addr(bootstrap)?, topic, partitions)?;
    let (read, seconds) = timed_on_each_leader(
        &by_leader,
        |addr, _| connect(addr),
        |addr, partitions, stream| {
            read_from_leader(stream, topic, partitions)
                .with_context(|| format!("reading {topic} at {addr}"))
        },
    )?;
    let records: u64 = read.into_iter().sum();
    anyhow::ensure!(
        records == expected,
        "{topic}: read {records} records, expected {expected}"
    );
    Ok(Throughput {
        records,
        bytes: records * record_size as u64,
        seconds,
    })
}

/// Runs one thread per leader: each gets `ready` (untimed: encoding, connecting), then all
/// start `timed` together; returns their results and the seconds from that start until the
/// last one is done.
fn timed_on_each_leader<R: Send, T: Send>(
    by_leader: &BTreeMap<SocketAddr, Vec<i32>>,
    ready: impl Fn(SocketAddr, &[i32]) -> anyhow::Result<R> + Sync,
    timed: impl Fn(SocketAddr, &[i32], R) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<(Vec<T>, f64)> {
    let start = Barrier::new(by_leader.len() + 1);
    thread::scope(|scope| {
        let (start, ready, timed) = (&start, &ready, &timed);
        let threads: Vec<_> = by_leader
            .iter()
            .map(|(&addr, partitions)| {
                scope.spawn(move || {
                    let prepared = ready(addr, partitions);
                    // Everyone waits at the barrier, ready or not, so a failure cannot hang it.
                    start.wait();
                    timed(addr, partitions, prepared?)
                })
            })
            .collect();
        start.wait();
        let started = Instant::now();
        let results = threads
            .into_iter()
            .map(|t| t.join().expect("a client thread panicked"))
            .collect::<anyhow::Result<Vec<T>>>()?;
        Ok((results, started.elapsed().as_secs_f64()))
    })
}

/// Each leader's address and the partitions of `topic` it leads.
fn partitions_by_leader(
    bootstrap: SocketAddr,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<BTreeMap<SocketAddr, Vec<i32>>> {
    let metadata = metadata_of(bootstrap, topic)?;
    let brokers = broker_addrs(&metadata)?;
    let mut by_leader: BTreeMap<SocketAddr, Vec<i32>> = BTreeMap::new();
    let described = metadata
        .topics
        .first()
        .filter(|t| t.error_code == 0)
        .with_context(|| format!("no metadata for {topic}"))?;
    for partition in &described.partitions {
        anyhow::ensure!(
            partition.error_code == 0,
            "{topic}/{}: error code {} in metadata",
            partition.partition_index,
            partition.error_code
        );
        let addr = brokers
            .get(&partition.leader_id.0)
            .with_context(|| format!("{topic}/{}: no leader", partition.partition_index))?;
        by_leader
            .entry(*addr)
            .or_default()
            .push(partition.partition_index);
    }
    let found: usize = by_leader.values().map(Vec::len).sum();
    anyhow::ensure!(
        found == partitions as usize,
        "{topic}: metadata lists {found} partitions, expected {partitions}"
    );
    Ok(by_leader)
}

/// Broker id → IPv4 address, from a Metadata response.
fn broker_addrs(metadata: &MetadataResponse) -> anyhow::Result<BTreeMap<i32, SocketAddr>> {
    let mut addrs = BTreeMap::new();
    for broker in &metadata.brokers {
        let addr = (broker.host.as_str(), broker.port as u16)
            .to_socket_addrs()?
            .find(SocketAddr::is_ipv4)
            .with_context(|| {
                format!(
                    "broker {} at {}: no IPv4 address",
                    broker.node_id.0,
                    broker.host.as_str()
                )
            })?;
        addrs.insert(broker.node_id.0, addr);
    }
    Ok(addrs)
}

/// The threads that encode one connection's batches before the clock starts (lz4 at its fast
/// level compresses 0.4-0.5 GB/s per core).
fn encoder_lanes() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// One encoder lane's part of one partition's records, by sequence number.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PartitionShare {
    partition: i32,
    /// The sequence number of its next record (values differ by sequence).
    next_sequence: u64,
    /// The step between its sequence numbers.
    stride: u64,
    /// Records still to send.
    remaining: u64,
}

impl PartitionShare {
    /// The records of `partition` that lane `lane` of `lanes` encodes. Sequence numbers
    /// interleave over partitions, then over lanes: record `s` of the case goes to partition
    /// `s % partitions`, so every record of the case is sent exactly once.
    fn of(case: &ProduceCase, partition: i32, lane: usize, lanes: usize) -> PartitionShare {
        let partitions = case.partitions as u64;
        let first = partition as u64 + lane as u64 * partitions;
        let stride = partitions * lanes as u64;
        PartitionShare {
            partition,
            next_sequence: first,
            stride,
            remaining: case.records.saturating_sub(first).div_ceil(stride),
        }
    }
}

/// What a sent request carried, for its response to be checked against.
struct Sent {
    correlation_id: i32,
    partition: i32,
    records: u64,
}

/// A Produce request frame, ready to write, and what it carries.
struct Prepared {
    frame: BytesMut,
    sent: Sent,
}

/// A partition's encoded batch and its record count.
type Encoded = (i32, Bytes, u64);

/// Every Produce request for the records of `partitions`, one batch each, encoded by
/// [`encoder_lanes`] threads and taken from the lanes in turn.
fn prepare(
    topic: &str,
    case: &ProduceCase,
    payload: &Payload,
    partitions: &[i32],
) -> anyhow::Result<Vec<Prepared>> {
    let lanes = encoder_lanes();
    let encoded: Vec<Vec<Encoded>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..lanes)
            .map(|lane| {
                let shares: Vec<_> = partitions
                    .iter()
                    .map(|&p| PartitionShare::of(case, p, lane, lanes))
                    .collect();
                scope.spawn(move || encode_lane(case, payload, shares))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an encoder lane panicked"))
            .collect()
    });
    let name = TopicName(StrBytes::from_string(topic.to_string()));
    let acks = match case.acks {
        Acks::Leader => 1,
        Acks::All => -1,
    };
    let mut lanes: Vec<_> = encoded.into_iter().map(Vec::into_iter).collect();
    let mut requests = Vec::new();
    let mut correlation_id = 0;
    loop {
        let mut took = false;
        for lane in &mut lanes {
            let Some((partition, records, count)) = lane.next() else {
                continue;
            };
            took = true;
            correlation_id += 1;
            let request = ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(PRODUCE_TIMEOUT_MS)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name.clone())
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records))])]);
            requests.push(Prepared {
                frame: encode_request(ApiKey::Produce, PRODUCE_VERSION, correlation_id, &request)?,
                sent: Sent {
                    correlation_id,
                    partition,
                    records: count,
                },
            });
        }
        if !took {
            return Ok(requests);
        }
    }
}

/// Encodes `shares` batch by batch, round-robin over partitions.
fn encode_lane(
    case: &ProduceCase,
    payload: &Payload,
    mut shares: Vec<PartitionShare>,
) -> Vec<Encoded> {
    let mut batch = BatchEncoder::new(case, payload);
    let mut encoded = Vec::new();
    while shares.iter().any(|s| s.remaining > 0) {
        for share in shares.iter_mut().filter(|s| s.remaining > 0) {
            let (records, count) = batch.next(share);
            encoded.push((share.partition, records, count));
        }
    }
    encoded
}

/// Writes `requests` in order over `stream`, with up to [`IN_FLIGHT`] unanswered; returns
/// the records acknowledged.
fn send(stream: TcpStream, requests: Vec<Prepared>) -> anyhow::Result<u64> {
    let reader = stream.try_clone()?;
    // The reader holds one, the channel the rest.
    let (sent, unanswered) = sync_channel::<Sent>(IN_FLIGHT - 1);
    let acks = thread::spawn(move || read_acks(reader, unanswered));
    let mut writer = stream;
    let mut sending = Ok(());
    for request in requests {
        // A closed channel means the reader stopped on an error: it says which below.
        if sent.send(request.sent).is_err() {
            break;
        }
        if let Err(e) = writer.write_all(&request.frame) {
            sending = Err(e);
            break;
        }
    }
    drop(sent);
    let acknowledged = acks.join().expect("the acknowledgement reader panicked")?;
    sending.context("writing a Produce request")?;
    Ok(acknowledged)
}

/// Encodes a partition's next batch, reusing its record list between batches.
struct BatchEncoder<'a> {
    case: &'a ProduceCase,
    payload: &'a Payload,
    per_batch: u64,
    records: Vec<Record>,
    buf: BytesMut,
    options: RecordEncodeOptions,
}

impl<'a> BatchEncoder<'a> {
    fn new(case: &'a ProduceCase, payload: &'a Payload) -> BatchEncoder<'a> {
        let codec = match case.compression {
            Compression::None => Codec::None,
            Compression::Lz4 => Codec::Lz4,
        };
        BatchEncoder {
            case,
            payload,
            per_batch: records_per_batch(case.record_size) as u64,
            records: Vec::new(),
            buf: BytesMut::new(),
            options: RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        }
    }

    /// The next batch of `share` and how many records it holds.
    fn next(&mut self, share: &mut PartitionShare) -> (Bytes, u64) {
        let count = share.remaining.min(self.per_batch);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.records.clear();
        for i in 0..count {
            let sequence = share.next_sequence + i * share.stride;
            self.records.push(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch wherever `offset - sequence` changes and
                // writes the first record's `sequence` as the base sequence: -1 there (no
                // sequence, as a producer without idempotence sends) keeps one batch.
                sequence: i as i32 - 1,
                timestamp,
                key: None,
                value: Some(self.payload.shared_value(sequence, self.case.record_size)),
                headers: Default::default(),
            });
        }
        share.next_sequence += count * share.stride;
        share.remaining -= count;
        RecordBatchEncoder::encode_with_custom_compression(
            &mut self.buf,
            &self.records,
            &self.options,
            Some(compress),
        )
        .expect("encoding a record batch in memory");
        (self.buf.split().freeze(), count)
    }
}

/// Writes a batch's encoded records to `out` as the batch's codec says: lz4 at its fast level
/// 0, as librdkafka does by default (kafka-protocol's own encoder uses a high-compression
/// level, several times slower).
fn compress(records: &mut BytesMut, out: &mut BytesMut, codec: Codec) -> anyhow::Result<()> {
    match codec {
        Codec::None => out.extend_from_slice(records),
        Codec::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .level(0)
                .block_mode(lz4::BlockMode::Independent)
                .build(out.writer())?;
            encoder.write_all(records)?;
            let (_, finished) = encoder.finish();
            finished?;
        }
        other => anyhow::bail!("the wire client does not compress with {other:?}"),
    }
    Ok(())
}

/// Reads the response of every request `unanswered` announces; each must succeed with the
/// base offset its partition's earlier batches lead to. Returns the records acknowledged.
fn read_acks(mut stream: TcpStream, unanswered: Receiver<Sent>) -> anyhow::Result<u64> {
    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut acknowledged = 0;
    for sent in unanswered {
        let mut body = read_frame(&mut stream).context("reading a Produce response")?;
        let response: ProduceResponse = decode_response(
            &mut body,
            ApiKey::Produce,
            PRODUCE_VERSION,
            sent.correlation_id,
        )?;
        let answer = response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.index == sent.partition)
            .with_context(|| format!("no answer for partition {}", sent.partition))?;
        anyhow::ensure!(
            answer.error_code == 0,
            "partition {}: error code {} ({:?})",
            sent.partition,
            answer.error_code,
            answer.error_message
        );
        let expected = next_offset.entry(sent.partition).or_insert(0);
        anyhow::ensure!(
            answer.base_offset == *expected,
            "partition {}: batch acknowledged at offset {}, expected {}",
            sent.partition,
            answer.base_offset,
            expected
        );
        *expected += sent.records as i64;
        acknowledged += sent.records;
    }
    Ok(acknowledged)
}

/// Fetches `partitions` of `topic` from offset 0 until none has records left below its high
/// watermark, one Fetch at a time; returns the records read. Each response's
/// batch headers are walked as it arrives (where the next Fetch starts); their CRCs are checked
/// after that next Fetch has been sent, while the broker answers it, as a client hands records
/// to its application while its next fetch is under way.
fn read_from_leader(mut stream: TcpStream, topic: &str, partitions: &[i32]) -> anyhow::Result<u64> {
    let deadline = Instant::now() + std::time::Duration::from_secs(READ_TIMEOUT_SECONDS);
    let name = TopicName(StrBytes::from_string(topic.to_string()));
    let mut position: BTreeMap<i32, (i64, Option<i64>)> =
        partitions.iter().map(|&p| (p, (0, None))).collect();
    let mut records = 0u64;
    let mut correlation_id = 0;
    let mut unchecked: Option<(FetchResponse, Bytes)> = None;
    let mut spare = Vec::new();
    loop {
        let behind: Vec<FetchPartition> = position
            .iter()
            .filter(|(_, (offset, high))| high.is_none_or(|h| *offset < h))
            .map(|(&partition, &(offset, _))| {
                FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(FETCH_PARTITION_MAX_BYTES)
            })
            .collect();
        let caught_up = behind.is_empty();
        if !caught_up {
            anyhow::ensure!(
                Instant::now() < deadline,
                "still behind on {} partitions after {READ_TIMEOUT_SECONDS}s",
                behind.len()
            );
            correlation_id += 1;
            let request = FetchRequest::default()
                .with_replica_id(kafka_protocol::messages::BrokerId(-1))
                .with_max_wait_ms(FETCH_MAX_WAIT_MS)
                .with_min_bytes(1)
                .with_max_bytes(FETCH_MAX_BYTES)
                .with_isolation_level(1)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(name.clone())
                    .with_partitions(behind)]);
            let frame = encode_request(ApiKey::Fetch, FETCH_VERSION, correlation_id, &request)?;
            stream
                .write_all(&frame)
                .context("writing a Fetch request")?;
        }
        if let Some((response, body)) = unchecked.take() {
            for data in response.responses.iter().flat_map(|t| &t.partitions) {
                check_crcs(data.records.clone().unwrap_or_default())
                    .with_context(|| format!("partition {}", data.partition_index))?;
            }
            drop(response);
            spare = recycle(body);
        }
        if caught_up {
            return Ok(records);
        }
        let mut body = read_frame_into(&mut stream, std::mem::take(&mut spare))
            .context("reading a Fetch response")?;
        let response: FetchResponse =
            decode_response(&mut body, ApiKey::Fetch, FETCH_VERSION, correlation_id)?;
        anyhow::ensure!(
            response.error_code == 0,
            "Fetch: error code {}",
            response.error_code
        );
        for data in response.responses.iter().flat_map(|t| &t.partitions) {
            anyhow::ensure!(
                data.error_code == 0,
                "partition {}: error code {}",
                data.partition_index,
                data.error_code
            );
            let at = position.get_mut(&data.partition_index).with_context(|| {
                format!("an answer for partition {} not asked", data.partition_index)
            })?;
            let read = walk_batches(data.records.clone().unwrap_or_default(), at.0)
                .with_context(|| format!("partition {}", data.partition_index))?;
            *at = (read.next_offset, Some(data.high_watermark));
            records += read.records;
        }
        unchecked = Some((response, body));
    }
}

/// What the whole batches of one partition's records held.
#[derive(Debug, PartialEq)]
struct Batches {
    records: u64,
    next_offset: i64,
}

/// The whole v2 batches at the front of `data`, each split off on its own (a trailing partial
/// batch is left for the next fetch); a batch header with an impossible length ends it with
/// an error.
fn whole_batches(mut data: Bytes) -> impl Iterator<Item = anyhow::Result<Bytes>> {
    std::iter::from_fn(move || {
        if data.len() < BATCH_HEADER {
            return None;
        }
        let length = i32::from_be_bytes(data[8..12].try_into().expect("4 bytes"));
        if length < (BATCH_HEADER - 12) as i32 {
            data.clear();
            return Some(Err(anyhow::anyhow!("a batch of length {length}")));
        }
        let total = 12 + length as usize;
        (data.len() >= total).then(|| Ok(data.split_to(total)))
    })
}

/// Walks the whole batches of `data`: each must be of magic 2 and start where the last ended,
/// from `offset`; counts their records from the headers.
fn walk_batches(data: Bytes, offset: i64) -> anyhow::Result<Batches> {
    let mut read = Batches {
        records: 0,
        next_offset: offset,
    };
    for batch in whole_batches(data) {
        let batch = batch?;
        let base_offset = i64::from_be_bytes(batch[0..8].try_into().expect("8 bytes"));
        anyhow::ensure!(batch[16] == 2, "a batch of magic {}", batch[16]);
        anyhow::ensure!(
            base_offset == read.next_offset,
            "a batch at offset {base_offset}, expected {}",
            read.next_offset
        );
        let last_offset_delta = i32::from_be_bytes(batch[23..27].try_into().expect("4 bytes"));
        let count = i32::from_be_bytes(batch[57..61].try_into().expect("4 bytes"));
        read.next_offset = base_offset + i64::from(last_offset_delta) + 1;
        read.records += count as u64;
    }
    Ok(read)
}

/// Checks the CRC-32C of every whole batch of `data`.
fn check_crcs(data: Bytes) -> anyhow::Result<()> {
    for batch in whole_batches(data) {
        let batch = batch?;
        let crc = u32::from_be_bytes(batch[17..21].try_into().expect("4 bytes"));
        anyhow::ensure!(
            crc32c::crc32c(&batch[21..]) == crc,
            "batch at offset {}: CRC mismatch",
            i64::from_be_bytes(batch[0..8].try_into().expect("8 bytes"))
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    fn case(records: u64, partitions: i32, compression: Compression) -> ProduceCase {
        ProduceCase {
            record_size: 100,
            acks: Acks::Leader,
            compression,
            partitions,
            records,
        }
    }

    #[test]
    fn shares_cover_every_record_once() {
        let case = case(11, 3, Compression::None);
        let one_lane: Vec<_> = (0..3).map(|p| PartitionShare::of(&case, p, 0, 1)).collect();
        assert_eq!(
            one_lane.iter().map(|s| s.remaining).collect::<Vec<_>>(),
            [4, 4, 3]
        );
        let payload = Payload::new(100);
        for lanes in 1..=4 {
            let mut encoder = BatchEncoder::new(&case, &payload);
            encoder.per_batch = 2;
            let mut sequences = Vec::new();
            for lane in 0..lanes {
                for p in 0..3 {
                    let mut share = PartitionShare::of(&case, p, lane, lanes);
                    while share.remaining > 0 {
                        let (first, stride) = (share.next_sequence, share.stride);
                        let (_, count) = encoder.next(&mut share);
                        for i in 0..count {
                            let sequence = first + i * stride;
                            assert_eq!(
                                sequence % 3,
                                p as u64,
                                "record {sequence} in partition {p}"
                            );
                            sequences.push(sequence);
                        }
                    }
                }
            }
            sequences.sort_unstable();
            assert_eq!(sequences, (0..11).collect::<Vec<_>>(), "{lanes} lanes");
        }
    }

    #[test]
    fn batches_decode_to_the_payload_values_and_stay_under_the_batch_size() {
        for compression in [Compression::None, Compression::Lz4] {
            let case = case(20_000, 1, compression);
            let payload = Payload::new(100);
            let mut encoder = BatchEncoder::new(&case, &payload);
            let mut share = PartitionShare::of(&case, 0, 0, 1);
            let (batch, count) = encoder.next(&mut share);
            assert_eq!(count, records_per_batch(100) as u64);
            assert!(batch.len() <= BATCH_BYTES, "{} bytes", batch.len());
            let base_sequence = i32::from_be_bytes(batch[53..57].try_into().unwrap());
            assert_eq!(base_sequence, -1, "no sequence without idempotence");
            let mut buf = batch.clone();
            let decoded = RecordBatchDecoder::decode(&mut buf).unwrap();
            assert_eq!(decoded.records.len() as u64, count);
            for (i, record) in decoded.records.iter().enumerate() {
                assert_eq!(
                    record.value.as_deref(),
                    Some(payload.value(i as u64, 100)),
                    "{compression}: record {i}"
                );
                assert_eq!(record.offset, i as i64);
            }
            let walked = walk_batches(batch, 0).unwrap();
            assert_eq!(walked.records, count);
            assert_eq!(walked.next_offset, count as i64);
        }
    }

    #[test]
    fn walking_batches_checks_crc_and_continuity_and_leaves_a_partial_batch() {
        let case = case(30, 1, Compression::None);
        let payload = Payload::new(100);
        let mut encoder = BatchEncoder::new(&case, &payload);
        encoder.per_batch = 10;
        let mut share = PartitionShare::of(&case, 0, 0, 1);
        let mut log = BytesMut::new();
        for base in [0i64, 10, 20] {
            let (batch, _) = encoder.next(&mut share);
            let mut batch = BytesMut::from(&batch[..]);
            batch[0..8].copy_from_slice(&base.to_be_bytes());
            log.extend_from_slice(&batch);
        }
        let whole = log.clone().freeze();
        let read = walk_batches(whole.clone(), 0).unwrap();
        assert_eq!((read.records, read.next_offset), (30, 30));
        // A fetch cut in the third batch reads two.
        let cut = whole.slice(..whole.len() - 5);
        assert_eq!(walk_batches(cut, 0).unwrap().next_offset, 20);
        // A gap: reading from 5 finds a batch at 0.
        assert!(walk_batches(whole.clone(), 5).is_err());
        // A flipped byte in a record: the CRC check finds it (the walk reads headers only).
        assert!(check_crcs(whole.clone()).is_ok());
        let mut corrupt = log.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(check_crcs(corrupt.freeze()).is_err());
        // A header with an impossible length.
        let mut short = log.clone();
        short[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(walk_batches(short.clone().freeze(), 0).is_err());
        assert!(check_crcs(short.freeze()).is_err());
    }
}
