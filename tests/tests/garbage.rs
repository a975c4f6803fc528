//! Malformed input on the Kafka port: random frames, absurd length prefixes, truncated
//! frames, huge array counts, unknown API keys and unsupported versions. Each may cost its own connection (or
//! get an error response), never the broker: the process stays up and other clients are
//! served, during and after.

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use weir_tests::raw::{decode_records, error_code, record_batch, RawClient};
use weir_tests::{unique_topic, Broker};

/// How long the broker may take to answer or drop a bad connection.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(10);

/// A deterministic xorshift generator: failures reproduce.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A frame: length prefix, then `payload`.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

/// A request header v1 (api key, version, correlation id, client id) with `body` after it.
fn request(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&api_key.to_be_bytes());
    payload.extend_from_slice(&version.to_be_bytes());
    payload.extend_from_slice(&correlation_id.to_be_bytes());
    payload.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    payload.extend_from_slice(body);
    frame(&payload)
}

/// The broker answers a bad frame or closes the connection, within [`VERDICT_TIMEOUT`].
fn assert_answered_or_closed(client: &mut RawClient, what: &str) {
    client.set_read_timeout(VERDICT_TIMEOUT);
    match client.read_frame() {
        Ok(_) => {}                                                   // an error response
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {} // closed
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            panic!("{what}: no answer and the connection still open after {VERDICT_TIMEOUT:?}")
        }
        Err(_) => {} // reset
    }
}

/// Whether a new connection gets an answer to ApiVersions v0 (without panicking if not).
fn answers_api_versions(broker: &Broker) -> bool {
    let Ok(mut stream) =
        std::net::TcpStream::connect_timeout(&broker.kafka_addr(), VERDICT_TIMEOUT)
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(VERDICT_TIMEOUT));
    let mut length = [0u8; 4];
    stream
        .write_all(&request(ApiKey::ApiVersions as i16, 0, 1, &[]))
        .and_then(|()| stream.read_exact(&mut length))
        .is_ok()
}

/// The broker process lives and a well-behaved client can create, produce and fetch.
fn assert_broker_serves(broker: &mut Broker) {
    broker.assert_alive();
    let mut client = RawClient::connect(broker.kafka_addr());
    let topic = unique_topic("after-garbage");
    client.create_topic_ok(&topic, 1);
    let produced = client.produce(&topic, 0, record_batch(&[b"still here"], None), -1);
    assert_eq!((produced.error_code, produced.base_offset), (0, 0));
    let data = client.fetch(&topic, 0, 0, Duration::ZERO, 0);
    let records = decode_records(&data.records.unwrap_or_default());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value.as_deref(), Some(&b"still here"[..]));
}

#[test]
fn random_frames_cost_only_their_connection() {
    let mut broker = Broker::start_default();
    let mut noise = Noise(0x5eed_1234_abcd_9876);
    for round in 0..40 {
        let mut client = RawClient::connect_without_handshake(broker.kafka_addr());
        let len = 1 + (noise.next() % 600) as usize;
        let payload = noise.bytes(len);
        client.write_bytes(&frame(&payload)).unwrap();
        assert_answered_or_closed(&mut client, &format!("random frame #{round} ({len} bytes)"));
    }
    // Random bytes without any framing, then end of stream.
    let mut client = RawClient::connect_without_handshake(broker.kafka_addr());
    let _ = client.write_bytes(&noise.bytes(3000));
    client.shutdown_write();
    assert!(
        client.wait_closed(VERDICT_TIMEOUT),
        "connection with unframed noise and EOF left open"
    );
    assert_broker_serves(&mut broker);
}

#[test]
fn an_absurd_length_prefix_closes_the_connection() {
    let mut broker = Broker::start_default();
    for prefix in [i32::MAX, -1, i32::MIN, 1_000_000_000] {
        let mut client = RawClient::connect_without_handshake(broker.kafka_addr());
        let mut bytes = prefix.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 64]);
        let _ = client.write_bytes(&bytes);
        assert!(
            client.wait_closed(VERDICT_TIMEOUT),
            "a frame announcing {prefix} bytes must be refused by closing the connection"
        );
    }
    assert_broker_serves(&mut broker);
}

