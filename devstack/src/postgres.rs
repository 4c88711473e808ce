//! What `devstack up --postgres URL` makes of its URL. People paste either a server URL
//! (`postgres://postgres@127.0.0.1:5432`) or a database URL (`.../postgres`, what the tests'
//! `TEST_POSTGRES_URL` looks like); both mean the same server, and the stack always gets its
//! own two databases on it.

use anyhow::Context;
use url::Url;

/// The databases the stack uses, created on the server when missing.
pub const DATABASES: [&str; 2] = ["switchboard_notifications", "switchboard_conversations"];

/// Where the admin work happens when the URL names no database: it exists on every server.
const DEFAULT_ADMIN_DATABASE: &str = "postgres";

/// The connection URLs derived from one `--postgres` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresUrls {
    /// Where `CREATE DATABASE` runs: the database named in the URL, else `postgres`.
    pub admin: String,
    /// notification-svc's database.
    pub notification: String,
    /// conversation-svc's database.
    pub conversation: String,
}

/// Derives the admin and service URLs from `url`, keeping its user, password, host, port and
/// query string (`?sslmode=...`): only the database name differs.
pub fn derive_urls(url: &str) -> anyhow::Result<PostgresUrls> {
    let mut parsed = Url::parse(url.trim())
        .with_context(|| format!("--postgres {url:?} is not a URL (postgres://host:5432)"))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        anyhow::bail!("--postgres {url:?} is not a postgres:// URL (postgres://host:5432)");
    }
    parsed.set_fragment(None);
    let named = parsed.path().trim_matches('/').to_owned();
    if named.contains('/') {
        anyhow::bail!("--postgres {url:?}: the path must be at most a database name");
    }
    let with_database = |name: &str| {
        let mut url = parsed.clone();
        url.set_path(&format!("/{name}"));
        url.to_string()
    };
    let admin = if named.is_empty() {
        with_database(DEFAULT_ADMIN_DATABASE)
    } else {
        with_database(&named)
    };
    Ok(PostgresUrls {
        admin,
        notification: with_database(DATABASES[0]),
        conversation: with_database(DATABASES[1]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(admin: &str, notification: &str, conversation: &str) -> PostgresUrls {
        PostgresUrls {
            admin: admin.into(),
            notification: notification.into(),
            conversation: conversation.into(),
        }
    }

    #[test]
    fn a_server_url_administers_through_postgres() {
        let expected = urls(
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://postgres@127.0.0.1:5432/switchboard_notifications",
            "postgres://postgres@127.0.0.1:5432/switchboard_conversations",
        );
        for url in [
            "postgres://postgres@127.0.0.1:5432",
            "postgres://postgres@127.0.0.1:5432/",
            " postgres://postgres@127.0.0.1:5432\n",
        ] {
            assert_eq!(derive_urls(url).expect(url), expected, "{url:?}");
        }
    }

    #[test]
    fn a_database_url_administers_through_that_database() {
        assert_eq!(
            derive_urls("postgres://h:5432/mydb").expect("valid"),
            urls(
                "postgres://h:5432/mydb",
                "postgres://h:5432/switchboard_notifications",
                "postgres://h:5432/switchboard_conversations",
            )
        );
        // What the tests' TEST_POSTGRES_URL looks like.
        assert_eq!(
            derive_urls("postgres://postgres@127.0.0.1:5432/postgres")
                .expect("valid")
                .notification,
            "postgres://postgres@127.0.0.1:5432/switchboard_notifications"
        );
    }

    #[test]
    fn the_query_string_is_kept_on_every_url() {
        for url in [
            "postgres://h:5432?sslmode=require&application_name=dev",
            "postgres://h:5432/?sslmode=require&application_name=dev",
            "postgres://h:5432/mydb?sslmode=require&application_name=dev",
        ] {
            let derived = derive_urls(url).expect(url);
            for derived in [&derived.admin, &derived.notification, &derived.conversation] {
                assert!(
                    derived.ends_with("?sslmode=require&application_name=dev"),
                    "{url} gave {derived}"
                );
            }
            assert_eq!(
                derived.notification,
                "postgres://h:5432/switchboard_notifications?sslmode=require&application_name=dev"
            );
        }
    }

    #[test]
    fn user_and_password_are_kept_as_written() {
        let derived =
            derive_urls("postgresql://app:s%40cr%2Ft@db.internal:6432/app?sslmode=disable")
                .expect("valid");
        assert_eq!(
            derived,
            urls(
                "postgresql://app:s%40cr%2Ft@db.internal:6432/app?sslmode=disable",
                "postgresql://app:s%40cr%2Ft@db.internal:6432/switchboard_notifications?sslmode=disable",
                "postgresql://app:s%40cr%2Ft@db.internal:6432/switchboard_conversations?sslmode=disable",
            )
        );
    }

    #[test]
    fn what_is_not_a_server_or_database_url_is_refused() {
        for url in [
            "127.0.0.1:5432",
            "sqlite:data/notifications.db",
            "http://127.0.0.1:5432",
            "postgres://h:5432/a/b",
            "",
        ] {
            assert!(derive_urls(url).is_err(), "{url:?} was accepted");
        }
    }
}
