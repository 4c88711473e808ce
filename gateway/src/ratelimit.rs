//! Per-user rate limit on the calls that create things for other people (Send,
//! SendMessage): a token bucket per user, refilled continuously.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::Instant,
};

use tonic::Status;

/// Buckets kept before idle (full) ones are forgotten.
const MAX_BUCKETS: usize = 100_000;

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    methods: HashSet<String>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `methods` are full paths (`/package.Service/Method`); others are never limited.
    pub fn new(per_second: f64, burst: u32, methods: impl IntoIterator<Item = String>) -> Self {
        Self {
            per_second: per_second.max(0.0),
            burst: f64::from(burst.max(1)),
            methods: methods.into_iter().collect(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// RESOURCE_EXHAUSTED when `user_id` has no call left for `method` right now.
    pub fn check(&self, method: &str, user_id: &str) -> Result<(), Status> {
        if !self.methods.contains(method) {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.refilled(now, rate, burst) < burst);
        }
        let bucket = buckets.entry(user_id.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = bucket.refilled(now, self.per_second, self.burst);
        if tokens < 1.0 {
            *bucket = Bucket { tokens, at: now };
            return Err(Status::resource_exhausted(format!(
                "rate limit: at most {} such calls per second per user",
                self.per_second
            )));
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            at: now,
        };
        Ok(())
    }
}

impl Bucket {
    fn refilled(&self, now: Instant, per_second: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * per_second).min(burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refuses_per_user_and_only_for_listed_methods() {
        let limiter = RateLimiter::new(0.0001, 2, ["/s.S/Send".to_owned()]);
        assert!(limiter.check("/s.S/Send", "alice").is_ok());
        assert!(limiter.check("/s.S/Send", "alice").is_ok());
        let refused = limiter.check("/s.S/Send", "alice").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(limiter.check("/s.S/Send", "bob").is_ok());
        assert!(limiter.check("/s.S/List", "alice").is_ok());
    }

    #[test]
    fn refills_over_time() {
        let limiter = RateLimiter::new(1000.0, 1, ["/s.S/Send".to_owned()]);
        assert!(limiter.check("/s.S/Send", "alice").is_ok());
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(limiter.check("/s.S/Send", "alice").is_ok());
    }
}
