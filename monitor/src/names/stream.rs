//! The start of a TCP byte stream, put together from segments the kernel reported. Segments may
//! come twice (retransmits) or overlap; a gap means a segment was missed and the stream is given up.

/// Bytes of a stream from its first reported segment on, at most `limit` of them.
#[derive(Debug)]
pub struct Stream {
    start: u32,
    bytes: Vec<u8>,
    limit: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Gap {
    /// A segment after bytes that were never seen.
    Missing,
    /// More than `limit` bytes.
    TooLong,
}

impl Stream {
    pub fn new(seq: u32, limit: usize) -> Self {
        Self {
            start: seq,
            bytes: Vec::new(),
            limit,
        }
    }

    /// Adds the segment starting at sequence number `seq`; bytes already held are kept.
    pub fn push(&mut self, seq: u32, data: &[u8]) -> Result<(), Gap> {
        let offset = seq.wrapping_sub(self.start) as usize;
        if offset > self.bytes.len() {
            return Err(Gap::Missing);
        }
        let new = data.get(self.bytes.len() - offset..).unwrap_or_default();
        if self.bytes.len() + new.len() > self.limit {
            return Err(Gap::TooLong);
        }
        self.bytes.extend_from_slice(new);
        Ok(())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Drops the first `n` bytes (a message taken off the front).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.bytes.len());
        self.bytes.drain(..n);
        self.start = self.start.wrapping_add(n as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmits_and_overlaps_add_only_new_bytes() {
        let mut s = Stream::new(u32::MAX - 1, 100); // wraps around
        s.push(u32::MAX - 1, b"abc").unwrap();
        s.push(u32::MAX - 1, b"abc").unwrap();
        s.push(u32::MAX, b"bcdef").unwrap();
        assert_eq!(s.bytes(), b"abcdef");
        s.consume(2);
        s.push(2, b"efg").unwrap();
        assert_eq!(s.bytes(), b"cdefg");
    }

    #[test]
    fn gaps_and_overflows_are_refused() {
        let mut s = Stream::new(10, 4);
        assert_eq!(s.push(12, b"x"), Err(Gap::Missing));
        assert_eq!(s.push(10, b"12345"), Err(Gap::TooLong));
    }
}
