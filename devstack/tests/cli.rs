//! The devstack binary as a newcomer runs it: from another directory, with its output
//! captured, on ports that are taken.

use std::{
    io::{BufRead, BufReader, Read},
    net::TcpListener,
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use jsonwebtoken::{DecodingKey, Validation, decode};

fn devstack(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_devstack"));
    command
        .current_dir(cwd)
        // The caller's shell must not decide which secret signs.
        .env_remove("SWITCHBOARD_JWT_SECRET")
        .env_remove("SWITCHBOARD_INTERNAL_TOKEN")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR");
    command
}

fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("free port");
    listener.local_addr().expect("local address").to_string()
}

/// The claims of `token` if it verifies with `secret`.
fn verified_subject(token: &str, secret: &str) -> Option<String> {
    let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    decode::<serde_json::Value>(
        token.trim(),
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .ok()
    .and_then(|data| data.claims["sub"].as_str().map(str::to_owned))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn token_without_a_secrets_file_is_refused_and_says_where_it_looked() {
    let elsewhere = tempfile::tempdir().expect("temporary directory");
    let output = devstack(elsewhere.path())
        .args(["token", "--user", "bob"])
        .output()
        .expect("devstack runs");

    assert!(!output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    let looked_at = std::fs::canonicalize(elsewhere.path())
        .expect("canonical path")
        .join("data")
        .join("dev-secrets.json");
    assert!(
        stderr.contains(&looked_at.display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("--data-dir"), "{stderr}");
    assert!(stderr.contains("--jwt-secret"), "{stderr}");
    // Nothing was created: a later `devstack up` here still starts from scratch.
    assert!(!elsewhere.path().join("data").exists());
}

#[test]
fn token_with_a_jwt_secret_needs_no_data_directory() {
    let elsewhere = tempfile::tempdir().expect("temporary directory");
    let flag = devstack(elsewhere.path())
        .args(["token", "--user", "bob", "--jwt-secret", "prod-secret"])
        .output()
        .expect("devstack runs");
    assert!(flag.status.success(), "{}", text(&flag.stderr));
    assert_eq!(
        verified_subject(&text(&flag.stdout), "prod-secret").as_deref(),
        Some("bob")
    );

    let env = devstack(elsewhere.path())
        .args(["token", "--user", "carol"])
        .env("SWITCHBOARD_JWT_SECRET", "prod-secret")
        .output()
        .expect("devstack runs");
    assert!(env.status.success(), "{}", text(&env.stderr));
    assert_eq!(
        verified_subject(&text(&env.stdout), "prod-secret").as_deref(),
        Some("carol")
    );
    assert!(!elsewhere.path().join("data").exists());
}

#[test]
fn token_signs_with_the_secret_of_the_data_directory_it_is_given() {
    let stack_dir = tempfile::tempdir().expect("temporary directory");
    let secrets = devstack::Secrets::load_or_create(stack_dir.path()).expect("secrets");
    let elsewhere = tempfile::tempdir().expect("temporary directory");
    let output = devstack(elsewhere.path())
        .args(["token", "--user", "bob", "--data-dir"])
        .arg(stack_dir.path())
        .output()
        .expect("devstack runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        verified_subject(&text(&output.stdout), &secrets.jwt_secret).as_deref(),
        Some("bob")
    );
}

/// A `devstack up` on free ports in its own data directory, with stdout and stderr read
/// separately as lines arrive.
struct Up {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    stderr_lines: mpsc::Receiver<String>,
    /// `/metrics` of the gateway, notification-svc, conversation-svc.
    metrics: [String; 3],
}

/// `GET /metrics` at `addr` over plain HTTP/1.1: the whole response.
fn scrape(addr: &str) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).expect("metrics port answers");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    response
}

impl Up {
    fn start(data_dir: &Path, ports: [&str; 3]) -> Up {
        Up::start_with(data_dir, ports, &[])
    }

    /// With a stand-in for the built web app (`--web-dir`), so no test runs npm in the
    /// checkout (parallel builds there would race); `web/` has its own tests.
    fn start_with(data_dir: &Path, ports: [&str; 3], more: &[&str]) -> Up {
        let web_dir = data_dir.join("web-dist");
        std::fs::create_dir_all(&web_dir).expect("web dir");
        std::fs::write(
            web_dir.join("index.html"),
            "<!doctype html><title>app</title>",
        )
        .expect("index.html");
        let metrics = [free_addr(), free_addr(), free_addr()];
        let mut child = devstack(data_dir)
            .args(["up", "--data-dir"])
            .arg(data_dir)
            .arg("--web-dir")
            .arg(&web_dir)
            .args(["--gateway", ports[0]])
            .args(["--notification", ports[1]])
            .args(["--conversation", ports[2]])
            .args(["--gateway-metrics", &metrics[0]])
            .args(["--notification-metrics", &metrics[1]])
            .args(["--conversation-metrics", &metrics[2]])
            .args(more)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("devstack up starts");
        let (stdout_tx, stdout) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = stdout_tx.send(line);
            }
        });
        // Raw bytes, so an escape code cannot hide in a lossy conversion.
        let (stderr_tx, stderr_lines) = mpsc::channel();
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut chunk) {
                all.extend_from_slice(&chunk[..n]);
                let _ = stderr_tx.send(text(&chunk[..n]));
            }
            all
        });
        Up {
            child,
            stdout,
            stderr: Some(stderr),
            stderr_lines,
            metrics,
        }
    }

    /// Stdout lines up to and including the first that contains `last`.
    fn stdout_until(&self, last: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(last);
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                Err(err) => panic!("no {last:?} on stdout ({err}); got {lines:?}"),
            }
        }
    }

    /// Waits until stderr has shown `wanted` (logs of the services starting).
    fn stderr_shows(&self, wanted: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = String::new();
        while !seen.contains(wanted) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(chunk) => seen.push_str(&chunk),
                Err(err) => panic!("no {wanted:?} on stderr ({err}); got {seen}"),
            }
        }
    }

    /// Ctrl-C, then everything else it printed on each stream.
    fn interrupt(mut self) -> (Vec<String>, Vec<u8>) {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "devstack did not stop on Ctrl-C");
            std::thread::sleep(Duration::from_millis(20));
        }
        let rest = self.stdout.try_iter().collect();
        let stderr = self
            .stderr
            .take()
            .map(|reader| reader.join().expect("stderr reader"))
            .unwrap_or_default();
        (rest, stderr)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a text log line starts with: a timestamp, then the level.
