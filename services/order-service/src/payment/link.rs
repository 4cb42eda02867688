//! How order-service reaches payment-service: plain HTTP, or TLS as its
//! URL's `https` says, trusting PAYMENT_CA (else the system's roots) and,
//! for mutual TLS, presenting PAYMENT_CLIENT_CERT. Read once at start-up,
//! so a certificate that cannot be used stops the start, not an order.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use common::tls::{self, Identity, rustls::ClientConfig};

#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "TLS to payment-service")]
pub struct PaymentTlsArgs {
    /// PEM certificates of the CA that signs payment-service's certificate,
    /// for an `https` PAYMENT_SERVICE_URL; unset, the system's roots.
    #[arg(long, env = "PAYMENT_CA")]
    pub payment_ca: Option<PathBuf>,

    /// PEM certificate chain presented to payment-service (mutual TLS: its
    /// CLIENT_CA must have signed it). The bearer key is still sent.
    #[arg(long, env = "PAYMENT_CLIENT_CERT", requires = "payment_client_key")]
    pub payment_client_cert: Option<PathBuf>,

    /// PEM private key of PAYMENT_CLIENT_CERT.
    #[arg(long, env = "PAYMENT_CLIENT_KEY", requires = "payment_client_cert")]
    pub payment_client_key: Option<PathBuf>,
}

/// Makes the HTTP clients that talk to payment-service (one per worker:
/// awc's client is per thread); the TLS settings are shared.
#[derive(Clone, Default)]
pub struct PaymentLink {
    tls: Option<Arc<ClientConfig>>,
}

impl PaymentLink {
    /// Refuses TLS settings with a plain `http` URL: they would be silently
    /// unused, and the key and orders sent in clear.
    pub fn new(url: &str, args: &PaymentTlsArgs) -> io::Result<Self> {
        let https = url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        let settings = args.payment_ca.is_some() || args.payment_client_cert.is_some();
        if !https {
            return match settings {
                true => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "PAYMENT_CA or PAYMENT_CLIENT_CERT is set, but PAYMENT_SERVICE_URL ({url}) is not https"
                    ),
                )),
                false => Ok(Self::default()),
            };
        }
        let identity = match (&args.payment_client_cert, &args.payment_client_key) {
            (Some(cert), Some(key)) => Some(Identity::read(
                cert,
                key,
                "PAYMENT_CLIENT_CERT/PAYMENT_CLIENT_KEY",
            )?),
            _ => None,
        };
        let config = tls::client_config(args.payment_ca.as_deref(), identity)?;
        Ok(Self {
            tls: Some(Arc::new(config)),
        })
    }

    /// One worker's client; with no `timeout`, the caller bounds each
    /// request itself.
    pub fn client(&self, timeout: Option<Duration>) -> awc::Client {
        let connector = awc::Connector::new();
        let connector = match &self.tls {
            Some(tls) => connector.rustls_0_23(tls.clone()),
            None => connector,
        };
        let builder = awc::Client::builder().connector(connector);
        match timeout {
            Some(timeout) => builder.timeout(timeout).finish(),
            None => builder.disable_timeout().finish(),
        }
    }
}
