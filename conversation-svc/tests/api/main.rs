//! Integration tests of conversation-svc: the real service started through `serve` on
//! 127.0.0.1:0, on a temporary SQLite file and on a fresh PostgreSQL database, called through
//! the generated tonic client. Every scenario runs on both backends.

mod helpers;

mod auth;
mod create;
mod disk_full;
mod get_and_list;
mod hostile;
mod messages;
mod notify;
mod outbox;
mod shared_database;
mod users;
