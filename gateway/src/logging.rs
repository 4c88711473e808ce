//! The one log line per call: method, caller, status, latency, request id, written when the
//! response body ends (for a stream: when the stream ends or the client leaves).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http::HeaderValue;
use http_body::{Frame, SizeHint};
use tonic::{Code, Status, body::Body, codegen::Bytes};

use crate::proxy::LogContext;

pub struct LoggedBody {
    inner: Body,
    status: Option<HeaderValue>,
    log: LogContext,
}

impl LoggedBody {
    pub fn new(inner: Body, status: Option<HeaderValue>, log: LogContext) -> Self {
        Self { inner, status, log }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll
            && let Some(status) = frame.trailers_ref().and_then(|t| t.get("grpc-status"))
        {
            let status = status.clone();
            self.status = Some(status);
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // No status seen: the client went away before the call ended.
        let code = self
            .status
            .as_ref()
            .map_or(Code::Cancelled, |s| Code::from_bytes(s.as_bytes()));
        tracing::info!(
            method = %self.log.method,
            caller = %self.log.caller,
            status = ?code,
            latency_us = self.log.started.elapsed().as_micros() as u64,
            request_id = %self.log.request_id,
            "call"
        );
    }
}
