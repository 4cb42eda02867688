//! TLS for both services' listeners and for order-service's calls to
//! payment-service: rustls with the *ring* provider (no OpenSSL, no C build
//! beyond ring's), TLS 1.2 and 1.3 with rustls' safe suites only.
//!
//! Everything is read from PEM files named by the environment when the
//! process starts, so certificates rotate by a restart: write the new files,
//! restart (one replica at a time), and the old ones are no longer used.
//! A file that cannot be read or parsed stops the start with a message
//! that names the setting and the path, never a half-configured listener.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub use rustls;

/// How long a TLS handshake may take, and how many may be under way per
/// worker: actix's defaults (3 s, 256) let ~600 silent connections stall
/// both workers' handshakes (the attack on issue 30). A silent client is
/// dropped sooner, and more handshakes fit; connection floods beyond this
/// are a front proxy's to limit, per address.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
pub const HANDSHAKES_PER_WORKER: usize = 4096;

/// A listener's certificate, flattened into both services' settings.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate chain the listener presents (leaf first); with
    /// TLS_KEY, the listener speaks HTTPS only (TLS 1.2+, ALPN h2 and
    /// http/1.1). Unset, plain HTTP.
    #[arg(long, env = "TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of TLS_CERT (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// A certificate chain and its key, as read from two PEM files.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// `what` names the settings in errors (`TLS_CERT/TLS_KEY`).
    pub fn read(cert: &Path, key: &Path, what: &str) -> io::Result<Self> {
        let chain = certificates(cert, what)?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| invalid(format!("{what}: no private key in {}: {e}", key.display())))?;
        Ok(Self { chain, key })
    }
}

impl TlsArgs {
    /// The listener's TLS, if TLS_CERT and TLS_KEY are set; callers with
    /// a certificate from `client_ca` only, if it is given (mutual TLS).
    pub fn server_config(&self, client_ca: Option<&Path>) -> io::Result<Option<ServerConfig>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return match client_ca {
                Some(_) => Err(invalid("CLIENT_CA needs TLS_CERT and TLS_KEY".into())),
                None => Ok(None),
            };
        };
        let identity = Identity::read(cert, key, "TLS_CERT/TLS_KEY")?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let roots = Arc::new(roots(ca, "CLIENT_CA")?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| invalid(format!("CLIENT_CA {}: {e}", ca.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(identity.chain, identity.key)
            .map_err(|e| invalid(format!("TLS_CERT/TLS_KEY: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(config))
    }
}

/// A client that trusts `ca`'s certificates (else the system's roots) and
/// presents `identity` if asked, speaking HTTP/1.1 only: one request per
/// connection at a time keeps a pool of connections, as plain HTTP does.
pub fn client_config(ca: Option<&Path>, identity: Option<Identity>) -> io::Result<ClientConfig> {
    let roots = match ca {
        Some(ca) => roots(ca, "PAYMENT_CA")?,
        None => system_roots(),
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => builder
            .with_client_auth_cert(identity.chain, identity.key)
            .map_err(|e| invalid(format!("PAYMENT_CLIENT_CERT/PAYMENT_CLIENT_KEY: {e}")))?,
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path, what: &str) -> io::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(format!("{what}: {}: {e}", path.display())))?;
    if chain.is_empty() {
        return Err(invalid(format!(
            "{what}: no certificate in {}",
            path.display()
        )));
    }
    Ok(chain)
}

fn roots(path: &Path, what: &str) -> io::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, what)? {
        roots
            .add(cert)
            .map_err(|e| invalid(format!("{what}: {}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// The system's trusted roots, for a payment-service with a public
/// certificate; those that do not parse are skipped, as browsers do.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "a system root certificate could not be read");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
