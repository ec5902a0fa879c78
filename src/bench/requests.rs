//! The payloads of pingpong requests, shared by the thread-per-connection
//! driver (`pingpong.rs`) and the epoll loop (`event_loop.rs`).

/// The request pattern repeats every 89 bytes (the printable `!`..=`y`);
/// request `k` starts at offset `k % 89`, so consecutive requests differ.
const PERIOD: usize = 89;

/// The payloads of one connection.
pub(super) struct Requests {
    pattern: Vec<u8>,
    size: usize,
}

impl Requests {
    pub(super) fn new(size: usize) -> Requests {
        let pattern = (0..size + PERIOD)
            .map(|i| b'!' + (i % PERIOD) as u8)
            .collect();
        Requests { pattern, size }
    }

    /// The payload of request number `seq`.
    pub(super) fn get(&self, seq: usize) -> &[u8] {
        let offset = seq % PERIOD;
        &self.pattern[offset..offset + self.size]
    }

    /// Bytes per request.
    pub(super) fn size(&self) -> usize {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_requests_differ() {
        let requests = Requests::new(64);
        for seq in 0..200 {
            assert_ne!(requests.get(seq), requests.get(seq + 1));
            assert_eq!(requests.get(seq).len(), 64);
        }
    }

    #[test]
    fn one_byte_requests_differ_too() {
        let requests = Requests::new(1);
        assert_ne!(requests.get(0), requests.get(1));
    }
}