fn is_log_line(line: &str) -> bool {
    ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
        .iter()
        .any(|level| {
            line.contains(&format!(" {level} ")) || line.contains(&format!("{level}\u{1b}"))
        })
}

#[test]
fn up_prints_only_its_banner_on_stdout_and_uncoloured_logs_on_stderr() {
    let data = tempfile::tempdir().expect("temporary directory");
    let (gateway, notification, conversation) = (free_addr(), free_addr(), free_addr());
    let up = Up::start(data.path(), [&gateway, &notification, &conversation]);

    let mut stdout = up.stdout_until("Ctrl-C stops everything.");
    up.stderr_shows("gateway listening");
    let metrics = up.metrics.clone();
    for addr in &metrics {
        let response = scrape(addr);
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response.contains("process_resident_memory_bytes"),
            "{response}"
        );
    }
    let (rest, stderr) = up.interrupt();
    stdout.extend(rest);

    let logged: Vec<&String> = stdout.iter().filter(|l| is_log_line(l)).collect();
    assert!(logged.is_empty(), "log lines on stdout: {logged:?}");
    assert!(
        stdout
            .iter()
            .any(|l| l.contains(&format!("gateway {gateway}"))),
        "{stdout:?}"
    );
    let token = stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("export TOKEN="))
        .expect("the token line");
    let secrets = devstack::Secrets::load(data.path()).expect("secrets kept");
    assert_eq!(
        verified_subject(token, &secrets.jwt_secret).as_deref(),
        Some("dev")
    );
    // Each binary's metrics, as printed, answer a scrape.
    let printed = format!(
        "Metrics: http://{}/metrics (gateway), http://{}/metrics (notification-svc), http://{}/metrics (conversation-svc)",
        metrics[0], metrics[1], metrics[2]
    );
    assert!(stdout.iter().any(|l| l == &printed), "{stdout:?}");
    // The link that opens the web app signed in as dev.
    let link = format!("http://{gateway}/#token={token}");
    assert!(stdout.iter().any(|l| l.trim() == link), "{stdout:?}");

    assert!(
        !stderr.contains(&0x1b),
        "escape codes on a piped stderr: {}",
        text(&stderr)
    );
    let stderr = text(&stderr);
    assert!(
        stderr.contains(" INFO ") && stderr.contains("notification-svc listening"),
        "{stderr}"
    );
}

