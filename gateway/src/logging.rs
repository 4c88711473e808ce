//! The one log line per call: method, caller, status, latency, request id, trace id, written
//! when the response body ends (for a stream: when the stream ends or the client leaves);
//! the upstream call's metrics are recorded then too.
//!
//! It is also where a response that breaks off is mended: when the upstream's stream fails
//! mid-response (its process died, its connection reset), the body ends with `grpc-status`
//! UNAVAILABLE trailers instead of passing the error on, which would make the gateway reset
//! the client's stream and the client see INTERNAL ("RST_STREAM error code 2"). Clients retry
//! (and resume Subscribe) on UNAVAILABLE, not on INTERNAL.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderValue};
use http_body::{Frame, SizeHint};
use tonic::{Code, Status, body::Body, codegen::Bytes};

use crate::call::LogContext;

pub struct LoggedBody {
    inner: Body,
    status: Option<HeaderValue>,
    /// What broke the upstream's stream, if it broke.
    upstream_error: Option<String>,
    /// The mended trailers went out; nothing follows.
    ended: bool,
    log: LogContext,
}

impl LoggedBody {
    pub fn new(inner: Body, status: Option<HeaderValue>, log: LogContext) -> Self {
        Self {
            inner,
            status,
            upstream_error: None,
            ended: false,
            log,
        }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(status) = frame.trailers_ref().and_then(|t| t.get("grpc-status")) {
                    let status = status.clone();
                    self.status = Some(status);
                }
            }
            Poll::Ready(Some(Err(err))) => {
                let what = upstream_failure(err);
                let trailers = unavailable_trailers(&what);
                self.status = Some(HeaderValue::from(Code::Unavailable as i32));
                self.upstream_error = Some(what);
                self.ended = true;
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the upstream's error says happened, for the log line and the client's message.
fn upstream_failure(err: &Status) -> String {
    let source = std::error::Error::source(err)
        .map(switchboard::replicas::chain)
        .unwrap_or_default();
    if source.is_empty() {
        format!("upstream stream failed: {}", err.message())
    } else {
        format!("upstream stream failed: {source}")
    }
}

fn unavailable_trailers(message: &str) -> HeaderMap {
    let status = Status::unavailable(message.to_owned());
    let mut trailers = HeaderMap::new();
    // Writes grpc-status and a percent-encoded grpc-message; it fails only for headers a
    // Status cannot hold, and then the status code alone still goes out.
    if status.add_header(&mut trailers).is_err() {
        trailers.insert("grpc-status", HeaderValue::from(Code::Unavailable as i32));
    }
    trailers
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // No status seen: the client went away before the call ended.
        let code = self
            .status
            .as_ref()
            .map_or(Code::Cancelled, |s| Code::from_bytes(s.as_bytes()));
        let upstream = self.upstream_error.as_deref().unwrap_or("-");
        self.log.done(code, upstream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mended_trailers_say_unavailable_with_a_reason() {
        let trailers = unavailable_trailers("upstream stream failed: connection reset");
        assert_eq!(trailers["grpc-status"], "14");
        let status = Status::from_header_map(&trailers).expect("a status");
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("connection reset"), "{status:?}");
    }
}
