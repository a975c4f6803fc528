//! Kafka requests over any async byte stream (plain TCP or TLS): one request, one response,
//! as a client does before it pipelines anything.

use crate::frames::encode_request;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest response frame the bench accepts (ApiVersions, SASL and admin answers are a
/// few KiB).
const MAX_RESPONSE: i32 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{api:?} v{version}: connection")]
    Io {
        api: ApiKey,
        version: i16,
        #[source]
        source: std::io::Error,
    },
    #[error("{api:?} v{version}: encoding or decoding")]
    Codec {
        api: ApiKey,
        version: i16,
        #[source]
        source: anyhow::Error,
    },
    #[error("{api:?} v{version}: a response frame of {size} bytes")]
    FrameSize {
        api: ApiKey,
        version: i16,
        size: i32,
    },
    #[error("{api:?} v{version}: correlation id {got}, expected {expected}")]
    Correlation {
        api: ApiKey,
        version: i16,
        got: i32,
        expected: i32,
    },
}

/// Sends `body` as request `api` version `version` and decodes the response as `Resp`.
pub async fn call<S, Req, Resp>(
    stream: &mut S,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &Req,
) -> Result<Resp, WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    Req: Encodable,
    Resp: Decodable,
{
    let codec = |source: anyhow::Error| WireError::Codec {
        api,
        version,
        source,
    };
    let io = |source: std::io::Error| WireError::Io {
        api,
        version,
        source,
    };
    let frame = encode_request(api, version, correlation_id, body).map_err(codec)?;
    stream.write_all(&frame).await.map_err(io)?;
    stream.flush().await.map_err(io)?;

    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.map_err(io)?;
    let size = i32::from_be_bytes(size);
    if !(0..MAX_RESPONSE).contains(&size) {
        return Err(WireError::FrameSize { api, version, size });
    }
    let mut response = vec![0u8; size as usize];
    stream.read_exact(&mut response).await.map_err(io)?;
    let mut response = Bytes::from(response);
    let header = ResponseHeader::decode(&mut response, api.response_header_version(version))
        .map_err(codec)?;
    if header.correlation_id != correlation_id {
        return Err(WireError::Correlation {
            api,
            version,
            got: header.correlation_id,
            expected: correlation_id,
        });
    }
    Resp::decode(&mut response, version).map_err(codec)
}
