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
        if is_unavailable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            Error::Unavailable("database unavailable, retry later".into())
        } else {
            Error::Internal(anyhow::Error::new(err).context("database error"))
        }
    }
}

/// Whether a database error means "cannot reach or use the database right now" rather than a
/// bug: connection failures, pool exhaustion, a server shutting down, SQLite lock timeouts.
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => match db.code() {
            // PostgreSQL class 08 (connection exception), 57P01..57P03 (shutdown, cannot
            // connect now), 53300 (too many connections); SQLite 5/6 (busy, locked).
            Some(code) => {
                code.starts_with("08")
                    || matches!(
                        code.as_ref(),
                        "57P01" | "57P02" | "57P03" | "53300" | "5" | "6"
                    )
            }
            None => false,
        },
        _ => false,
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
            Error::Unavailable(reason) => Status::unavailable(reason),
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
}
