//! Answers kept for retransmissions. A SIP proxy that hears no answer in time sends the same
//! request again with the same cookie (Kamailio: `rtpengine_retr` times, `rtpengine_tout_ms`
//! apart); carrying it out twice would create a second call or delete one twice. So every
//! answer is kept, by the proxy's address and the cookie, and a request seen again gets the
//! kept answer, byte for byte.
//!
//! Bounded both ways: an answer is kept for [`ReplyCache::ttl`] (longer than any proxy retries),
//! and at most [`ReplyCache::capacity`] answers are kept, the oldest going first. Time is an
//! argument: the cache reads no clock.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Kept answers. See the module docs.
#[derive(Debug)]
pub struct ReplyCache {
    capacity: usize,
    ttl: Duration,
    answers: HashMap<(SocketAddr, Vec<u8>), Vec<u8>>,
    /// Keys in the order they were kept, with when.
    order: VecDeque<(Instant, (SocketAddr, Vec<u8>))>,
}

impl ReplyCache {
    /// A cache of at most `capacity` answers, each kept for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> ReplyCache {
        ReplyCache {
            capacity: capacity.max(1),
            ttl,
            answers: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// How many answers it keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How long it keeps one.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Answers kept now.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// The answer given at most `ttl` ago to the request with `cookie` from `from`.
    pub fn get(&mut self, now: Instant, from: SocketAddr, cookie: &[u8]) -> Option<&[u8]> {
        self.expire(now);
        self.answers
            .get(&(from, cookie.to_vec()))
            .map(Vec::as_slice)
    }

    /// Keeps `answer`, given at `now` to the request with `cookie` from `from`.
    pub fn insert(&mut self, now: Instant, from: SocketAddr, cookie: &[u8], answer: Vec<u8>) {
        self.expire(now);
        let key = (from, cookie.to_vec());
        if self.answers.insert(key.clone(), answer).is_some() {
            // Kept again (a cookie reused after its answer expired): one entry in the order.
            self.order.retain(|(_, k)| k != &key);
        }
        self.order.push_back((now, key));
        while self.answers.len() > self.capacity {
            if let Some((_, oldest)) = self.order.pop_front() {
                self.answers.remove(&oldest);
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            let (_, key) = self.order.pop_front().expect("front exists");
            self.answers.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_retransmission_gets_the_same_answer_until_it_expires() {
        let t0 = Instant::now();
        let mut cache = ReplyCache::new(8, Duration::from_secs(30));
        assert_eq!(cache.get(t0, proxy(5060), b"1_2"), None);
        cache.insert(t0, proxy(5060), b"1_2", b"1_2 d6:result2:oke".to_vec());
        let again = t0 + Duration::from_secs(29);
        assert_eq!(
            cache.get(again, proxy(5060), b"1_2"),
            Some(&b"1_2 d6:result2:oke"[..])
        );
        // The same cookie from another proxy is another request.
        assert_eq!(cache.get(again, proxy(5070), b"1_2"), None);
        assert_eq!(
            cache.get(t0 + Duration::from_secs(30), proxy(5060), b"1_2"),
            None
        );
        assert!(cache.is_empty(), "expired answers are dropped");
    }

    #[test]
    fn at_most_capacity_answers_are_kept_the_oldest_going_first() {
        let t0 = Instant::now();
        let mut cache = ReplyCache::new(3, Duration::from_secs(30));
        for i in 0..5u8 {
            cache.insert(t0, proxy(1), &[i], vec![i]);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(t0, proxy(1), &[0]), None);
        assert_eq!(cache.get(t0, proxy(1), &[1]), None);
        assert_eq!(cache.get(t0, proxy(1), &[4]), Some(&[4u8][..]));
        // Keeping a cookie again replaces its answer and does not grow the cache.
        cache.insert(t0, proxy(1), &[4], vec![40]);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(t0, proxy(1), &[4]), Some(&[40u8][..]));
    }
}
