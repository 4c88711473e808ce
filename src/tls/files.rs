//! Reading TLS material from PEM files, with errors that name the file and what it was for.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio_rustls::rustls::{
    self, RootCertStore,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::VerifierBuilderError,
    sign::CertifiedKey,
};

/// Why TLS material could not be used. Every variant names the file, so a start-up error or
/// a rejected reload says which of several files to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}", .path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} {} is not valid PEM", .path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{what} {} holds no PEM certificate", .path.display())]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("private key {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", .path.display())]
    NoKey { path: PathBuf },
    #[error("private key {} cannot be used", .path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("private key {} does not belong to certificate {}", .key.display(), .cert.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("CA certificate {} cannot be used", .path.display())]
    Ca {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("client CA {} cannot verify client certificates", .path.display())]
    ClientVerifier {
        path: PathBuf,
        #[source]
        source: VerifierBuilderError,
    },
    /// Flags given in a combination that cannot work (a certificate without its key, ...).
    #[error("{0}")]
    Flags(String),
    #[error("TLS set-up failed")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider every configuration uses, named explicitly: rustls picks no process
/// default when more than one provider is compiled in.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The bytes of `path`.
pub fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in `pem` (read from `path`), in file order: leaf first for a chain.
pub fn certificates(
    what: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what,
            path: path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

/// The first private key in `pem` (read from `path`).
pub fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_owned(),
        },
        source => TlsError::Pem {
            what: "private key",
            path: path.to_owned(),
            source,
        },
    })
}

/// A certificate chain and its private key, checked to belong together (a mismatched pair
/// would fail every handshake instead of failing here).
pub fn certified_key(
    (cert_path, cert_pem): (&Path, &[u8]),
    (key_path, key_pem): (&Path, &[u8]),
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates("certificate", cert_path, cert_pem)?;
    let key = private_key(key_path, key_pem)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::Key {
            path: key_path.to_owned(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // A key whose public half the provider cannot derive is not proof of a mismatch.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(source) => Err(TlsError::Mismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            source,
        }),
    }
}

/// The CA certificates of `path` as trust roots.
pub fn roots(what: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let pem = read(what, path)?;
    let mut roots = RootCertStore::empty();
    for certificate in certificates(what, path, &pem)? {
        roots.add(certificate).map_err(|source| TlsError::Ca {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}
