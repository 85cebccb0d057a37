//! Database connections of the drill engine (set-up, drain-flag rollback,
//! verification, the controllers' audit log): tokio-postgres, over rustls
//! when the URL asks for TLS.
//!
//! tokio-postgres knows `sslmode` `disable`, `prefer` and `require` only,
//! and refuses libpq's `sslrootcert`, `sslcert` and `sslkey`, which the URLs
//! of CockroachDB Cloud carry (`sslmode=verify-full&sslrootcert=...`). So
//! [`connect`] takes those four parameters out of the URL, gives the rest
//! to tokio-postgres, and builds the TLS configuration itself:
//!
//! - no `sslmode`, `disable`, `allow`, `prefer`: no TLS (the local
//!   deployment's PostgreSQL);
//! - `require`, `verify-ca`, `verify-full`: TLS, the server's certificate
//!   checked against `sslrootcert` (a PEM bundle; without it the public web
//!   PKI roots) and its host name always checked: stricter than libpq's
//!   `require` and `verify-ca`, never weaker;
//! - `sslcert` with `sslkey`: a client certificate (PEM; the key PKCS#8,
//!   PKCS#1 or SEC1).
//!
//! Errors name the URL's host, port and database, never its password.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_postgres::config::{Host, SslMode};

/// Opens a connection (its driver runs on a task of its own) and returns
/// the client.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let target = DatabaseUrl::parse(url)?;
    let described = target.describe();
    match target.tls()? {
        None => {
            let (client, connection) = target
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .with_context(|| format!("cannot connect to the database at {described}"))?;
            tokio::spawn(connection);
            Ok(client)
        }
        Some(tls) => {
            let (client, connection) = target
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                .await
                .with_context(|| format!("cannot connect to the database at {described}"))?;
            tokio::spawn(connection);
            Ok(client)
        }
    }
}

/// A database URL split into what tokio-postgres reads and the libpq TLS
/// parameters it does not.
#[derive(Debug)]
pub struct DatabaseUrl {
    pub config: tokio_postgres::Config,
    pub ssl_mode: String,
    pub root_cert: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let mut parsed = url::Url::parse(url).context("the database URL is not a URL")?;
        let mut ssl_mode = String::from("prefer");
        let (mut root_cert, mut client_cert, mut client_key) = (None, None, None);
        let mut kept: Vec<(String, String)> = Vec::new();
        for (key, value) in parsed.query_pairs() {
            let value = value.into_owned();
            match key.as_ref() {
                "sslmode" => ssl_mode = value,
                "sslrootcert" => root_cert = Some(value),
                "sslcert" => client_cert = Some(value),
                "sslkey" => client_key = Some(value),
                _ => kept.push((key.into_owned(), value)),
            }
        }
        if !matches!(
            ssl_mode.as_str(),
            "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full"
        ) {
            bail!("the database URL's sslmode={ssl_mode} is not a libpq sslmode");
        }
        if client_cert.is_some() != client_key.is_some() {
            bail!("the database URL names only one of sslcert and sslkey: set both or neither");
        }
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
        let mut config: tokio_postgres::Config = parsed
            .as_str()
            .parse()
            .context("tokio-postgres cannot read the database URL")?;
        let wants_tls = matches!(ssl_mode.as_str(), "require" | "verify-ca" | "verify-full");
        config.ssl_mode(if wants_tls {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        Ok(Self {
            config,
            ssl_mode,
            root_cert,
            client_cert,
            client_key,
        })
    }

    /// `host:port/database (sslmode=...)`, without credentials.
    pub fn describe(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let database = self.config.get_dbname().unwrap_or_default();
        format!("{host}:{port}/{database} (sslmode={})", self.ssl_mode)
    }

    /// The rustls configuration, or `None` when the URL asks for no TLS.
    pub fn tls(&self) -> anyhow::Result<Option<rustls::ClientConfig>> {
        if self.config.get_ssl_mode() == SslMode::Disable {
            return Ok(None);
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            Some(file) => {
                for certificate in read_certificates(file, "sslrootcert")? {
                    roots
                        .add(certificate)
                        .with_context(|| format!("sslrootcert {file}: unusable certificate"))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("rustls protocol versions")?
            .with_root_certificates(roots);
        let config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certificates(cert, "sslcert")?;
                let key = PrivateKeyDer::from_pem_file(Path::new(key))
                    .with_context(|| format!("sslkey {key}: no PEM private key"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .context("sslcert and sslkey do not make a client certificate")?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Some(config))
    }
}

fn read_certificates(file: &str, setting: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(Path::new(file))
        .with_context(|| format!("{setting} {file}: cannot read it"))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{setting} {file}: not a PEM certificate file"))?;
    if certificates.is_empty() {
        bail!("{setting} {file}: no certificate in it");
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_parameters_are_taken_out_and_the_rest_kept() {
        let url = DatabaseUrl::parse(
            "postgres://ledger:secret@db.example.com:26257/ledger?sslmode=verify-full&sslrootcert=/ca.pem&application_name=chaos",
        )
        .unwrap();
        assert_eq!(url.ssl_mode, "verify-full");
        assert_eq!(url.root_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(url.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(url.config.get_application_name(), Some("chaos"));
        assert_eq!(
            url.describe(),
            "db.example.com:26257/ledger (sslmode=verify-full)"
        );
        assert!(!url.describe().contains("secret"));
    }

    #[test]
    fn no_sslmode_means_no_tls_as_before() {
        let url = DatabaseUrl::parse("postgres://postgres@127.0.0.1:5432/postgres").unwrap();
        assert_eq!(url.config.get_ssl_mode(), SslMode::Disable);
        assert!(url.tls().unwrap().is_none());
    }

    #[test]
    fn half_a_client_certificate_is_refused() {
        let error = DatabaseUrl::parse("postgres://h/db?sslmode=require&sslcert=/c.pem")
            .unwrap_err()
            .to_string();
        assert!(error.contains("sslkey"), "{error}");
    }
}
