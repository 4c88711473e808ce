//! Public keys from a JWKS file, reloaded when the file changes (key rotation without a
//! restart).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm},
};
use tokio_util::sync::CancellationToken;

/// How often the file is re-read. Reading a small file once a second costs nothing and
/// notices a rotation within a second, without relying on mtime granularity.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

type Keys = HashMap<String, (DecodingKey, Algorithm)>;

#[derive(Clone)]
pub struct Jwks {
    keys: Arc<RwLock<Keys>>,
    /// Bumped after every reload, so verifications remembered under older keys miss.
    generation: Arc<AtomicU64>,
}

impl Jwks {
    /// Loads `path` (failing start-up if it is unusable) and keeps reloading it until `stop`.
    pub fn watch(path: PathBuf, stop: CancellationToken) -> anyhow::Result<Self> {
        let contents = std::fs::read(&path)
            .with_context(|| format!("cannot read JWKS file {}", path.display()))?;
        let keys =
            parse(&contents).with_context(|| format!("invalid JWKS file {}", path.display()))?;
        tracing::info!(path = %path.display(), keys = keys.len(), "JWKS loaded");
        let jwks = Jwks {
            keys: Arc::new(RwLock::new(keys)),
            generation: Arc::new(AtomicU64::new(0)),
        };
        let (shared, generation) = (jwks.keys.clone(), jwks.generation.clone());
        tokio::spawn(async move {
            let mut last = contents;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RELOAD_INTERVAL) => {}
                }
                let Ok(contents) = tokio::fs::read(&path).await else {
                    tracing::warn!(path = %path.display(), "JWKS file unreadable; keeping the keys loaded");
                    continue;
                };
                if contents == last {
                    continue;
                }
                match parse(&contents) {
                    Ok(keys) => {
                        tracing::info!(path = %path.display(), keys = keys.len(), "JWKS reloaded");
                        *shared.write().unwrap_or_else(|p| p.into_inner()) = keys;
                        generation.fetch_add(1, Ordering::Release);
                        last = contents;
                    }
                    // A half-written file is retried on the next tick.
                    Err(err) => {
                        tracing::warn!(error = %format!("{err:#}"), "JWKS file invalid; keeping the keys loaded")
                    }
                }
            }
        });
        Ok(jwks)
    }

    /// Counts the reloads so far. Read it before looking a key up: a reload in between then
    /// shows as a newer generation than the one a verification is remembered under.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The key with id `kid` and the one algorithm it may verify.
    pub fn key(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
            .cloned()
    }
}

fn parse(contents: &[u8]) -> anyhow::Result<Keys> {
    let set: JwkSet = serde_json::from_slice(contents).context("not a JWKS document")?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            tracing::warn!("JWKS key without kid skipped");
            continue;
        };
        let inferred = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                Some(Algorithm::ES256)
            }
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                Some(Algorithm::EdDSA)
            }
            _ => None,
        };
        let declared = match jwk.common.key_algorithm {
            None => inferred,
            Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
            Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
            Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
            Some(_) => None,
        };
        let (Some(alg), true) = (declared, declared == inferred) else {
            tracing::warn!(%kid, "JWKS key of an unsupported type or algorithm skipped");
            continue;
        };
        let key = DecodingKey::from_jwk(jwk).with_context(|| format!("key {kid}"))?;
        keys.insert(kid, (key, alg));
    }
    Ok(keys)
}
