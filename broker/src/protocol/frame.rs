//! Length-prefixed frames on a Kafka connection: a 4-byte big-endian size, then that many bytes.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
    // Read into the buffer's spare capacity: a produce request of megabytes is not zeroed
    // before the socket's bytes are copied in.
    let size = size as usize;
    scratch.clear();
    scratch.reserve(size);
    while scratch.len() < size {
        let want = size - scratch.len();
        if reader.read_buf(&mut (&mut *scratch).limit(want)).await? == 0 {
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
    Ok(scratch.split().freeze())
}

/// An encoded response frame: its length prefix and body as chunks in order (the encoded
/// fields, and the record bytes of a Fetch response as the log read them), written with
/// vectored writes.
#[derive(Debug, Clone)]
pub struct ResponseFrame {
    chunks: VecDeque<Bytes>,
    len: usize,
    /// Bytes not yet written (`Buf::remaining`).
    left: usize,
}

impl ResponseFrame {
    /// The frame of `chunks`, whose first four bytes are a placeholder for the length prefix.
    pub fn with_length_prefix(mut chunks: Vec<Bytes>) -> anyhow::Result<ResponseFrame> {
        let len: usize = chunks.iter().map(Bytes::len).sum();
        let body = i32::try_from(len.saturating_sub(4))
            .map_err(|_| anyhow::anyhow!("response of {len} bytes does not fit a frame"))?;
        let Some(first) = chunks.first_mut().filter(|c| c.len() >= 4) else {
            anyhow::bail!("response frame without its length prefix");
        };
        let mut head = BytesMut::from(&first[..]);
        head[..4].copy_from_slice(&body.to_be_bytes());
        *first = head.freeze();
        Ok(ResponseFrame {
            chunks: chunks.into(),
            len,
            left: len,
        })
    }

    /// Bytes in the frame, length prefix included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame has no bytes (never true of an encoded response).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> &VecDeque<Bytes> {
        &self.chunks
    }

    /// The frame in one buffer (copies; for tests and tools).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out.freeze()
    }

    /// Writes the whole frame to `writer`, several chunks per system call where the writer
    /// takes vectored writes.
    pub async fn write_to<W: AsyncWrite + Unpin>(mut self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all_buf(&mut self).await
    }
}

impl Buf for ResponseFrame {
    fn remaining(&self) -> usize {
        self.left
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| &c[..])
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, c) in dst.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(c);
            n += 1;
        }
        n
    }

    fn advance(&mut self, mut cnt: usize) {
        self.left = self.left.saturating_sub(cnt);
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if cnt < front.len() {
                front.advance(cnt);
                return;
            }
            cnt -= front.len();
            self.chunks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_response_frame_is_written_whole_through_short_writes() {
        let chunks = vec![
            Bytes::from_static(&[0, 0, 0, 0, 1, 2, 3]),
            Bytes::from(vec![9u8; 5000]),
            Bytes::from_static(&[4, 5]),
            Bytes::from(vec![8u8; 300]),
        ];
        let frame = ResponseFrame::with_length_prefix(chunks).unwrap();
        assert_eq!(frame.len(), 7 + 5000 + 2 + 300);
        let expected = frame.to_bytes();
        assert_eq!(&expected[..4], &((frame.len() - 4) as i32).to_be_bytes());
        // A pipe that takes 61 bytes at a time: every write is partial, across chunk edges.
        let (mut client, mut server) = tokio::io::duplex(61);
        let writer = tokio::spawn(async move { frame.write_to(&mut server).await });
        let mut scratch = BytesMut::new();
        let body = read_frame(&mut client, &mut scratch, 1 << 20)
            .await
            .unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(&body[..], &expected[4..]);
    }

    #[test]
    fn a_frame_without_room_for_its_length_is_refused() {
        assert!(ResponseFrame::with_length_prefix(vec![]).is_err());
        assert!(ResponseFrame::with_length_prefix(vec![Bytes::from_static(&[0, 0])]).is_err());
    }

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
