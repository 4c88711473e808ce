//! Helpers of the end-to-end tests: the whole stack through `devstack` on its own ports and
//! databases, tokens of every kind, and clients that talk to the gateway only.

pub mod processes;
pub mod scrape;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use devstack::{MetricsAddrs, Secrets, Stack, StackConfig, Storage};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, jwk::Jwk};
use serde_json::{Value, json};
use switchboard::{
    proto::{
        conversation::v1::conversation_service_client::ConversationServiceClient,
        notification::v1::{SendRequest, notification_service_client::NotificationServiceClient},
    },
    telemetry,
    testing::{self, TestDatabase},
};
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

pub use notification_svc::Hub;
pub use switchboard::testing::Backend;

pub const AUDIENCE: &str = "switchboard-e2e";
pub const ISSUER: &str = "https://id.switchboard-e2e.example";

/// Adds `authorization: Bearer <token>` to every call, as a real client does.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Notifications = NotificationServiceClient<InterceptedService<Channel, Bearer>>;
pub type Conversations = ConversationServiceClient<InterceptedService<Channel, Bearer>>;

/// A test signing key, with the public half in the stack's JWKS file.
pub struct SigningKey {
    pub kid: &'static str,
    pub alg: Algorithm,
    pub key: EncodingKey,
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn rsa_key() -> SigningKey {
    SigningKey {
        kid: "rsa-1",
        alg: Algorithm::RS256,
        key: EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).expect("rsa key"),
    }
}

pub fn other_rsa_key() -> SigningKey {
    SigningKey {
        kid: "rsa-2",
        alg: Algorithm::RS256,
        key: EncodingKey::from_rsa_pem(&fixture("rsa-other-private.pem")).expect("rsa key"),
    }
}

pub fn ec_key() -> SigningKey {
    SigningKey {
        kid: "ec-1",
        alg: Algorithm::ES256,
        key: EncodingKey::from_ec_pem(&fixture("ec-private.pem")).expect("ec key"),
    }
}

pub fn ed_key() -> SigningKey {
    SigningKey {
        kid: "ed-1",
        alg: Algorithm::EdDSA,
        key: EncodingKey::from_ed_pem(&fixture("ed25519-private.pem")).expect("ed key"),
    }
}

/// A JWKS document with the public halves of `keys`.
pub fn jwks(keys: &[SigningKey]) -> Vec<u8> {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            let mut jwk = Jwk::from_encoding_key(&k.key, k.alg).expect("jwk");
            jwk.common.key_id = Some(k.kid.to_owned());
            serde_json::to_value(jwk).expect("json")
        })
        .collect();
    serde_json::to_vec(&json!({ "keys": keys })).expect("json")
}

fn now() -> i64 {
    switchboard::time::now_micros() / 1_000_000
}

/// Standard claims for `username` (user id `id-<username>`), valid for an hour.
pub fn claims(username: &str, scopes: &str) -> Value {
    json!({
        "sub": format!("id-{username}"),
        "preferred_username": username,
        "picture": format!("https://avatars.example/{username}.png"),
        "scope": scopes,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now(),
        "exp": now() + 3600,
    })
}

/// Claims `seconds` from now (negative: in the past).
pub fn in_seconds(seconds: i64) -> i64 {
    now() + seconds
}

pub fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.to_owned());
    encode(&header, claims, &key.key).expect("sign")
}

