//! The one error type of every service, and its one mapping to `tonic::Status`.
//!
//! Handlers and stores return [`Error`] and never build a `Status`. Expected failures
//! (validation, auth, not found) carry what the caller may see; unexpected ones are logged
//! with detail here and returned without it. Database errors become an [`Error`] in
//! `db::fault`.
//!
//! A `Status` is built elsewhere only where no handler runs, or for a code no [`Error`]
//! stands for:
//! - before a service's handler: the internal-token layer (`identity`, UNAUTHENTICATED) and
//!   the request decoder (`codec`: a malformed message is INVALID_ARGUMENT, not INTERNAL);
//! - after it: notification-svc's `api/subscribe.rs` ends a stream UNAVAILABLE at shutdown;
//! - on the client side: conversation-svc, delivering its outbox, times out its own call to
//!   notification-svc as DEADLINE_EXCEEDED, which no caller of conversation-svc sees;
//! - in the gateway, which has no handlers: `auth/layer.rs` refuses a call without a valid
//!   token (UNAUTHENTICATED); `proxy.rs` answers for an upstream that did not (UNAVAILABLE,
//!   DEADLINE_EXCEEDED, CANCELLED, RESOURCE_EXHAUSTED for a request too large; its rate
//!   limit goes through [`Error`]); `logging.rs` mends a response whose upstream broke off
//!   (UNAVAILABLE).

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
}
