//! gRPC-Web through a TLS gateway, with the raw client of `web_client` over rustls trusting
//! the dev CA, once after ALPN `http/1.1` (a browser's HTTP/1.1 `fetch`) and once after `h2`.

use std::{net::SocketAddr, path::Path, sync::Arc};

use devstack::{StackTls, certs::DevCerts};
use e2e::*;
use prost::Message;
use switchboard::proto::notification::v1 as npb;
use tokio::net::TcpStream;
use tokio_rustls::{
    TlsConnector,
    client::TlsStream,
    rustls::{
        ClientConfig, RootCertStore,
        crypto::ring,
        pki_types::{CertificateDer, ServerName, pem::PemObject},
    },
};
use tonic::Code;

use crate::web_client::*;

/// A TLS connection to `addr` trusting only `ca`, offering `alpn` alone; checks the gateway
/// chose it.
async fn tls_connect(addr: SocketAddr, ca: &Path, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).expect("the CA file") {
        roots
            .add(certificate.expect("a CA certificate"))
            .expect("a trust root");
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .expect("a TLS handshake with the gateway");
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(alpn),
        "the negotiated ALPN protocol"
    );
    tls
}

/// A gRPC-Web client over TLS, speaking what ALPN `alpn` agreed on.
async fn web_client(app: &E2e, alpn: &'static [u8]) -> WebClient {
    let ca = app.tls_ca.as_deref().expect("a TLS gateway");
    let tls = tls_connect(app.gateway, ca, alpn).await;
    match alpn {
        b"h2" => WebClient::http2(tls, "https").await,
        b"http/1.1" => WebClient::http1(tls).await,
        other => panic!("no client for ALPN {other:?}"),
    }
}

/// A unary List answered with its message frame then the trailers frame, and a Subscribe on
/// which a notification sent meanwhile arrives while the stream stays open; then the client
/// leaves and the upstream stream is freed.
async fn grpc_web_over_tls(alpn: &'static [u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = DevCerts::create(dir.path()).expect("certificates");
    let app = start_with(Backend::Sqlite, |config| {
        config.tls = Some(StackTls {
            certs: certs.clone(),
            inside: false,
        });
    })
    .await;
    let mut sender = app.notifications(&app.token("ci", "notifications:send"));
    sender
        .send(to("wes", "build 7 passed"))
        .await
        .expect("send over gRPC");
    let token = app.token("wes", "");

    let mut client = web_client(&app, alpn).await;
    let list = unary_on(
        &mut client,
        call(LIST, &token, BINARY, &npb::ListRequest::default()),
    )
    .await;
    assert_eq!(list.status.code(), Code::Ok, "{:?}", list.status);
    assert!(list.trailer_frame, "the status comes in a trailers frame");
    assert_eq!(list.headers["content-type"], BINARY);
    assert_eq!(list.messages.len(), 1, "one message frame");
    let listed = npb::ListResponse::decode(list.messages[0].clone()).expect("ListResponse");
    let contents: Vec<_> = listed.notifications.iter().map(|n| &n.content).collect();
    assert_eq!(contents, ["build 7 passed"]);

    // The Subscribe on a connection of its own, as a browser keeps one for it.
    let mut subscriber = web_client(&app, alpn).await;
    let mut frames = subscriber.subscribe(&token).await;
    app.wait_for_subscribers(1).await;
    sender
        .send(to("wes", "deploy finished"))
        .await
        .expect("send over gRPC");
    assert_eq!(
        next_notification(&mut frames).await.content,
        "deploy finished"
    );
    assert_eq!(app.hub.subscriber_count(), 1, "the stream stays open");

    drop(frames);
    drop(subscriber);
    app.wait_for_subscribers(0).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_over_tls_after_alpn_http1_answers_unary_calls_and_streams_subscribe() {
    grpc_web_over_tls(b"http/1.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_over_tls_after_alpn_h2_answers_unary_calls_and_streams_subscribe() {
    grpc_web_over_tls(b"h2").await;
}
