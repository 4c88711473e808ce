//! Integration tests of notification-svc: the real service started through `serve` on
//! 127.0.0.1:0, on a temporary SQLite file and on a fresh PostgreSQL database, called through
//! the generated tonic client. Every scenario runs on both backends.

mod helpers;

mod auth;
mod binary;
mod counts_property;
mod database_outage;
mod disk_full;
mod external_client;
mod faults;
mod group_commit;
mod hostile;
mod inbox_counters;
mod inbox_events;
mod inbox_state;
mod list;
mod listen;
mod mark_batching;
mod mark_read;
mod muted_broadcasts;
mod preference_events;
mod preferences;
mod replicas;
mod send;
mod send_critical;
mod send_data;
mod send_muted;
mod snooze;
mod subscribe;
