//! A development CA and the stack's certificates (rcgen), kept in a directory so the CA a
//! client was told to trust (`grpcurl -cacert`) stays the same across restarts.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use switchboard::tls::{ServerFlags, UpstreamFlags};

/// The servers a stack runs, each with a certificate of its own.
pub const SERVERS: [&str; 3] = ["gateway", "notification-svc", "conversation-svc"];

/// The client certificate the gateway and conversation-svc present to the services.
pub const CALLER: &str = "caller";

/// Names every certificate is valid for: the stack listens on this machine.
const NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The certificate files in one directory: `ca.pem`, and `<name>.pem` + `<name>-key.pem` for
/// each of [`SERVERS`] and [`CALLER`]. The CA's own key is not kept: nothing is signed later.
#[derive(Debug, Clone)]
pub struct DevCerts {
    dir: PathBuf,
}

impl DevCerts {
    /// The certificates in `dir`, made there first when any file is missing.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<DevCerts> {
        let certs = DevCerts {
            dir: dir.to_owned(),
        };
        if certs.files().iter().all(|path| path.exists()) {
            return Ok(certs);
        }
        DevCerts::create(dir)
    }

    /// A new CA and new certificates in `dir`, replacing any there.
    pub fn create(dir: &Path) -> anyhow::Result<DevCerts> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let certs = DevCerts {
            dir: dir.to_owned(),
        };
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Switchboard development CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        write(&certs.ca(), &params.self_signed(&ca_key)?.pem())?;
        let issuer = Issuer::new(params, ca_key);
        for name in SERVERS.into_iter().chain([CALLER]) {
            let mut params = CertificateParams::new(NAMES.map(String::from).to_vec())?;
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            let (cert_path, key_path) = certs.pair(name);
            write(&key_path, &key.serialize_pem())?;
            write(&cert_path, &cert.pem())?;
        }
        Ok(certs)
    }

    /// The CA every certificate here is signed by: what clients trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The certificate and key files of `name` (one of [`SERVERS`], or [`CALLER`]).
    pub fn pair(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}-key.pem")),
        )
    }

    /// TLS flags for the server `name`; with `mtls`, clients need a certificate of this CA.
    pub fn server_flags(&self, name: &str, mtls: bool) -> ServerFlags {
        let (cert, key) = self.pair(name);
        ServerFlags {
            tls_cert: Some(cert),
            tls_key: Some(key),
            tls_client_ca: mtls.then(|| self.ca()),
        }
    }

    /// Flags for a caller of the services: trusts this CA, presents [`CALLER`].
    pub fn upstream_flags(&self) -> UpstreamFlags {
        let (cert, key) = self.pair(CALLER);
        UpstreamFlags {
            upstream_ca: Some(self.ca()),
            upstream_cert: Some(cert),
            upstream_key: Some(key),
        }
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.ca()];
        for name in SERVERS.into_iter().chain([CALLER]) {
            let (cert, key) = self.pair(name);
            files.extend([cert, key]);
        }
        files
    }
}

/// Writes `contents` to `path`, readable by its owner only (keys are secrets; the rest is
/// written the same way for simplicity).
fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
