//! The real notification-svc binary as a child process, for what only a process can show
//! (signals, a crash).

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::helpers::INTERNAL_TOKEN;

pub struct Running {
    pub child: Child,
    pub addr: String,
}

impl Running {
    /// Sends `signal` (e.g. "-KILL", "-TERM") and waits for the process to end.
    pub fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit after {signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use switchboard::testing::free_addr;

/// Starts the binary on `addr` (default: a free port) and waits until it accepts connections.
pub fn start_binary(database_url: &str, addr: Option<String>) -> Running {
    let addr = addr.unwrap_or_else(free_addr);
    let child = Command::new(env!("CARGO_BIN_EXE_notification-svc"))
        .args(["--listen", &addr, "--database-url", database_url])
        .env("SWITCHBOARD_INTERNAL_TOKEN", INTERNAL_TOKEN)
        .env("RUST_LOG", "warn")
        // Short, so tests of shutdown with stalled clients finish quickly.
        .env("SHUTDOWN_GRACE", "3s")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start notification-svc");
    let running = Running { child, addr };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&running.addr).is_err() {
        assert!(Instant::now() < deadline, "notification-svc did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    running
}
