//! The live feed: one task per process tails the commit-ordered logs (notifications, with the
//! wakes of snoozed ones among them, and state events) and publishes every new entry to the
//! hub, in order.
//!
//! Writers poke the task after they commit; every replica is also poked by the store's news
//! of other processes' commits ([`News`]: on PostgreSQL, `LISTEN`/`NOTIFY`), so a stream on
//! replica A sees what was sent through replica B. Because positions are handed out in
//! commit order, "everything after my last position" is exact: a missed poke (a listener
//! reconnecting) only delays delivery until the next poke or poll.
//!
//! This process's own Sends need no read-back: the group committer hands each committed
//! batch over ([`Feed::committed`]), and when the batch starts right after the feed's
//! position (always on SQLite, and on PostgreSQL unless another replica committed in
//! between) it is published as is. Otherwise the feed tails the database as for a poke, which
//! covers the batch too. Reading every Send back cost more CPU than storing it.

use std::{sync::Arc, time::Duration};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    domain::{LogEntry, Notification},
    hub::Hub,
    store::{News, NotificationStore},
};

/// Safety net when no poke arrives (news lost while a listener reconnects).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Rows per tail query.
const TAIL_BATCH: usize = 1000;

/// Wakes the feed task.
#[derive(Clone)]
pub struct Feed {
    poke: Arc<Notify>,
    committed: mpsc::UnboundedSender<Vec<Notification>>,
}

impl Default for Feed {
    /// A feed nobody tails (for tests of the parts that only poke it).
    fn default() -> Self {
        Feed::new().0
    }
}

impl Feed {
    fn new() -> (Feed, mpsc::UnboundedReceiver<Vec<Notification>>) {
        let (committed, receiver) = mpsc::unbounded_channel();
        let feed = Feed {
            poke: Arc::new(Notify::new()),
            committed,
        };
        (feed, receiver)
    }

    /// Something committed: publish it soon.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// This process committed `notifications` (in position order, one transaction): publish
    /// them without reading them back when nothing else committed in between.
    pub fn committed(&self, notifications: Vec<Notification>) {
        if notifications.is_empty() {
            return;
        }
        if self.committed.send(notifications).is_err() {
            // The feed task has stopped (shutdown): nothing is published any more anyway.
            self.poke();
        }
    }

    /// Starts tailing from the current heads (history is not republished) until `stop`.
    pub async fn start(
        store: Arc<dyn NotificationStore>,
        hub: Arc<Hub>,
        stop: CancellationToken,
    ) -> anyhow::Result<Feed> {
        let (feed, mut committed) = Feed::new();
        let (mut notifications, mut reads) = store.heads().await?;
        let news = store.news().await?;
        tokio::spawn({
            let poke = feed.poke.clone();
            let stop = stop.clone();
            async move {
                loop {
                    let tail = tokio::select! {
                        () = stop.cancelled() => return,
                        () = poke.notified() => true,
                        batch = committed.recv() => match batch {
                            Some(batch) => !publish_local(&hub, &mut notifications, batch, &mut committed),
                            None => true,
                        },
                        () = tokio::time::sleep(POLL_INTERVAL) => true,
                    };
                    if tail
                        && let Err(err) = drain(&*store, &hub, &mut notifications, &mut reads).await
                    {
                        tracing::warn!(error = %err, "feed could not read the log; retrying");
                    }
                }
            }
        });
        tokio::spawn(poke_on_news(news, feed.clone(), stop));
        Ok(feed)
    }
}

/// Publishes this batch and any others already handed over, row by row, as long as each row
/// is the one right after the feed's position. False at the first gap (another replica's rows
/// come first): the caller then tails the database, which covers the rest.
fn publish_local(
    hub: &Hub,
    position: &mut i64,
    first: Vec<Notification>,
    more: &mut mpsc::UnboundedReceiver<Vec<Notification>>,
) -> bool {
    let mut contiguous = true;
    let mut next = Some(first);
    while let Some(batch) = next {
        for notification in batch {
            if notification.seq <= *position {
                // Already read from the database by an earlier tail.
            } else if contiguous && notification.seq == *position + 1 {
                *position = notification.seq;
                hub.publish_notification(notification);
            } else {
                contiguous = false;
            }
        }
        next = more.try_recv().ok();
    }
    contiguous
}

async fn drain(
    store: &dyn NotificationStore,
    hub: &Hub,
    notifications: &mut i64,
    reads: &mut i64,
) -> Result<(), switchboard::Error> {
    loop {
        let batch = store.tail(*notifications, TAIL_BATCH).await?;
        let full = batch.len() == TAIL_BATCH;
        for entry in batch {
            *notifications = entry.seq();
            match entry {
                LogEntry::Sent(notification) => hub.publish_notification(notification),
                LogEntry::Woke {
                    user_id,
                    notification,
                } => hub.publish_wake(&user_id, notification),
            }
        }
        if !full {
            break;
        }
    }
    loop {
        let batch = store.tail_reads(*reads, TAIL_BATCH).await?;
        let full = batch.len() == TAIL_BATCH;
        for read in batch {
            *reads = read.seq;
            hub.publish_state(read);
        }
        if !full {
            return Ok(());
        }
    }
}

/// Pokes the feed for every piece of news from other processes, until `stop`.
async fn poke_on_news(mut news: Box<dyn News>, feed: Feed, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = news.arrived() => feed.poke(),
        }
    }
}
