//! A server certificate that follows its files: re-read every [`RELOAD_INTERVAL`], swapped
//! in for new handshakes when both files changed into a valid pair.
//!
//! The files are compared by content, not by mtime or inode: that notices a file rewritten in
//! place and one replaced by a rename (as mounted secrets are) alike, whatever the clock
//! granularity. Open connections keep the certificate they were handshaken with.

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use tokio_rustls::rustls::{
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio_util::sync::CancellationToken;

use super::files::{self, TlsError};

/// How often the files are re-read: a rotation reaches new connections within this (well
/// inside the 10 s promised), and reading two small files that often costs nothing.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// What one look at the files found.
#[derive(Debug)]
pub enum Reload {
    /// The files are as last loaded (or as last rejected).
    Unchanged,
    /// New files, now in use for new connections.
    Reloaded,
    /// New files that do not make a valid pair; the previous pair stays in use.
    Rejected(TlsError),
}

#[derive(Debug)]
struct State {
    current: Arc<CertifiedKey>,
    /// The contents `current` was built from.
    loaded: (Vec<u8>, Vec<u8>),
    /// The contents last rejected, so a bad pair is reported once, not every interval.
    rejected: Option<(Vec<u8>, Vec<u8>)>,
}

/// The certificate resolver of a server configuration.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    state: RwLock<State>,
}

impl ReloadingCert {
    /// Loads the pair, failing on anything that would fail the handshakes.
    pub fn load(
        cert: PathBuf,
        key: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let contents = (
            files::read("certificate", &cert)?,
            files::read("private key", &key)?,
        );
        let current = files::certified_key((&cert, &contents.0), (&key, &contents.1), &provider)?;
        Ok(Self {
            cert,
            key,
            provider,
            state: RwLock::new(State {
                current: Arc::new(current),
                loaded: contents,
                rejected: None,
            }),
        })
    }

    /// The pair new handshakes use.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .clone()
    }

    /// Re-reads both files and swaps in the pair they hold if it changed and is valid.
    pub fn reload(&self) -> Reload {
        let contents = match (
            files::read("certificate", &self.cert),
            files::read("private key", &self.key),
        ) {
            (Ok(cert), Ok(key)) => (cert, key),
            // Mid-rotation a file can be missing for a moment: looked at again next time.
            (Err(err), _) | (_, Err(err)) => return Reload::Rejected(err),
        };
        {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            if contents == state.loaded || state.rejected.as_ref() == Some(&contents) {
                return Reload::Unchanged;
            }
        }
        let built = files::certified_key(
            (&self.cert, &contents.0),
            (&self.key, &contents.1),
            &self.provider,
        );
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        match built {
            Ok(pair) => {
                state.current = Arc::new(pair);
                state.loaded = contents;
                state.rejected = None;
                Reload::Reloaded
            }
            Err(err) => {
                state.rejected = Some(contents);
                Reload::Rejected(err)
            }
        }
    }

    /// Reloads every [`RELOAD_INTERVAL`] until `stop`, logging each change and each rejection.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut unreadable = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RELOAD_INTERVAL) => {}
            }
            match self.reload() {
                Reload::Unchanged => unreadable = false,
                Reload::Reloaded => {
                    unreadable = false;
                    tracing::info!(cert = %self.cert.display(), key = %self.key.display(), "TLS certificate reloaded; new connections use it");
                }
                Reload::Rejected(err @ TlsError::Read { .. }) => {
                    // Logged once per stretch of unreadability, not every interval.
                    if !std::mem::replace(&mut unreadable, true) {
                        tracing::warn!(error = %crate::replicas::chain(&err), "TLS files unreadable; keeping the certificate in use");
                    }
                }
                Reload::Rejected(err) => {
                    unreadable = false;
                    tracing::warn!(error = %crate::replicas::chain(&err), "new TLS files rejected; keeping the certificate in use");
                }
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}
