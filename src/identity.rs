//! Identity metadata between the gateway and the backends, and the internal-token check.
//!
//! The gateway authenticates end users and injects who they are as `x-switchboard-*`
//! metadata next to the internal token. A backend believes that metadata only when the token
//! matches ([`InternalAuthLayer`]); handlers then read it with [`Caller::from_metadata`].

use std::{
    collections::BTreeSet,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use subtle::ConstantTimeEq;
use tonic::metadata::{MetadataMap, MetadataValue};

use crate::Error;

pub const USER_ID: &str = "x-switchboard-user-id";
pub const USERNAME: &str = "x-switchboard-username";
pub const AVATAR_URL: &str = "x-switchboard-avatar-url";
pub const SCOPES: &str = "x-switchboard-scopes";
pub const INTERNAL_TOKEN: &str = "x-switchboard-internal-token";
pub const REQUEST_ID: &str = "x-request-id";

/// Environment variable holding the shared internal token.
pub const INTERNAL_TOKEN_ENV: &str = "SWITCHBOARD_INTERNAL_TOKEN";

pub mod scope {
    pub const SEND: &str = "notifications:send";
    pub const BROADCAST: &str = "notifications:broadcast";
    pub const SEND_AS: &str = "notifications:send_as";
    /// Send `critical` notifications, which reach recipients who muted the category.
    pub const CRITICAL: &str = "notifications:critical";
}

/// The scopes of a space-separated list (a token's `scope` claim, the `x-switchboard-scopes`
/// metadata). RFC 6749 §3.3: scope names are separated by single spaces (0x20) and made of
/// printable ASCII other than `"` and `\`. Any other character, including other whitespace
/// (TAB, LF, U+00A0, ...), is part of a name, and a name holding one matches no scope this
/// system grants, so it is dropped: `"notifications:send\nnotifications:broadcast"` grants
/// nothing.
pub fn parse_scopes(list: &str) -> BTreeSet<String> {
    list.split(' ')
        .filter(|name| !name.is_empty() && name.bytes().all(is_scope_char))
        .map(str::to_owned)
        .collect()
}

/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_char(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

/// Refuses to start a server without an internal token: an empty one would make every
/// backend refuse every call (or, worse, a gateway inject nothing worth trusting).
pub fn require_internal_token(token: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !token.is_empty(),
        "an internal token is required (--internal-token or {INTERNAL_TOKEN_ENV})"
    );
    Ok(())
}

/// Who is calling, as the gateway (or a trusted service) vouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub username: String,
    pub avatar_url: String,
    pub scopes: BTreeSet<String>,
}

impl Caller {
    /// Reads the caller from request metadata. Call only behind [`InternalAuthLayer`].
    pub fn from_metadata(metadata: &MetadataMap) -> Result<Caller, Error> {
        let text = |key: &str| -> Result<String, Error> {
            match metadata.get(key) {
                None => Ok(String::new()),
                Some(value) => decode_value(value.as_encoded_bytes())
                    .filter(|s| !s.chars().any(char::is_control))
                    .map(|s| s.trim().to_owned())
                    .ok_or_else(|| Error::Unauthenticated(format!("{key} is not valid text"))),
            }
        };
        let user_id = text(USER_ID)?;
        if user_id.is_empty() {
            return Err(Error::Unauthenticated(format!("missing {USER_ID}")));
        }
        if user_id.len() > 200 {
            return Err(Error::Unauthenticated(format!("{USER_ID} is too long")));
        }
        // Scopes are read without the control-character check: a scope name holding one is
        // simply not a scope (see `parse_scopes`), it does not make the whole identity invalid.
        let scopes = match metadata.get(SCOPES) {
            None => BTreeSet::new(),
            Some(value) => parse_scopes(
                &decode_value(value.as_encoded_bytes())
                    .ok_or_else(|| Error::Unauthenticated(format!("{SCOPES} is not valid text")))?,
            ),
        };
        Ok(Caller {
            user_id,
            username: text(USERNAME)?,
            avatar_url: text(AVATAR_URL)?,
            scopes,
        })
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// PERMISSION_DENIED unless the caller holds `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), Error> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!("missing scope {scope}")))
        }
    }

    /// Writes this identity and the internal token into outgoing metadata, for a trusted
    /// service-to-service call.
    pub fn write_metadata(&self, metadata: &mut MetadataMap, internal_token: &str) {
        let mut put = |key: &'static str, value: &str| {
            if let Ok(value) = MetadataValue::try_from(encode_value(value)) {
                metadata.insert(key, value);
            }
        };
        put(INTERNAL_TOKEN, internal_token);
        put(USER_ID, &self.user_id);
        put(USERNAME, &self.username);
        put(AVATAR_URL, &self.avatar_url);
        let scopes = self.scopes.iter().cloned().collect::<Vec<_>>().join(" ");
        put(SCOPES, &scopes);
    }
}

/// Adds an identity and the internal token to every outgoing call: how a trusted service
/// (conversation-svc notifying through notification-svc) or a test acts as someone.
#[derive(Debug, Clone)]
pub struct ForwardIdentity {
    caller: Caller,
    internal_token: String,
}

impl ForwardIdentity {
    pub fn new(caller: Caller, internal_token: impl Into<String>) -> Self {
        Self {
            caller,
            internal_token: internal_token.into(),
        }
    }
}

impl tonic::service::Interceptor for ForwardIdentity {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        self.caller
            .write_metadata(request.metadata_mut(), &self.internal_token);
        Ok(request)
    }
}

