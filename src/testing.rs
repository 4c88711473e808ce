//! Test support shared by the services' integration tests and the benchmark (feature
//! `testing`): a temporary database per test on either backend, a macro running one
//! scenario on both, and waiting for a server to report itself serving.

/// A free port on 127.0.0.1, as `host:port`, for a child process to listen on (the port is
/// released before the child binds it; fine on a test machine).
pub fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    format!("127.0.0.1:{port}")
}

/// Waits until the gRPC health service at `addr` reports `service` SERVING (`""`: the server
/// as a whole), polling every 50 ms; panics after 30 s naming the service, the address and
/// the last answer, so a server that never came up fails its test instead of hanging it.
pub async fn wait_until_serving(addr: std::net::SocketAddr, service: &str) {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("an http:// address is a valid endpoint");
    wait_until_serving_at(endpoint, service).await;
}

/// [`wait_until_serving`] for a server reached through `endpoint` (over TLS, say).
pub async fn wait_until_serving_at(endpoint: tonic::transport::Endpoint, service: &str) {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let addr = endpoint.uri().clone();
    let channel = endpoint.connect_lazy();
    let mut health = HealthClient::new(channel);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut last = String::from("no answer yet");
    while tokio::time::Instant::now() < deadline {
        let request = HealthCheckRequest {
            service: service.to_owned(),
        };
        match tokio::time::timeout_at(deadline, health.check(request)).await {
            Ok(Ok(response)) if response.get_ref().status() == ServingStatus::Serving => return,
            Ok(Ok(response)) => last = format!("{:?}", response.get_ref().status()),
            Ok(Err(status)) => last = format!("{:?}: {}", status.code(), status.message()),
            Err(_) => last = "the health check itself timed out".into(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{service:?} at {addr} not SERVING within 30 s (last answer: {last})");
}

/// The database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" => Ok(Backend::Postgres),
            other => Err(format!("unknown backend {other:?} (sqlite or postgres)")),
        }
    }
}

/// Generates one `#[tokio::test]` per backend for each named `async fn(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A temporary database, removed when dropped (also when the test panics).
pub enum TestDatabase {
    /// Held for its drop, which deletes the directory.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

/// Where tests create their PostgreSQL databases: any database of the server, to issue
/// CREATE/DROP DATABASE from. PostgreSQL is required: tests fail, never skip, without it.
fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl TestDatabase {
    /// A fresh, empty database and its URL; `file` names the SQLite file.
    pub async fn create(backend: Backend, file: &str) -> (TestDatabase, String) {
        let admin_url = postgres_admin_url();
        TestDatabase::create_on(backend, &admin_url, file)
            .await
            .unwrap_or_else(|err| panic!("PostgreSQL is required for these tests: {err:#}"))
    }

    /// [`TestDatabase::create`] on the PostgreSQL server of `admin_url` (any database of it,
    /// to issue CREATE DATABASE from), failing with an error instead of a panic.
    pub async fn create_on(
        backend: Backend,
        admin_url: &str,
        file: &str,
    ) -> anyhow::Result<(TestDatabase, String)> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite:{}", dir.path().join(file).display());
                Ok((TestDatabase::Sqlite { _dir: dir }, url))
            }
            Backend::Postgres => {
                let name = format!("sb_test_{}", uuid::Uuid::now_v7().simple());
                let mut admin = connect_admin(admin_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await?;
                let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
                let url = format!("{base}/{name}");
                let admin_url = admin_url.to_owned();
                Ok((TestDatabase::Postgres { admin_url, name }, url))
            }
        }
    }
}

async fn connect_admin(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    use anyhow::Context;
    use sqlx::Connection;
    sqlx::PgConnection::connect(url)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {url}"))
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime; use a thread with its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    let Ok(mut admin) = connect_admin(&admin_url).await else {
                        return;
                    };
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                });
            })
            .join();
        }
    }
}

/// Asserts INVALID_ARGUMENT with a `google.rpc.BadRequest` field violation on `field`.
pub fn assert_invalid(status: &tonic::Status, field: &str) {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let violations = details
        .bad_request()
        .unwrap_or_else(|| panic!("no BadRequest details in {status:?}"));
    assert!(
        violations.field_violations.iter().any(|v| v.field == field),
        "no violation on {field}: {:?}",
        violations.field_violations
    );
}

/// The next event of a Subscribe stream that `skip` does not pass over; fails the test after
/// 20 s in all (one deadline, so skipped heartbeats cannot keep it waiting) or if the stream
/// ends or sends a message with no event.
pub async fn next_event(
    stream: &mut tonic::Streaming<crate::proto::notification::v1::SubscribeResponse>,
    skip: impl Fn(&crate::proto::notification::v1::subscribe_response::Event) -> bool,
) -> crate::proto::notification::v1::subscribe_response::Event {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("an event in time")
            .expect("stream ok")
            .expect("stream open");
        let event = message.event.expect("event set");
        if !skip(&event) {
            return event;
        }
    }
}

/// The next notification of a Subscribe stream, skipping every other event (heartbeats,
/// read and state events, counts); fails the test after 20 s or if the stream ends.
pub async fn next_notification(
    stream: &mut tonic::Streaming<crate::proto::notification::v1::SubscribeResponse>,
) -> crate::proto::notification::v1::Notification {
    use crate::proto::notification::v1::subscribe_response::Event;
    match next_event(stream, |e| !matches!(e, Event::Notification(_))).await {
        Event::Notification(n) => n,
        other => unreachable!("skipped above: {other:?}"),
    }
}

/// A small tmpfs of the test's own, so a test can fill the disk under a database; unmounted
/// when dropped (also when the test panics).
pub struct SmallFilesystem {
    dir: tempfile::TempDir,
}

impl SmallFilesystem {
    /// Mounts a tmpfs of `megabytes` MiB on a fresh directory. Mounting needs root (or
    /// CAP_SYS_ADMIN); where it is refused the test cannot run: that is said loudly on stderr
    /// and `None` returned so the test skips, except under `CI=true`, where it panics, since a
    /// CI run must not pass a test it did not run.
    pub fn mount(megabytes: u32) -> Option<SmallFilesystem> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(SmallFilesystem { dir }),
            other => {
                let why = match other {
                    Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                    Err(err) => err.to_string(),
                };
                let message = format!("cannot mount a tmpfs ({why}): this test needs root");
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("{message}; CI=true, so this is a failure, not a skip");
                }
                // Straight to stderr: the test harness captures `eprintln!` of passing tests,
                // and a skip must not be silent.
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "\n!!! SKIPPED: {message}\n");
                None
            }
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills the filesystem with one file (`filler`) until a write fails for lack of space;
    /// returns its path, for [`std::fs::remove_file`] to give the space back.
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("create filler");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(28) => break, // ENOSPC
                Err(err) => panic!("filling the tmpfs: {err}"),
            }
        }
        // The last partial chunk: byte by byte up to the very end.
        while let Ok(1) = file.write(&[0]) {}
        path
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        // Lazy: a database connection still closing must not keep the mount around.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
