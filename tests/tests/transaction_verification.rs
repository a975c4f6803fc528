//! Transaction verification on the produce path (KIP-890 part 1), with raw requests: a
//! transactional batch for a partition its transaction never added, or arriving after its
//! transaction ended, is refused (INVALID_TXN_STATE up to Produce v10, TRANSACTION_ABORTABLE
//! from v11, as Kafka 4.x answers), nothing is appended, and the
//! partition's last stable offset is not held; a batch for an added partition is appended.
//! With `transaction.partition.verification.enable=false` the same stray batch is appended
//! and opens a transaction nobody will end (the hanging transaction verification prevents).
//! And transactions version 2 with raw requests: Produce v12 adds its partition, EndTxn v5
//! bumps the epoch (answering it, and a retry alike), a late batch of the ended epoch is
//! refused.

use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, FindCoordinatorRequest, InitProducerIdRequest,
    ListOffsetsRequest, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use weir_tests::raw::{
    produce_request, topic_name, transactional_batch, ProducerIdentity, RawClient,
};
use weir_tests::{unique_topic, wait_until, Broker, BrokerOptions};

const TIMEOUT: Duration = Duration::from_secs(30);
const INVALID_TXN_STATE: i16 = 48;
const TRANSACTION_ABORTABLE: i16 = 120;

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

/// A transactional producer speaking raw requests: InitProducerId (creating
/// `__transaction_state` through FindCoordinator first, and waiting for it to load).
fn init(client: &mut RawClient, id: &str) -> (i64, i16) {
    wait_until(TIMEOUT, "InitProducerId with a transactional id", || {
        let find = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(id.to_string()))
            .with_key_type(1);
        client.request(&find, 3).ok()?;
        let init = InitProducerIdRequest::default()
            .with_transactional_id(Some(txn_id(id)))
            .with_transaction_timeout_ms(60_000);
        let response = client.request(&init, 4).ok()?;
        (response.error_code == 0).then_some((response.producer_id.0, response.producer_epoch))
    })
}

fn add_partition(client: &mut RawClient, id: &str, producer: (i64, i16), topic: &str, p: i32) {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(producer.0.into())
        .with_v3_and_below_producer_epoch(producer.1)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![p])]);
    let response = client.request(&request, 3).expect("AddPartitionsToTxn");
    let code =
        response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code;
    assert_eq!(code, 0, "AddPartitionsToTxn {topic}-{p}");
}

fn produce(
    client: &mut RawClient,
    id: &str,
    producer: (i64, i16),
    topic: &str,
    partition: i32,
    sequence: i32,
    version: i16,
) -> PartitionProduceResponse {
    let batch = transactional_batch(
        &[b"txn".as_slice()],
        ProducerIdentity {
            producer_id: producer.0,
            producer_epoch: producer.1,
            base_sequence: sequence,
        },
    );
    let request =
        produce_request(topic, partition, batch, -1).with_transactional_id(Some(txn_id(id)));
    // At most v11: a transactions-version-1 client, which adds partitions itself.
    let response = client.request(&request, version).expect("Produce");
    response.responses[0].partition_responses[0].clone()
}

/// ListOffsets LATEST under `read_committed`: the last stable offset.
fn last_stable_offset(client: &mut RawClient, topic: &str, partition: i32) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_isolation_level(1)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-1)])]);
    let response = client.request(&request, 5).expect("ListOffsets");
    let answer = &response.topics[0].partitions[0];
    assert_eq!(answer.error_code, 0, "ListOffsets read_committed");
    answer.offset
}

#[test]
fn a_batch_outside_its_transaction_is_refused_and_holds_no_consumer() {
    let broker = Broker::start_default();
    let mut client = RawClient::connect(broker.kafka_addr());
    let topic = unique_topic("verify");
    client.create_topic_ok(&topic, 2);
    let id = unique_topic("verify-id");
    let producer = init(&mut client, &id);
    add_partition(&mut client, &id, producer, &topic, 0);

    // Partition 1 was never added: refused, nothing appended, nothing held. Produce v10
    // hears INVALID_TXN_STATE (v11 on: TRANSACTION_ABORTABLE, below).
    let refused = produce(&mut client, &id, producer, &topic, 1, 0, 10);
    assert_eq!(refused.error_code, INVALID_TXN_STATE, "{refused:?}");
    assert_eq!(client.log_end_offset(&topic, 1), 0);
    let plain = client.produce(
        &topic,
        1,
        weir_tests::raw::record_batch(&[b"plain".as_slice()], None),
        -1,
    );
    assert_eq!(plain.error_code, 0);
    assert_eq!(last_stable_offset(&mut client, &topic, 1), 1);

    // Partition 0 was added: the first batch is verified, the next continues the transaction.
    assert_eq!(
        produce(&mut client, &id, producer, &topic, 0, 0, 11).error_code,
        0
    );
    assert_eq!(
        produce(&mut client, &id, producer, &topic, 0, 1, 11).error_code,
        0
    );
    assert_eq!(last_stable_offset(&mut client, &topic, 0), 0, "open");

    let end = EndTxnRequest::default()
        .with_transactional_id(txn_id(&id))
        .with_producer_id(producer.0.into())
        .with_producer_epoch(producer.1)
        .with_committed(true);
    assert_eq!(client.request(&end, 3).expect("EndTxn").error_code, 0);
    // Records 0 and 1 and the marker at 2.
    wait_until(TIMEOUT, "the commit marker", || {
        (last_stable_offset(&mut client, &topic, 0) == 3).then_some(())
    });

    // A late batch of the ended transaction (a retry that lost its way): refused.
    let late = produce(&mut client, &id, producer, &topic, 0, 2, 11);
    assert_eq!(late.error_code, TRANSACTION_ABORTABLE, "{late:?}");
    assert_eq!(client.log_end_offset(&topic, 0), 3);
    assert_eq!(last_stable_offset(&mut client, &topic, 0), 3);
}

