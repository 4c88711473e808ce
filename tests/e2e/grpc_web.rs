//! gRPC-Web through the gateway with a raw client (`web_client`, hyper's, HTTP/1.1 unless
//! said otherwise), as a browser's `fetch` speaks it: framing, trailers frame, streaming,
//! errors, CORS. Over TLS: `grpc_web_tls.rs`.

use std::time::Duration;

use bytes::Bytes;
use e2e::*;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use prost::Message;
use switchboard::{
    proto::notification::v1::{self as npb, subscribe_response::Event},
    testing::{self, TestDatabase},
};
use tonic::Code;

use crate::web_client::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_unary_calls_work_over_http1_in_binary_and_text() {
    let app = start(Backend::Sqlite).await;
    let sender = app.token("ci", "notifications:send");
    app.notifications(&sender)
        .send(to("wes", "build 7 passed"))
        .await
        .expect("send over gRPC");

    let token = app.token("wes", "");
    for content_type in [BINARY, TEXT, "application/grpc-web"] {
        let list = unary(
            app.gateway,
            call(LIST, &token, content_type, &npb::ListRequest::default()),
        )
        .await;
        assert_eq!(
            list.status.code(),
            Code::Ok,
            "{content_type}: {:?}",
            list.status
        );
        assert!(
            list.trailer_frame,
            "{content_type}: the status comes in a trailers frame"
        );
        let expected = if content_type == TEXT {
            "application/grpc-web-text+proto"
        } else {
            BINARY
        };
        assert_eq!(list.headers["content-type"], expected);
        assert!(list.headers.contains_key("x-request-id"));
        assert_eq!(list.messages.len(), 1, "{content_type}");
        let response = npb::ListResponse::decode(list.messages[0].clone()).expect("ListResponse");
        let contents: Vec<_> = response
            .notifications
            .iter()
            .map(|n| n.content.as_str())
            .collect();
        assert_eq!(contents, ["build 7 passed"], "{content_type}");
        assert_eq!(response.total_unread, 1);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_works_over_http2_too() {
    let app = start(Backend::Sqlite).await;
    let token = app.token("wes", "");
    // gRPC-Web over HTTP/2 (prior knowledge, as after ALPN h2): same translation.
    let stream = tokio::net::TcpStream::connect(app.gateway)
        .await
        .expect("connect");
    let mut client = WebClient::http2(stream, "http").await;
    let response = client
        .send(call(LIST, &token, BINARY, &npb::ListRequest::default()))
        .await;
    assert_eq!(response.headers()["content-type"], BINARY);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body[0], 0, "a message frame first");
    let trailer_at = 5 + u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    assert_eq!(body[trailer_at], 0x80, "then the trailers frame");
    assert!(
        String::from_utf8_lossy(&body[trailer_at + 5..]).contains("grpc-status:0"),
        "{body:?}"
    );
    drop(client);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_errors_keep_their_status_and_details() {
    let app = start(Backend::Sqlite).await;

    let anonymous = unary(
        app.gateway,
        call(LIST, "", BINARY, &npb::ListRequest::default()),
    )
    .await;
    assert_eq!(
        anonymous.status.code(),
        Code::Unauthenticated,
        "{:?}",
        anonymous.status
    );
    assert!(anonymous.messages.is_empty());

    let invalid = npb::SendRequest {
        category: "Not Valid".into(),
        ..to("bob", "x")
    };
    let sender = app.token("ci", "notifications:send");
    for content_type in [BINARY, TEXT] {
        let refused = unary(app.gateway, call(SEND, &sender, content_type, &invalid)).await;
        assert_eq!(
            refused.status.code(),
            Code::InvalidArgument,
            "{:?}",
            refused.status
        );
        let details = tonic_types::StatusExt::get_error_details(&refused.status);
        let fields: Vec<_> = details
            .bad_request()
            .expect("BadRequest details over gRPC-Web")
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(fields, ["category"], "{content_type}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_subscribe_streams_events_as_they_happen_and_a_client_that_leaves_frees_the_upstream()
 {
    let app = start_with(Backend::Sqlite, |c| {
        c.heartbeat_interval = Duration::from_millis(300);
    })
    .await;
    let token = app.token("una", "");
    let mut client = connect(app.gateway).await;
    let mut frames = client.subscribe(&token).await;
    app.wait_for_subscribers(1).await;

    // Heartbeats arrive one by one while the stream is open.
    let mut heartbeats = 0;
    while heartbeats < 2 {
        match tokio::time::timeout(Duration::from_secs(10), frames.next()).await {
            Ok(Some(WebFrame::Message(message))) => {
                let event = npb::SubscribeResponse::decode(message)
                    .expect("event")
                    .event;
                if matches!(event, Some(Event::Heartbeat(_))) {
                    heartbeats += 1;
                }
            }
            Ok(Some(WebFrame::Trailers(t))) => panic!("stream ended: {t:?}"),
            Ok(None) => panic!("stream ended without trailers"),
            Err(_) => panic!("no event within 10 s: the response is buffered"),
        }
    }

    // A notification sent now arrives as a data frame, and the stream stays open.
    app.notifications(&app.token("ci", "notifications:send"))
        .send(to("una", "deploy finished"))
        .await
        .expect("send");
    assert_eq!(
        next_notification(&mut frames).await.content,
        "deploy finished"
    );
    assert_eq!(app.hub.subscriber_count(), 1, "still open");

    // The browser goes away: the upstream stream is freed.
    drop(frames);
    drop(client);
    app.wait_for_subscribers(0).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_subscribe_ends_with_an_unavailable_trailers_frame_when_the_backend_shuts_down() {
    let (_database, url) = TestDatabase::create(Backend::Sqlite, "notifications.db").await;
    let token = "e2e-internal-token";
    let secret = "e2e-jwt-secret";
    let backend_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend_listener.local_addr().unwrap();
    let (stop_backend, backend_stopped) = tokio::sync::oneshot::channel::<()>();
    let backend = tokio::spawn(notification_svc::serve(
        notification_svc::Config {
            listen: backend_addr,
            heartbeat_interval: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(1),
            ..notification_svc::Config::new(&url, token)
        },
        backend_listener,
        async {
            let _ = backend_stopped.await;
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_addr = listener.local_addr().unwrap();
    let (stop_gateway, gateway_stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(gateway::serve(
        gateway::Config {
            listen: gateway_addr,
            notification_addr: format!("http://{backend_addr}"),
            conversation_addr: "http://127.0.0.1:1".into(),
            jwt_secret: Some(secret.into()),
            shutdown_grace: Duration::from_secs(1),
            ..gateway::Config::new(token)
        },
        listener,
        async {
            let _ = gateway_stopped.await;
        },
    ));
    testing::wait_until_serving(
        gateway_addr,
        "switchboard.notification.v1.NotificationService",
    )
    .await;

    let user = sign_hs256(secret, &claims("vic", ""));
    let mut client = connect(gateway_addr).await;
    let response = client
        .send(call(
            SUBSCRIBE,
            &user,
            TEXT,
            &npb::SubscribeRequest::default(),
        ))
        .await;
    let (_, mut frames) = Frames::new(response);
    let first = tokio::time::timeout(Duration::from_secs(10), frames.next()).await;
    assert!(
        matches!(first, Ok(Some(WebFrame::Message(_)))),
        "an event on the open stream"
    );

    let _ = stop_backend.send(());
    let trailers = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match frames.next().await {
                Some(WebFrame::Message(_)) => continue,
                Some(WebFrame::Trailers(trailers)) => return trailers,
                None => panic!("the stream ended without a trailers frame"),
            }
        }
    })
    .await
    .expect("the stream ends when its backend shuts down");
    let status = tonic::Status::from_header_map(&trailers).expect("grpc-status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        frames.next().await.is_none(),
        "nothing follows the trailers frame"
    );

    backend.await.unwrap().unwrap();
    let _ = stop_gateway.send(());
    gateway.await.unwrap().unwrap();
}

/// A CORS preflight from `origin`, as a browser sends it before a gRPC-Web call.
fn preflight(origin: &str) -> http::Request<Full<Bytes>> {
    http::Request::options(LIST)
        .header("host", "gateway.switchboard.test")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web,x-user-agent",
        )
        .body(Full::new(Bytes::new()))
        .expect("request")
}

fn header_list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().expect("ascii").split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_allowed_origins_only_and_preflights_need_no_token() {
    let app = start_with(Backend::Sqlite, |c| {
        c.cors_allowed_origins = vec![ORIGIN.into(), "http://localhost:5173".into()];
    })
    .await;

    let mut client = connect(app.gateway).await;
    let allowed = client.send(preflight(ORIGIN)).await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], ORIGIN);
    let allowed_headers = header_list(headers, "access-control-allow-headers");
    for name in [
        "authorization",
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "x-request-id",
    ] {
        assert!(
            allowed_headers.iter().any(|h| h == name),
            "{name}: {allowed_headers:?}"
        );
    }
    assert!(header_list(headers, "access-control-allow-methods").contains(&"post".into()));

    let refused = connect(app.gateway)
        .await
        .send(preflight("https://evil.example"))
        .await;
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin"),
        "{:?}",
        refused.headers()
    );

    // The call itself: exposed headers for the allowed origin, none for another one.
    let token = app.token("wes", "");
    let list = unary(
        app.gateway,
        call(LIST, &token, BINARY, &npb::ListRequest::default()),
    )
    .await;
    assert_eq!(list.status.code(), Code::Ok);
    assert_eq!(list.headers["access-control-allow-origin"], ORIGIN);
    let exposed = header_list(&list.headers, "access-control-expose-headers");
    for name in [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "x-request-id",
    ] {
        assert!(exposed.iter().any(|h| h == name), "{name}: {exposed:?}");
    }
    let mut other = call(LIST, &token, BINARY, &npb::ListRequest::default());
    other
        .headers_mut()
        .insert("origin", HeaderValue::from_static("https://evil.example"));
    let other = unary(app.gateway, other).await;
    assert!(!other.headers.contains_key("access-control-allow-origin"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_origins_no_cors_headers_are_sent() {
    let app = start(Backend::Sqlite).await;
    let answer = connect(app.gateway).await.send(preflight(ORIGIN)).await;
    assert!(
        !answer
            .headers()
            .keys()
            .any(|name| name.as_str().starts_with("access-control-")),
        "{:?}",
        answer.headers()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_limits_refuse_oversized_heads_and_grpc_still_works_on_the_same_port() {
    let app = start(Backend::Sqlite).await;
    let padded = |bytes: usize| {
        let mut request = call(
            LIST,
            &app.token("wes", ""),
            BINARY,
            &npb::ListRequest::default(),
        );
        request.headers_mut().insert(
            "x-padding",
            HeaderValue::from_str(&"p".repeat(bytes)).unwrap(),
        );
        request
    };
    // Under the 16 KiB default: served.
    let fits = unary(app.gateway, padded(14_000)).await;
    assert_eq!(fits.status.code(), Code::Ok, "{:?}", fits.status);
    // Over it: 431, or the connection closed before the client read the answer (hyper
    // closes with the rest of the head unread, which can reset the connection). Never served.
    match connect(app.gateway).await.try_send(padded(20_000)).await {
        Ok(response) => {
            assert_eq!(
                response.status(),
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            )
        }
        Err(err) => assert!(!err.is_parse(), "{err}"),
    }

    // At most 100 header lines, however small (hyper's limit): 431 past it.
    let with_headers = |count: usize| {
        let mut request = call(
            LIST,
            &app.token("wes", ""),
            BINARY,
            &npb::ListRequest::default(),
        );
        for i in 0..count {
            let name = HeaderName::try_from(format!("x-extra-{i}")).unwrap();
            request
                .headers_mut()
                .insert(name, HeaderValue::from_static("1"));
        }
        request
    };
    let fits = unary(app.gateway, with_headers(80)).await;
    assert_eq!(fits.status.code(), Code::Ok, "{:?}", fits.status);
    let refused = connect(app.gateway).await.send(with_headers(101)).await;
    assert_eq!(
        refused.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );

    // Native gRPC (HTTP/2) on the same port.
    app.notifications(&app.token("wes", ""))
        .list(npb::ListRequest::default())
        .await
        .expect("gRPC over HTTP/2");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_calls_are_rate_limited_like_grpc_and_from_the_same_budget() {
    let app = start_with(Backend::Sqlite, |c| {
        c.send_rate = 0.01;
        c.send_burst = 2;
    })
    .await;
    let sender = app.token("ci", "notifications:send");
    let mut grpc = app.notifications(&sender);

    // A burst of two: one over gRPC-Web, one over gRPC.
    let first = unary(app.gateway, call(SEND, &sender, BINARY, &to("rae", "one"))).await;
    assert_eq!(first.status.code(), Code::Ok, "{:?}", first.status);
    grpc.send(to("rae", "two")).await.expect("within the burst");

    // gRPC-Web sees what gRPC took: refused, in a trailers-only answer.
    for content_type in [BINARY, TEXT] {
        let refused = unary(
            app.gateway,
            call(SEND, &sender, content_type, &to("rae", "x")),
        )
        .await;
        assert_eq!(refused.headers["grpc-status"], "8", "{content_type}");
        assert!(!refused.trailer_frame, "{content_type}: trailers-only");
        assert!(refused.messages.is_empty());
        assert_eq!(refused.status.code(), Code::ResourceExhausted);
        let retry = tonic_types::StatusExt::get_error_details(&refused.status)
            .retry_info()
            .and_then(|r| r.retry_delay)
            .expect("RetryInfo over gRPC-Web");
        assert!(retry > Duration::from_secs(90), "{retry:?}");
    }
    // And gRPC sees what gRPC-Web took: refused the same way.
    let over_grpc = grpc.send(to("rae", "x")).await.unwrap_err();
    assert_eq!(over_grpc.code(), Code::ResourceExhausted, "{over_grpc:?}");
    let over_web = unary(app.gateway, call(SEND, &sender, BINARY, &to("rae", "x"))).await;
    assert_eq!(over_web.status.message(), over_grpc.message());

    let inbox = app
        .notifications(&app.token("rae", ""))
        .list(npb::ListRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        inbox.notifications.len(),
        2,
        "the refused calls created nothing"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_alike_over_grpc_and_grpc_web() {
    let app = start(Backend::Sqlite).await;
    let sender = app.token("ci", "notifications:send");
    let sized = |bytes: usize| to("ola", &"x".repeat(bytes));
    let mut grpc = app.notifications(&sender);

    // Past 1 MiB + 64 KiB of frames the gateway refuses without forwarding.
    let too_large = 2 * 1024 * 1024;
    let over_grpc = grpc.send(sized(too_large)).await.unwrap_err();
    assert_eq!(over_grpc.code(), Code::ResourceExhausted, "{over_grpc:?}");
    for content_type in [BINARY, TEXT] {
        let over_web = unary(
            app.gateway,
            call(SEND, &sender, content_type, &sized(too_large)),
        )
        .await;
        assert_eq!(
            over_web.status.code(),
            Code::ResourceExhausted,
            "{content_type}"
        );
        assert_eq!(over_web.status.message(), over_grpc.message());
    }

    // Past 1 MiB but within the gateway's room for frames: the service refuses to decode it.
    let just_over = 1024 * 1024 + 16 * 1024;
    let over_grpc = grpc.send(sized(just_over)).await.unwrap_err();
    assert_eq!(over_grpc.code(), Code::OutOfRange, "{over_grpc:?}");
    let over_web = unary(app.gateway, call(SEND, &sender, BINARY, &sized(just_over))).await;
    assert_eq!(
        over_web.status.code(),
        Code::OutOfRange,
        "{:?}",
        over_web.status
    );
    app.stop().await;
}
