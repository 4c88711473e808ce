//! Shared library of Switchboard.
//!
//! Everything two services would otherwise each write lives here once: the generated
//! contracts, identity metadata and the internal-token check, error mapping to
//! `tonic::Status`, telemetry, database connect + migrate, page tokens and the gRPC server
//! plumbing (health, reflection, limits, shutdown, calls to replicas) and TLS for servers
//! and callers.
//!
//! The database pieces (`db`, and `testing`, which makes test databases) are behind the
//! feature `db`, which the services turn on: the gateway has no database and builds without
//! sqlx or SQLite.

pub mod codec;
#[cfg(feature = "db")]
pub mod db;
pub mod error;
pub mod flags;
pub mod grpc;
pub mod identity;
pub mod metrics;
pub mod observe;
pub mod page_token;
pub mod proto;
pub mod replicas;
pub mod telemetry;
#[cfg(any(feature = "testing", all(test, feature = "db")))]
pub mod testing;
pub mod time;
pub mod tls;
pub mod trace;

pub use error::{Error, FieldViolation, Violations};
pub use identity::Caller;
