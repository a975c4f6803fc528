//! The buffers segment reads land in: reused, not allocated afresh for every Fetch.
//!
//! A Fetch reads up to a partition's `max_bytes` (1 MiB by default for consumers and
//! followers) per partition into one buffer, which the response then writes to the socket
//! as it is. An allocation of that size is one the allocator maps afresh and gives back to the
//! kernel when freed, so every read paid page faults and the kernel's zeroing of every page
//! before the read's own copy: a 16-partition Fetch of 16 MiB faulted 4,096 pages in and out.
//! Buffers for reads of [`POOL_FROM`] bytes or more are therefore taken from a process-wide
//! pool ([`ReadBufferPool::global`]) and go back to it when the last `Bytes` viewing them is
//! dropped (the response was written); smaller reads are cheap to allocate and are not pooled.
//! A pooled buffer is initialised once, when it is created (a fresh mapping, zero already),
//! and keeps its full length: a read fills the prefix it needs, and only that prefix is seen.
//!
//! Thread-safety: a pool is a mutex over a short free list, held only to push or pop.
//! Memory: at most [`MAX_RETAINED`] bytes are kept idle; a buffer returned beyond that is
//! freed.

use std::sync::LazyLock;

use bytes::Bytes;
use parking_lot::Mutex;

/// Reads of at least this many bytes use pooled buffers.
pub const POOL_FROM: usize = 64 * 1024;
/// Idle bytes kept: a 16-partition Fetch of 1 MiB each, twice.
pub const MAX_RETAINED: usize = 32 * 1024 * 1024;

/// Idle read buffers.
#[derive(Debug, Default)]
pub struct ReadBufferPool {
    inner: Mutex<Idle>,
}

#[derive(Debug, Default)]
struct Idle {
    free: Vec<Vec<u8>>,
    /// Sum of the lengths in `free`.
    retained: usize,
}

static GLOBAL: LazyLock<ReadBufferPool> = LazyLock::new(ReadBufferPool::default);

impl ReadBufferPool {
    /// The pool every segment read uses.
    pub fn global() -> &'static ReadBufferPool {
        &GLOBAL
    }

    /// A buffer of at least `len` initialised bytes, for a read of `len` bytes of [`POOL_FROM`]
    /// or more into its prefix: the smallest idle one that is large enough, else a new one (a
    /// power of two, so it fits later reads of similar size).
    pub fn take(&self, len: usize) -> Vec<u8> {
        let mut idle = self.inner.lock();
        let fit = idle
            .free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= len)
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        if let Some(i) = fit {
            let buf = idle.free.swap_remove(i);
            idle.retained -= buf.len();
            return buf;
        }
        drop(idle);
        vec![0; len.next_power_of_two()]
    }

    /// Lends `buf` (from [`ReadBufferPool::take`]) to a `Bytes` of its first `len` bytes;
    /// `buf` comes back to this pool when the last view of it is dropped.
    pub fn lend(&'static self, buf: Vec<u8>, len: usize) -> Bytes {
        assert!(len <= buf.len(), "a view past the buffer's end");
        Bytes::from_owner(Lent {
            buf,
            len,
            pool: self,
        })
    }

    fn give_back(&self, buf: Vec<u8>) {
        let mut idle = self.inner.lock();
        if idle.retained + buf.len() <= MAX_RETAINED {
            idle.retained += buf.len();
            idle.free.push(buf);
        }
    }
}

/// A pooled buffer lent to a `Bytes`, which sees its first `len` bytes (those read).
struct Lent {
    buf: Vec<u8>,
    len: usize,
    pool: &'static ReadBufferPool,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> &'static ReadBufferPool {
        Box::leak(Box::default())
    }

    #[test]
    fn a_buffer_is_lent_again_once_its_last_view_is_dropped() {
        let pool = pool();
        let len = 3 * POOL_FROM + 17;
        let mut buf = pool.take(len);
        assert!(buf.len() >= len);
        buf[..len].fill(7);
        let bytes = pool.lend(buf, len);
        assert_eq!(bytes.len(), len);
        assert!(bytes.iter().all(|&b| b == 7));
        let ptr = bytes.as_ptr();
        let tail = bytes.slice(len - 10..);
        drop(bytes);
        // Still lent to `tail`: a new buffer.
        let other = pool.take(len);
        assert_ne!(other.as_ptr(), ptr);
        assert_eq!(&tail[..], &[7u8; 10]);
        drop(tail);
        // Back, and a shorter read sees only what it reads.
        let mut again = pool.take(POOL_FROM);
        assert_eq!(again.as_ptr(), ptr);
        again[..3].copy_from_slice(&[1, 2, 3]);
        assert_eq!(&pool.lend(again, 3)[..], &[1, 2, 3]);
    }

    #[test]
    fn idle_buffers_are_bounded() {
        let pool = pool();
        let lent: Vec<Bytes> = (0..40).map(|_| pool.lend(pool.take(1 << 20), 1)).collect();
        drop(lent);
        let idle = pool.inner.lock();
        assert_eq!(idle.free.len(), MAX_RETAINED >> 20);
        assert_eq!(idle.retained, MAX_RETAINED);
    }
}
