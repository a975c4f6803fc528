//! Sequential walks over the batches of a segment file, with positional reads only.
//!
//! Scans never move the file descriptor's offset (appends and fetches share the descriptor),
//! and read through one buffer so a walk over small batches costs one syscall per buffer, not
//! one per batch. Headers are copied out (61 bytes each); record bytes are never decoded.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::batch::{validate_stored_header, RecordBatchHeader, HEADER_SIZE};
use super::LogError;

/// Offset in the header where the CRC'd range starts (attributes).
const CRC_START: usize = 21;

/// One batch found by a segment scan: its position and a copy of its header.
#[derive(Debug, Clone, Copy)]
pub struct ScannedBatch {
    /// Byte position of the batch in the segment file.
    pub position: u64,
    header: [u8; HEADER_SIZE],
}

impl ScannedBatch {
    /// A view of the batch header.
    pub fn header(&self) -> RecordBatchHeader<'_> {
        RecordBatchHeader::from_checked_header(&self.header)
    }

    /// Whole batch size in bytes.
    pub fn size(&self) -> u64 {
        self.header().total_size() as u64
    }

    /// Position just after the batch.
    pub fn end(&self) -> u64 {
        self.position + self.size()
    }
}

/// A read-through buffer over a file, addressed by absolute position.
#[derive(Debug)]
struct PositionalReader<'a> {
    file: &'a File,
    path: &'a Path,
    buf: Vec<u8>,
    buf_start: u64,
    buf_len: usize,
}

impl<'a> PositionalReader<'a> {
    fn new(file: &'a File, path: &'a Path, capacity: usize) -> Self {
        Self {
            file,
            path,
            buf: vec![0; capacity.max(HEADER_SIZE)],
            buf_start: 0,
            buf_len: 0,
        }
    }

    /// `len` bytes at `position`; the caller guarantees they exist below `file_end` and that
    /// `len` fits the buffer.
    fn get(&mut self, position: u64, len: usize, file_end: u64) -> Result<&[u8], LogError> {
        let cached = position >= self.buf_start
            && position + len as u64 <= self.buf_start + self.buf_len as u64;
        if !cached {
            let want = (file_end - position).min(self.buf.len() as u64) as usize;
            self.file
                .read_exact_at(&mut self.buf[..want], position)
                .map_err(LogError::io("read segment", self.path))?;
            self.buf_start = position;
            self.buf_len = want;
        }
        let from = (position - self.buf_start) as usize;
        Ok(&self.buf[from..from + len])
    }
}

/// Iterates over the batches of `file` between two positions.
///
/// With `verify` set, every batch's CRC-32C and header fields are checked (segment recovery);
/// otherwise only the structure (magic, length, fits in the file) is. The first problem is
/// yielded as an error (its position says where the valid prefix ends) and ends the walk.
#[derive(Debug)]
pub struct BatchScanner<'a> {
    reader: PositionalReader<'a>,
    position: u64,
    end: u64,
    verify: bool,
    failed: bool,
}

impl<'a> BatchScanner<'a> {
    /// Scans `[start, end)` of `file` through a buffer of `buffer_size` bytes.
    pub fn new(
        file: &'a File,
        path: &'a Path,
        start: u64,
        end: u64,
        verify: bool,
        buffer_size: usize,
    ) -> Self {
        Self {
            reader: PositionalReader::new(file, path, buffer_size),
            position: start,
            end,
            verify,
            failed: false,
        }
    }

    fn next_batch(&mut self) -> Result<ScannedBatch, LogError> {
        let position = self.position;
        let available = self.end - position;
        let head_len = (HEADER_SIZE as u64).min(available) as usize;
        let head = self.reader.get(position, head_len, self.end)?;
        let header = RecordBatchHeader::parse(head, position)?;
        let size = header.total_size() as u64;
        if size > available {
            return Err(LogError::TruncatedBatch {
                position,
                needed: size,
                available,
            });
        }
        let mut copy = [0u8; HEADER_SIZE];
        copy.copy_from_slice(&head[..HEADER_SIZE]);
        let batch = ScannedBatch {
            position,
            header: copy,
        };
        if self.verify {
            self.verify_batch(&batch)?;
        }
        Ok(batch)
    }

    /// Streams the batch's CRC'd bytes through the buffer and checks the header fields.
    fn verify_batch(&mut self, batch: &ScannedBatch) -> Result<(), LogError> {
        let header = batch.header();
        let mut crc = crc32c::crc32c(&batch.header[CRC_START..]);
        let mut at = batch.position + HEADER_SIZE as u64;
        let end = batch.end();
        let chunk_size = self.reader.buf.len() as u64;
        while at < end {
            let len = (end - at).min(chunk_size) as usize;
            crc = crc32c::crc32c_append(crc, self.reader.get(at, len, self.end)?);
            at += len as u64;
        }
        if crc != header.crc() {
            return Err(LogError::CorruptRecord {
                position: batch.position,
                stored: header.crc(),
                computed: crc,
            });
        }
        validate_stored_header(&header, batch.position)
    }
}

impl Iterator for BatchScanner<'_> {
    type Item = Result<ScannedBatch, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.end {
            return None;
        }
        match self.next_batch() {
            Ok(batch) => {
                self.position = batch.end();
                Some(Ok(batch))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
