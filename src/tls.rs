//! rustls client configuration shared by the Keystone client and the upstream
//! connector: system roots or a CA file, optional client certificate (mutual
//! TLS), and an explicit, loudly logged `insecure` mode.
//!
//! And the listeners' side ([`ListenerTls`]): the server certificate
//! ([`ReloadableCert`]) and, with `[tls] client_ca_file`, client
//! certificates verified against a CA bundle (rustls'
//! `WebPkiClientVerifier`), both reloaded while running.

use std::{fs::File, io::BufReader, sync::Arc};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where the trust and client identity come from.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// CA bundle (PEM); system roots when absent.
    pub cafile: Option<String>,
    /// Client certificate chain (PEM).
    pub certfile: Option<String>,
    /// Client private key (PEM).
    pub keyfile: Option<String>,
    /// Accept any server certificate.
    pub insecure: bool,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_err(path: &str, message: impl ToString) -> TlsError {
    TlsError::File {
        path: path.into(),
        message: message.to_string(),
    }
}

fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let f = File::open(path).map_err(|e| file_err(path, e))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut BufReader::new(f)).collect();
    let certs = certs.map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let f = File::open(path).map_err(|e| file_err(path, e))?;
    rustls_pemfile::private_key(&mut BufReader::new(f))
        .map_err(|e| file_err(path, e))?
        .ok_or_else(|| file_err(path, "no PEM private key found"))
}

impl ClientTls {
    /// Builds the rustls client configuration (ALPN left to the connector).
    pub fn build(&self) -> Result<ClientConfig, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider())))
        } else {
            let mut roots = RootCertStore::empty();
            match &self.cafile {
                Some(path) => {
                    for cert in read_certs(path)? {
                        roots.add(cert).map_err(|e| file_err(path, e))?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        // A malformed system root is skipped, as browsers do.
                        let _ = roots.add(cert);
                    }
                }
            }
            builder.with_root_certificates(roots)
        };
        Ok(match (&self.certfile, &self.keyfile) {
            (Some(cert), Some(key)) => {
                builder.with_client_auth_cert(read_certs(cert)?, read_key(key)?)?
            }
            _ => builder.with_no_client_auth(),
        })
    }
}

/// The listener's certificate, replaceable while running: new handshakes use
/// the newest one, established connections keep theirs.
#[derive(Debug)]
pub struct ReloadableCert {
    cert_file: String,
    key_file: String,
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
    modified: std::sync::Mutex<Option<(std::time::SystemTime, std::time::SystemTime)>>,
}

fn modified(cert: &str, key: &str) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
    let m = |f: &str| std::fs::metadata(f).and_then(|m| m.modified()).ok();
    Some((m(cert)?, m(key)?))
}

fn certified_key(cert_file: &str, key_file: &str) -> Result<rustls::sign::CertifiedKey, TlsError> {
    rustls::sign::CertifiedKey::from_der(read_certs(cert_file)?, read_key(key_file)?, &provider())
        .map_err(|e| file_err(cert_file, format!("certificate and key do not match: {e}")))
}

impl ReloadableCert {
    /// Loads the certificate chain and key (PEM).
    pub fn load(cert_file: &str, key_file: &str) -> Result<Arc<Self>, TlsError> {
        let key = certified_key(cert_file, key_file)?;
        Ok(Arc::new(Self {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            current: std::sync::RwLock::new(Arc::new(key)),
            modified: std::sync::Mutex::new(modified(cert_file, key_file)),
        }))
    }

