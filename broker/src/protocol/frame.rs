//! Length-prefixed frames on a Kafka connection: a 4-byte big-endian size, then that many bytes.

use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use super::file_slice::{self, FileSlice};

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

/// How much a connection reads at a time while it does not know the next frame's size yet.
const READ_CHUNK: usize = 8 * 1024;
/// The first read of a request, once bytes are there: most requests but Produce fit (one
/// read), a longer frame gets its whole size reserved once its length prefix is in (a second
/// read).
const IDLE_READ: usize = 1024;

/// Reads the frames of one connection, buffering what one read brought beyond a frame (a
/// client pipelining small requests costs one read for several), and nothing while the
/// connection waits for its next request.
///
/// An idle connection is the common case at scale (thousands of producers and consumers
/// mostly waiting): a buffer allocated up front (tokio's `BufReader` of 64 KiB, zero-filled)
/// cost every connection much of its size in resident memory whether it was used or not,
/// and so did waiting with a read buffer (8 KiB, then 1 KiB) reserved. Here the buffer is
/// allocated when the socket has bytes, sized for the frame once its length prefix is in,
/// and handed over with the frame (no copy); what is left after the last whole frame stays
/// for the next one, and an empty remainder is dropped.
///
/// Thread safety: owned by the connection's task.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of `inner`'s frames; allocates nothing yet.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
        }
    }

    /// Bytes held for frames not read yet (0 between requests of an idle connection).
    pub fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Reads what the socket has once it has something, with nothing buffered before: a
    /// buffer of [`IDLE_READ`] exists only while a read is tried, and is given back when the
    /// read would block (the waker is registered by then, so the next try comes when bytes
    /// are in). One `malloc`/`free` pair of 1 KiB per wait, no copy.
    async fn read_when_idle(&mut self) -> std::io::Result<usize> {
        std::future::poll_fn(|cx| {
            self.buf.reserve(IDLE_READ);
            let read = std::pin::pin!(self.inner.read_buf(&mut self.buf)).poll(cx);
            if read.is_pending() {
                self.buf = BytesMut::new();
            }
            read
        })
        .await
    }

    /// Reads one frame, refusing sizes above `max` before allocating for them.
    pub async fn read_frame(&mut self, max: usize) -> Result<Bytes, FrameError> {
        loop {
            if let Some(prefix) = self.buf.get(..4) {
                let size = i32::from_be_bytes(prefix.try_into().expect("4 bytes"));
                if size < 0 || size as usize > max {
                    return Err(FrameError::BadSize { size, max });
                }
                let total = 4 + size as usize;
                if self.buf.len() >= total {
                    self.buf.advance(4);
                    let frame = self.buf.split_to(size as usize).freeze();
                    if self.buf.is_empty() {
                        // Nothing pipelined behind it: hold no buffer while idle.
                        self.buf = BytesMut::new();
                    }
                    return Ok(frame);
                }
                // Read into the spare capacity: a produce request of megabytes is not zeroed
                // before the socket's bytes are copied in.
                self.buf.reserve(total - self.buf.len());
            } else if self.buf.capacity() == self.buf.len() && !self.buf.is_empty() {
                self.buf.reserve(READ_CHUNK);
            }
            let read = if self.buf.is_empty() {
                self.read_when_idle().await?
            } else {
                self.inner.read_buf(&mut self.buf).await?
            };
            if read == 0 {
                return Err(if self.buf.is_empty() {
                    FrameError::Closed
                } else {
                    FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())
                });
            }
        }
    }
}

/// An encoded response frame: its length prefix and body as parts in order (runs of encoded
/// bytes, written with vectored writes, and the record sets of a Fetch response, either as the
/// log read them or as [`FileSlice`]s the kernel sends from the segment file).
#[derive(Debug, Clone)]
pub struct ResponseFrame {
    parts: VecDeque<Part>,
    len: usize,
}

#[derive(Debug, Clone)]
enum Part {
    Bytes(ByteRun),
    File(FileSlice),
}

