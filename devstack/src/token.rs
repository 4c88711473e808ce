//! Dev tokens: HS256 JWTs the gateway accepts with the dev secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde::Serialize;

/// Every scope Switchboard knows.
pub const ALL_SCOPES: &str =
    "notifications:send notifications:broadcast notifications:send_as notifications:critical";

#[derive(Debug, Serialize)]
struct Claims<'a> {
    sub: &'a str,
    preferred_username: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    picture: &'a str,
    scope: &'a str,
    iat: u64,
    exp: u64,
}

/// A token for `user_id` / `username` with `scopes`, valid for `ttl`.
pub fn mint(
    secret: &str,
    user_id: &str,
    username: &str,
    picture: &str,
    scopes: &str,
    ttl: Duration,
) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: user_id,
        preferred_username: username,
        picture,
        scope: scopes,
        iat: now,
        exp: now + ttl.as_secs(),
    };
    Ok(encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}