    /// Re-reads the files when they changed (or `force`). A bad pair keeps
    /// the current certificate and returns the error.
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let now = modified(&self.cert_file, &self.key_file);
        let changed = self.modified.lock().map_or(true, |m| *m != now);
        if !changed && !force {
            return Ok(false);
        }
        let key = certified_key(&self.cert_file, &self.key_file)?;
        if let Ok(mut c) = self.current.write() {
            *c = Arc::new(key);
        }
        if let Ok(mut m) = self.modified.lock() {
            *m = now;
        }
        Ok(true)
    }

    /// The listener's rustls configuration, ALPN `h2` then `http/1.1`;
    /// client certificates verified by `clients` (none asked for without).
    fn server_config(
        self: &Arc<Self>,
        clients: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    ) -> Result<rustls::ServerConfig, TlsError> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match clients {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl rustls::server::ResolvesServerCert for ReloadableCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// Client certificates on a listener (`[tls] client_ca_file`, `client_auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificates {
    /// The CA bundle (PEM) client certificates are verified against.
    pub ca_file: String,
    /// Whether a handshake without a client certificate is refused
    /// (`client_auth = "required"`) or served (`"optional"`).
    pub required: bool,
}

/// A TLS listener's configuration, replaceable while running: its
/// certificate and, with [`ClientCertificates`], the CA bundle client
/// certificates are verified against. New handshakes use the newest;
/// established connections keep theirs.
#[derive(Debug)]
pub struct ListenerTls {
    cert: Arc<ReloadableCert>,
    client_ca: Option<ClientCa>,
    config: std::sync::RwLock<Arc<rustls::ServerConfig>>,
}

#[derive(Debug)]
struct ClientCa {
    clients: ClientCertificates,
    modified: std::sync::Mutex<Option<std::time::SystemTime>>,
}

/// What one reload of a listener's files did: `Ok(true)` reloaded,
/// `Ok(false)` unchanged, `Err` kept the current one.
#[derive(Debug)]
pub struct Reloaded {
    /// The certificate and key.
    pub certificate: Result<bool, TlsError>,
    /// The client CA bundle, when the listener verifies clients.
    pub client_ca: Option<Result<bool, TlsError>>,
}

fn client_verifier(
    clients: &ClientCertificates,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let path = clients.ca_file.as_str();
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|e| file_err(path, e))?;
    }
    let builder =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
    let builder = if clients.required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|e| file_err(path, e))
}

fn file_modified(path: &str) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ListenerTls {
    /// Loads the certificate chain and key (PEM) and, with `clients`, the
    /// client CA bundle.
    pub fn load(
        cert_file: &str,
        key_file: &str,
        clients: Option<&ClientCertificates>,
    ) -> Result<Arc<Self>, TlsError> {
        let cert = ReloadableCert::load(cert_file, key_file)?;
        let client_ca = clients.map(|c| ClientCa {
            modified: std::sync::Mutex::new(file_modified(&c.ca_file)),
            clients: c.clone(),
        });
        let config = cert.server_config(match &client_ca {
            Some(ca) => Some(client_verifier(&ca.clients)?),
            None => None,
        })?;
        Ok(Arc::new(Self {
            cert,
            client_ca,
            config: std::sync::RwLock::new(Arc::new(config)),
        }))
    }

    /// The configuration for the next handshake.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-reads the files that changed (all of them with `force`): the
    /// certificate and key, then the client CA bundle. A bad file keeps
    /// what was in use and is reported; the other is still reloaded.
    pub fn reload(&self, force: bool) -> Reloaded {
        Reloaded {
            certificate: self.cert.reload(force),
            client_ca: self
                .client_ca
                .as_ref()
                .map(|ca| self.reload_client_ca(ca, force)),
        }
    }

    fn reload_client_ca(&self, ca: &ClientCa, force: bool) -> Result<bool, TlsError> {
        let now = file_modified(&ca.clients.ca_file);
        let changed = ca.modified.lock().map_or(true, |m| *m != now);
        if !changed && !force {
            return Ok(false);
        }
        let config = self
            .cert
            .server_config(Some(client_verifier(&ca.clients)?))?;
        // A new configuration: sessions resumed from the old one (whose
        // client certificates the old bundle verified) are not resumed.
        if let Ok(mut c) = self.config.write() {
            *c = Arc::new(config);
        }
        if let Ok(mut m) = ca.modified.lock() {
            *m = now;
        }
        Ok(true)
    }
}

/// `insecure = true`: verifies signatures but accepts any certificate.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
