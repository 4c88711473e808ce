//! The real binaries as child processes, for what only a process can show: a SIGKILL, a
//! replica that dies and comes back.
//!
//! The binaries are built once per test run (`cargo build --bins` for the packages, a no-op
//! when fresh), since `cargo test` builds a package's binaries only for its own integration
//! tests and a stale binary would test old code.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// The path of a freshly built `name` binary (a package of this workspace of the same name).
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "--bins"])
            .args([
                "-p",
                "gateway",
                "-p",
                "notification-svc",
                "-p",
                "conversation-svc",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the binaries failed");
    });
    // target/<profile>/deps/e2e-<hash> → target/<profile>/<name>
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

pub use switchboard::testing::free_addr;

/// A running binary, killed when dropped.
pub struct Process {
    child: Child,
    pub addr: String,
}

impl Process {
    /// Starts `name` with `args` and `env`, and waits until `addr` accepts connections.
    pub fn start(name: &str, addr: &str, args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = Command::new(binary(name));
        command
            .args(args)
            .env(
                "RUST_LOG",
                if std::env::var_os("TEST_LOG").is_some() {
                    "info"
                } else {
                    "warn"
                },
            )
            .env("SHUTDOWN_GRACE", "2s")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let process = Process {
            child,
            addr: addr.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "{name} did not start on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
