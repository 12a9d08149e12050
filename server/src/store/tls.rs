//! TLS to PostgreSQL. A database URL with `sslmode=require` makes every
//! connection (the pool's and the listener's) TLS through rustls, and the
//! database's certificate is verified, always: against the system's
//! trusted roots, and the CA certificates of `--database-ca FILE` (PEM)
//! for a private CA or a cloud provider's bundle. That is stricter than
//! libpq's `require`, which encrypts without verifying: a connection to
//! an impostor is refused, not encrypted to it. Without `sslmode=require`
//! the connection is plain, for a database on a Unix socket or a private
//! network (docs/OPERATIONS.md).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;

/// The TLS connector `config` asks for (None: plain), trusting the system's
/// roots and the certificates in `ca`.
pub(crate) fn connector(
    config: &tokio_postgres::Config,
    ca: Option<&Path>,
) -> Result<Option<MakeRustlsConnect>, StoreError> {
    if config.get_ssl_mode() != SslMode::Require {
        if let Some(ca) = ca {
            return Err(StoreError::Config(format!(
                "--database-ca {} is given, but the database URL does not ask for TLS: add sslmode=require",
                ca.display()
            )));
        }
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system roots are no reason to stop: --database-ca may be
    // all that is needed.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(ca) = ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| StoreError::Config(format!("--database-ca {}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(StoreError::Config(format!(
                "--database-ca {}: no certificate in it (PEM expected)",
                ca.display()
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| StoreError::Config(format!("--database-ca {}: {e}", ca.display())))?;
        }
    }
    if roots.is_empty() {
        return Err(StoreError::Config(
            "sslmode=require, but no CA to verify the database with: give --database-ca FILE"
                .into(),
        ));
    }
    // ring, not aws-lc-rs (rustls's default, which wants cmake and a C
    // toolchain at build time). rustls deprecates ring's provider for its
    // lack of post-quantum key exchange, which PostgreSQL servers do not
    // offer yet either.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(tls)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> tokio_postgres::Config {
        url.parse().unwrap()
    }

    #[test]
    fn tls_only_when_the_url_asks_and_a_ca_only_with_it() {
        let plain = config("postgres://u@db.internal/udpchat");
        assert!(connector(&plain, None).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let e = connector(&plain, Some(&ca)).err().unwrap();
        assert!(e.to_string().contains("add sslmode=require"), "{e}");

        let tls = config("postgres://u@db.internal/udpchat?sslmode=require");
        let e = connector(&tls, Some(&ca)).err().unwrap();
        assert!(e.to_string().contains("no certificate in it"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = connector(&tls, Some(&missing)).err().unwrap();
        assert!(e.to_string().contains("missing.pem: I/O error"), "{e}");
    }
}
