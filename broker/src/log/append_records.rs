//! The bytes of one append, as the log writes them: either one buffer of whole batches whose
//! headers are already final (a follower's fetch, a marker, the cleaner), or a client's batches
//! with new headers beside the request's untouched buffer ([`StampedBatches`]).
//!
//! The leader assigns each batch its base offset and leader epoch. Both fields lie in the
//! first 16 bytes of the batch, outside the CRC'd range, so the leader does not need a
//! writable copy of a produce request to stamp them: it copies each batch's 61-byte header,
//! stamps the copy, and hands the file the header copy and the rest of the batch from the
//! request's buffer in one vectored write. A produce request of a megabyte costs 61 bytes
//! copied per batch instead of a megabyte copied (and freshly allocated) per request.

use std::io::IoSlice;
use std::ops::Range;

use super::batch::{
    set_base_offset, set_partition_leader_epoch, RecordBatchHeader, RecordBatchIter, HEADER_SIZE,
};
use super::LogError;

/// A client's batches with their headers stamped in copies.
///
/// Invariant: `batches` covers `records` exactly, in order; each header copy is the batch's
/// first [`HEADER_SIZE`] bytes with only base offset and partition leader epoch changed (so
/// the batch's CRC still holds).
#[derive(Debug)]
pub struct StampedBatches<'a> {
    records: &'a [u8],
    batches: Vec<(Range<usize>, [u8; HEADER_SIZE])>,
}

impl<'a> StampedBatches<'a> {
    /// Stamps every batch of `records` (whole v2 batches back to back, already validated):
    /// base offsets from `first_offset` on, each batch continuing the last, and
    /// `leader_epoch`.
    pub fn new(records: &'a [u8], first_offset: i64, leader_epoch: i32) -> Result<Self, LogError> {
        let mut batches = Vec::new();
        let mut next_offset = first_offset;
        for item in RecordBatchIter::new(records) {
            let (header, range) = item?;
            let mut head = [0u8; HEADER_SIZE];
            head.copy_from_slice(&header.as_bytes()[..HEADER_SIZE]);
            set_base_offset(&mut head, next_offset);
            set_partition_leader_epoch(&mut head, leader_epoch);
            next_offset = RecordBatchHeader::from_checked_header(&head).next_offset();
            batches.push((range, head));
        }
        Ok(StampedBatches { records, batches })
    }
}

/// The batches of one append.
#[derive(Debug, Clone, Copy)]
pub enum AppendRecords<'a> {
    /// Whole batches back to back, headers final.
    Whole(&'a [u8]),
    /// A client's batches, headers stamped in copies.
    Stamped(&'a StampedBatches<'a>),
}

impl<'a> AppendRecords<'a> {
    /// Bytes the append writes.
    pub fn len(&self) -> usize {
        match self {
            AppendRecords::Whole(buf) => buf.len(),
            AppendRecords::Stamped(s) => s.records.len(),
        }
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each batch's final header and its byte range within the append. For
    /// [`AppendRecords::Whole`] the header views the whole batch; for
    /// [`AppendRecords::Stamped`] only its first [`HEADER_SIZE`] bytes (client batches are
    /// never control batches, the one case that reads past the header).
    pub fn headers(
        &self,
    ) -> Box<dyn Iterator<Item = Result<(RecordBatchHeader<'_>, Range<usize>), LogError>> + '_>
    {
        match self {
            AppendRecords::Whole(buf) => Box::new(RecordBatchIter::new(buf)),
            AppendRecords::Stamped(s) => Box::new(s.batches.iter().map(|(range, head)| {
                Ok((RecordBatchHeader::from_checked_header(head), range.clone()))
            })),
        }
    }

    /// The bytes to write, in order: the buffer, or per batch its stamped header and the rest
    /// of it from the request.
    pub fn io_slices(&self) -> Vec<IoSlice<'_>> {
        match self {
            AppendRecords::Whole(buf) => vec![IoSlice::new(buf)],
            AppendRecords::Stamped(s) => s
                .batches
                .iter()
                .flat_map(|(range, head)| {
                    [
                        IoSlice::new(head),
                        IoSlice::new(&s.records[range.start + HEADER_SIZE..range.end]),
                    ]
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_util::{encode_test_batch, TestBatch};

    #[test]
    fn stamped_batches_write_what_stamping_a_copy_writes() {
        let mut records = Vec::new();
        for count in [3, 1, 5] {
            records.extend_from_slice(&encode_test_batch(&TestBatch::new(count, 20)));
        }
        let stamped = StampedBatches::new(&records, 40, 7).unwrap();
        let append = AppendRecords::Stamped(&stamped);
        let written: Vec<u8> = append
            .io_slices()
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();

        let mut expected = records.clone();
        let mut position = 0;
        let mut next = 40;
        while position < expected.len() {
            let size = RecordBatchHeader::parse(&expected[position..], 0)
                .unwrap()
                .total_size();
            let batch = &mut expected[position..position + size];
            set_base_offset(batch, next);
            set_partition_leader_epoch(batch, 7);
            next = RecordBatchHeader::parse(batch, 0).unwrap().next_offset();
            position += size;
        }
        assert_eq!(written, expected);
        assert_eq!(append.len(), records.len());

        let headers: Vec<(i64, i64, i32)> = append
            .headers()
            .map(|h| {
                let (h, _) = h.unwrap();
                (h.base_offset(), h.last_offset(), h.partition_leader_epoch())
            })
            .collect();
        assert_eq!(headers, [(40, 42, 7), (43, 43, 7), (44, 48, 7)]);
        // The CRCs still hold: every batch of what is written checks out.
        for item in RecordBatchIter::new(&written) {
            let (h, range) = item.unwrap();
            crate::log::batch::verify_crc(&h, range.start as u64).unwrap();
        }
    }
}
