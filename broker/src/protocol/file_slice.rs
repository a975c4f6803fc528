//! Record bytes that go from a segment file to a client's socket without passing through the
//! broker's memory: `sendfile(2)` on plaintext connections (Kafka's `FileRecords.writeTo`,
//! `FileChannel.transferTo`).
//!
//! A Fetch read answers with a [`FileSlice`] (a range of an open segment file) instead of the
//! bytes. The response is still encoded by the `kafka-protocol` messages, whose record field is
//! a `Bytes`: the slice stands in the message as a *placeholder* of the same length
//! ([`placeholder`]), a view of one process-wide region of zeros that is never read, at an
//! address that says which of the response's slices it is (the `i`-th slice's placeholder
//! starts `i` bytes into the region). The encoder keeps fields of that size as chunks of their
//! own (`ChunkedBuf::put_shared`), so the frame builder finds each placeholder among the chunks
//! by its address ([`placeholder_index`]) and writes the file range in its place.
//!
//! The zero region is allocated zeroed and never written or read on this path, so the kernel
//! backs it with no memory of its own (`ZERO_REGION` bytes of address space only). A slice
//! longer than [`MAX_SLICE`], or a response with more than [`MAX_SLICES`] of them, is read into
//! memory as before.
//!
//! Truncation: the slice is sent after the log's lock is released, as in Kafka. If the file
//! was cut shorter meanwhile (a follower truncating its log after a leader change), `sendfile`
//! ends early; the frame's length prefix has already gone out, so the connection cannot carry
//! on and [`send_file`] fails it (the client reconnects and fetches again). A deleted segment's
//! open file stays readable until the slice is dropped.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The longest slice sent from a file; a longer one (a single batch beyond this) is read.
pub const MAX_SLICE: usize = 64 * 1024 * 1024;
/// The most slices one response sends from files; further partitions' records are read.
pub const MAX_SLICES: usize = 64 * 1024;
/// Address space of the placeholders' zeros: room for the last slice's offset and length.
const ZERO_REGION: usize = MAX_SLICE + MAX_SLICES;

static ZEROS: LazyLock<&'static [u8]> =
    LazyLock::new(|| Box::leak(vec![0u8; ZERO_REGION].into_boxed_slice()));

/// A range of an open segment file, sent to the socket by the kernel.
#[derive(Debug, Clone)]
pub struct FileSlice {
    file: Arc<File>,
    position: u64,
    len: usize,
}

impl FileSlice {
    /// `len` bytes of `file` from `position`.
    pub fn new(file: Arc<File>, position: u64, len: usize) -> Self {
        Self {
            file,
            position,
            len,
        }
    }

    /// Where the slice starts in its file.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Bytes in the slice.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the slice has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slice's bytes, read into memory (a TLS connection, or too many slices for one
    /// response).
    pub fn read(&self) -> io::Result<Bytes> {
        let mut buf = vec![0u8; self.len];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(Bytes::from(buf))
    }
}

/// The stand-in for the `index`-th file slice of a response, of the slice's length; `None`
/// when either is beyond what the zero region holds (read that slice instead).
pub fn placeholder(index: usize, len: usize) -> Option<Bytes> {
    if index >= MAX_SLICES || len > MAX_SLICE {
        return None;
    }
    Some(Bytes::from_static(&ZEROS[index..index + len]))
}

/// Which slice `chunk` stands for, if it is a placeholder (a view starting inside the zero
/// region's first [`MAX_SLICES`] bytes).
pub fn placeholder_index(chunk: &[u8]) -> Option<usize> {
    let start = ZEROS.as_ptr() as usize;
    let at = chunk.as_ptr() as usize;
    (at >= start && at < start + MAX_SLICES && !chunk.is_empty()).then(|| at - start)
}

/// Sends `slice` to `socket` with `sendfile(2)`, waiting for room in the socket's buffer as a
/// write would. A file that ends before the slice does is an error (see the module docs).
pub async fn send_file(socket: &TcpStream, slice: &FileSlice) -> io::Result<()> {
    let mut offset = i64::try_from(slice.position).map_err(io::Error::other)?;
    let end = offset + slice.len as i64;
    while offset < end {
        socket.writable().await?;
        let count = (end - offset) as usize;
        let sent = socket.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile64(socket, &*slice.file, Some(&mut offset), count)
                .map_err(io::Error::from)
        });
        match sent {
            Ok(0) => return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the segment file ended before the fetched records were sent (truncated meanwhile)",
            )),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_name_their_slice_and_nothing_else_is_one() {
        let a = placeholder(0, 5000).unwrap();
        let b = placeholder(7, 1 << 20).unwrap();
        assert_eq!((a.len(), b.len()), (5000, 1 << 20));
        assert_eq!(placeholder_index(&a), Some(0));
        assert_eq!(placeholder_index(&b), Some(7));
        assert_eq!(placeholder_index(&vec![0u8; 5000]), None);
        assert_eq!(placeholder_index(&[]), None);
        assert!(placeholder(MAX_SLICES, 10).is_none());
        assert!(placeholder(0, MAX_SLICE + 1).is_none());
    }

    #[tokio::test]
    async fn a_slice_is_sent_from_the_file_and_a_truncated_file_fails_the_send() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            socket.read_to_end(&mut got).await.unwrap();
            got
        });
        let socket = TcpStream::connect(addr).await.unwrap();
        // More than a socket buffer: the send waits for the reader more than once.
        let slice = FileSlice::new(file.clone(), 1000, 2_500_000);
        send_file(&socket, &slice).await.unwrap();
        drop(socket);
        assert_eq!(reader.await.unwrap(), &content[1000..2_501_000]);

        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(2_000)
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move { listener.accept().await.unwrap() });
        let socket = TcpStream::connect(addr).await.unwrap();
        let _peer = accept.await.unwrap();
        let err = send_file(&socket, &FileSlice::new(file, 1000, 5000))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
