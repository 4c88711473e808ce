//! PostgreSQL stopped and started under load: calls fail fast with UNAVAILABLE, health goes
//! NOT_SERVING, and everything recovers without restarting the service. Runs its own
//! throwaway PostgreSQL cluster (stopping the shared server would break other tests).

use std::{path::PathBuf, process::Command, time::Duration};

use switchboard::proto::notification::v1 as pb;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{binary::free_addr, helpers::*};

/// A PostgreSQL cluster of the test's own, run as the `postgres` system user.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
}

fn pg_bin(tool: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL binaries");
    let mut found: Vec<PathBuf> = versions
        .flatten()
        .map(|v| v.path().join("bin").join(tool))
        .collect();
    found.sort();
    found.pop().expect("a PostgreSQL version")
}

fn as_postgres(tool: &str, args: &[&str]) {
    let status = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(pg_bin(tool))
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("runuser");
    assert!(status.success(), "{tool} {args:?}");
}

impl PrivatePostgres {
    fn create() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let chown = Command::new("chown")
            .arg("postgres")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        let port = free_addr().rsplit_once(':').unwrap().1.parse().unwrap();
        let data = dir.path().join("data");
        as_postgres(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
        );
        let pg = PrivatePostgres { dir, port };
        pg.start();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    fn stop(&self) {
        as_postgres("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

async fn health(app: &TestApp) -> ServingStatus {
    let mut client = HealthClient::new(app.channel());
    client
        .check(HealthCheckRequest {
            service: "switchboard.notification.v1.NotificationService".into(),
        })
        .await
        .map(|r| r.into_inner().status())
        .unwrap_or(ServingStatus::Unknown)
}

/// When health first says NOT_SERVING, polled every 10 ms (for up to 10 s).
async fn until_not_serving(channel: tonic::transport::Channel) -> std::time::Instant {
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: "switchboard.notification.v1.NotificationService".into(),
    };
    for _ in 0..1000 {
        let status = client
            .check(request.clone())
            .await
            .map(|r| r.into_inner().status());
        if matches!(status, Ok(ServingStatus::NotServing)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::time::Instant::now()
}

async fn eventually_health(app: &TestApp, expected: ServingStatus) {
    for _ in 0..100 {
        if health(app).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health never became {expected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_fast_and_recovers_without_a_restart() {
    let pg = PrivatePostgres::create();
    let app = spawn_on(&pg.url()).await;
    let mut service = app.user("service");
    send(&mut service, send_to(&["alice"], "before")).await;
    assert_eq!(health(&app).await, ServingStatus::Serving);

    pg.stop();
    let started = std::time::Instant::now();
    // Health is watched beside the failing Send, so each is timed from the stop alone.
    let watched = {
        let channel = app.channel();
        tokio::spawn(async move { until_not_serving(channel).await })
    };
    // Sends that arrive while the first is still waiting for the database queue behind it
    // (group commit); each must still fail within the acquire timeout of its own start.
    let later: Vec<_> = [200, 500, 800]
        .into_iter()
        .map(|delay| {
            let mut service = service.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let started = std::time::Instant::now();
                let result = service.send(send_to(&["alice"], "during, later")).await;
                (started.elapsed(), result.map(|_| ()))
            })
        })
        .collect();
    let status = service
        .send(send_to(&["alice"], "during"))
        .await
        .unwrap_err();
    let failed_after = started.elapsed();
    let not_serving_after = watched.await.expect("health watcher") - started;
    eprintln!(
        "outage: Send failed after {failed_after:?} ({status:?}); health NOT_SERVING after {not_serving_after:?}"
    );
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        failed_after < Duration::from_secs(4),
        "failed fast: {failed_after:?}"
    );
    // README: "connection acquisition times out after 2 s", "NOT_SERVING within a second".
    assert!(
        failed_after < Duration::from_millis(2500),
        "failed within the acquire timeout: {failed_after:?}"
    );
    assert!(
        not_serving_after < Duration::from_secs(1),
        "NOT_SERVING within a second: {not_serving_after:?}"
    );
    for sent in later {
        let (took, result) = sent.await.expect("later Send");
        eprintln!("outage: a later Send failed after {took:?}");
        let status = result.expect_err("fails during the outage");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            took < Duration::from_millis(2500),
            "a Send queued behind a failing one failed within the acquire timeout: {took:?}"
        );
    }

    pg.start();
    eventually_health(&app, ServingStatus::Serving).await;
    let mut sent = None;
    for _ in 0..50 {
        if let Ok(response) = service.send(send_to(&["alice"], "after")).await {
            sent = Some(response.into_inner().notifications);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = sent.expect("Send works again without a restart");
    // Live delivery recovered too (the feed's listener reconnected).
    let mut stream = app
        .user("alice")
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let live = send(&mut service, send_to(&["alice"], "live again")).await;
    let got = switchboard::testing::next_notification(&mut stream).await;
    assert_eq!(got.id, live[0].id);
    let contents: Vec<_> = list_all(&mut app.user("alice"))
        .await
        .notifications
        .into_iter()
        .map(|n| n.content)
        .collect();
    assert_eq!(contents, ["live again", "after", "before"], "{sent:?}");
}
