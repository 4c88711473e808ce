//! End-to-end: the three services on their own ports, driven through the gateway only.

mod edge_limits;
mod external_clients;
mod grpc_web;
mod grpc_web_tls;
mod metrics;
mod old_clients;
mod plaintext_warning;
mod security;
mod seed_story;
mod streaming;
mod tls;
mod tracing;
mod upstream_faults;
mod web_app;
mod web_client;
