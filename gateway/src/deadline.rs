//! `grpc-timeout` handling: the client's deadline passes on, capped for unary calls.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The smaller of the client's `grpc-timeout` (if any, and valid) and `max`.
pub fn effective(headers: &HeaderMap, max: Duration) -> Duration {
    headers
        .get(GRPC_TIMEOUT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse)
        .map_or(max, |client| client.min(max))
}

/// Writes `deadline` as the upstream's `grpc-timeout`, in milliseconds (at least 1).
pub fn set(headers: &mut HeaderMap, deadline: Duration) {
    let millis = deadline.as_millis().clamp(1, 99_999_999);
    if let Ok(value) = HeaderValue::from_str(&format!("{millis}m")) {
        headers.insert(GRPC_TIMEOUT, value);
    }
}

/// Parses the gRPC wire format: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_refuses_garbage() {
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "m", "10", "123456789S", "1x", "-1S"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_smaller_deadline_wins() {
        let mut headers = HeaderMap::new();
        let max = Duration::from_secs(30);
        assert_eq!(effective(&headers, max), max);
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("5S"));
        assert_eq!(effective(&headers, max), Duration::from_secs(5));
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("5M"));
        assert_eq!(effective(&headers, max), max);
        set(&mut headers, Duration::from_millis(1500));
        assert_eq!(headers[GRPC_TIMEOUT], "1500m");
    }
}
