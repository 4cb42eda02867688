//! A private PKI for the TLS tests, made with rcgen into a temporary
//! directory: a CA, server certificates for both services (localhost and
//! 127.0.0.1), order-service's client certificate, and the bad ones a
//! caller might present (expired, from another CA).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::tls::{self, Identity};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};

/// A PEM certificate and its key, as files.
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Pki {
    dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub order: Pair,
    pub payment: Pair,
    pub client: Pair,
    pub expired_client: Pair,
    /// Signed by a CA nobody trusts.
    pub stranger: Pair,
}

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// A leaf for `names`, for servers or for clients.
    fn leaf(&self, dir: &Path, file: &str, names: &[&str], usage: Usage) -> Pair {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, file);
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client | Usage::ExpiredClient => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if let Usage::ExpiredClient = usage {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let pair = Pair {
            cert: dir.join(format!("{file}.pem")),
            key: dir.join(format!("{file}-key.pem")),
        };
        std::fs::write(&pair.cert, cert.pem()).unwrap();
        std::fs::write(&pair.key, key.serialize_pem()).unwrap();
        pair
    }
}

enum Usage {
    Server,
    Client,
    ExpiredClient,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let ca = Ca::new("reliable-orders test CA");
        let ca_path = path.join("ca.pem");
        std::fs::write(&ca_path, ca.issuer.pem()).unwrap();
        let servers = ["localhost", "127.0.0.1"];
        let stranger = Ca::new("someone else's CA");
        Self {
            ca: ca_path,
            order: ca.leaf(path, "order", &servers, Usage::Server),
            payment: ca.leaf(path, "payment", &servers, Usage::Server),
            client: ca.leaf(path, "order-client", &["order-service"], Usage::Client),
            expired_client: ca.leaf(path, "expired", &["order-service"], Usage::ExpiredClient),
            stranger: stranger.leaf(path, "stranger", &["order-service"], Usage::Client),
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client that trusts this CA and presents `identity`, if any.
    pub fn client(&self, identity: Option<&Pair>, alpn: &[&[u8]]) -> awc::Client {
        let identity =
            identity.map(|pair| Identity::read(&pair.cert, &pair.key, "test identity").unwrap());
        let mut config = tls::client_config(Some(&self.ca), identity).unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        awc::Client::builder()
            .connector(awc::Connector::new().rustls_0_23(Arc::new(config)))
            .timeout(std::time::Duration::from_secs(10))
            .finish()
    }
}
