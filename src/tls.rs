//! TLS for every server and every caller, with rustls (ring provider), written once here.
//!
//! Servers: a configuration from a PEM chain and key whose certificate follows its files
//! ([`ReloadingCert`]: rotated without a restart, open connections keep theirs), optional
//! client-certificate verification (mTLS), and accepted connections handshaken off the accept
//! path ([`Accepted`]). Callers: the tonic client configuration for `https://` upstreams,
//! trusting a given CA and optionally presenting a client certificate.

mod accept;
mod files;
mod reload;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio_rustls::{
    TlsAcceptor,
    rustls::{ServerConfig, server::WebPkiClientVerifier},
};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

pub use accept::{Accepted, Connection, HANDSHAKE_TIMEOUT};
pub use files::TlsError;
pub use reload::{RELOAD_INTERVAL, Reload, ReloadingCert};

/// ALPN protocol ids: gRPC needs `h2`; gRPC-Web from browsers also arrives over `http/1.1`.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Every server's TLS flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ServerFlags {
    /// PEM certificate chain (leaf first) to serve TLS with, together with --tls-key;
    /// re-read when the file changes. Without both, the listener speaks plaintext.
    #[arg(long, env = "SWITCHBOARD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert; re-read when it changes.
    #[arg(long, env = "SWITCHBOARD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate(s): when set, every client must present a certificate signed by
    /// one of them (mTLS). Needs --tls-cert and --tls-key.
    #[arg(long, env = "SWITCHBOARD_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
}

/// A server's TLS: its rustls configuration, whose certificate follows the files.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    cert: Arc<ReloadingCert>,
}

impl ServerTls {
    /// The TLS `flags` ask for, offering `alpn`; `None` when they ask for none. A flag
    /// missing its partner, or files that do not make a valid pair, fail here.
    pub fn from_flags(flags: &ServerFlags, alpn: &[&[u8]]) -> Result<Option<Self>, TlsError> {
        match (&flags.tls_cert, &flags.tls_key) {
            (Some(cert), Some(key)) => {
                Self::load(cert, key, flags.tls_client_ca.as_deref(), alpn).map(Some)
            }
            (None, None) if flags.tls_client_ca.is_some() => Err(TlsError::Flags(
                "--tls-client-ca needs --tls-cert and --tls-key: client certificates are \
                 only asked for over TLS"
                    .into(),
            )),
            (None, None) => Ok(None),
            (Some(_), None) => Err(TlsError::Flags(
                "--tls-cert needs --tls-key (SWITCHBOARD_TLS_KEY)".into(),
            )),
            (None, Some(_)) => Err(TlsError::Flags(
                "--tls-key needs --tls-cert (SWITCHBOARD_TLS_CERT)".into(),
            )),
        }
    }

    /// Loads the pair (and the client CA, which then becomes required) without watching.
    pub fn load(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
        alpn: &[&[u8]],
    ) -> Result<Self, TlsError> {
        let provider = files::provider();
        let resolver = Arc::new(ReloadingCert::load(
            cert.to_owned(),
            key.to_owned(),
            provider.clone(),
        )?);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let roots = files::roots("client CA", path)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|source| TlsError::ClientVerifier {
                            path: path.to_owned(),
                            source,
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(resolver.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            config: Arc::new(config),
            cert: resolver,
        })
    }

    /// Re-reads the files every [`RELOAD_INTERVAL`] until `stop` (on the current runtime).
    pub fn watch(&self, stop: CancellationToken) {
        tokio::spawn(self.cert.clone().watch(stop));
    }

    /// What handshakes a connection with this configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }

    /// The certificate in use, and its reloading.
    pub fn cert(&self) -> &Arc<ReloadingCert> {
        &self.cert
    }
}

/// The connections `tcp` accepts, handshaken with `tls` when it is set.
pub fn accepted<S>(tcp: S, tls: Option<&ServerTls>) -> Accepted<S> {
    Accepted::new(tcp, tls.map(ServerTls::acceptor))
}

/// How a caller reaches `https://` upstreams.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct UpstreamFlags {
    /// PEM CA certificate(s) that `https://` upstreams must present a certificate signed by
    /// (no system roots: upstreams are our own services). Required for `https://` addresses.
    #[arg(long, env = "SWITCHBOARD_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,

    /// PEM client certificate chain presented to `https://` upstreams that require one
    /// (mTLS), together with --upstream-key. Read at start-up.
    #[arg(long, env = "SWITCHBOARD_UPSTREAM_CERT")]
    pub upstream_cert: Option<PathBuf>,

    /// PEM private key of --upstream-cert.
    #[arg(long, env = "SWITCHBOARD_UPSTREAM_KEY")]
    pub upstream_key: Option<PathBuf>,
}

impl UpstreamFlags {
    /// The client TLS configuration for `https://` upstreams; `None` without a CA. The files
    /// are checked here (tonic skips a CA certificate it cannot parse, which would surface
    /// only as failed calls).
    pub fn client_config(&self) -> Result<Option<ClientTlsConfig>, TlsError> {
        let identity = match (&self.upstream_cert, &self.upstream_key) {
            (Some(cert), Some(key)) => {
                let (cert_pem, key_pem) = (
                    files::read("certificate", cert)?,
                    files::read("private key", key)?,
                );
                files::certified_key((cert, &cert_pem), (key, &key_pem), &files::provider())?;
                Some(Identity::from_pem(cert_pem, key_pem))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(TlsError::Flags(
                    "--upstream-cert needs --upstream-key (SWITCHBOARD_UPSTREAM_KEY)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(TlsError::Flags(
                    "--upstream-key needs --upstream-cert (SWITCHBOARD_UPSTREAM_CERT)".into(),
                ));
            }
        };
        let Some(ca) = &self.upstream_ca else {
            if identity.is_some() {
                return Err(TlsError::Flags(
                    "--upstream-cert needs --upstream-ca: a client certificate is only \
                     presented over TLS"
                        .into(),
                ));
            }
            return Ok(None);
        };
        files::roots("upstream CA", ca)?;
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(files::read("upstream CA", ca)?))
            .timeout(crate::grpc::CONNECT_TIMEOUT);
        Ok(Some(match identity {
            Some(identity) => config.identity(identity),
            None => config,
        }))
    }
}

#[cfg(test)]
mod tests;
