//! Per-caller rate limit on the calls that create things for other people (Send,
//! SendMessage): a token bucket per caller, refilled continuously.
//!
//! End users share one default rate. Internal services that notify many people (a CI system
//! reporting a thousand runs) go through the gateway with a service token; an operator gives
//! the tokens that carry a configured scope their own, higher rate (`--scope-rate`), so the
//! end-user limit does not throttle them. A refused call says when to retry
//! (`google.rpc.RetryInfo`): when its bucket holds a whole call again.

use std::{
    collections::{HashMap, HashSet},
    str::FromStr,
    sync::Mutex,
    time::{Duration, Instant},
};

use switchboard::{Caller, Error};

/// Buckets kept before idle (full) ones are forgotten.
const MAX_BUCKETS: usize = 100_000;

/// What a refused caller is told to wait when its bucket never refills (a rate of 0).
const NEVER_REFILLS_RETRY: Duration = Duration::from_secs(60);

/// A rate and burst: calls per second, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// The rate of the callers whose token carries `scope` (`--scope-rate SCOPE=RATE[:BURST]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeRate {
    pub scope: String,
    pub rate: Rate,
}

impl FromStr for ScopeRate {
    type Err = String;

    /// `notifications:send=500` or `notifications:send=500:1000` (the burst defaults to twice
    /// the rate, at least 1).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage = || format!("{text:?}: expected SCOPE=RATE or SCOPE=RATE:BURST");
        let (scope, rate) = text.trim().split_once('=').ok_or_else(usage)?;
        let (per_second, burst) = match rate.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (rate, None),
        };
        let per_second: f64 = per_second.trim().parse().map_err(|_| usage())?;
        if !per_second.is_finite() || per_second < 0.0 || scope.trim().is_empty() {
            return Err(usage());
        }
        let burst = match burst {
            Some(burst) => burst.trim().parse().map_err(|_| usage())?,
            None => (per_second * 2.0).ceil().clamp(1.0, f64::from(u32::MAX)) as u32,
        };
        Ok(ScopeRate {
            scope: scope.trim().to_owned(),
            rate: Rate { per_second, burst },
        })
    }
}

