//! Snoozed notifications wake at their `snoozed_until`: one task per process sleeps until the
//! next one is due, wakes what is due (`NotificationStore::wake_due`, one transaction per
//! batch) and pokes the feed, which publishes the wake entries like new notifications. Timed
//! mutes end the same way (`NotificationStore::end_mutes`): the feed publishes a
//! `preferences` state event, and the person's streams send the counts the end changed.
//!
//! Every replica runs one. The `UPDATE` that clears a row is its claim, so a row wakes once
//! whichever replica gets there first. A Snooze pokes its own process's waker so it sees the
//! new due time at once; a snooze made through another replica is found by the poll, which
//! is shorter than the shortest snooze (a minute), so where a snooze was made never makes it
//! wake late. A restarted process wakes what came due while it was down first thing.

use std::{sync::Arc, time::Duration};

use switchboard::{Error, time::now_micros};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{feed::Feed, store::NotificationStore};

/// Longest sleep between two looks at the next due time: below the shortest snooze
/// ([`crate::domain::MIN_SNOOZE_MICROS`]), so a snooze made on another replica is seen before
/// it is due.
pub const POLL: Duration = Duration::from_secs(30);

/// Rows woken per transaction: bounds how long one wake holds the writers' locks.
const WAKE_BATCH: usize = 500;

/// Pause after the database failed a wake.
const RETRY: Duration = Duration::from_secs(1);

/// Tells the waker to look at the next due time again (a Snooze just set one).
#[derive(Debug, Clone, Default)]
pub struct WakeUp(Arc<Notify>);

impl WakeUp {
    pub fn poke(&self) {
        self.0.notify_one();
    }
}

/// Starts the waker task, until `stop`.
pub fn start(
    store: Arc<dyn NotificationStore>,
    feed: Feed,
    wake_up: WakeUp,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let delay = match wake_what_is_due(&*store, &feed).await {
                Ok(()) => match store.next_wake().await {
                    Ok(Some(due)) => until(due).min(POLL),
                    Ok(None) => POLL,
                    Err(err) => {
                        tracing::warn!(error = %err, "waker could not read the next due time");
                        RETRY
                    }
                },
                Err(err) => {
                    tracing::warn!(error = %err, "waking snoozed notifications failed; retrying");
                    RETRY
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = wake_up.0.notified() => {}
                () = tokio::time::sleep(delay) => {}
            }
        }
    });
}

/// How long from now until `due` (microseconds); zero when it has passed.
fn until(due: i64) -> Duration {
    Duration::from_micros(u64::try_from(due.saturating_sub(now_micros())).unwrap_or(0))
}

/// Wakes everything due now and ends the mutes that are over, batch after batch, and pokes
/// the feed after each batch that appended log entries.
async fn wake_what_is_due(store: &dyn NotificationStore, feed: &Feed) -> Result<(), Error> {
    loop {
        let woken = store.wake_due(now_micros(), WAKE_BATCH).await?;
        if woken.rows > 0 {
            tracing::debug!(
                rows = woken.rows,
                entries = woken.entries,
                "snoozed notifications woke"
            );
        }
        if woken.entries > 0 {
            feed.poke();
        }
        if !woken.full {
            break;
        }
    }
    loop {
        let ended = store.end_mutes(now_micros(), WAKE_BATCH).await?;
        if ended > 0 {
            tracing::debug!(mutes = ended, "timed mutes ended");
            feed.poke();
        }
        if ended < WAKE_BATCH {
            return Ok(());
        }
    }
}
