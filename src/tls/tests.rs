use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{
    TlsConnector,
    rustls::{
        ClientConfig, RootCertStore,
        pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    },
};
use tokio_stream::StreamExt;

use super::*;

/// A CA, as the tests' certificates are signed by one.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for 127.0.0.1 and its key, as PEM.
    fn leaf(&self) -> (String, String) {
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes `contents` to `path` by a rename, as a mounted secret is replaced.
fn replace(path: &Path, contents: &str) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, contents).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn with(cert: &str, key: &str) -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        Files { dir }
    }
    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
    fn load(&self) -> Result<ServerTls, TlsError> {
        ServerTls::load(&self.cert(), &self.key(), None, &[ALPN_H2])
    }
}

#[test]
fn start_up_errors_say_what_is_wrong_with_which_file() {
    let ca = Ca::new();
    let (cert, key) = ca.leaf();
    let (other_cert, _) = ca.leaf();

    let missing = Files::with(&cert, &key);
    std::fs::remove_file(missing.cert()).unwrap();
    let err = missing.load().err().unwrap();
    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&missing.cert().display().to_string()),
        "{err}"
    );

    let swapped = Files::with(&key, &cert);
    let err = swapped.load().err().unwrap();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
    assert!(err.to_string().contains("cert.pem"), "{err}");

    let no_key = Files::with(&cert, &cert);
    let err = no_key.load().err().unwrap();
    assert!(matches!(err, TlsError::NoKey { .. }), "{err:?}");
    assert!(err.to_string().contains("key.pem"), "{err}");

    let garbage = Files::with(
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        &key,
    );
    let err = garbage.load().err().unwrap();
    assert!(matches!(err, TlsError::Pem { .. }), "{err:?}");

    let mismatched = Files::with(&other_cert, &key);
    let err = mismatched.load().err().unwrap();
    assert!(matches!(err, TlsError::Mismatch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("cert.pem") && message.contains("key.pem"),
        "{message}"
    );

    assert!(Files::with(&cert, &key).load().is_ok());
}

#[test]
fn flags_without_their_partner_are_refused() {
    let path = Some(PathBuf::from("x.pem"));
    for flags in [
        ServerFlags {
            tls_cert: path.clone(),
            ..ServerFlags::default()
        },
        ServerFlags {
            tls_key: path.clone(),
            ..ServerFlags::default()
        },
        ServerFlags {
            tls_client_ca: path.clone(),
            ..ServerFlags::default()
        },
    ] {
        let err = ServerTls::from_flags(&flags, &[ALPN_H2]).err();
        assert!(
            matches!(err, Some(TlsError::Flags(_))),
            "{flags:?}: {err:?}"
        );
    }
    assert!(
        ServerTls::from_flags(&ServerFlags::default(), &[ALPN_H2])
            .unwrap()
            .is_none()
    );

    let upstream = UpstreamFlags {
        upstream_cert: path.clone(),
        ..UpstreamFlags::default()
    };
    assert!(matches!(upstream.client_config(), Err(TlsError::Flags(_))));
    assert!(UpstreamFlags::default().client_config().unwrap().is_none());
}

#[test]
fn a_changed_pair_is_swapped_in_and_a_bad_one_is_reported_once_and_not_used() {
    let ca = Ca::new();
    let (first_cert, first_key) = ca.leaf();
    let files = Files::with(&first_cert, &first_key);
    let tls = files.load().unwrap();
    let in_use = || tls.cert().current().cert[0].clone();
    assert_eq!(in_use(), der(&first_cert));
    assert!(matches!(tls.cert().reload(), Reload::Unchanged));

    // Replaced by renames, key first: in between the pair does not match and is not used.
    let (second_cert, second_key) = ca.leaf();
    replace(&files.key(), &second_key);
    assert!(matches!(
        tls.cert().reload(),
        Reload::Rejected(TlsError::Mismatch { .. })
    ));
    assert_eq!(in_use(), der(&first_cert));
    assert!(
        matches!(tls.cert().reload(), Reload::Unchanged),
        "reported once"
    );
    replace(&files.cert(), &second_cert);
    assert!(matches!(tls.cert().reload(), Reload::Reloaded));
    assert_eq!(in_use(), der(&second_cert));

    // Rewritten in place with something that is no certificate: the second pair stays.
    std::fs::write(files.cert(), &second_key).unwrap();
    assert!(matches!(
        tls.cert().reload(),
        Reload::Rejected(TlsError::NoCertificate { .. })
    ));
    assert_eq!(in_use(), der(&second_cert));

    // Gone for a moment, then back with a third pair (rewritten in place).
    std::fs::remove_file(files.cert()).unwrap();
    assert!(matches!(
        tls.cert().reload(),
        Reload::Rejected(TlsError::Read { .. })
    ));
    assert_eq!(in_use(), der(&second_cert));
    let (third_cert, third_key) = ca.leaf();
    std::fs::write(files.key(), &third_key).unwrap();
    std::fs::write(files.cert(), &third_cert).unwrap();
    assert!(matches!(tls.cert().reload(), Reload::Reloaded));
    assert_eq!(in_use(), der(&third_cert));
}

