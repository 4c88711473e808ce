//! Who the generator calls as: trusted metadata straight to a service, or a bearer token
//! through the gateway, prepared once per user so the hot loop only clones a map.

use std::{collections::BTreeSet, time::Duration};

use tonic::metadata::{MetadataMap, MetadataValue};

/// How calls authenticate.
#[derive(Debug, Clone)]
pub enum Path {
    /// Straight to a service, with the internal token and identity metadata.
    Direct { internal_token: String },
    /// Through the gateway, with an HS256 JWT.
    Gateway { jwt_secret: String },
}

impl Path {
    pub fn name(&self) -> &'static str {
        match self {
            Path::Direct { .. } => "direct",
            Path::Gateway { .. } => "gateway",
        }
    }

    /// Metadata for `user_id` (also its username) with `scopes` (space-separated).
    pub fn metadata(&self, user_id: &str, scopes: &str) -> anyhow::Result<MetadataMap> {
        let mut metadata = MetadataMap::new();
        match self {
            Path::Direct { internal_token } => {
                let caller = switchboard::Caller {
                    user_id: user_id.to_owned(),
                    username: user_id.to_owned(),
                    avatar_url: String::new(),
                    scopes: scopes
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect::<BTreeSet<_>>(),
                };
                caller.write_metadata(&mut metadata, internal_token);
            }
            Path::Gateway { jwt_secret } => {
                let token = devstack::token::mint(
                    jwt_secret,
                    user_id,
                    user_id,
                    "",
                    scopes,
                    Duration::from_secs(3600),
                )?;
                metadata.insert(
                    "authorization",
                    MetadataValue::try_from(format!("Bearer {token}"))?,
                );
            }
        }
        Ok(metadata)
    }

    /// Metadata for users `{prefix}0 .. {prefix}{n-1}`.
    pub fn users(&self, prefix: &str, n: usize, scopes: &str) -> anyhow::Result<Vec<MetadataMap>> {
        (0..n)
            .map(|i| self.metadata(&format!("{prefix}{i}"), scopes))
            .collect()
    }
}

/// A request carrying `metadata`.
pub fn request<T>(message: T, metadata: &MetadataMap) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = metadata.clone();
    request
}
