//! A SQLite database's two pools and the health of its storage, apart from connecting so the
//! backend and the health probe can use them without importing the connect code.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use sqlx::SqlitePool;
use tokio::sync::Notify;

use super::fault;

/// A SQLite database's connections: reads share `read`; every write goes through the one
/// connection of `write`.
///
/// SQLite runs one writer at a time whatever the pool, and a connection that did not make the
/// last write drops its page cache at its next transaction. One write connection keeps the
/// pages writes change cached across commits, and writers queue in the pool instead of
/// SQLite's polling busy handler (bench/README.md, "What each change bought", change 10).
#[derive(Debug, Clone)]
pub struct SqlitePools {
    pub read: SqlitePool,
    pub write: SqlitePool,
    /// Whether writes are failing for want of working storage (see [`WriteHealth`]).
    pub writes: WriteHealth,
}

/// Whether a SQLite database's storage is refusing writes (disk full, I/O errors): health
/// must turn NOT_SERVING while writes cannot succeed, which reads and a `SELECT 1` do not
/// show.
///
/// A write that failed so ([`crate::Error::StorageFailing`]), or a WAL checkpoint that did,
/// marks the storage failing. Only the health watcher's probe (`Database::writable`)
/// clears the mark: no balancer sends writes to a replica that says NOT_SERVING, so the probe
/// is what brings it back. The
/// probe asks for more than one small write, because one small write does succeed on a full
/// disk: it reuses the WAL space a failed larger write had taken.
#[derive(Debug, Clone)]
pub struct WriteHealth {
    failing: Arc<AtomicBool>,
    changed: Arc<Notify>,
    /// A file beside the database, written and removed by the space probe.
    space_probe: Arc<PathBuf>,
}

/// What the probe must be able to write beside the database before writes count as working
/// again after a storage failure: room for the WAL of many large batches, so a replica that
/// turns SERVING does not fail its next writes.
const SPACE_PROBE_BYTES: usize = 1 << 20;

impl WriteHealth {
    pub(super) fn new(database_file: &Path) -> Self {
        let mut probe = database_file.as_os_str().to_owned();
        probe.push("-space-probe");
        WriteHealth {
            failing: Arc::default(),
            changed: Arc::default(),
            space_probe: Arc::new(PathBuf::from(probe)),
        }
    }

    /// Notes a write that failed for want of storage; passes the result through. A write
    /// that succeeds does not clear the mark: on a nearly full disk small writes (the outbox
    /// marking a delivery, an idempotent repeat) still fit in WAL space a failed larger write
    /// left, and let health flip back to SERVING while real writes keep failing. Only the
    /// space probe (`Database::writable`) clears it.
    pub fn record<T>(&self, result: Result<T, crate::Error>) -> Result<T, crate::Error> {
        if let Err(crate::Error::StorageFailing(_)) = &result {
            self.set(true);
        }
        result
    }

    /// Notes a WAL checkpoint that failed for want of storage (a full disk usually shows
    /// there first: the WAL cannot be copied into a database file that cannot grow).
    pub(super) fn record_checkpoint(&self, result: &Result<(), sqlx::Error>) {
        if let Err(err) = result
            && matches!(
                fault::classify(err),
                fault::DbFault::DiskFull | fault::DbFault::StorageIo
            )
        {
            self.set(true);
        }
    }

    /// Whether the storage last failed a write or checkpoint, with no success since.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Resolves at the next change of [`WriteHealth::failing`], so health follows at once
    /// rather than at its next tick.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    pub(super) fn set(&self, failing: bool) {
        if self.failing.swap(failing, Ordering::AcqRel) != failing {
            if failing {
                tracing::error!("SQLite storage full or failing: writes fail, health NOT_SERVING");
            } else {
                tracing::info!("SQLite writes succeed again");
            }
            self.changed.notify_waiters();
        }
    }

    /// Whether [`SPACE_PROBE_BYTES`] can be written beside the database (then removed).
    pub(super) async fn room_to_write(&self) -> bool {
        let path = self.space_probe.clone();
        let written = tokio::task::spawn_blocking(move || {
            let written = std::fs::write(&*path, vec![0u8; SPACE_PROBE_BYTES]);
            let _ = std::fs::remove_file(&*path);
            written
        })
        .await;
        matches!(written, Ok(Ok(())))
    }
}
