//! The gateway binary warns when it serves plaintext on an address other than loopback
//! (bearer tokens would cross the network in the clear), and only then.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use devstack::certs::DevCerts;
use e2e::processes::binary;
use serde_json::Value;

/// The message of the warning (a part of it the README quotes).
const WARNING: &str = "serving plaintext on a non-loopback address";

/// Every log line (JSON) the gateway wrote on stderr from start to a clean SIGTERM stop.
struct Run {
    lines: Vec<Value>,
}

impl Run {
    /// Starts the gateway binary with `args` (and nothing from this environment), waits for
    /// its `gateway listening` line, stops it with SIGTERM and reads its logs to the end.
    fn gateway(args: &[&str]) -> Run {
        let mut child = Command::new(binary("gateway"))
            .args(["--internal-token", "e2e-internal-token"])
            .args(["--jwt-secret", "e2e-jwt-secret"])
            // Upstreams nobody listens on: health checks fail quietly, nothing else is touched.
            .args(["--notification-addr", "http://127.0.0.1:1"])
            .args(["--conversation-addr", "http://127.0.0.1:1"])
            .args(args)
            // No SWITCHBOARD_TLS_* or LISTEN_ADDR of a developer's shell.
            .env_clear()
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .env("SHUTDOWN_GRACE", "1s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the gateway");
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut run = Run { lines: Vec::new() };
        let listening = run.read_until(&received, &mut child, |line| {
            message(line) == "gateway listening"
        });
        assert!(
            listening,
            "the gateway stopped before listening: {:?}",
            run.lines
        );
        // A clean stop, so everything it logs after listening is read too.
        let pid = child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "SIGTERM to {pid}");
        run.read_until(&received, &mut child, |_| false);
        let status = child.wait().expect("wait for the gateway");
        assert!(status.success(), "{status}: {:?}", run.lines);
        run
    }

    /// Reads lines until `stop` accepts one (true) or stderr ends (false); kills the child
    /// and fails when nothing arrives for 30 s.
    fn read_until(
        &mut self,
        received: &mpsc::Receiver<String>,
        child: &mut Child,
        stop: impl Fn(&Value) -> bool,
    ) -> bool {
        loop {
            let line = match received.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the gateway logged nothing for 30 s: {:?}", self.lines);
                }
            };
            // Anything but a log line (main's `Error: ...` on a failed start) is kept as text.
            let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
            let done = stop(&value);
            self.lines.push(value);
            if done {
                return true;
            }
        }
    }

    /// The address of the `gateway listening` line.
    fn listening_on(&self) -> String {
        self.lines
            .iter()
            .find(|line| message(line) == "gateway listening")
            .map(|line| {
                line["fields"]["local_addr"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .expect("a gateway listening line")
    }

    fn warnings(&self) -> Vec<&Value> {
        self.lines
            .iter()
            .filter(|line| message(line).contains(WARNING))
            .collect()
    }
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or("")
}

#[test]
fn plaintext_on_all_interfaces_is_warned_about_once_with_the_address_and_the_flags() {
    let run = Run::gateway(&["--listen", "0.0.0.0:0"]);
    let addr = run.listening_on();
    assert!(
        addr.starts_with("0.0.0.0:") && !addr.ends_with(":0"),
        "{addr}"
    );
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "{:?}", run.lines);
    let warning = warnings[0];
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["fields"]["local_addr"], addr.as_str(), "{warning}");
    assert!(
        message(warning).contains("--tls-cert and --tls-key"),
        "{warning}"
    );
}

#[test]
fn plaintext_on_loopback_is_not_warned_about() {
    let run = Run::gateway(&["--listen", "127.0.0.1:0"]);
    assert!(run.listening_on().starts_with("127.0.0.1:"));
    assert!(run.warnings().is_empty(), "{:?}", run.lines);
}

#[test]
fn tls_on_all_interfaces_is_not_warned_about() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = DevCerts::create(dir.path()).expect("certificates");
    let (cert, key) = certs.pair("gateway");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let run = Run::gateway(&[
        "--listen",
        "0.0.0.0:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    assert!(run.listening_on().starts_with("0.0.0.0:"));
    let listening = run
        .lines
        .iter()
        .find(|line| message(line) == "gateway listening")
        .expect("listening");
    assert_eq!(listening["fields"]["tls"], true, "{listening}");
    assert!(run.warnings().is_empty(), "{:?}", run.lines);
}
