//! Idempotent producer state on the broker, driven with exact batches over the raw protocol:
//! a resent batch is recognised as a duplicate (acknowledged with its original offset, not
//! appended), a sequence gap is rejected with OUT_OF_ORDER_SEQUENCE_NUMBER, the state
//! survives a restart (clean or crash) of the broker, and a producer idle for longer than
//! `producer.id.expiration.ms` is forgotten and may then continue at any sequence.

use std::time::Duration;
use weir_tests::raw::{
    decode_records, error_code, now_ms, record_batch, record_batch_at, ProducerIdentity, RawClient,
};
use weir_tests::{unique_topic, wait_until, Broker, BrokerOptions};

fn identity(producer: (i64, i16), base_sequence: i32) -> Option<ProducerIdentity> {
    Some(ProducerIdentity {
        producer_id: producer.0,
        producer_epoch: producer.1,
        base_sequence,
    })
}

/// Every value stored in partition 0, in offset order.
fn stored_values(client: &mut RawClient, topic: &str) -> Vec<Vec<u8>> {
    let data = client.fetch(topic, 0, 0, Duration::from_millis(0), 0);
    assert_eq!(data.error_code, error_code::NONE, "Fetch error code");
    let records = decode_records(&data.records.unwrap_or_default());
    for (index, record) in records.iter().enumerate() {
        assert_eq!(
            record.offset, index as i64,
            "fetched offsets are not contiguous"
        );
    }
    records
        .into_iter()
        .map(|r| r.value.unwrap().to_vec())
        .collect()
}

#[test]
fn a_resent_batch_is_acknowledged_with_its_original_offset() {
    let broker = Broker::start_default();
    let topic = unique_topic("duplicate");
    let mut client = RawClient::connect(broker.kafka_addr());
    client.create_topic_ok(&topic, 1);

    // A plain batch first, so the idempotent batch does not start at offset 0.
    let plain = client.produce(&topic, 0, record_batch(&[b"plain-0", b"plain-1"], None), -1);
    assert_eq!((plain.error_code, plain.base_offset), (0, 0));

    let producer = client.init_producer_id();
    let batch = record_batch(&[b"a", b"b", b"c"], identity(producer, 0));
    let first = client.produce(&topic, 0, batch.clone(), -1);
    assert_eq!(
        (first.error_code, first.base_offset),
        (0, 2),
        "first copy of the batch"
    );

    let second = client.produce(&topic, 0, batch, -1);
    assert_eq!(
        (second.error_code, second.base_offset),
        (error_code::NONE, 2),
        "a resent batch (same producer id, epoch, sequence) must be acknowledged with the \
         original base offset"
    );
    assert_eq!(
        client.log_end_offset(&topic, 0),
        5,
        "the duplicate was appended"
    );

    let next = client.produce(&topic, 0, record_batch(&[b"d"], identity(producer, 3)), -1);
    assert_eq!(
        (next.error_code, next.base_offset),
        (0, 5),
        "the batch after the duplicate"
    );
    assert_eq!(
        stored_values(&mut client, &topic),
        [&b"plain-0"[..], b"plain-1", b"a", b"b", b"c", b"d"]
    );
}

#[test]
fn a_sequence_gap_is_rejected_as_out_of_order() {
    let broker = Broker::start_default();
    let topic = unique_topic("sequence-gap");
    let mut client = RawClient::connect(broker.kafka_addr());
    client.create_topic_ok(&topic, 1);
    let producer = client.init_producer_id();

    let first = client.produce(
        &topic,
        0,
        record_batch(&[b"s0", b"s1"], identity(producer, 0)),
        -1,
    );
    assert_eq!((first.error_code, first.base_offset), (0, 0));

    // The next expected sequence is 2; 5 skips three records.
    let gap = client.produce(&topic, 0, record_batch(&[b"s5"], identity(producer, 5)), -1);
    assert_eq!(
        gap.error_code,
        error_code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        "a batch whose first sequence skips ahead must be rejected"
    );
    assert_eq!(
        client.log_end_offset(&topic, 0),
        2,
        "the out-of-order batch was appended"
    );

    // The producer is not fenced: the right sequence still goes through.
    let next = client.produce(&topic, 0, record_batch(&[b"s2"], identity(producer, 2)), -1);
    assert_eq!((next.error_code, next.base_offset), (0, 2));
    assert_eq!(
        stored_values(&mut client, &topic),
        [&b"s0"[..], b"s1", b"s2"]
    );
}

#[derive(Debug, Clone, Copy)]
enum Restart {
    Clean,
    Crash,
}