/// One set of buckets for every worker thread, so a caller has one rate whichever workers
/// its connections land on; the lock was found uncontended (bench/README.md, "Gateway lock
/// contention").
pub struct RateLimiter {
    default: Rate,
    /// In the order given: a caller holding several of these scopes gets the first.
    classes: Vec<ScopeRate>,
    methods: HashSet<String>,
    /// Keyed by class (an index into `classes`, or `None` for the default) and user, so a
    /// token gaining a scope starts a bucket of its new class.
    buckets: Mutex<HashMap<(Option<usize>, String), Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `methods` are full paths (`/package.Service/Method`); others are never limited.
    pub fn new(
        default: Rate,
        classes: Vec<ScopeRate>,
        methods: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            default,
            classes,
            methods: methods.into_iter().collect(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// RESOURCE_EXHAUSTED, with when to retry, when `caller` has no call left for `method`
    /// right now.
    pub fn check(&self, method: &str, caller: &Caller) -> Result<(), Error> {
        if !self.methods.contains(method) {
            return Ok(());
        }
        let class = self
            .classes
            .iter()
            .position(|class| caller.has_scope(&class.scope));
        let rate = class.map_or(self.default, |i| self.classes[i].rate);
        let (per_second, burst) = (rate.per_second.max(0.0), f64::from(rate.burst.max(1)));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|(class, _), b| {
                let rate = class.map_or(self.default, |i| self.classes[i].rate);
                let burst = f64::from(rate.burst.max(1));
                b.refilled(now, rate.per_second.max(0.0), burst) < burst
            });
        }
        let bucket = buckets
            .entry((class, caller.user_id.clone()))
            .or_insert(Bucket {
                tokens: burst,
                at: now,
            });
        let tokens = bucket.refilled(now, per_second, burst);
        if tokens < 1.0 {
            *bucket = Bucket { tokens, at: now };
            let retry_after = if per_second > 0.0 {
                Duration::from_secs_f64((1.0 - tokens) / per_second)
            } else {
                NEVER_REFILLS_RETRY
            };
            return Err(Error::ResourceExhausted {
                message: format!("rate limit: at most {per_second} such calls per second"),
                retry_after,
            });
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

    fn caller(id: &str, scopes: &str) -> Caller {
        Caller {
            user_id: id.into(),
            username: id.into(),
            avatar_url: String::new(),
            scopes: switchboard::identity::parse_scopes(scopes),
        }
    }

    fn rate(per_second: f64, burst: u32) -> Rate {
        Rate { per_second, burst }
    }

    #[test]
    fn allows_a_burst_then_refuses_per_user_and_only_for_listed_methods() {
        let limiter = RateLimiter::new(rate(0.0001, 2), vec![], ["/s.S/Send".to_owned()]);
        let alice = caller("alice", "");
        assert!(limiter.check("/s.S/Send", &alice).is_ok());
        assert!(limiter.check("/s.S/Send", &alice).is_ok());
        let refused = limiter.check("/s.S/Send", &alice).unwrap_err();
        assert!(matches!(refused, Error::ResourceExhausted { .. }));
        assert!(limiter.check("/s.S/Send", &caller("bob", "")).is_ok());
        assert!(limiter.check("/s.S/List", &alice).is_ok());
    }

    #[test]
    fn refills_over_time() {
        let limiter = RateLimiter::new(rate(1000.0, 1), vec![], ["/s.S/Send".to_owned()]);
        let alice = caller("alice", "");
        assert!(limiter.check("/s.S/Send", &alice).is_ok());
        std::thread::sleep(Duration::from_millis(5));
        assert!(limiter.check("/s.S/Send", &alice).is_ok());
    }

    #[test]
    fn a_refusal_says_when_the_next_call_fits() {
        let limiter = RateLimiter::new(rate(2.0, 1), vec![], ["/s.S/Send".to_owned()]);
        let alice = caller("alice", "");
        limiter.check("/s.S/Send", &alice).unwrap();
        let Err(Error::ResourceExhausted { retry_after, .. }) = limiter.check("/s.S/Send", &alice)
        else {
            panic!("refused");
        };
        // A whole token at 2/s takes at most half a second.
        assert!(
            retry_after > Duration::from_millis(400) && retry_after <= Duration::from_millis(500),
            "{retry_after:?}"
        );
        let never = RateLimiter::new(rate(0.0, 1), vec![], ["/s.S/Send".to_owned()]);
        never.check("/s.S/Send", &alice).unwrap();
        let Err(Error::ResourceExhausted { retry_after, .. }) = never.check("/s.S/Send", &alice)
        else {
            panic!("refused");
        };
        assert_eq!(retry_after, NEVER_REFILLS_RETRY);
    }

    #[test]
    fn a_configured_scope_has_its_own_rate() {
        let classes = vec!["notifications:send=0.0001:5".parse().unwrap()];
        let limiter = RateLimiter::new(rate(0.0001, 1), classes, ["/s.S/Send".to_owned()]);
        let ci = caller("ci", "notifications:send");
        for _ in 0..5 {
            limiter.check("/s.S/Send", &ci).expect("the service rate");
        }
        assert!(limiter.check("/s.S/Send", &ci).is_err());
        let person = caller("alice", "");
        limiter.check("/s.S/Send", &person).expect("default burst");
        assert!(limiter.check("/s.S/Send", &person).is_err());
    }

    #[test]
    fn scope_rates_parse_with_and_without_a_burst() {
        assert_eq!(
            "notifications:send=500".parse::<ScopeRate>(),
            Ok(ScopeRate {
                scope: "notifications:send".into(),
                rate: rate(500.0, 1000)
            })
        );
        assert_eq!(
            "ci=0.5:3".parse::<ScopeRate>().map(|s| s.rate),
            Ok(rate(0.5, 3))
        );
        for bad in ["", "scope", "=5", "s=x", "s=-1", "s=1:x", "s=NaN"] {
            assert!(bad.parse::<ScopeRate>().is_err(), "{bad:?}");
        }
    }
}