#[test]
fn a_truncated_frame_blocks_nobody_else() {
    let mut broker = Broker::start_default();
    let mut stalled = RawClient::connect_without_handshake(broker.kafka_addr());
    // A frame announcing a 100-byte ApiVersions request, cut off after half of it.
    let whole = request(ApiKey::ApiVersions as i16, 0, 1, &[0u8; 90]);
    let truncated = &whole[..whole.len() / 2];
    stalled.write_bytes(truncated).unwrap();

    // The half-sent request is pending; everyone else is served meanwhile.
    assert_broker_serves(&mut broker);

    stalled.shutdown_write();
    assert!(
        stalled.wait_closed(VERDICT_TIMEOUT),
        "a truncated frame followed by EOF left the connection open"
    );
    assert_broker_serves(&mut broker);
}

#[test]
fn unknown_api_keys_and_versions_do_not_hurt_the_broker() {
    let mut broker = Broker::start_default();
    for (api_key, version) in [
        (9999i16, 0i16),
        (-5, 0),
        (ApiKey::Metadata as i16, 999),
        (ApiKey::Produce as i16, -1),
    ] {
        let mut client = RawClient::connect_without_handshake(broker.kafka_addr());
        client
            .write_bytes(&request(api_key, version, 7, &[0u8; 16]))
            .unwrap();
        assert_answered_or_closed(&mut client, &format!("API key {api_key} v{version}"));
    }
    assert_broker_serves(&mut broker);
}

/// Encodes `value` as an unsigned varint (flexible versions' compact lengths).
fn unsigned_varint(mut value: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    while value >= 0x80 {
        bytes.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
    bytes
}

#[test]
fn huge_array_counts_do_not_take_the_broker_down() {
    // Tiny requests whose array length fields announce millions of elements. A decoder that
    // reserves capacity from such a count before reading the elements asks the allocator for
    // gigabytes, and a failed allocation aborts the whole process.
    let mut broker = Broker::start_default();

    // ListOffsets v1 (classic arrays): one topic announcing 2^31-1 partitions.
    let mut list_offsets = Vec::new();
    list_offsets.extend_from_slice(&(-1i32).to_be_bytes()); // replica id
    list_offsets.extend_from_slice(&1i32.to_be_bytes()); // one topic
    list_offsets.extend_from_slice(&4i16.to_be_bytes());
    list_offsets.extend_from_slice(b"huge");
    list_offsets.extend_from_slice(&i32::MAX.to_be_bytes()); // partitions
    list_offsets.extend_from_slice(&[0u8; 24]);

    // Metadata v12 (flexible: header v2 with tagged fields, compact arrays): ~4 billion topics.
    let mut metadata = Vec::new();
    metadata.extend_from_slice(&(ApiKey::Metadata as i16).to_be_bytes());
    metadata.extend_from_slice(&12i16.to_be_bytes());
    metadata.extend_from_slice(&9i32.to_be_bytes()); // correlation id
    metadata.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    metadata.push(0); // no tagged fields in the header
    metadata.extend(unsigned_varint(0xffff_fff0)); // topics
    metadata.extend_from_slice(&[0u8; 24]);

    let frames = [
        (
            "ListOffsets v1",
            request(ApiKey::ListOffsets as i16, 1, 8, &list_offsets),
        ),
        ("Metadata v12", frame(&metadata)),
    ];
    for (what, bytes) in frames {
        let mut client = RawClient::connect_without_handshake(broker.kafka_addr());
        client.write_bytes(&bytes).unwrap();
        assert_answered_or_closed(&mut client, what);
        assert!(
            answers_api_versions(&broker),
            "a {}-byte {what} request announcing a huge array took the broker down (alive: {})",
            bytes.len(),
            broker.is_alive()
        );
    }
    assert_broker_serves(&mut broker);
}

#[test]
fn api_versions_at_an_unsupported_version_answers_unsupported_version() {
    // Clients open with their newest ApiVersions; a broker that does not know that version
    // answers in v0 format with UNSUPPORTED_VERSION and its own ranges, so they can retry.
    let mut broker = Broker::start_default();
    let mut client = RawClient::connect_without_handshake(broker.kafka_addr());
    client
        .write_bytes(&request(ApiKey::ApiVersions as i16, 127, 42, &[]))
        .unwrap();
    let mut response: Bytes = client.read_frame().expect("a response to ApiVersions v127");
    let header = ResponseHeader::decode(&mut response, 0).expect("response header v0");
    assert_eq!(header.correlation_id, 42);
    let body =
        ApiVersionsResponse::decode(&mut response, 0).expect("ApiVersions response in v0 format");
    assert_eq!(body.error_code, error_code::UNSUPPORTED_VERSION);
    assert!(
        body.api_keys
            .iter()
            .any(|api| api.api_key == ApiKey::ApiVersions as i16),
        "the error response lists the supported ApiVersions range"
    );
    assert_broker_serves(&mut broker);
}