fn producer_state_survives(restart: Restart) {
    const BATCHES: i32 = 5;
    let mut broker = Broker::start_default();
    let topic = unique_topic("producer-state");
    let mut client = RawClient::connect(broker.kafka_addr());
    client.create_topic_ok(&topic, 1);
    let producer = client.init_producer_id();

    let batch_at = |index: i32| {
        let first = format!("batch{index}-0");
        let second = format!("batch{index}-1");
        record_batch(
            &[first.as_bytes(), second.as_bytes()],
            identity(producer, 2 * index),
        )
    };
    for index in 0..BATCHES {
        let response = client.produce(&topic, 0, batch_at(index), -1);
        assert_eq!(
            (response.error_code, response.base_offset),
            (0, 2 * index as i64)
        );
    }
    drop(client);

    match restart {
        Restart::Clean => broker.restart(),
        Restart::Crash => {
            broker.kill9();
            broker.restart();
        }
    }

    let mut client = RawClient::connect(broker.kafka_addr());
    let last = BATCHES - 1;
    let resent = client.produce(&topic, 0, batch_at(last), -1);
    assert_eq!(
        (resent.error_code, resent.base_offset),
        (error_code::NONE, 2 * last as i64),
        "after a {restart:?} restart, resending the last batch must be detected as a duplicate"
    );
    assert_eq!(
        client.log_end_offset(&topic, 0),
        2 * BATCHES as i64,
        "the resent batch was appended again"
    );

    let next = client.produce(&topic, 0, batch_at(BATCHES), -1);
    assert_eq!(
        (next.error_code, next.base_offset),
        (error_code::NONE, 2 * BATCHES as i64),
        "the next sequence after a {restart:?} restart"
    );
    assert_eq!(
        stored_values(&mut client, &topic).len(),
        2 * (BATCHES as usize + 1)
    );
}

#[test]
fn producer_state_survives_a_clean_restart() {
    producer_state_survives(Restart::Clean);
}

#[test]
fn producer_state_survives_a_crash_restart() {
    producer_state_survives(Restart::Crash);
}

#[test]
fn a_producer_idle_past_producer_id_expiration_is_forgotten_and_may_continue() {
    // Ten minutes: the producer whose last batch is stamped an hour ago expires at the first
    // check, the one writing now does not.
    let broker = Broker::start(
        BrokerOptions::default()
            .set("producer.id.expiration.ms", 600_000)
            .set("producer.id.expiration.check.interval.ms", 100),
    );
    let topic = unique_topic("producer-expiry");
    let mut client = RawClient::connect(broker.kafka_addr());
    client.create_topic_ok(&topic, 1);
    let idle = client.init_producer_id();
    let active = client.init_producer_id();
    let an_hour_ago = now_ms() - 3_600_000;

    let old = client.produce(
        &topic,
        0,
        record_batch_at(&[b"i0", b"i1"], identity(idle, 0), an_hour_ago),
        -1,
    );
    assert_eq!((old.error_code, old.base_offset), (error_code::NONE, 0));
    let recent = client.produce(&topic, 0, record_batch(&[b"a0"], identity(active, 0)), -1);
    assert_eq!(
        (recent.error_code, recent.base_offset),
        (error_code::NONE, 2)
    );

    // Once forgotten, the idle producer continues where it is (sequence 9, say, after
    // batches that went elsewhere) instead of failing with OUT_OF_ORDER_SEQUENCE_NUMBER,
    // as Kafka allows an unknown producer to.
    let resumed = wait_until(
        Duration::from_secs(30),
        "the idle producer forgotten by producer.id.expiration.ms",
        || {
            let r = client.produce(&topic, 0, record_batch(&[b"i9"], identity(idle, 9)), -1);
            if r.error_code != error_code::NONE {
                assert_eq!(r.error_code, error_code::OUT_OF_ORDER_SEQUENCE_NUMBER);
                return None;
            }
            Some(r)
        },
    );
    assert_eq!(resumed.base_offset, 3);

    // The active producer is still known: a gap is refused, its next sequence appended.
    let gap = client.produce(&topic, 0, record_batch(&[b"a5"], identity(active, 5)), -1);
    assert_eq!(gap.error_code, error_code::OUT_OF_ORDER_SEQUENCE_NUMBER);
    let next = client.produce(&topic, 0, record_batch(&[b"a1"], identity(active, 1)), -1);
    assert_eq!((next.error_code, next.base_offset), (error_code::NONE, 4));
    assert_eq!(
        stored_values(&mut client, &topic),
        [&b"i0"[..], b"i1", b"a0", b"i9", b"a1"]
    );
}
