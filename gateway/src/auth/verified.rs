//! Tokens already verified. Every gRPC client sends the same bearer token on each call of a
//! connection, so the signature check is paid once per token instead of on every call
//! (bench/README.md, "What each change bought", change 14).
//!
//! An entry answers only while the token itself would still verify: until its `exp` plus
//! the leeway, and only under the key set it was verified with. A JWKS reload bumps the
//! key generation, and every entry made under an earlier one misses. Only successes are
//! kept. The issuer, audience and HS256 secret are fixed for the life of the process.

use std::{collections::HashMap, sync::Mutex};

use switchboard::Caller;

/// At most this many tokens are remembered. When full, expired entries go first, then all
/// of them: the worst case is the uncached cost, never an unbounded map.
pub const CAPACITY: usize = 10_000;

struct Entry {
    caller: Caller,
    /// Last second (Unix time) at which the token still verifies: `exp` + leeway.
    valid_until: u64,
    /// The key generation the token was verified under.
    generation: u64,
}

/// One map for every worker thread: held for a lookup at a time, it was found uncontended
/// (bench/README.md, "Gateway lock contention").
#[derive(Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<String, Entry>>,
}

impl VerifiedTokens {
    /// The caller `token` proved, if it was verified under `generation` and is still valid
    /// at `now`.
    pub fn get(&self, token: &str, now: u64, generation: u64) -> Option<Caller> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(token)
            .filter(|e| e.generation == generation && now <= e.valid_until)
            .map(|e| e.caller.clone())
    }

    /// Remembers, at `now`, that `token` proves `caller` until `valid_until`. `generation` must have
    /// been read before the token was verified, so a reload racing with the check can only
    /// make the entry miss, never outlive the key it was checked with.
    pub fn insert(
        &self,
        token: &str,
        caller: &Caller,
        valid_until: u64,
        generation: u64,
        now: u64,
    ) {
        if valid_until < now {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(token) {
            entries.retain(|_, e| now <= e.valid_until);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            token.to_owned(),
            Entry {
                caller: caller.clone(),
                valid_until,
                generation,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or_default()
    }
}

/// Unix time in seconds, as token claims count it.
pub fn now() -> u64 {
    u64::try_from(switchboard::time::now_micros() / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(id: &str) -> Caller {
        Caller {
            user_id: id.into(),
            username: id.into(),
            avatar_url: String::new(),
            scopes: ["notifications:send".to_owned()].into(),
        }
    }

    #[test]
    fn a_verified_token_answers_with_its_caller_until_it_expires() {
        let cache = VerifiedTokens::default();
        let t = now();
        cache.insert("token-a", &caller("alice"), t + 60, 0, t);
        assert_eq!(cache.get("token-a", t, 0), Some(caller("alice")));
        assert_eq!(cache.get("token-a", t + 60, 0), Some(caller("alice")));
        assert_eq!(cache.get("token-a", t + 61, 0), None, "expired");
        assert_eq!(cache.get("token-b", t, 0), None, "another token");
    }

    #[test]
    fn a_key_reload_makes_every_earlier_entry_miss() {
        let cache = VerifiedTokens::default();
        let t = now();
        cache.insert("token-a", &caller("alice"), t + 60, 3, t);
        assert_eq!(cache.get("token-a", t, 4), None);
        assert_eq!(cache.get("token-a", t, 3), Some(caller("alice")));
    }

    #[test]
    fn an_expired_token_is_not_remembered() {
        let cache = VerifiedTokens::default();
        let t = now();
        cache.insert("token-a", &caller("alice"), t - 1, 0, t);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first() {
        let cache = VerifiedTokens::default();
        let t = now();
        for i in 0..CAPACITY {
            let valid_until = if i % 2 == 0 { t + 1 } else { t + 60 };
            cache.insert(&format!("token-{i}"), &caller("u"), valid_until, 0, t);
        }
        cache.insert("one-more", &caller("u"), t + 60, 0, t + 2);
        assert_eq!(cache.len(), CAPACITY / 2 + 1, "the expired half went");
        assert_eq!(cache.get("token-1", t + 2, 0), Some(caller("u")));
        assert_eq!(cache.get("one-more", t + 2, 0), Some(caller("u")));
    }

    #[test]
    fn a_full_cache_of_live_tokens_starts_over() {
        let cache = VerifiedTokens::default();
        let t = now();
        for i in 0..CAPACITY {
            cache.insert(&format!("token-{i}"), &caller("u"), t + 60, 0, t);
        }
        assert_eq!(cache.len(), CAPACITY);
        cache.insert("one-more", &caller("u"), t + 60, 0, t);
        assert_eq!(cache.len(), 1, "nothing had expired, so everything went");
        assert_eq!(cache.get("one-more", t, 0), Some(caller("u")));
    }
}