fn client(ca_pem: &str, identity: Option<(&str, &str)>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(der(ca_pem)).unwrap();
    let builder = ClientConfig::builder_with_provider(files::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![der(cert)],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// Connects to `addr` and returns the certificate the server presented, or the error.
async fn handshake(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
) -> Result<CertificateDer<'static>, std::io::Error> {
    use tokio::io::AsyncReadExt;
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    // TLS 1.3 refuses a client certificate after the client's side is done: a read shows it.
    let mut byte = [0u8; 1];
    match tokio::time::timeout(std::time::Duration::from_millis(300), tls.read(&mut byte)).await {
        Ok(Err(err)) => return Err(err),
        Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
        Ok(Ok(_)) | Err(_) => {}
    }
    let (_, session) = tls.get_ref();
    Ok(session.peer_certificates().unwrap()[0].clone())
}

/// Serves `tls` on a local port: every accepted connection is kept open, unread.
async fn serve(tls: &ServerTls) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let mut accepted = accepted(incoming, Some(tls));
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Some(connection) = accepted.next().await {
            let connection = connection.unwrap();
            assert_eq!(connection.alpn(), Some(ALPN_H2));
            open.push(connection);
        }
    });
    addr
}

#[tokio::test]
async fn new_connections_get_the_rotated_certificate_within_the_interval() {
    let ca = Ca::new();
    let (first_cert, first_key) = ca.leaf();
    let files = Files::with(&first_cert, &first_key);
    let tls = files.load().unwrap();
    let stop = CancellationToken::new();
    tls.watch(stop.clone());
    let addr = serve(&tls).await;
    // A new client each time: one that resumes its TLS session is not shown a certificate.
    let connector = || client(&ca.pem, None);
    assert_eq!(
        handshake(&connector(), addr).await.unwrap(),
        der(&first_cert)
    );

    let (second_cert, second_key) = ca.leaf();
    replace(&files.key(), &second_key);
    replace(&files.cert(), &second_cert);
    let started = std::time::Instant::now();
    loop {
        let presented = handshake(&connector(), addr).await.unwrap();
        if presented == der(&second_cert) {
            break;
        }
        assert!(
            started.elapsed() < RELOAD_INTERVAL * 3,
            "still the old certificate after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stop.cancel();
}

#[tokio::test]
async fn with_a_client_ca_a_client_without_a_certificate_is_refused_one_with_is_served() {
    let ca = Ca::new();
    let (cert, key) = ca.leaf();
    let files = Files::with(&cert, &key);
    let ca_file = files.dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let tls = ServerTls::load(&files.cert(), &files.key(), Some(&ca_file), &[ALPN_H2]).unwrap();
    let addr = serve(&tls).await;

    let anonymous = handshake(&client(&ca.pem, None), addr).await;
    assert!(anonymous.is_err(), "a client without a certificate got in");

    let stranger = Ca::new();
    let (foreign_cert, foreign_key) = stranger.leaf();
    let foreign = handshake(&client(&ca.pem, Some((&foreign_cert, &foreign_key))), addr).await;
    assert!(foreign.is_err(), "a certificate from another CA got in");

    let (client_cert, client_key) = ca.leaf();
    let known = handshake(&client(&ca.pem, Some((&client_cert, &client_key))), addr).await;
    assert_eq!(known.unwrap(), der(&cert));
}
