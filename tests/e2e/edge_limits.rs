//! The gateway's connection limits over TLS, with raw clients: a connection that finishes its
//! handshake and then says nothing is closed after `--first-bytes-timeout`; an idle HTTP/2
//! connection and an open Subscribe stream are not.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use devstack::{StackTls, certs::DevCerts};
use e2e::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use switchboard::proto::notification::v1::{self as npb, subscribe_response::Event};
use tokio::{io::AsyncReadExt, net::TcpStream};
use tokio_rustls::{
    TlsConnector,
    client::TlsStream,
    rustls::{
        ClientConfig, RootCertStore,
        crypto::ring,
        pki_types::{CertificateDer, ServerName, pem::PemObject},
    },
};

const FIRST_BYTES_TIMEOUT: Duration = Duration::from_millis(500);

async fn start_tls(certs: &DevCerts) -> E2e {
    start_with(Backend::Sqlite, |config| {
        config.first_bytes_timeout = FIRST_BYTES_TIMEOUT;
        config.tls = Some(StackTls {
            certs: certs.clone(),
            inside: false,
        });
    })
    .await
}

/// A TLS connection to the gateway offering `alpn`, trusting the dev CA, handshake done.
async fn tls_connect(app: &E2e, certs: &DevCerts, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(certs.ca()).expect("the dev CA");
    roots.add(ca).expect("a CA certificate");
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(app.gateway).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_that_says_nothing_after_its_handshake_is_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = DevCerts::create(dir.path()).expect("certificates");
    let app = start_tls(&certs).await;
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let mut silent = tls_connect(&app, &certs, alpn).await;
        // Closed (EOF, or an error for a close without close_notify), with nothing served.
        let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut [0u8; 64]))
            .await
            .unwrap_or_else(|_| panic!("{alpn:?}: still open 10 s after the handshake"));
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "{alpn:?}: the server sent something: {read:?}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_and_an_open_subscribe_outlive_the_first_bytes_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = DevCerts::create(dir.path()).expect("certificates");
    let app = start_tls(&certs).await;

    // A Subscribe stream, and an HTTP/2 connection that has sent its preface and nothing more.
    let mut stream = app
        .notifications(&app.token("ida", ""))
        .subscribe(npb::SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();
    let tls = tls_connect(&app, &certs, b"h2").await;
    let (mut idle, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("HTTP/2 handshake");
    let connection = tokio::spawn(connection);
    for _ in 0..100 {
        if app.hub.subscriber_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.hub.subscriber_count(), 1, "the stream is open upstream");

    tokio::time::sleep(FIRST_BYTES_TIMEOUT * 4).await;

    // The idle connection still serves a call: a gRPC health check, by hand.
    let check = http::Request::post(format!(
        "https://127.0.0.1:{}/grpc.health.v1.Health/Check",
        app.gateway.port()
    ))
    .version(http::Version::HTTP_2)
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    // One gRPC frame holding an empty HealthCheckRequest (service "": the gateway itself).
    .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
    .expect("request");
    let response = idle
        .send_request(check)
        .await
        .expect("the idle connection is still open");
    assert_eq!(response.status(), http::StatusCode::OK);
    let answer = response.into_body().collect().await.expect("body");
    let trailers = answer.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");
    connection.abort();

    // The stream is still open: a notification sent now arrives on it.
    app.notifications(&app.token("ci", "notifications:send"))
        .send(npb::SendRequest {
            recipient_ids: vec!["id-ida".into()],
            category: "build".into(),
            content: "still here".into(),
            ..Default::default()
        })
        .await
        .expect("send");
    let arrived = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let message = stream.message().await.expect("the stream goes on");
            let message = message.expect("the stream goes on, it did not end");
            if let Some(Event::Notification(n)) = message.event {
                return n.content;
            }
        }
    })
    .await
    .expect("the notification arrives on the open stream");
    assert_eq!(arrived, "still here");
    app.stop().await;
}
