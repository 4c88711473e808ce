//! A raw gRPC-Web client, as a browser's `fetch` speaks it, over any byte stream (TCP, or
//! TLS after ALPN): one HTTP/1.1 or HTTP/2 connection, length-prefixed messages, base64 in
//! text mode, the status in the 0x80 trailers frame, read frame by frame as bytes arrive.

use std::{net::SocketAddr, time::Duration};

use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{
    body::Incoming,
    client::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use switchboard::proto::notification::v1::{self as npb, subscribe_response::Event};
use tokio::io::{AsyncRead, AsyncWrite};

pub const LIST: &str = "/switchboard.notification.v1.NotificationService/List";
pub const SEND: &str = "/switchboard.notification.v1.NotificationService/Send";
pub const SUBSCRIBE: &str = "/switchboard.notification.v1.NotificationService/Subscribe";
pub const BINARY: &str = "application/grpc-web+proto";
pub const TEXT: &str = "application/grpc-web-text";
pub const ORIGIN: &str = "https://app.switchboard.test";

/// The authority HTTP/2 requests carry (HTTP/1.1 ones say it in `host`).
const AUTHORITY: &str = "gateway.switchboard.test";

/// What the client speaks on its connection.
enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    /// With the scheme of the `:scheme` pseudo-header: `http` after prior knowledge,
    /// `https` after ALPN `h2`.
    Http2(http2::SendRequest<Full<Bytes>>, &'static str),
}

/// One connection; dropping it closes the socket, as a closed browser tab does.
pub struct WebClient {
    sender: Sender,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for WebClient {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// A plaintext HTTP/1.1 connection to `addr`.
pub async fn connect(addr: SocketAddr) -> WebClient {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    WebClient::http1(stream).await
}

impl WebClient {
    /// HTTP/1.1 on `io`.
    pub async fn http1(io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static) -> WebClient {
        let (sender, connection) = http1::handshake(TokioIo::new(io))
            .await
            .expect("HTTP/1.1 handshake");
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        WebClient {
            sender: Sender::Http1(sender),
            connection,
        }
    }

    /// HTTP/2 on `io`, whose requests say `scheme` (`http` or `https`).
    pub async fn http2(
        io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
        scheme: &'static str,
    ) -> WebClient {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("HTTP/2 handshake");
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        WebClient {
            sender: Sender::Http2(sender, scheme),
            connection,
        }
    }

    /// Sends `request` (made by [`call`] or by hand for HTTP/1.1) and checks the answer came
    /// in the connection's HTTP version.
    pub async fn send(&mut self, request: http::Request<Full<Bytes>>) -> http::Response<Incoming> {
        let expected = match self.sender {
            Sender::Http1(_) => http::Version::HTTP_11,
            Sender::Http2(..) => http::Version::HTTP_2,
        };
        let response = self.try_send(request).await.expect("a response");
        assert_eq!(response.version(), expected);
        response
    }

    /// Opens a binary gRPC-Web Subscribe as `token`'s person and checks it was answered as
    /// one (200, `application/grpc-web+proto`): the stream's frames.
    pub async fn subscribe(&mut self, token: &str) -> Frames {
        let response = self
            .send(call(
                SUBSCRIBE,
                token,
                BINARY,
                &npb::SubscribeRequest::default(),
            ))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let (parts, frames) = Frames::new(response);
        assert_eq!(parts.headers["content-type"], BINARY);
        frames
    }

    pub async fn try_send(
        &mut self,
        mut request: http::Request<Full<Bytes>>,
    ) -> hyper::Result<http::Response<Incoming>> {
        match &mut self.sender {
            Sender::Http1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
            Sender::Http2(sender, scheme) => {
                // HTTP/2 names the target in pseudo-headers, from an absolute URI.
                *request.version_mut() = http::Version::HTTP_2;
                let path = request.uri().path().to_owned();
                *request.uri_mut() = format!("{scheme}://{AUTHORITY}{path}")
                    .parse()
                    .expect("absolute URI");
                request.headers_mut().remove("host");
                sender.ready().await?;
                sender.send_request(request).await
            }
        }
    }
}

/// A gRPC-Web call: one length-prefixed message, base64 for the text content type.
pub fn call(
    path: &str,
    token: &str,
    content_type: &str,
    message: &impl Message,
) -> http::Request<Full<Bytes>> {
    let encoded = message.encode_to_vec();
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(u32::try_from(encoded.len()).expect("small message"));
    frame.put_slice(&encoded);
    let body = if content_type == TEXT {
        Bytes::from(base64::engine::general_purpose::STANDARD.encode(&frame))
    } else {
        frame.freeze()
    };
    let mut request = http::Request::post(path)
        .header("host", AUTHORITY)
        .header("content-type", content_type)
        // tonic-web answers in text mode only when asked to, as grpc-web's JS client does.
        .header("accept", content_type)
        .header("x-grpc-web", "1")
        .header("origin", ORIGIN);
    if !token.is_empty() {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Full::new(body)).expect("request")
}

pub enum WebFrame {
    Message(Bytes),
    Trailers(HeaderMap),
}

/// Reads a gRPC-Web response body frame by frame, as the bytes arrive.
pub struct Frames {
    body: Incoming,
    text: bool,
    encoded: BytesMut,
    decoded: BytesMut,
}

impl Frames {
    pub fn new(response: http::Response<Incoming>) -> (http::response::Parts, Frames) {
        let (parts, body) = response.into_parts();
        let text = parts.headers["content-type"]
            .to_str()
            .expect("content type")
            .starts_with(TEXT);
        let frames = Frames {
            body,
            text,
            encoded: BytesMut::new(),
            decoded: BytesMut::new(),
        };
        (parts, frames)
    }

    pub async fn next(&mut self) -> Option<WebFrame> {
        loop {
            if let Some(frame) = self.take() {
                return Some(frame);
            }
            let frame = self.body.frame().await?.expect("response body");
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if self.text {
                // Each chunk is padded base64 on its own: decode whole 4-character groups.
                self.encoded.put(data);
                while self.encoded.len() >= 4 {
                    let group = self.encoded.split_to(4);
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(&group)
                        .expect("base64");
                    self.decoded.put_slice(&bytes);
                }
            } else {
                self.decoded.put(data);
            }
        }
    }

    fn take(&mut self) -> Option<WebFrame> {
        if self.decoded.len() < 5 {
            return None;
        }
        let flag = self.decoded[0];
        let len = u32::from_be_bytes(self.decoded[1..5].try_into().expect("4 bytes")) as usize;
        if self.decoded.len() < 5 + len {
            return None;
        }
        self.decoded.advance(5);
        let payload = self.decoded.split_to(len).freeze();
        if flag & 0x80 == 0 {
            return Some(WebFrame::Message(payload));
        }
        let mut trailers = HeaderMap::new();
        for line in payload.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = HeaderName::from_bytes(&line[..colon]).expect("trailer name");
            let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).expect("value");
            trailers.append(name, value);
        }
        Some(WebFrame::Trailers(trailers))
    }
}

/// A finished unary call: its response headers, messages and status (from the trailers
/// frame, or from the headers of a trailers-only answer).
pub struct Unary {
    pub headers: HeaderMap,
    pub messages: Vec<Bytes>,
    pub status: tonic::Status,
    pub trailer_frame: bool,
}

/// Sends `request` on `client` and reads the whole answer.
pub async fn unary_on(client: &mut WebClient, request: http::Request<Full<Bytes>>) -> Unary {
    let response = client.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (parts, mut frames) = Frames::new(response);
    let mut messages = Vec::new();
    let mut trailers = None;
    while let Some(frame) = frames.next().await {
        assert!(trailers.is_none(), "a frame after the trailers frame");
        match frame {
            WebFrame::Message(message) => messages.push(message),
            WebFrame::Trailers(t) => trailers = Some(t),
        }
    }
    let trailer_frame = trailers.is_some();
    let status = tonic::Status::from_header_map(trailers.as_ref().unwrap_or(&parts.headers))
        .expect("a grpc-status in the trailers frame or the headers");
    Unary {
        headers: parts.headers,
        messages,
        status,
        trailer_frame,
    }
}

/// [`unary_on`] a new plaintext HTTP/1.1 connection to `addr`.
pub async fn unary(addr: SocketAddr, request: http::Request<Full<Bytes>>) -> Unary {
    unary_on(&mut connect(addr).await, request).await
}

/// The next notification of a Subscribe answer, skipping heartbeats; fails the test when
/// none comes within 10 s (the answer is buffered) or the stream ends.
pub async fn next_notification(frames: &mut Frames) -> npb::Notification {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), frames.next()).await {
            Ok(Some(WebFrame::Message(message))) => {
                let event = npb::SubscribeResponse::decode(message)
                    .expect("event")
                    .event;
                if let Some(Event::Notification(n)) = event {
                    return n;
                }
            }
            Ok(Some(WebFrame::Trailers(t))) => panic!("the stream ended: {t:?}"),
            Ok(None) => panic!("the stream ended without a trailers frame"),
            Err(_) => panic!("no notification within 10 s: the answer is buffered"),
        }
    }
}
