//! CORS for browsers on other origins (`--cors-allowed-origins`), with tower-http's layer.
//!
//! Only listed origins get `Access-Control-Allow-Origin`, on preflights and calls alike, so a
//! browser on any other origin refuses the answer. Preflights (OPTIONS) are answered by the
//! layer itself, before authentication: a browser never sends credentials on a preflight.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers a gRPC-Web client sends (grpc-web and Connect's JS clients).
pub const ALLOWED_HEADERS: [&str; 6] = [
    "authorization",
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "x-request-id",
];

/// Response headers a browser script may read: the status of a trailers-only answer travels
/// in these headers, and the request id is what an operator asks for.
pub const EXPOSED_HEADERS: [&str; 4] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-request-id",
];

/// How long a browser may reuse a preflight's answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum CorsError {
    #[error(
        "invalid CORS origin {0:?}: use scheme://host[:port] in lower case, without a path or a trailing slash, as browsers send it"
    )]
    InvalidOrigin(String),
}

/// The layer for `origins` (exact `scheme://host[:port]`); `None` when the list is empty:
/// same-origin only, no CORS headers at all.
pub fn layer(origins: &[String]) -> Result<Option<CorsLayer>, CorsError> {
    let origins = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .map(parse_origin)
        .collect::<Result<Vec<_>, _>>()?;
    if origins.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::POST])
            .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
            .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
            .max_age(PREFLIGHT_MAX_AGE),
    ))
}

/// An origin as a browser sends it in `Origin`, which is compared byte for byte.
fn parse_origin(origin: &str) -> Result<HeaderValue, CorsError> {
    let invalid = || CorsError::InvalidOrigin(origin.to_owned());
    let uri: http::Uri = origin.parse().map_err(|_| invalid())?;
    let well_formed = matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.host().is_some_and(|h| !h.is_empty())
        && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
        && !origin.ends_with('/')
        && !origin.contains('@')
        && origin == origin.to_ascii_lowercase();
    if !well_formed {
        return Err(invalid());
    }
    HeaderValue::from_str(origin).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_scheme_host_port() {
        for good in [
            "https://app.example.com",
            "http://localhost:5173",
            "https://[::1]:8443",
        ] {
            assert!(parse_origin(good).is_ok(), "{good}");
        }
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://app.example.com",
            "https://App.Example.com",
            "https://user@app.example.com",
            "*",
            "",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_origins_means_no_layer() {
        assert!(layer(&[]).unwrap().is_none());
        assert!(layer(&[" ".into()]).unwrap().is_none());
        assert!(layer(&["https://a.example".into()]).unwrap().is_some());
        assert!(layer(&["https://a.example/".into()]).is_err());
    }
}
