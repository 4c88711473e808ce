//! Authentication and trust through the gateway.

use std::time::Duration;

use e2e::*;
use serde_json::json;
use switchboard::proto::notification::v1::{
    self as npb, notification_service_client::NotificationServiceClient,
};
use tonic::{Code, Request};

async fn list_as(app: &E2e, token: &str) -> Result<npb::ListResponse, tonic::Status> {
    app.notifications(token)
        .list(npb::ListRequest::default())
        .await
        .map(|r| r.into_inner())
}

fn assert_refused(result: Result<npb::ListResponse, tonic::Status>, reason: &str) {
    let status = result.expect_err(reason);
    assert_eq!(status.code(), Code::Unauthenticated, "{reason}: {status:?}");
    assert!(status.message().contains(reason), "{reason}: {status:?}");
}

fn b64(value: &serde_json::Value) -> String {
    base64url(&serde_json::to_vec(value).unwrap())
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_a_short_reason() {
    let app = start(Backend::Sqlite).await;
    let secret = app.secrets.jwt_secret.clone();
    assert_refused(list_as(&app, "").await, "missing bearer token");
    assert_refused(list_as(&app, "garbage").await, "malformed token");

    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("mallory", ""))
    );
    assert_refused(list_as(&app, &unsigned).await, "malformed token");

    assert_refused(
        list_as(&app, &sign_hs256("not-the-secret", &claims("alice", ""))).await,
        "invalid signature",
    );

    let mut expired = claims("alice", "");
    expired["exp"] = json!(in_seconds(-3600));
    assert_refused(
        list_as(&app, &sign_hs256(&secret, &expired)).await,
        "token expired",
    );

    let mut early = claims("alice", "");
    early["nbf"] = json!(in_seconds(3600));
    assert_refused(
        list_as(&app, &sign_hs256(&secret, &early)).await,
        "not yet valid",
    );

    let mut no_sub = claims("alice", "");
    no_sub.as_object_mut().unwrap().remove("sub");
    assert_refused(
        list_as(&app, &sign_hs256(&secret, &no_sub)).await,
        "required claim",
    );

    let mut no_exp = claims("alice", "");
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_refused(
        list_as(&app, &sign_hs256(&secret, &no_exp)).await,
        "required claim",
    );

    // A JWKS key used with another algorithm than its own.
    let rsa = rsa_key();
    let mismatched = SigningKey { kid: "ec-1", ..rsa };
    assert_refused(
        list_as(&app, &sign(&mismatched, &claims("alice", ""))).await,
        "does not match",
    );
    let unknown = SigningKey {
        kid: "nope",
        ..rsa_key()
    };
    assert_refused(
        list_as(&app, &sign(&unknown, &claims("alice", ""))).await,
        "unknown signing key",
    );
    // Signed by a key that is not in the JWKS, under a kid that is.
    let forged = SigningKey {
        kid: "rsa-1",
        ..other_rsa_key()
    };
    assert_refused(
        list_as(&app, &sign(&forged, &claims("alice", ""))).await,
        "invalid signature",
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_es256_and_eddsa_tokens_from_the_jwks_are_accepted() {
    let app = start(Backend::Sqlite).await;
    for key in [rsa_key(), ec_key(), ed_key()] {
        let token = sign(&key, &claims("carol", ""));
        list_as(&app, &token)
            .await
            .unwrap_or_else(|s| panic!("{:?}: {s:?}", key.alg));
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_jwks_file_is_picked_up_without_a_restart() {
    let app = start(Backend::Sqlite).await;
    // Used before the rotation, so the gateway has it among its verified tokens.
    let before = sign(&rsa_key(), &claims("carol", ""));
    for _ in 0..2 {
        list_as(&app, &before).await.expect("trusted key");
    }
    let token = sign(&other_rsa_key(), &claims("carol", ""));
    assert_refused(list_as(&app, &token).await, "unknown signing key");
    std::fs::write(&app.jwks_file, jwks(&[other_rsa_key()])).unwrap();
    let mut accepted = false;
    for _ in 0..50 {
        if list_as(&app, &token).await.is_ok() {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "new key accepted after the file changed");
    assert_refused(list_as(&app, &before).await, "unknown signing key");
    assert_refused(
        list_as(&app, &sign(&rsa_key(), &claims("carol", ""))).await,
        "unknown signing key",
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audience_is_checked_when_configured() {
    let app = start_with(Backend::Sqlite, |c| c.jwt_audience = Some(AUDIENCE.into())).await;
    let secret = app.secrets.jwt_secret.clone();
    list_as(&app, &sign_hs256(&secret, &claims("alice", "")))
        .await
        .expect("right audience");
    let mut other = claims("alice", "");
    other["aud"] = json!("another-service");
    assert_refused(
        list_as(&app, &sign_hs256(&secret, &other)).await,
        "audience",
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sent_identity_metadata_never_reaches_a_backend() {
    let app = start(Backend::Sqlite).await;
    let service = app.token("service", "notifications:send");
    app.notifications(&service)
        .send(npb::SendRequest {
            recipient_ids: vec!["id-bob".into()],
            category: "secret".into(),
            content: "for bob only".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    // Mallory claims to be bob, and to hold every scope, with spoofed metadata.
    let mut mallory = app.notifications(&app.token("mallory", ""));
    let mut request = Request::new(npb::ListRequest::default());
    for (key, value) in [
        ("x-switchboard-user-id", "id-bob"),
        ("x-switchboard-scopes", "notifications:broadcast"),
        ("x-switchboard-internal-token", "guess"),
    ] {
        request.metadata_mut().insert(key, value.parse().unwrap());
    }
    let page = mallory
        .list(request)
        .await
        .expect("list as mallory")
        .into_inner();
    assert!(
        page.notifications.is_empty(),
        "mallory sees only her own: {page:?}"
    );

    let mut broadcast = Request::new(npb::SendRequest {
        broadcast: true,
        category: "spoof".into(),
        content: "x".into(),
        ..Default::default()
    });
    broadcast.metadata_mut().insert(
        "x-switchboard-scopes",
        "notifications:broadcast".parse().unwrap(),
    );
    let status = mallory.send(broadcast).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_called_directly_without_the_internal_token_refuses() {
    let app = start(Backend::Sqlite).await;
    let token = app.token("alice", "");
    let mut direct =
        NotificationServiceClient::with_interceptor(channel(app.notification), bearer(&token));
    let status = direct.list(npb::ListRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_are_rate_limited_per_user() {
    let app = start_with(Backend::Sqlite, |c| {
        c.send_rate = 0.01;
        c.send_burst = 3;
    })
    .await;
    let request = || npb::SendRequest {
        recipient_ids: vec!["id-bob".into()],
        category: "ping".into(),
        content: "x".into(),
        ..Default::default()
    };
    let mut ci = app.notifications(&app.token("ci", "notifications:send"));
    for _ in 0..3 {
        ci.send(request()).await.expect("within the burst");
    }
    let status = ci.send(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Reads are not limited, and other users have their own budget.
    ci.list(npb::ListRequest::default())
        .await
        .expect("list is not limited");
    let mut other = app.notifications(&app.token("other", "notifications:send"));
    other.send(request()).await.expect("another user's budget");
    let page = app
        .notifications(&app.token("bob", ""))
        .list(npb::ListRequest::default())
        .await
        .unwrap();
    assert_eq!(
        page.into_inner().notifications.len(),
        4,
        "the refused Send created nothing"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_back_with_their_details_unchanged() {
    let app = start(Backend::Sqlite).await;
    let mut client = app.notifications(&app.token("ci", "notifications:send"));
    let status = client
        .send(npb::SendRequest {
            recipient_ids: vec!["id-bob".into()],
            category: "Not Valid".into(),
            content: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = tonic_types::StatusExt::get_error_details(&status);
    let fields: Vec<_> = details
        .bad_request()
        .expect("BadRequest details through the gateway")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["category"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_services_are_unimplemented_and_ids_come_back() {
    let app = start(Backend::Sqlite).await;
    let mut grpc = tonic::client::Grpc::new(channel(app.gateway));
    grpc.ready().await.unwrap();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/switchboard.nothing.v1.Nothing/Do");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let status = grpc.unary(Request::new(()), path, codec).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);

    // x-request-id: kept when the client sends one, created otherwise.
    let mut client = app.notifications(&app.token("alice", ""));
    let mut request = Request::new(npb::ListRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "trace-42".parse().unwrap());
    let response = client.list(request).await.unwrap();
    assert_eq!(response.metadata().get("x-request-id").unwrap(), "trace-42");
    let response = client.list(npb::ListRequest::default()).await.unwrap();
    assert!(
        uuid::Uuid::parse_str(
            response
                .metadata()
                .get("x-request-id")
                .unwrap()
                .to_str()
                .unwrap()
        )
        .is_ok()
    );
    app.stop().await;
}