#[test]
fn without_verification_a_stray_batch_opens_a_transaction_that_hangs() {
    let broker = Broker::start(BrokerOptions {
        sets: vec![(
            "transaction.partition.verification.enable".to_string(),
            "false".to_string(),
        )],
        ..BrokerOptions::default()
    });
    let mut client = RawClient::connect(broker.kafka_addr());
    let topic = unique_topic("no-verify");
    client.create_topic_ok(&topic, 2);
    let id = unique_topic("no-verify-id");
    let producer = init(&mut client, &id);
    add_partition(&mut client, &id, producer, &topic, 0);

    assert_eq!(
        produce(&mut client, &id, producer, &topic, 1, 0, 11).error_code,
        0
    );
    assert_eq!(client.log_end_offset(&topic, 1), 1);
    assert_eq!(last_stable_offset(&mut client, &topic, 1), 0, "held");
}

/// EndTxn at `version`: (error code, producer id, epoch the client continues with).
fn end_txn(
    client: &mut RawClient,
    id: &str,
    producer: (i64, i16),
    commit: bool,
    version: i16,
) -> (i16, i64, i16) {
    let end = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(producer.0.into())
        .with_producer_epoch(producer.1)
        .with_committed(commit);
    let response = client.request(&end, version).expect("EndTxn");
    (
        response.error_code,
        response.producer_id.0,
        response.producer_epoch,
    )
}

#[test]
fn a_version_2_producer_adds_partitions_by_producing_and_every_end_bumps_its_epoch() {
    let broker = Broker::start_default();
    let mut client = RawClient::connect(broker.kafka_addr());
    let topic = unique_topic("tv2");
    client.create_topic_ok(&topic, 1);
    let id = unique_topic("tv2-id");
    let (pid, epoch) = init(&mut client, &id);

    // Produce v12 without AddPartitionsToTxn: the leader adds the partition.
    assert_eq!(
        produce(&mut client, &id, (pid, epoch), &topic, 0, 0, 12).error_code,
        0
    );
    assert_eq!(
        end_txn(&mut client, &id, (pid, epoch), true, 5),
        (0, pid, epoch + 1),
        "EndTxn v5 answers the bumped epoch"
    );
    wait_until(TIMEOUT, "the commit marker", || {
        (last_stable_offset(&mut client, &topic, 0) == 2).then_some(())
    });
    // A retry of the commit, at the epoch before the bump, is answered as the first (once the
    // coordinator has recorded the commit complete: until then CONCURRENT_TRANSACTIONS, which
    // a client retries; the marker can be visible before that record is written).
    let retried = wait_until(TIMEOUT, "the commit recorded complete", || {
        let answer = end_txn(&mut client, &id, (pid, epoch), true, 5);
        (answer.0 != 51).then_some(answer)
    });
    assert_eq!(retried, (0, pid, epoch + 1));
    // A late batch of the committed transaction carries a fenced epoch.
    let late = produce(&mut client, &id, (pid, epoch), &topic, 0, 1, 12);
    assert_ne!(late.error_code, 0, "{late:?}");
    assert_eq!(client.log_end_offset(&topic, 0), 2);

    // The next transaction runs at the new epoch, sequences from 0, and aborts.
    let next = (pid, epoch + 1);
    assert_eq!(
        produce(&mut client, &id, next, &topic, 0, 0, 12).error_code,
        0
    );
    assert_eq!(
        end_txn(&mut client, &id, next, false, 5),
        (0, pid, epoch + 2)
    );
    wait_until(TIMEOUT, "the abort marker", || {
        (last_stable_offset(&mut client, &topic, 0) == 4).then_some(())
    });
}
