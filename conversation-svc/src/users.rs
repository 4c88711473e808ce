//! Records callers as users, writing only when their profile changed.
//!
//! Every authenticated call names its caller; writing that to the database each time would
//! make every read a write. The directory remembers what this process last wrote per user id
//! and skips identical profiles. Another replica may have changed a row since (a username
//! moved to a newer id); that replica wrote the newer claim, which is the one that wins.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use switchboard::{Caller, Error, time::now_micros};

use crate::{domain::User, store::ConversationStore};

/// Profiles remembered before the map starts over; bounds memory for a large user base at
/// the cost of one redundant write per user after a reset.
const MAX_REMEMBERED: usize = 100_000;

pub struct Directory {
    store: Arc<dyn ConversationStore>,
    written: Mutex<HashMap<String, (String, String)>>,
}

impl Directory {
    pub fn new(store: Arc<dyn ConversationStore>) -> Self {
        Self {
            store,
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Makes sure the caller's current id, username and avatar are stored.
    pub async fn record(&self, caller: &Caller) -> Result<User, Error> {
        let user = User {
            id: caller.user_id.clone(),
            username: caller.username.trim().to_owned(),
            avatar_url: caller.avatar_url.clone(),
        };
        let profile = (user.username.clone(), user.avatar_url.clone());
        if self.lock().get(&user.id) == Some(&profile) {
            return Ok(user);
        }
        self.store.record_user(&user, now_micros()).await?;
        let mut written = self.lock();
        if written.len() >= MAX_REMEMBERED {
            written.clear();
        }
        written.insert(user.id.clone(), profile);
        Ok(user)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, String)>> {
        // Each critical section is one map operation; a poisoned map is still consistent.
        self.written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