pub fn sign_hs256(secret: &str, claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// A stack on fresh databases, with an HS256 secret and a JWKS file of three keys.
pub struct E2e {
    stack: Option<Stack>,
    pub gateway: SocketAddr,
    pub notification: SocketAddr,
    pub conversation: SocketAddr,
    pub hub: Arc<Hub>,
    pub secrets: Secrets,
    pub jwks_file: PathBuf,
    /// The CA to trust when the gateway speaks TLS.
    pub tls_ca: Option<PathBuf>,
    /// Each binary's `/metrics`, when the stack keeps metrics.
    pub metrics: Option<MetricsAddrs>,
    _dir: tempfile::TempDir,
    _databases: Vec<TestDatabase>,
}

pub async fn start(backend: Backend) -> E2e {
    start_with(backend, |_| {}).await
}

pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut StackConfig)) -> E2e {
    telemetry::init_for_tests();
    let dir = tempfile::tempdir().expect("temp dir");
    let (notification_db, notification_url) =
        TestDatabase::create(backend, "notifications.db").await;
    let (conversation_db, conversation_url) =
        TestDatabase::create(backend, "conversations.db").await;
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks(&[rsa_key(), ec_key(), ed_key()])).expect("write jwks");
    let secrets = Secrets {
        internal_token: "e2e-internal-token".into(),
        jwt_secret: "e2e-jwt-secret".into(),
    };
    let any_port: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let storage = Storage::Databases {
        notification: notification_url,
        conversation: conversation_url,
    };
    let mut config = StackConfig {
        gateway: any_port,
        notification: any_port,
        conversation: any_port,
        jwks_file: Some(jwks_file.clone()),
        // High enough that only the rate-limit test meets the limit.
        send_rate: 1000.0,
        send_burst: 1000,
        ..StackConfig::new(storage, secrets.clone())
    };
    configure(&mut config);
    let stack = Stack::start(config).await.expect("stack starts");
    let e2e = E2e {
        gateway: stack.gateway,
        notification: stack.notification,
        conversation: stack.conversation,
        hub: stack.hub.clone(),
        tls_ca: stack.tls_ca.clone(),
        metrics: stack.metrics,
        stack: Some(stack),
        secrets,
        jwks_file,
        _dir: dir,
        _databases: vec![notification_db, conversation_db],
    };
    e2e.wait_until_serving().await;
    e2e
}

pub fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_lazy()
}

/// An endpoint for `addr` over TLS, trusting only the CA in `ca` (a PEM file).
pub fn tls_endpoint(addr: SocketAddr, ca: &std::path::Path) -> Endpoint {
    let ca = std::fs::read(ca).unwrap_or_else(|e| panic!("{}: {e}", ca.display()));
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("endpoint")
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .expect("TLS configuration")
}

/// An endpoint for `addr`: over TLS trusting `ca` when given, else plaintext.
pub fn endpoint(addr: SocketAddr, ca: Option<&std::path::Path>) -> Endpoint {
    match ca {
        Some(ca) => tls_endpoint(addr, ca),
        None => Endpoint::from_shared(format!("http://{addr}")).expect("endpoint"),
    }
}

impl E2e {
    /// An HS256 token for `username` with `scopes`, as the identity provider would issue.
    pub fn token(&self, username: &str, scopes: &str) -> String {
        sign_hs256(&self.secrets.jwt_secret, &claims(username, scopes))
    }

    /// A new channel to the gateway (over TLS when it speaks TLS).
    pub fn gateway_channel(&self) -> Channel {
        endpoint(self.gateway, self.tls_ca.as_deref()).connect_lazy()
    }

    pub fn notifications(&self, token: &str) -> Notifications {
        NotificationServiceClient::with_interceptor(self.gateway_channel(), bearer(token))
    }

    pub fn conversations(&self, token: &str) -> Conversations {
        ConversationServiceClient::with_interceptor(self.gateway_channel(), bearer(token))
    }

    /// Waits (up to 5 s) until notification-svc has `expected` open Subscribe streams: a
    /// stream opened through the gateway has reached it, or one a client left is freed.
    pub async fn wait_for_subscribers(&self, expected: usize) {
        for _ in 0..100 {
            if self.hub.subscriber_count() == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "expected {expected} open streams on notification-svc, found {}",
            self.hub.subscriber_count()
        );
    }

    /// Waits until the gateway reports both upstreams serving.
    async fn wait_until_serving(&self) {
        for service in [
            "switchboard.notification.v1.NotificationService",
            "switchboard.conversation.v1.ConversationService",
        ] {
            let endpoint = endpoint(self.gateway, self.tls_ca.as_deref());
            testing::wait_until_serving_at(endpoint, service).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(stack) = self.stack.take() {
            stack.stop().await.expect("clean stop");
        }
    }
}

/// A Send of a `build` notification to the user `id-<user>`.
pub fn to(user: &str, content: &str) -> SendRequest {
    SendRequest {
        recipient_ids: vec![format!("id-{user}")],
        category: "build".into(),
        content: content.into(),
        ..Default::default()
    }
}

/// An interceptor sending `token` (empty: no authorization header at all).
pub fn bearer(token: &str) -> Bearer {
    if token.is_empty() {
        return Bearer(None);
    }
    Bearer(Some(
        format!("Bearer {token}").parse().expect("header value"),
    ))
}
