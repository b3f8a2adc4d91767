//! The bytes an outbox has yet to write, in order: small frames copied together into one
//! buffer, large parts (a frame's binary attachments) kept as the shared buffers they came
//! in, so that megabytes are never copied on their way to the socket.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

/// Parts at least this long are queued as they are rather than copied.
const SHARE_AT: usize = 64 * 1024;

/// Bytes waiting to go out.
#[derive(Default)]
pub(super) struct Pending {
    /// Frozen runs of small frames and shared large parts, oldest first; `tail` follows.
    chunks: VecDeque<Bytes>,
    /// Where small writes accumulate.
    tail: BytesMut,
    /// Bytes in `chunks` and `tail`.
    len: usize,
}

impl Pending {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn reserve(&mut self, additional: usize) {
        self.tail.reserve(additional);
    }

    pub(super) fn put_u32(&mut self, n: u32) {
        self.tail.put_u32(n);
        self.len += 4;
    }

    pub(super) fn put_slice(&mut self, bytes: &[u8]) {
        self.tail.put_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends a part that may be large: kept as it is, not copied, if it is.
    pub(super) fn put_shared(&mut self, bytes: &Bytes) {
        if bytes.len() < SHARE_AT {
            return self.put_slice(bytes);
        }
        self.freeze_tail();
        self.len += bytes.len();
        self.chunks.push_back(bytes.clone());
    }

    fn freeze_tail(&mut self) {
        if !self.tail.is_empty() {
            self.chunks.push_back(self.tail.split().freeze());
        }
    }

    /// Takes everything, in order, leaving nothing.
    pub(super) fn take(&mut self) -> VecDeque<Bytes> {
        self.freeze_tail();
        self.len = 0;
        std::mem::take(&mut self.chunks)
    }

    /// Puts back what was taken and not written, ahead of what came since.
    pub(super) fn put_front(&mut self, mut unwritten: VecDeque<Bytes>) {
        self.freeze_tail();
        self.len += unwritten.iter().map(Bytes::len).sum::<usize>();
        unwritten.append(&mut self.chunks);
        self.chunks = unwritten;
    }

    pub(super) fn clear(&mut self) {
        self.chunks.clear();
        self.tail.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_come_out_in_order_large_ones_uncopied() {
        let large = Bytes::from(vec![7u8; SHARE_AT]);
        let mut pending = Pending::default();
        pending.put_slice(b"ab");
        pending.put_shared(&large);
        pending.put_shared(&Bytes::from_static(b"cd"));
        assert_eq!(pending.len(), 4 + SHARE_AT);
        let mut taken = pending.take();
        assert!(pending.is_empty());
        assert_eq!(taken.len(), 3);
        assert_eq!(taken[1].as_ptr(), large.as_ptr(), "copied");
        // Half written: the rest goes back in front of what came since.
        let first = taken.pop_front().unwrap();
        assert_eq!(&first[..], b"ab");
        pending.put_slice(b"ef");
        pending.put_front(taken);
        let all: Vec<u8> = pending.take().iter().flat_map(|c| c.to_vec()).collect();
        assert_eq!(all.len(), SHARE_AT + 4);
        assert_eq!(&all[SHARE_AT..], b"cdef");
    }
}
