//! The Kafka wire protocol at the edge of the broker: frames in, typed requests out, typed
//! responses back to frames. Message bodies are decoded and encoded by the `kafka-protocol`
//! crate; this module adds the framing, the version checks and the table of what Weir
//! implements ([`versions`]).

pub mod file_slice;
pub mod frame;
pub mod versions;

use bytes::{Buf, BufMut, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::buf::ChunkedBuf;
use kafka_protocol::protocol::{Decodable, Encodable};

/// A request frame that could not be turned into a request.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The frame is shorter than the api key and version at its start.
    #[error("request frame of {len} bytes is too short for a request header")]
    TooShort {
        /// Length of the frame.
        len: usize,
    },
    /// The api key is not one Kafka defines.
    #[error("unknown api key {api_key}")]
    UnknownApiKey {
        /// The key sent.
        api_key: i16,
    },
    /// The api key is known but Weir does not implement it, or not at this version.
    #[error("{api:?} v{version} is not supported (supported: {supported})")]
    UnsupportedVersion {
        /// The API.
        api: ApiKey,
        /// The version sent.
        version: i16,
        /// Supported range, as text, or "none".
        supported: String,
        /// The correlation id, when the header could be read, so an error can be answered.
        correlation_id: Option<i32>,
    },
    /// The header or body does not decode at the version given.
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        /// The API.
        api: ApiKey,
        /// The version sent.
        version: i16,
        /// What the decoder said.
        reason: String,
    },
}

/// A decoded request: its header and typed body.
#[derive(Debug)]
pub struct DecodedRequest {
    /// The request header (api key, version, correlation id, client id).
    pub header: RequestHeader,
    /// The API, already checked to be one Weir implements at this version.
    pub api_key: ApiKey,
    /// The typed body.
    pub body: RequestKind,
}

