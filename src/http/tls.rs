//! HTTPS (optional): `http.tls_cert` and `http.tls_key` PEM files, served with rustls and its
//! `ring` provider (no OpenSSL; it cross-compiles to armv7). The certificate is held behind a
//! resolver so that SIGHUP can swap in a renewed one without a restart; a renewal that cannot
//! be read is logged and the running certificate stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Kind, Result};

/// The certificate in use, and where it came from.
#[derive(Debug)]
pub struct Certs {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>> {
    let bad = |what: &Path, e: &dyn std::fmt::Display| {
        Error::new(Kind::Config, format!("{}: {e}", what.display()))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| bad(cert_path, &e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(cert_path, &e))?;
    if chain.is_empty() {
        return Err(bad(cert_path, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| bad(key_path, &e))?;
    let signing = provider::sign::any_supported_type(&key).map_err(|e| bad(key_path, &e))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| {
        bad(
            key_path,
            &format!("does not belong to the certificate: {e}"),
        )
    })?;
    Ok(Arc::new(ck))
}

impl Certs {
    pub fn open(cert_path: &Path, key_path: &Path) -> Result<Arc<Certs>> {
        Ok(Arc::new(Certs {
            current: RwLock::new(load(cert_path, key_path)?),
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
        }))
    }

    /// Reads the files again (SIGHUP).
    pub fn reload(&self) {
        match load(&self.cert_path, &self.key_path) {
            Ok(ck) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = ck;
                log::info!("tls: certificate {} reloaded", self.cert_path.display());
            }
            Err(e) => log::error!("tls: {e}; the running certificate stays"),
        }
    }

    /// The rustls server config that serves from this.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig> {
        // rustls 0.23.48 deprecates the ring provider for lacking post-quantum key exchange;
        // its alternative, aws-lc-rs, does not cross-build to armv7 with our toolchain. Classic
        // ECDHE is what every browser on a LAN negotiates today.
        #[allow(deprecated)]
        let p = provider::default_provider();
        let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(p))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal(format!("tls: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(c)
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}
