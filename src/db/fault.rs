//! What a database error means for the caller, whatever the backend: the one place that
//! reads sqlx's error codes, and the conversion of a database error into [`crate::Error`].

use crate::Error;

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match classify(&err) {
            DbFault::Unavailable => {
                tracing::warn!(error = %err, "database unavailable");
                Error::Unavailable("database unavailable, retry later".into())
            }
            DbFault::DiskFull => {
                tracing::error!(error = %err, "database storage is full");
                Error::StorageFailing(
                    "the database's disk is full: writes fail until space is freed; retry later"
                        .into(),
                )
            }
            DbFault::StorageIo => {
                tracing::error!(error = %err, "database storage I/O error");
                Error::StorageFailing(
                    "the database's storage reports an I/O error: writes fail until it recovers; retry later"
                        .into(),
                )
            }
            DbFault::Aborted => {
                tracing::info!(error = %err, "transaction aborted by a concurrent one");
                Error::Aborted("the write conflicted with a concurrent one; retry".into())
            }
            DbFault::Internal => Error::Internal(anyhow::Error::new(err).context("database error")),
        }
    }
}

/// What a database error means for the caller, whatever the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFault {
    /// Cannot reach or use the database right now: connection failures, pool exhaustion, a
    /// server shutting down, SQLite busy or locked. Nothing was written; retry later.
    Unavailable,
    /// The disk under the database is full (SQLITE_FULL, PostgreSQL 53100).
    DiskFull,
    /// The database's storage fails reads or writes (SQLITE_IOERR and its extended codes,
    /// PostgreSQL 58030).
    StorageIo,
    /// A deadlock or serialization failure (PostgreSQL 40P01, 40001): the transaction was
    /// rolled back and may be retried as it is.
    Aborted,
    /// Anything else: a bug, a constraint the code should have checked.
    Internal,
}

/// SQLite primary result codes (sqlite3.h); sqlx reports extended codes, whose low byte is
/// the primary one (SQLITE_BUSY_SNAPSHOT = 517 is SQLITE_BUSY = 5).
const SQLITE_IOERR: i32 = 10;
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_FULL: i32 = 13;

/// Classifies a database error (see [`DbFault`]). The one place that reads error codes.
pub fn classify(err: &sqlx::Error) -> DbFault {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => DbFault::Unavailable,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return DbFault::Internal;
            };
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                classify_sqlite(&code)
            } else {
                classify_sqlstate(&code)
            }
        }
        _ => DbFault::Internal,
    }
}

/// A SQLite result code, extended or primary, as sqlx prints it (decimal).
fn classify_sqlite(code: &str) -> DbFault {
    match code.parse::<i32>().map(|code| code & 0xff) {
        Ok(SQLITE_BUSY | SQLITE_LOCKED) => DbFault::Unavailable,
        Ok(SQLITE_FULL) => DbFault::DiskFull,
        Ok(SQLITE_IOERR) => DbFault::StorageIo,
        _ => DbFault::Internal,
    }
}

