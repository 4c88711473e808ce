//! TLS at the gateway with real clients: grpcurl trusting the dev CA, clients that do not,
//! a certificate rotated under an open Subscribe, and a backend requiring client certificates.
//! The whole seed story over TLS and mTLS is in `seed_story.rs`, gRPC-Web over TLS in
//! `grpc_web_tls.rs`, the plaintext warning in `plaintext_warning.rs`.

use std::{
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use devstack::{StackTls, certs::DevCerts};
use e2e::*;
use switchboard::proto::notification::v1::{
    self as npb, notification_service_client::NotificationServiceClient, subscribe_response::Event,
};

fn grpcurl(args: &[&str]) -> Output {
    Command::new("grpcurl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("grpcurl must be installed: {e}"))
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "grpcurl failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn path(path: &Path) -> String {
    path.display().to_string()
}

async fn start_tls(certs: &DevCerts, inside: bool) -> E2e {
    start_with(Backend::Sqlite, |config| {
        config.tls = Some(StackTls {
            certs: certs.clone(),
            inside,
        });
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_trusting_the_ca_lists_checks_health_and_calls_and_other_clients_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = DevCerts::create(dir.path()).expect("certificates");
    let app = start_tls(&certs, false).await;
    let addr = app.gateway.to_string();
    let ca = path(&certs.ca());

    let services = succeeded(&grpcurl(&["-cacert", &ca, &addr, "list"]));
    assert!(
        services.contains("switchboard.notification.v1.NotificationService"),
        "{services}"
    );
    let health = succeeded(&grpcurl(&[
        "-cacert",
        &ca,
        &addr,
        "grpc.health.v1.Health/Check",
    ]));
    assert!(health.contains("SERVING"), "{health}");

    let token = format!(
        "authorization: Bearer {}",
        app.token("tess", "notifications:send")
    );
    let send = r#"{"recipient_ids": ["id-tess"], "category": "build", "content": "over TLS"}"#;
    let method = "switchboard.notification.v1.NotificationService";
    succeeded(&grpcurl(&[
        "-cacert",
        &ca,
        "-H",
        &token,
        "-d",
        send,
        &addr,
        &format!("{method}/Send"),
    ]));
    let listed = succeeded(&grpcurl(&[
        "-cacert",
        &ca,
        "-H",
        &token,
        "-d",
        "{}",
        &addr,
        &format!("{method}/List"),
    ]));
    assert!(listed.contains("over TLS"), "{listed}");

    // grpcurl with the system's roots only: the dev CA is not among them.
    let untrusting = grpcurl(&[&addr, "list"]);
    assert!(!untrusting.status.success(), "{untrusting:?}");
    let stderr = String::from_utf8_lossy(&untrusting.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
    // Plaintext gets no answer from a TLS listener.
    assert!(!grpcurl(&["-plaintext", &addr, "list"]).status.success());

    // A tonic client trusting another CA fails its handshake; trusting ours it is served.
    let other_dir = tempfile::tempdir().expect("temp dir");
    let other = DevCerts::create(other_dir.path()).expect("certificates");
    let mut stranger =
        NotificationServiceClient::new(tls_endpoint(app.gateway, &other.ca()).connect_lazy());
    let refused = stranger
        .list(npb::ListRequest::default())
        .await
        .expect_err("a client that does not trust the CA got an answer");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    let listed = app
        .notifications(&app.token("tess", ""))
        .list(npb::ListRequest::default())
        .await
        .expect("a client trusting the CA is served");
    assert_eq!(listed.get_ref().notifications.len(), 1);
    app.stop().await;
}

/// Replaces `to`'s certificate and key with `from`'s by renames, as a mounted secret is
/// updated (key first, so for a moment the pair does not match).
fn rotate(from: &DevCerts, to: &DevCerts, name: &str) {
    let (new_cert, new_key) = from.pair(name);
    let (cert, key) = to.pair(name);
    for (new, old) in [(new_key, key), (new_cert, cert)] {
        let staged = old.with_extension("staged");
        std::fs::copy(&new, &staged).expect("stage");
        std::fs::rename(&staged, &old).expect("rename");
    }
}

async fn next_notification(
    stream: &mut tonic::Streaming<npb::SubscribeResponse>,
) -> npb::Notification {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event in time")
            .expect("stream ok")
            .expect("stream open");
        if let Some(Event::Notification(n)) = message.event {
            return n;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_reaches_new_connections_within_10_s_and_open_streams_keep_going() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = DevCerts::create(dir.path()).expect("certificates");
    let app = start_tls(&certs, false).await;
    let addr = app.gateway.to_string();
    let sender = app.token("ci", "notifications:send");
    let send = |content: &'static str, ca: &Path| {
        let client = NotificationServiceClient::with_interceptor(
            tls_endpoint(app.gateway, ca).connect_lazy(),
            bearer(&sender),
        );
        async move {
            client
                .clone()
                .send(npb::SendRequest {
                    recipient_ids: vec!["id-rosa".into()],
                    category: "build".into(),
                    content: content.into(),
                    ..Default::default()
                })
                .await
                .expect("send")
        }
    };

    // Rosa's stream runs on a connection made with the first certificate.
    let mut stream = app
        .notifications(&app.token("rosa", ""))
        .subscribe(npb::SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();
    send("before", &certs.ca()).await;
    assert_eq!(next_notification(&mut stream).await.content, "before");

    let new_dir = tempfile::tempdir().expect("temp dir");
    let new = DevCerts::create(new_dir.path()).expect("certificates");
    rotate(&new, &certs, "gateway");
    let rotated = Instant::now();
    let new_ca = path(&new.ca());
    while !grpcurl(&["-cacert", &new_ca, &addr, "list"])
        .status
        .success()
    {
        assert!(
            rotated.elapsed() < Duration::from_secs(10),
            "new connections still get the old certificate after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let old_ca = path(&certs.ca());
    assert!(
        !grpcurl(&["-cacert", &old_ca, &addr, "list"])
            .status
            .success(),
        "a new connection still got the old certificate"
    );

    // Sent over a connection with the new certificate, it reaches the stream opened with
    // the old one.
    send("after", &new.ca()).await;
    assert_eq!(next_notification(&mut stream).await.content, "after");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_requiring_client_certificates_refuses_a_caller_without_one_and_serves_one_with()
{
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = DevCerts::create(dir.path()).expect("certificates");
    let app = start_tls(&certs, true).await;
    let backend = app.notification.to_string();
    let ca = path(&certs.ca());
    let (cert, key) = certs.pair(devstack::certs::CALLER);
    let internal = format!(
        "x-switchboard-internal-token: {}",
        app.secrets.internal_token
    );

    // Without a client certificate the handshake is refused: grpcurl and tonic alike.
    let anonymous = grpcurl(&["-cacert", &ca, "-H", &internal, &backend, "list"]);
    assert!(!anonymous.status.success(), "{anonymous:?}");
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tls_endpoint(app.notification, &certs.ca()).connect_lazy(),
    );
    let refused = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect_err("a caller without a certificate got an answer");
    // A transport failure (the server's CertificateRequired alert, or the connection it then
    // closed, whichever the client reads first), not an answer of the service.
    assert!(std::error::Error::source(&refused).is_some(), "{refused:?}");

    // With one: reflection, health and a call.
    let (cert, key) = (path(&cert), path(&key));
    let with_cert = ["-cacert", &ca, "-cert", &cert, "-key", &key];
    let listed = succeeded(&grpcurl(
        &[&with_cert[..], &["-H", &internal, &backend, "list"]].concat(),
    ));
    assert!(
        listed.contains("switchboard.notification.v1.NotificationService"),
        "{listed}"
    );
    let health = succeeded(&grpcurl(
        &[
            &with_cert[..],
            &["-H", &internal, &backend, "grpc.health.v1.Health/Check"],
        ]
        .concat(),
    ));
    assert!(health.contains("SERVING"), "{health}");
    let call = succeeded(&grpcurl(
        &[
            &with_cert[..],
            &[
                "-H",
                &internal,
                "-H",
                "x-switchboard-user-id: id-uma",
                "-d",
                "{}",
                &backend,
                "switchboard.notification.v1.NotificationService/List",
            ],
        ]
        .concat(),
    ));
    assert!(!call.contains("rror"), "{call}");
    app.stop().await;
}