#[test]
fn up_with_tls_prints_a_grpcurl_line_that_works_as_printed_and_keeps_its_ca() {
    let data = tempfile::tempdir().expect("temporary directory");
    let (gateway, notification, conversation) = (free_addr(), free_addr(), free_addr());
    let up = Up::start_with(
        data.path(),
        [&gateway, &notification, &conversation],
        &["--tls"],
    );
    let stdout = up.stdout_until("Ctrl-C stops everything.");
    up.stderr_shows("gateway listening");
    let line = |start: &str| {
        stdout
            .iter()
            .map(|l| l.trim())
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in {stdout:?}"))
            .to_owned()
    };
    let (export, call) = (line("export TOKEN="), line("grpcurl "));
    assert!(
        call.contains("-cacert") && !call.contains("-plaintext"),
        "{call}"
    );
    // As a person pastes them: the export, then the grpcurl line.
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("{export}\n{call}"))
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "{call}\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).contains("Hello from Switchboard"),
        "{}",
        text(&output.stdout)
    );
    let ca = std::fs::read(data.path().join("tls").join("ca.pem")).expect("the CA is kept");
    up.interrupt();

    // A second start keeps the CA the first one printed.
    let up = Up::start_with(
        data.path(),
        [&gateway, &notification, &conversation],
        &["--tls"],
    );
    up.stdout_until("Ctrl-C stops everything.");
    let again = std::fs::read(data.path().join("tls").join("ca.pem")).expect("the CA is kept");
    assert_eq!(ca, again, "the CA changed across restarts");
    up.interrupt();
}

/// `devstack up` with the listener at `taken` (gateway, notification-svc, conversation-svc)
/// already bound elsewhere; its output and the address that was taken.
fn up_with_one_port_taken(taken: usize) -> (Output, String) {
    let data = tempfile::tempdir().expect("temporary directory");
    let occupied = TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let occupied_addr = occupied.local_addr().expect("address").to_string();
    let mut ports = [free_addr(), free_addr(), free_addr()];
    ports[taken] = occupied_addr.clone();
    let [gateway, notification, conversation] = &ports;
    let output = devstack(data.path())
        .args(["up", "--no-web", "--data-dir"])
        .arg(data.path())
        .args(["--gateway", gateway])
        .args(["--notification", notification])
        .args(["--conversation", conversation])
        .arg("--no-metrics")
        .output()
        .expect("devstack up runs");
    drop(occupied);
    (output, occupied_addr)
}

#[test]
fn up_on_a_port_in_use_names_the_service_and_the_address() {
    for (taken, service) in [
        (0, "gateway"),
        (1, "notification-svc"),
        (2, "conversation-svc"),
    ] {
        let (output, addr) = up_with_one_port_taken(taken);
        assert!(!output.status.success(), "{service}: {output:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(&format!("{service} cannot listen on {addr}")),
            "{service}: {stderr}"
        );
        assert!(stderr.contains("Address already in use"), "{stderr}");
    }
}
