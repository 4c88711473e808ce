//! End-user authentication: `authorization: Bearer <JWT>` to a [`Caller`].
//!
//! HS256 tokens are checked against the shared secret; RS256, ES256 and EdDSA tokens against
//! the JWKS key their `kid` names, and only with the algorithm that key is for (so a public
//! key can never be used as an HMAC secret, and `alg: none` never parses). `exp` and `sub`
//! are required, `nbf` honoured, with a small leeway. A configured issuer or audience makes
//! `iss`/`aud` required (jsonwebtoken alone only checks a claim that is present and a
//! string). A header with `crit` is refused: no JWS extension is implemented (RFC 7515
//! §4.1.11), and jsonwebtoken ignores the parameter.

mod jwks;
// Public rather than re-exported: the layer uses this module's `Authenticator`, so a
// re-export here would make the two files import each other.
pub mod layer;
mod verified;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, errors::ErrorKind};
use serde::Deserialize;
use switchboard::Caller;

pub use jwks::Jwks;
use verified::VerifiedTokens;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// Why a call was refused; the text is what the caller sees.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token algorithm")]
    UnsupportedAlgorithm,
    #[error("token has no key id")]
    MissingKeyId,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("token algorithm does not match its key")]
    AlgorithmMismatch,
    #[error("invalid signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token header names critical extensions (crit), none of which is supported")]
    CriticalExtension,
    #[error("missing or wrong token issuer")]
    WrongIssuer,
    #[error("missing or wrong token audience")]
    WrongAudience,
    #[error("token lacks a required claim (exp, sub)")]
    MissingClaim,
}

impl AuthError {
    /// The `reason` label of `switchboard_gateway_auth_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::UnsupportedAlgorithm | AuthError::AlgorithmMismatch => "algorithm",
            AuthError::MissingKeyId | AuthError::UnknownKey => "unknown_key",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::CriticalExtension | AuthError::MissingClaim => "other",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    // Defaulted so a missing `sub` reports as a missing claim, not as a malformed token.
    #[serde(default)]
    sub: String,
    #[serde(default)]
    preferred_username: String,
    #[serde(default)]
    picture: String,
    #[serde(default)]
    scope: String,
    /// Read only to know how long the verification may be remembered (the check itself
    /// is jsonwebtoken's); a value that is not a whole number is simply not remembered.
    #[serde(default)]
    exp: serde_json::Value,
}

pub struct Authenticator {
    secret: Option<DecodingKey>,
    jwks: Option<Jwks>,
    issuer: Option<String>,
    audience: Option<String>,
    verified: VerifiedTokens,
}

impl Authenticator {
    pub fn new(
        secret: Option<&str>,
        jwks: Option<Jwks>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> anyhow::Result<Self> {
        let secret = secret.filter(|s| !s.is_empty());
        anyhow::ensure!(
            secret.is_some() || jwks.is_some(),
            "no JWT key configured: set SWITCHBOARD_JWT_SECRET (HS256) and/or \
             SWITCHBOARD_JWKS_FILE (RS256/ES256/EdDSA)"
        );
        Ok(Self {
            secret: secret.map(|s| DecodingKey::from_secret(s.as_bytes())),
            jwks,
            issuer,
            audience,
            verified: VerifiedTokens::default(),
        })
    }

    /// The caller a request's `authorization` header proves, or why not.
    pub fn authenticate(&self, headers: &http::HeaderMap) -> Result<Caller, AuthError> {
        let token = bearer(headers)?;
        let now = verified::now();
        // Read before verifying: see `VerifiedTokens::insert`.
        let generation = self.jwks.as_ref().map_or(0, Jwks::generation);
        if let Some(caller) = self.verified.get(token, now, generation) {
            return Ok(caller);
        }
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.crit.is_some() {
            return Err(AuthError::CriticalExtension);
        }
        let claims = match header.alg {
            Algorithm::HS256 => {
                let key = self
                    .secret
                    .as_ref()
                    .ok_or(AuthError::UnsupportedAlgorithm)?;
                self.verify(token, key, Algorithm::HS256)?
            }
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA => {
                let jwks = self.jwks.as_ref().ok_or(AuthError::UnsupportedAlgorithm)?;
                let kid = header.kid.as_deref().ok_or(AuthError::MissingKeyId)?;
                let (key, key_alg) = jwks.key(kid).ok_or(AuthError::UnknownKey)?;
                if key_alg != header.alg {
                    return Err(AuthError::AlgorithmMismatch);
                }
                self.verify(token, &key, key_alg)?
            }
            _ => return Err(AuthError::UnsupportedAlgorithm),
        };
        if claims.sub.is_empty() {
            return Err(AuthError::MissingClaim);
        }
        let caller = Caller {
            user_id: claims.sub,
            username: claims.preferred_username,
            avatar_url: claims.picture,
            scopes: switchboard::identity::parse_scopes(&claims.scope),
        };
        if let Some(exp) = claims.exp.as_u64() {
            let valid_until = exp.saturating_add(LEEWAY_SECONDS);
            self.verified
                .insert(token, &caller, valid_until, generation, now);
        }
        Ok(caller)
    }

    fn verify(&self, token: &str, key: &DecodingKey, alg: Algorithm) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        // A required claim must be present and parse (a string, or for `aud` an array of
        // strings); only then does jsonwebtoken compare it.
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::InvalidAudience => AuthError::WrongAudience,
                ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                    "iss" => AuthError::WrongIssuer,
                    "aud" => AuthError::WrongAudience,
                    _ => AuthError::MissingClaim,
                },
                ErrorKind::InvalidAlgorithm => AuthError::AlgorithmMismatch,
                _ => AuthError::Malformed,
            })
    }
}

fn bearer(headers: &http::HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token.trim())
}