/// A PostgreSQL SQLSTATE.
fn classify_sqlstate(code: &str) -> DbFault {
    match code {
        // Class 08 (connection exception), shutdown / cannot connect now, too many connections.
        _ if code.starts_with("08") => DbFault::Unavailable,
        "57P01" | "57P02" | "57P03" | "53300" => DbFault::Unavailable,
        "53100" => DbFault::DiskFull,
        "58030" => DbFault::StorageIo,
        "40P01" | "40001" => DbFault::Aborted,
        _ => DbFault::Internal,
    }
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::*;

    #[test]
    fn sqlite_codes_are_classified_by_their_primary_code() {
        let cases = [
            // SQLITE_BUSY and BUSY_RECOVERY, BUSY_SNAPSHOT, BUSY_TIMEOUT.
            ("5", DbFault::Unavailable),
            ("261", DbFault::Unavailable),
            ("517", DbFault::Unavailable),
            ("773", DbFault::Unavailable),
            // SQLITE_LOCKED and LOCKED_SHAREDCACHE, LOCKED_VTAB.
            ("6", DbFault::Unavailable),
            ("262", DbFault::Unavailable),
            ("518", DbFault::Unavailable),
            // SQLITE_FULL.
            ("13", DbFault::DiskFull),
            // SQLITE_IOERR and IOERR_READ, IOERR_WRITE, IOERR_FSYNC, IOERR_NOMEM.
            ("10", DbFault::StorageIo),
            ("266", DbFault::StorageIo),
            ("778", DbFault::StorageIo),
            ("1034", DbFault::StorageIo),
            ("3082", DbFault::StorageIo),
            // SQLITE_CONSTRAINT_UNIQUE, SQLITE_ERROR: bugs, not outages.
            ("2067", DbFault::Internal),
            ("1", DbFault::Internal),
        ];
        for (code, fault) in cases {
            assert_eq!(classify_sqlite(code), fault, "SQLite code {code}");
        }
    }

    #[test]
    fn postgres_sqlstates_are_classified() {
        let cases = [
            ("08006", DbFault::Unavailable),
            ("08001", DbFault::Unavailable),
            ("57P01", DbFault::Unavailable),
            ("57P02", DbFault::Unavailable),
            ("57P03", DbFault::Unavailable),
            ("53300", DbFault::Unavailable),
            ("40P01", DbFault::Aborted),
            ("40001", DbFault::Aborted),
            ("53100", DbFault::DiskFull),
            ("58030", DbFault::StorageIo),
            ("23505", DbFault::Internal),
            ("22012", DbFault::Internal),
        ];
        for (code, fault) in cases {
            assert_eq!(classify_sqlstate(code), fault, "SQLSTATE {code}");
        }
    }

    /// A real SQLite error reaches [`classify`] as an extended code: a read transaction that
    /// tries to write after another connection committed gets SQLITE_BUSY_SNAPSHOT (517),
    /// which is SQLITE_BUSY, UNAVAILABLE (it was INTERNAL when "5" was compared as a string).
    #[tokio::test]
    async fn a_real_sqlite_busy_snapshot_error_is_unavailable() {
        use sqlx::sqlite::SqliteConnectOptions;
        use std::str::FromStr;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("busy.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        let mut reader = pool.begin().await.unwrap();
        sqlx::query("SELECT count(*) FROM t")
            .execute(&mut *reader)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&pool)
            .await
            .unwrap();
        let err = sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut *reader)
            .await
            .unwrap_err();
        let code = err.as_database_error().and_then(|db| db.code());
        assert_eq!(code.as_deref(), Some("517"), "{err:?}");
        assert_eq!(classify(&err), DbFault::Unavailable, "{err:?}");
        let status: Status = Error::from(err).into();
        assert_eq!(status.code(), Code::Unavailable);
    }

    /// A real PostgreSQL serialization failure (40001) is ABORTED, not INTERNAL.
    #[tokio::test]
    async fn a_real_postgres_serialization_failure_is_aborted() {
        use crate::testing::{Backend, TestDatabase};
        let (_database, url) = TestDatabase::create(Backend::Postgres, "unused").await;
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (1, 0)")
            .execute(&pool)
            .await
            .unwrap();
        let mut first = pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await
            .unwrap();
        sqlx::query("SELECT v FROM t WHERE id = 1")
            .execute(&mut *first)
            .await
            .unwrap();
        sqlx::query("UPDATE t SET v = 1 WHERE id = 1")
            .execute(&pool)
            .await
            .unwrap();
        let err = sqlx::query("UPDATE t SET v = 2 WHERE id = 1")
            .execute(&mut *first)
            .await
            .unwrap_err();
        assert_eq!(classify(&err), DbFault::Aborted, "{err:?}");
        let status: Status = Error::from(err).into();
        assert_eq!(status.code(), Code::Aborted);
    }
}
