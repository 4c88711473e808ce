//! Shared library of Switchboard.
//!
//! Everything two services would otherwise each write lives here once: the generated
//! contracts, identity metadata and the internal-token check, error mapping to
//! `tonic::Status`, telemetry, database connect + migrate, page tokens and the gRPC server
//! plumbing (health, reflection, limits, shutdown, calls to replicas).

pub mod codec;
pub mod db;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod page_token;
pub mod proto;
pub mod replicas;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;

pub use error::{Error, FieldViolation, Violations};
pub use identity::Caller;