/// Consecutive byte chunks, written several per system call.
#[derive(Debug, Clone, Default)]
struct ByteRun {
    chunks: VecDeque<Bytes>,
    /// Bytes not yet written (`Buf::remaining`).
    left: usize,
}

/// Where a response frame goes: any writer, and for a plaintext TCP connection the socket
/// itself, so file slices are sent with `sendfile(2)`.
pub trait FrameSink: AsyncWrite + Unpin {
    /// The TCP socket this writer writes to unencrypted, if it does.
    fn plaintext_socket(&self) -> Option<&TcpStream> {
        None
    }
}

impl FrameSink for OwnedWriteHalf {
    fn plaintext_socket(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

impl<T: AsyncRead + AsyncWrite> FrameSink for WriteHalf<T> {}

impl FrameSink for DuplexStream {}

impl ResponseFrame {
    /// The frame of `chunks`, whose first four bytes are a placeholder for the length prefix.
    pub fn with_length_prefix(chunks: Vec<Bytes>) -> anyhow::Result<ResponseFrame> {
        Self::with_file_slices(chunks, &[])
    }

    /// The frame of `chunks` (the first four bytes a placeholder for the length prefix), with
    /// each chunk that is the placeholder of one of `slices` (see [`file_slice::placeholder`])
    /// sent from its file instead.
    pub fn with_file_slices(
        mut chunks: Vec<Bytes>,
        slices: &[FileSlice],
    ) -> anyhow::Result<ResponseFrame> {
        let len: usize = chunks.iter().map(Bytes::len).sum();
        let body = i32::try_from(len.saturating_sub(4))
            .map_err(|_| anyhow::anyhow!("response of {len} bytes does not fit a frame"))?;
        let Some(first) = chunks.first_mut().filter(|c| c.len() >= 4) else {
            anyhow::bail!("response frame without its length prefix");
        };
        let mut head = BytesMut::from(&first[..]);
        head[..4].copy_from_slice(&body.to_be_bytes());
        *first = head.freeze();
        let mut parts = VecDeque::new();
        let mut run = ByteRun::default();
        for chunk in chunks {
            let slice = if slices.is_empty() {
                None
            } else {
                file_slice::placeholder_index(&chunk).and_then(|i| slices.get(i))
            };
            match slice {
                Some(slice) => {
                    anyhow::ensure!(
                        slice.len() == chunk.len(),
                        "a file slice of {} bytes in the place of {} bytes",
                        slice.len(),
                        chunk.len()
                    );
                    if run.left > 0 {
                        parts.push_back(Part::Bytes(std::mem::take(&mut run)));
                    }
                    parts.push_back(Part::File(slice.clone()));
                }
                None => {
                    run.left += chunk.len();
                    run.chunks.push_back(chunk);
                }
            }
        }
        if run.left > 0 {
            parts.push_back(Part::Bytes(run));
        }
        Ok(ResponseFrame { parts, len })
    }

    /// Bytes in the frame, length prefix included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame has no bytes (never true of an encoded response).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks held in memory, in order (file slices left out).
    pub fn chunks(&self) -> impl Iterator<Item = &Bytes> {
        self.parts
            .iter()
            .filter_map(|part| match part {
                Part::Bytes(run) => Some(run.chunks.iter()),
                Part::File(_) => None,
            })
            .flatten()
    }

    /// How many parts are sent from files.
    pub fn file_slices(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| matches!(p, Part::File(_)))
            .count()
    }

    /// Bytes sent from files.
    pub fn file_bytes(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::File(slice) => slice.len(),
                Part::Bytes(_) => 0,
            })
            .sum()
    }

    /// The frame in one buffer (copies, and reads the file slices; for tests and tools).
    pub fn to_bytes(&self) -> std::io::Result<Bytes> {
        let mut out = BytesMut::with_capacity(self.len);
        for part in &self.parts {
            match part {
                Part::Bytes(run) => run.chunks.iter().for_each(|c| out.extend_from_slice(c)),
                Part::File(slice) => out.extend_from_slice(&slice.read()?),
            }
        }
        Ok(out.freeze())
    }

    /// Writes the whole frame to `writer`: byte runs several chunks per system call where the
    /// writer takes vectored writes, file slices with `sendfile(2)` to a plaintext socket (read
    /// and written otherwise).
    pub async fn write_to<W: FrameSink>(self, writer: &mut W) -> std::io::Result<()> {
        for part in self.parts {
            match part {
                Part::Bytes(mut run) => writer.write_all_buf(&mut run).await?,
                Part::File(slice) => {
                    // Bytes written before are in the socket already (a TCP half buffers
                    // nothing), so the file's bytes follow them in order.
                    match writer.plaintext_socket() {
                        Some(socket) => file_slice::send_file(socket, &slice).await?,
                        None => writer.write_all(&slice.read()?).await?,
                    }
                }
            }
        }
        Ok(())
    }
}

