//! The servers under test, each a child process running the same `serve` its production
//! binary runs, so CPU seconds and RSS can be read per server from `/proc`.
//!
//! The bench binary re-executes itself as `bench serve <role> -- <the binary's own flags>`:
//! one `cargo run -p bench` builds and measures everything, and the flags are parsed by the
//! services' own `Config`s.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use tokio::{net::TcpListener, process::Child};
use tonic::transport::Channel;

use crate::{ceiling, relay};

/// What a child process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// An empty NotificationService: the ceiling every figure is compared with.
    Ceiling,
    Notification,
    Conversation,
    Gateway,
    /// A byte relay in front of another server: the floor of one proxy hop.
    Relay,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Ceiling => "ceiling",
            Role::Notification => "notification-svc",
            Role::Conversation => "conversation-svc",
            Role::Gateway => "gateway",
            Role::Relay => "relay",
        }
    }
}

/// Runs `role` in this process (the child side of [`Server::start`]).
pub async fn serve_role(role: Role, args: Vec<String>) -> anyhow::Result<()> {
    let argv = std::iter::once(role.name().to_owned()).chain(args);
    let shutdown = switchboard::grpc::shutdown_signal();
    match role {
        Role::Ceiling => {
            let config = ceiling::Config::try_parse_from(argv)?;
            ceiling::serve(TcpListener::bind(config.listen).await?, shutdown).await
        }
        Role::Notification => {
            let config = notification_svc::Config::try_parse_from(argv)?;
            let _telemetry = switchboard::telemetry::init(config.log_format, "notification-svc");
            let listener = TcpListener::bind(config.listen).await?;
            notification_svc::serve(config, listener, shutdown).await
        }
        Role::Conversation => {
            let config = conversation_svc::Config::try_parse_from(argv)?;
            let _telemetry = switchboard::telemetry::init(config.log_format, "conversation-svc");
            let listener = TcpListener::bind(config.listen).await?;
            conversation_svc::serve(config, listener, shutdown).await
        }
        Role::Gateway => {
            let config = gateway::Config::try_parse_from(argv)?;
            let _telemetry = switchboard::telemetry::init(config.log_format, "gateway");
            let listener = TcpListener::bind(config.listen).await?;
            gateway::serve(config, listener, shutdown).await
        }
        Role::Relay => {
            let config = relay::Config::try_parse_from(argv)?;
            let listener = TcpListener::bind(config.listen).await?;
            relay::serve(config.upstream, listener, shutdown).await
        }
    }
}

/// A running server process.
pub struct Server {
    pub role: Role,
    pub addr: SocketAddr,
    child: Child,
}

/// CPU and memory of a process at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_seconds: f64,
    /// VmRSS: everything resident, including mapped file pages (SQLite maps its database).
    pub rss_kib: u64,
    /// RssAnon: the process's own memory (heap, stacks), without mapped files.
    pub anon_kib: u64,
}

impl Server {
    /// Starts `role` on a free loopback port and waits until it answers health checks.
    pub async fn start(exe: &Path, role: Role, args: &[String]) -> anyhow::Result<Server> {
        let addr = free_port().await?;
        let mut command = tokio::process::Command::new(exe);
        command
            .arg("serve")
            .arg(role.name().trim_end_matches("-svc"))
            .arg("--")
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {} from {}", role.name(), exe.display()))?;
        let mut server = Server { role, addr, child };
        server.wait_healthy().await?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited during start-up: {status}", self.role.name());
            }
            if let Ok(channel) = Channel::from_shared(self.url())?.connect().await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let serving = health
                    .check(tonic_health::pb::HealthCheckRequest::default())
                    .await
                    .map(|r| r.into_inner().status)
                    .ok();
                if serving
                    == Some(tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("{} did not become healthy within 60 s", self.role.name());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// CPU seconds used so far and resident memory now, from `/proc`.
    pub fn usage(&self) -> Usage {
        self.pid().map(usage_of).unwrap_or_default()
    }

    /// Stops the process (SIGKILL: the databases are thrown away afterwards).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A free loopback port. Bound and released at once: a small race, fine for a benchmark.
pub async fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?)
}

/// Reads utime + stime, VmRSS and RssAnon of `pid`.
pub fn usage_of(pid: u32) -> Usage {
    let ticks_per_second = 100.0; // USER_HZ, fixed at 100 on Linux for /proc.
    let cpu_seconds = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may contain spaces) start at ") ".
            let rest = stat.rsplit_once(") ")?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks_per_second)
        })
        .unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |field: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or_default()
    };
    Usage {
        cpu_seconds,
        rss_kib: kib("VmRSS:"),
        anon_kib: kib("RssAnon:"),
    }
}

/// The bench executable to re-run as a server: this one, unless a test says otherwise.
pub fn default_exe() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?)
}

/// Opens `n` separate HTTP/2 connections to `url`.
pub async fn connections(url: &str, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        let channel = Channel::from_shared(url.to_owned())?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        channels.push(channel);
    }
    Ok(channels)
}