/// gRPC metadata values are ASCII, but usernames are not: `%`, control characters and every
/// non-ASCII byte are percent-encoded on the way out and decoded on the way in.
pub fn encode_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_graphic() && byte != b'%' || byte == b' ' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Reverses [`encode_value`]; `None` for a malformed escape or invalid UTF-8.
pub fn decode_value(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Paths served without the internal token: health checks come from orchestrators that hold
/// no credentials.
const OPEN_PATH_PREFIXES: &[&str] = &["/grpc.health.v1.Health/"];

/// Tower layer that refuses every call but health with UNAUTHENTICATED unless it carries the
/// internal token. Compared in constant time so the token cannot be guessed byte by byte.
#[derive(Clone)]
pub struct InternalAuthLayer {
    token: Arc<[u8]>,
}

impl InternalAuthLayer {
    pub fn new(token: &str) -> Self {
        Self {
            token: Arc::from(token.as_bytes()),
        }
    }
}

impl<S> tower::Layer<S> for InternalAuthLayer {
    type Service = InternalAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InternalAuth {
            inner,
            token: self.token.clone(),
        }
    }
}

#[derive(Clone)]
pub struct InternalAuth<S> {
    inner: S,
    token: Arc<[u8]>,
}

impl<S> InternalAuth<S> {
    fn admits<B>(&self, request: &http::Request<B>) -> bool {
        if OPEN_PATH_PREFIXES
            .iter()
            .any(|p| request.uri().path().starts_with(p))
        {
            return true;
        }
        match request.headers().get(INTERNAL_TOKEN) {
            Some(given) => {
                // Empty configured tokens never match (serve refuses them anyway).
                !self.token.is_empty() && bool::from(given.as_bytes().ct_eq(&self.token))
            }
            None => false,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResBody> tower::Service<http::Request<B>> for InternalAuth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !self.admits(&request) {
            let status = tonic::Status::unauthenticated("missing or invalid internal token");
            return Box::pin(async move { Ok(status.into_http()) });
        }
        // The clone is not ready; swap so the ready service handles this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut md = MetadataMap::new();
        for (k, v) in pairs {
            md.insert(*k, v.parse().unwrap());
        }
        md
    }

    #[test]
    fn caller_needs_a_user_id() {
        let err = Caller::from_metadata(&metadata(&[(USERNAME, "alice")])).unwrap_err();
        assert!(matches!(err, Error::Unauthenticated(_)));
    }

    #[test]
    fn control_characters_in_identity_are_refused() {
        let err = Caller::from_metadata(&metadata(&[(USER_ID, "a%00b")])).unwrap_err();
        assert!(matches!(err, Error::Unauthenticated(_)));
    }

    #[test]
    fn scopes_are_space_separated() {
        let caller = Caller::from_metadata(&metadata(&[
            (USER_ID, "u1"),
            (SCOPES, "notifications:send  notifications:broadcast"),
        ]))
        .unwrap();
        assert!(caller.has_scope(scope::SEND));
        assert!(caller.has_scope(scope::BROADCAST));
        assert!(caller.require_scope(scope::SEND_AS).is_err());
    }

    #[test]
    fn scopes_split_on_single_spaces_only() {
        for separator in ["\n", "\t", "\r", "\u{b}", "\u{c}", "\u{a0}", "\u{2003}"] {
            let list = format!("notifications:send{separator}notifications:broadcast");
            assert!(
                parse_scopes(&list).is_empty(),
                "{separator:?} split the list"
            );
            let md = metadata(&[(USER_ID, "u1"), (SCOPES, &encode_value(&list))]);
            let caller = Caller::from_metadata(&md).expect("scopes never invalidate a caller");
            assert!(
                caller.scopes.is_empty(),
                "{separator:?}: {:?}",
                caller.scopes
            );
            assert!(caller.require_scope(scope::BROADCAST).is_err());
        }
        let list = format!("a {} b\\c \"d\" e", scope::SEND);
        assert_eq!(
            parse_scopes(&list).into_iter().collect::<Vec<_>>(),
            ["a", "e", scope::SEND]
        );
    }

    #[test]
    fn non_ascii_values_survive_the_metadata() {
        for text in ["José Ñúñez", "50% off", "日本", "plain", "tab\there"] {
            let encoded = encode_value(text);
            assert!(encoded.is_ascii(), "{encoded}");
            assert_eq!(decode_value(encoded.as_bytes()).as_deref(), Some(text));
        }
        assert_eq!(decode_value(b"%zz"), None);
        assert_eq!(decode_value(b"%E6"), None);
    }

    #[test]
    fn write_then_read_round_trips() {
        let caller = Caller {
            user_id: "service:conversation".into(),
            username: "Zoë".into(),
            avatar_url: String::new(),
            scopes: [scope::SEND, scope::SEND_AS].map(String::from).into(),
        };
        let mut md = MetadataMap::new();
        caller.write_metadata(&mut md, "secret");
        assert_eq!(md.get(INTERNAL_TOKEN).unwrap(), "secret");
        assert_eq!(Caller::from_metadata(&md).unwrap(), caller);
    }

    proptest::proptest! {
        #[test]
        fn any_text_survives_the_metadata_encoding(text in ".*") {
            let encoded = encode_value(&text);
            proptest::prop_assert!(encoded.is_ascii());
            proptest::prop_assert_eq!(decode_value(encoded.as_bytes()), Some(text));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode_value(&bytes);
        }
    }
}
