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

/// A Send as `claims` would make it: refused or not, it must leave bob's inbox as it was.
async fn send_with(app: &E2e, token: &str) -> Result<npb::SendResponse, tonic::Status> {
    app.notifications(token)
        .send(npb::SendRequest {
            recipient_ids: vec!["id-bob".into()],
            category: "forged".into(),
            content: "from a token minted elsewhere".into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

async fn bobs_inbox(app: &E2e) -> usize {
    list_as(app, &app.token("bob", ""))
        .await
        .expect("bob lists")
        .notifications
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_audience_and_issuer_are_required_and_must_match() {
    let app = start_with(Backend::Sqlite, |c| {
        c.jwt_audience = Some(AUDIENCE.into());
        c.jwt_issuer = Some(ISSUER.into());
    })
    .await;
    let secret = app.secrets.jwt_secret.clone();
    let with = |claim: &str, value: Option<serde_json::Value>| {
        let mut claims = claims("ci", "notifications:send");
        match value {
            Some(value) => claims[claim] = value,
            None => {
                claims.as_object_mut().unwrap().remove(claim);
            }
        }
        sign_hs256(&secret, &claims)
    };
    send_with(
        &app,
        &with("aud", Some(json!([AUDIENCE, "another-service"]))),
    )
    .await
    .expect("an array holding the audience");
    let accepted = bobs_inbox(&app).await;
    assert_eq!(accepted, 1);

    let refused_audiences = [
        None,
        Some(json!(null)),
        Some(json!(123)),
        Some(json!({"aud": AUDIENCE})),
        Some(json!("another-service")),
        Some(json!(["another-service"])),
        Some(json!([AUDIENCE, 7])),
        Some(json!([])),
    ];
    for aud in refused_audiences {
        let status = send_with(&app, &with("aud", aud.clone()))
            .await
            .expect_err("refused");
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "aud {aud:?}: {status:?}"
        );
        assert!(
            status.message().contains("audience"),
            "aud {aud:?}: {status:?}"
        );
    }
    for iss in [
        None,
        Some(json!(null)),
        Some(json!(42)),
        Some(json!("https://evil.example")),
    ] {
        let status = send_with(&app, &with("iss", iss.clone()))
            .await
            .expect_err("refused");
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "iss {iss:?}: {status:?}"
        );
        assert!(
            status.message().contains("issuer"),
            "iss {iss:?}: {status:?}"
        );
    }
    assert_eq!(
        bobs_inbox(&app).await,
        accepted,
        "nothing refused was forwarded"
    );
    app.stop().await;
}

/// An HS256 token with exactly `header` as its protected header.
fn hs256_with_header(
    secret: &str,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &key,
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("sign");
    format!("{signing_input}.{signature}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_with_critical_extensions_is_refused() {
    let app = start(Backend::Sqlite).await;
    let secret = app.secrets.jwt_secret.clone();
    let claims = claims("ci", "notifications:send");
    let plain = hs256_with_header(&secret, &json!({"alg": "HS256", "typ": "JWT"}), &claims);
    send_with(&app, &plain).await.expect("no crit: accepted");
    for header in [
        json!({"alg": "HS256", "crit": ["x-unknown"], "x-unknown": 1}),
        json!({"alg": "HS256", "crit": []}),
        json!({"alg": "HS256", "crit": ["b64"], "b64": false}),
    ] {
        let token = hs256_with_header(&secret, &header, &claims);
        let status = send_with(&app, &token).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{header}: {status:?}");
        assert!(status.message().contains("crit"), "{header}: {status:?}");
    }
    assert_eq!(bobs_inbox(&app).await, 1, "nothing refused was forwarded");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_are_separated_by_single_spaces_only() {
    let app = start(Backend::Sqlite).await;
    for separator in ["\n", "\t", "\r", "\u{b}", "\u{c}", "\u{a0}", "\u{2003}"] {
        let scopes = format!("notifications:send{separator}notifications:broadcast");
        let mut client = app.notifications(&app.token("ci", &scopes));
        let status = client
            .send(npb::SendRequest {
                broadcast: true,
                category: "forged".into(),
                content: "to everyone".into(),
                ..Default::default()
            })
            .await
            .expect_err("no broadcast scope");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{separator:?}: {status:?}"
        );
        let status = send_with(&app, &app.token("ci", &scopes))
            .await
            .expect_err("no send scope either");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{separator:?}: {status:?}"
        );
    }
    assert_eq!(bobs_inbox(&app).await, 0);
    let both = app.token("ci", "notifications:send notifications:broadcast");
    send_with(&app, &both)
        .await
        .expect("space-separated scopes");
    assert_eq!(bobs_inbox(&app).await, 1);
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
    // The refusal says when the bucket holds a call again: 1 / 0.01 per second at most.
    let retry = tonic_types::StatusExt::get_error_details(&status)
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo on a rate-limited call");
    assert!(
        retry > Duration::from_secs(90) && retry <= Duration::from_secs(100),
        "{retry:?}"
    );
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
async fn tokens_with_a_configured_scope_have_their_own_rate() {
    let app = start_with(Backend::Sqlite, |c| {
        c.send_rate = 0.01;
        c.send_burst = 1;
        c.scope_rates = vec!["notifications:send=0.01:20".parse().expect("scope rate")];
    })
    .await;
    let request = || npb::SendRequest {
        recipient_ids: vec!["id-bob".into()],
        category: "build".into(),
        content: "run finished".into(),
        ..Default::default()
    };
    // A CI system's service token reports many runs; a person's token is held to the default.
    let mut ci = app.notifications(&app.token("ci", "notifications:send"));
    for run in 0..20 {
        ci.send(request())
            .await
            .unwrap_or_else(|s| panic!("run {run}: {s:?}"));
    }
    let status = ci.send(request()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let mut alice = app.conversations(&app.token("alice", ""));
    let mut sends = 0;
    for _ in 0..3 {
        let status = alice
            .send_message(switchboard::proto::conversation::v1::SendMessageRequest {
                conversation_id: uuid::Uuid::now_v7().to_string(),
                content: "hi".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        if status.code() != Code::ResourceExhausted {
            sends += 1;
        }
    }
    assert_eq!(sends, 1, "the default burst of one, then refused");
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
