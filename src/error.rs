//! The one error type of every service, and its one mapping to `tonic::Status`.
//!
//! Handlers and stores return [`Error`]; nothing else builds a `Status`. Expected failures
//! (validation, auth, not found) carry what the caller may see; unexpected ones are logged
//! with detail here and returned without it.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// A request field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's name as in the contract (`recipient_ids[3]` for an element).
    pub field: String,
    /// What is wrong, for a person.
    pub description: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {}", summary(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A limit was reached; the caller is told when trying again makes sense
    /// (`google.rpc.RetryInfo`), so it backs off instead of hammering.
    #[error("resource exhausted: {message}")]
    ResourceExhausted {
        message: String,
        retry_after: std::time::Duration,
    },
    /// A position outside what is kept (a resume point past retention).
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// A dependency (the database) cannot be reached; the caller may retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The database's storage refuses writes (disk full, I/O error). UNAVAILABLE to the
    /// caller, like [`Error::Unavailable`]; a variant of its own so the write path can tell
    /// health that writes cannot succeed (`db::WriteHealth`) until one does again.
    #[error("storage failing: {0}")]
    StorageFailing(String),
    /// The transaction lost to a concurrent one (deadlock, serialization failure) and was
    /// rolled back whole: retrying it is safe and will likely succeed.
    #[error("aborted: {0}")]
    Aborted(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

fn summary(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// One field violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }
}

/// Collects every violation of a request so the caller can fix them all at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Records the error of a fallible check under `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(description) => {
                self.add(field, description);
                None
            }
        }
    }

    /// The validated `value` when nothing was recorded, else INVALID_ARGUMENT with every
    /// violation, so a request's values exist only once all of it is valid. A `None` comes
    /// from a failed [`Violations::check`], which recorded why; one without a violation is a
    /// bug, answered as INTERNAL instead of with a made-up default.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, Error> {
        self.into_result()?;
        value.ok_or_else(|| anyhow::anyhow!("a refused field recorded no violation").into())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing was recorded, else INVALID_ARGUMENT with every violation.
    pub fn into_result(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }
}

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

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            Error::InvalidArgument(violations) => {
                let message = summary(&violations);
                let mut details = ErrorDetails::new();
                for v in violations {
                    details.add_bad_request_violation(v.field, v.description);
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            Error::Unauthenticated(reason) => Status::unauthenticated(reason),
            Error::PermissionDenied(reason) => Status::permission_denied(reason),
            Error::NotFound(what) => Status::not_found(what),
            Error::ResourceExhausted {
                message,
                retry_after,
            } => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(Some(retry_after)),
            ),
            Error::OutOfRange(what) => Status::out_of_range(what),
            Error::Unavailable(reason) | Error::StorageFailing(reason) => {
                Status::unavailable(reason)
            }
            Error::Aborted(reason) => Status::aborted(reason),
            Error::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "internal error");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_field_violation() {
        let mut v = Violations::default();
        v.add("category", "required");
        v.add("content", "too long");
        let status: Status = v.into_result().unwrap_err().into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|f| f.field.clone())
            .collect();
        assert_eq!(fields, ["category", "content"]);
    }

    #[test]
    fn finish_gives_the_value_only_when_every_check_passed() {
        let mut v = Violations::default();
        let ok = v.check("a", Ok::<_, String>(1));
        assert_eq!(v.finish(ok).unwrap(), 1);

        let mut v = Violations::default();
        let ok = v.check("a", Ok::<_, String>(1));
        let bad = v.check("b", Err::<i32, _>("no".into()));
        match v.finish(ok.zip(bad)) {
            Err(Error::InvalidArgument(violations)) => assert_eq!(violations[0].field, "b"),
            other => panic!("{other:?}"),
        }

        // A value missing without a recorded reason is a bug, not a default.
        let missing: Option<i32> = None;
        assert!(matches!(
            Violations::default().finish(missing),
            Err(Error::Internal(_))
        ));
    }

    #[test]
    fn resource_exhausted_says_when_to_retry() {
        let status: Status = Error::ResourceExhausted {
            message: "slow down".into(),
            retry_after: std::time::Duration::from_millis(1500),
        }
        .into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "slow down");
        let retry = status.get_error_details().retry_info().cloned();
        assert_eq!(
            retry.and_then(|r| r.retry_delay),
            Some(std::time::Duration::from_millis(1500))
        );
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let status: Status = Error::Internal(anyhow::anyhow!("secret detail")).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }

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

    #[test]
    fn each_fault_has_its_status_code() {
        let cases = [
            (Error::Unavailable("down".into()), Code::Unavailable),
            (
                Error::StorageFailing("the database's disk is full".into()),
                Code::Unavailable,
            ),
            (Error::Aborted("conflict".into()), Code::Aborted),
        ];
        for (err, code) in cases {
            let status: Status = err.into();
            assert_eq!(status.code(), code);
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