impl Buf for ByteRun {
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
        let expected = frame.to_bytes().unwrap();
        assert_eq!(&expected[..4], &((frame.len() - 4) as i32).to_be_bytes());
        // A pipe that takes 61 bytes at a time: every write is partial, across chunk edges.
        let (mut client, mut server) = tokio::io::duplex(61);
        let writer = tokio::spawn(async move { frame.write_to(&mut server).await });
        let body = FrameReader::new(&mut client)
            .read_frame(1 << 20)
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
        let data: &[u8] = &[0, 0, 0, 2, 9, 8, 0, 0, 0, 1];
        let mut reader = FrameReader::new(data);
        let f = reader.read_frame(16).await.unwrap();
        assert_eq!(&f[..], &[9, 8]);
        // Second frame announces 1 byte but the stream ends: an I/O error, not Closed.
        assert!(matches!(
            reader.read_frame(16).await,
            Err(FrameError::Io(_))
        ));

        let huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            FrameReader::new(huge).read_frame(16).await,
            Err(FrameError::BadSize { .. })
        ));
        let empty: &[u8] = &[];
        assert!(matches!(
            FrameReader::new(empty).read_frame(16).await,
            Err(FrameError::Closed)
        ));
    }

    #[tokio::test]
    async fn pipelined_frames_come_out_whole_and_an_idle_reader_holds_no_buffer() {
        // Three frames in one write, then one split across two writes of 3 bytes.
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut reader = FrameReader::new(server);
        assert_eq!(reader.buffered_capacity(), 0);
        let mut bytes = Vec::new();
        for body in [&b"abc"[..], b"", b"defgh"] {
            bytes.extend_from_slice(&(body.len() as i32).to_be_bytes());
            bytes.extend_from_slice(body);
        }
        client.write_all(&bytes).await.unwrap();
        assert_eq!(&reader.read_frame(64).await.unwrap()[..], b"abc");
        assert_eq!(&reader.read_frame(64).await.unwrap()[..], b"");
        assert_eq!(&reader.read_frame(64).await.unwrap()[..], b"defgh");
        assert_eq!(reader.buffered_capacity(), 0, "idle: no buffer held");
        // Waiting for the next request (a read polled while the socket has nothing, then
        // given up on) holds no buffer either.
        {
            let mut waiting = std::pin::pin!(reader.read_frame(64));
            let pending =
                std::future::poll_fn(|cx| std::task::Poll::Ready(waiting.as_mut().poll(cx)))
                    .await
                    .is_pending();
            assert!(pending, "nothing to read");
        }
        assert_eq!(reader.buffered_capacity(), 0, "waiting: no buffer held");

        let writer = tokio::spawn(async move {
            client.write_all(&[0, 0, 0]).await.unwrap();
            client.write_all(&[1, 7]).await.unwrap();
            client
        });
        assert_eq!(&reader.read_frame(64).await.unwrap()[..], &[7]);
        drop(writer.await.unwrap());
        assert!(matches!(
            reader.read_frame(64).await,
            Err(FrameError::Closed)
        ));
    }
}
