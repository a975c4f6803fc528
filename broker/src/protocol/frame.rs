//! Length-prefixed frames on a Kafka connection: a 4-byte big-endian size, then that many bytes.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// The size prefix is negative or above `socket.request.max.bytes`.
    #[error("request frame of {size} bytes is outside 0..={max} (socket.request.max.bytes)")]
    BadSize {
        /// The size the prefix announced.
        size: i32,
        /// The configured maximum.
        max: usize,
    },
    /// The socket failed or closed in the middle of a frame.
    #[error("reading request frame: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame from `reader`, refusing sizes above `max`, before allocating for it.
///
/// `scratch` is reused between calls so a connection allocates only when a frame is larger
/// than any before it.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    scratch: &mut BytesMut,
    max: usize,
) -> Result<Bytes, FrameError> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > max {
        return Err(FrameError::BadSize { size, max });
    }
    scratch.clear();
    scratch.resize(size as usize, 0);
    reader.read_exact(&mut scratch[..]).await?;
    Ok(scratch.split().freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_frames_and_rejects_oversized() {
        let mut data: &[u8] = &[0, 0, 0, 2, 9, 8, 0, 0, 0, 1];
        let mut scratch = BytesMut::new();
        let f = read_frame(&mut data, &mut scratch, 16).await.unwrap();
        assert_eq!(&f[..], &[9, 8]);
        // Second frame announces 1 byte but the stream ends: an I/O error, not Closed.
        assert!(matches!(
            read_frame(&mut data, &mut scratch, 16).await,
            Err(FrameError::Io(_))
        ));

        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut huge, &mut scratch, 16).await,
            Err(FrameError::BadSize { .. })
        ));
        let mut empty: &[u8] = &[];
        assert!(matches!(
            read_frame(&mut empty, &mut scratch, 16).await,
            Err(FrameError::Closed)
        ));
    }
}
