//! Kafka requests over a blocking `TcpStream`: the frames the scale scenarios and the bench's
//! own wire client ([`crate::wire_client`]) send, without librdkafka in between.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::buf::ByteBuf;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// How long one read or write may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest response frame accepted (a Fetch response is at most its `max_bytes`, 50 MiB).
const MAX_RESPONSE: i32 = 64 << 20;

/// The Metadata version [`metadata_of`] asks for (Kafka 4 and Weir both answer it).
const METADATA_VERSION: i16 = 9;

/// `body` as a length-prefixed request frame of `api` at `version`.
pub fn encode_request<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> anyhow::Result<BytesMut> {
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&[0; 4]);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("weir-bench")))
        .encode(&mut frame, api.request_header_version(version))?;
    body.encode(&mut frame, version)?;
    let len = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    Ok(frame)
}

/// The next response frame on `stream` (without its length prefix).
pub fn read_frame(stream: &mut TcpStream) -> anyhow::Result<Bytes> {
    read_frame_into(stream, Vec::new())
}

/// The next response frame on `stream` (without its length prefix) in `buf`'s allocation,
/// which `read_to_end` fills without zeroing it first: a catch-up reads tens of MiB per
/// response, and neither a fresh allocation's page faults nor zero-filling belong in what it
/// measures. Give the frame back with [`recycle`] once everything decoded from it is dropped.
pub fn read_frame_into(stream: &mut TcpStream, mut buf: Vec<u8>) -> anyhow::Result<Bytes> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    anyhow::ensure!(
        (0..MAX_RESPONSE).contains(&size),
        "response frame of {size} bytes"
    );
    buf.clear();
    let read = stream.take(size as u64).read_to_end(&mut buf)?;
    anyhow::ensure!(
        read == size as usize,
        "connection closed after {read} of a {size}-byte response"
    );
    Ok(Bytes::from(buf))
}

/// The allocation of a frame from [`read_frame_into`], for the next one (a fresh one if any
/// part of the frame is still held).
pub fn recycle(frame: Bytes) -> Vec<u8> {
    frame.try_into_mut().map(Vec::from).unwrap_or_default()
}

/// Decodes a response frame of `api` at `version`, checking it answers `correlation_id`.
pub fn decode_response<R: Decodable, B: ByteBuf>(
    body: &mut B,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
) -> anyhow::Result<R> {
    let header = ResponseHeader::decode(body, api.response_header_version(version))?;
    anyhow::ensure!(
        header.correlation_id == correlation_id,
        "{api:?} response with correlation id {}, expected {correlation_id}",
        header.correlation_id
    );
    R::decode(body, version)
}

/// One request and its response frame (without the length prefix).
pub fn round_trip(stream: &mut TcpStream, frame: &[u8]) -> anyhow::Result<Bytes> {
    stream.write_all(frame)?;
    read_frame(stream)
}

/// The broker at `addr`'s own view of `topic` (not whichever broker a client picks): one
/// Metadata request over a fresh connection.
pub fn metadata_of(addr: SocketAddr, topic: &str) -> anyhow::Result<MetadataResponse> {
    let request =
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]));
    let frame = encode_request(ApiKey::Metadata, METADATA_VERSION, 1, &request)?;
    let mut stream = connect(addr)?;
    let mut body = round_trip(&mut stream, &frame)?;
    decode_response(&mut body, ApiKey::Metadata, METADATA_VERSION, 1)
}

/// A connection with [`IO_TIMEOUT`] on reads and writes and Nagle off.
pub fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;

    #[test]
    fn a_read_frame_gives_its_allocation_back_once_nothing_holds_it() {
        let mut vec = Vec::with_capacity(1 << 16);
        vec.extend_from_slice(&[7u8; 1000]);
        let mut frame = Bytes::from(vec);
        let records = frame.split_to(600);
        frame.advance(400);
        let held = recycle(frame.clone());
        assert_eq!(held.capacity(), 0, "a slice still holds the frame");
        drop(records);
        let again = recycle(frame);
        assert!(again.capacity() >= 1000, "capacity {}", again.capacity());
        assert!(again.is_empty());
    }
}