/// Decodes one request frame (without its 4-byte length prefix).
///
/// Never panics on any input: every length is checked by the decoder, and an API or version
/// Weir does not implement is refused before its body is looked at.
pub fn decode_request(mut frame: Bytes) -> Result<DecodedRequest, ProtocolError> {
    if frame.len() < 4 {
        return Err(ProtocolError::TooShort { len: frame.len() });
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key =
        ApiKey::try_from(raw_key).map_err(|_| ProtocolError::UnknownApiKey { api_key: raw_key })?;
    let malformed = |e: anyhow::Error| ProtocolError::Malformed {
        api: api_key,
        version,
        reason: format!("{e:#}"),
    };
    let supported = versions::supported(api_key);
    let in_range = supported.is_some_and(|(min, max)| (min..=max).contains(&version));
    if !in_range {
        // Read the correlation id (it sits right after key and version in every header
        // version) so ApiVersions can be answered with UNSUPPORTED_VERSION as Kafka does.
        let correlation_id = (frame.len() >= 8).then(|| (&frame[4..8]).get_i32());
        return Err(ProtocolError::UnsupportedVersion {
            api: api_key,
            version,
            supported: supported
                .map(|(min, max)| format!("v{min}-v{max}"))
                .unwrap_or_else(|| "none".to_string()),
            correlation_id,
        });
    }
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(malformed)?;
    Ok(DecodedRequest {
        header,
        api_key,
        body,
    })
}

/// Record fields of at least this many bytes are written from the buffers they were read into,
/// not copied into the response frame; smaller ones cost less copied than as one more iovec.
pub const SHARE_RECORDS_FROM: usize = 1024;

/// Encodes a response frame, length prefix included, for a request of `api_key` at `version`.
///
/// The frame is a list of chunks: the encoded fields, and between them the record bytes of a
/// Fetch response as the log read them (see [`frame::ResponseFrame`]); nothing is copied twice.
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> anyhow::Result<frame::ResponseFrame> {
    encode_response_with_files(correlation_id, api_key, version, body, &[])
}

/// [`encode_response`] for a Fetch response whose record fields may hold the placeholders of
/// `slices` ([`file_slice::placeholder`], at least [`SHARE_RECORDS_FROM`] bytes each): the
/// frame sends those from their files.
pub fn encode_response_with_files(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
    slices: &[file_slice::FileSlice],
) -> anyhow::Result<frame::ResponseFrame> {
    let mut out = ChunkedBuf::new(SHARE_RECORDS_FROM);
    out.current_mut().reserve(256);
    out.put_i32(0); // length, patched below
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut out, api_key.response_header_version(version))?;
    match body {
        // The one response that carries record sets: encoded field by field so they are shared.
        ResponseKind::Fetch(fetch) => fetch.encode(&mut out, version)?,
        _ => body.encode(out.current_mut(), version)?,
    }
    frame::ResponseFrame::with_file_slices(out.into_chunks(), slices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::{encode_request_header_into_buffer, StrBytes};

    fn frame(api: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        let mut buf = BytesMut::new();
        encode_request_header_into_buffer(&mut buf, &header).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_a_valid_request() {
        let f = frame(ApiKey::Metadata, 12, &MetadataRequest::default());
        let req = decode_request(f).unwrap();
        assert_eq!(req.header.correlation_id, 7);
        assert!(matches!(req.body, RequestKind::Metadata(_)));
    }

    #[test]
    fn unsupported_version_keeps_correlation_id() {
        let f = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let mut raw = BytesMut::from(&f[..]);
        raw[2..4].copy_from_slice(&99i16.to_be_bytes());
        match decode_request(raw.freeze()) {
            Err(ProtocolError::UnsupportedVersion { correlation_id, .. }) => {
                assert_eq!(correlation_id, Some(7))
            }
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            decode_request(Bytes::from_static(&[0, 1])),
            Err(ProtocolError::TooShort { .. })
        ));
        assert!(matches!(
            decode_request(Bytes::from_static(&[0x7f, 0x7f, 0, 0, 1, 2])),
            Err(ProtocolError::UnknownApiKey { api_key: 0x7f7f })
        ));
        let truncated = frame(ApiKey::Metadata, 12, &MetadataRequest::default()).slice(..9);
        assert!(decode_request(truncated).is_err());
    }

    /// A Fetch response with one topic whose partition `i` holds `records[i]`.
    fn fetch_response_of(
        records: &[Bytes],
    ) -> kafka_protocol::messages::fetch_response::FetchResponse {
        use kafka_protocol::messages::fetch_response::{
            FetchResponse, FetchableTopicResponse, PartitionData,
        };
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_partitions(
                records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        PartitionData::default()
                            .with_partition_index(i as i32)
                            .with_records(Some(r.clone()))
                    })
                    .collect(),
            )])
    }

    /// The record sets of the one topic of a Fetch response frame, as a client decodes them.
    fn records_of(frame: &frame::ResponseFrame, version: i16) -> Vec<Bytes> {
        use kafka_protocol::messages::fetch_response::FetchResponse;
        use kafka_protocol::protocol::Decodable;
        let mut rest = frame.to_bytes().unwrap();
        assert_eq!(rest.len(), frame.len());
        assert_eq!(rest.get_i32() as usize, rest.len());
        ResponseHeader::decode(&mut rest, ApiKey::Fetch.response_header_version(version)).unwrap();
        FetchResponse::decode(&mut rest, version).unwrap().responses[0]
            .partitions
            .iter()
            .map(|p| p.records.clone().unwrap())
            .collect()
    }

    #[test]
    fn a_fetch_response_writes_large_record_sets_from_their_own_buffers() {
        // Three large record sets and a small one (below SHARE_RECORDS_FROM: copied).
        let mut records: Vec<Bytes> = (0..3u8).map(|p| Bytes::from(vec![p; 1 << 20])).collect();
        records.push(Bytes::from(vec![7u8; 100]));
        let body = fetch_response_of(&records);
        for version in [4, 11, 12, 16] {
            let frame = encode_response(
                9,
                ApiKey::Fetch,
                version,
                &ResponseKind::Fetch(body.clone()),
            )
            .unwrap();
            let shared: Vec<_> = records
                .iter()
                .map(|r| frame.chunks().any(|c| c.as_ptr() == r.as_ptr()))
                .collect();
            assert_eq!(
                shared,
                [true, true, true, false],
                "v{version}: shared, not copied"
            );
            let got = records_of(&frame, version);
            assert_eq!(got, records, "v{version}: the records, byte for byte");
        }
    }

    #[test]
    fn a_fetch_response_sends_file_slices_in_the_place_of_their_placeholders() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment.log");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        // Partition 0 from the file, 1 from memory, 2 from the file again.
        let slices = vec![
            file_slice::FileSlice::new(file.clone(), 100, 70_000),
            file_slice::FileSlice::new(file, 90_000, 2_000),
        ];
        let in_memory = Bytes::from(vec![5u8; 3000]);
        let records = [
            file_slice::placeholder(0, 70_000).unwrap(),
            in_memory.clone(),
            file_slice::placeholder(1, 2_000).unwrap(),
        ];
        let body = fetch_response_of(&records);
        let version = 12;
        let frame = encode_response_with_files(
            3,
            ApiKey::Fetch,
            version,
            &ResponseKind::Fetch(body),
            &slices,
        )
        .unwrap();
        assert_eq!(frame.file_slices(), 2);
        let got = records_of(&frame, version);
        assert_eq!(&got[0][..], &content[100..70_100]);
        assert_eq!(got[1], in_memory);
        assert_eq!(&got[2][..], &content[90_000..92_000]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_request(Bytes::from(data));
        }

        #[test]
        fn never_panics_on_valid_header_prefix(
            api in 0i16..80, version in 0i16..20,
            rest in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
        ) {
            let mut data = Vec::with_capacity(rest.len() + 4);
            data.extend_from_slice(&api.to_be_bytes());
            data.extend_from_slice(&version.to_be_bytes());
            data.extend_from_slice(&rest);
            let _ = decode_request(Bytes::from(data));
        }
    }
}
