//! Scraping a binary's `/metrics` as Prometheus does, and reading series out of the text.

use std::{net::SocketAddr, process::Command, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// One scrape: the response's content type and its body.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// `GET /metrics` at `addr` over HTTP/1.1.
pub async fn scrape(addr: SocketAddr) -> Scrape {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("metrics port answers");
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the scrape answers in time")
        .expect("response read");
    let response = String::from_utf8(response).expect("UTF-8");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Scrape {
        status,
        content_type,
        body: body.to_owned(),
    }
}

/// Scrapes `addr` until `ready` holds (series are recorded when a response ends, which may
/// be just after the client saw it, and some are read periodically), at most 20 s.
pub async fn scrape_until(addr: SocketAddr, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let mut last = scrape(addr).await;
    for _ in 0..200 {
        if ready(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = scrape(addr).await;
    }
    panic!("the series never got there:\n{}", last.body);
}

impl Scrape {
    /// The value of the sample `name` whose labels are exactly `labels` (in any order).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        wanted.sort();
        self.body.lines().find_map(|line| {
            if line.starts_with('#') {
                return None;
            }
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, found) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let mut found: Vec<String> = if found.is_empty() {
                Vec::new()
            } else {
                found
                    .split("\",")
                    .map(|l| l.trim_end_matches('"').to_owned() + "\"")
                    .collect()
            };
            found.sort();
            (found == wanted).then(|| value.parse().ok()).flatten()
        })
    }

    /// [`Scrape::value`], 0 when the series is absent (a counter nothing incremented yet).
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// Whether any sample of `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.body.lines().any(|l| {
            !l.starts_with('#')
                && (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        })
    }
}

/// Runs `promtool check metrics` on `text` (Debian's `prometheus` package): its verdict, or
/// `None` where promtool is not installed outside CI (in CI, `.ci/run` installs it and its
/// absence fails the test).
pub fn promtool_check(text: &str) -> Option<Result<(), String>> {
    promtool(&["check", "metrics"], text.as_bytes()).map(|(ok, said)| {
        if ok && said.trim().is_empty() {
            Ok(())
        } else {
            Err(said)
        }
    })
}

/// `promtool check rules` on the file at `path`, as [`promtool_check`].
pub fn promtool_check_rules(path: &std::path::Path) -> Option<Result<(), String>> {
    let path = path.to_str().expect("a UTF-8 path");
    promtool(&["check", "rules", path], b"").map(|(ok, said)| if ok { Ok(()) } else { Err(said) })
}

/// Whether promtool succeeded, and all it printed.
fn promtool(args: &[&str], stdin: &[u8]) -> Option<(bool, String)> {
    use std::io::Write;
    let child = Command::new("promtool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) if std::env::var_os("CI").is_none() => {
            eprintln!("promtool not found ({err}); apt-get install prometheus to check the format");
            return None;
        }
        Err(err) => panic!("promtool must be installed in CI (apt-get install prometheus): {err}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("input written to promtool");
    let output = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output.status.success(), said))
}

/// The metric families a scrape describes (its `# TYPE` lines).
pub fn families(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}
