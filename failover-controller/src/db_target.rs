//! Naming the database a connection failed to reach (the same as the
//! service's `db::target`), for error messages:
//! the URL's host, port and database, never its user or password.
//!
//! sqlx's connection errors say what went wrong (`invalid peer certificate:
//! UnknownIssuer`, `certificate not valid for name "10.0.0.5"`, `Connection
//! refused`) but not with which server, and an operator reading the log of
//! a pod whose database URL comes from a Secret must be able to tell which
//! host it tried. A certificate refused during the handshake arrives as an
//! I/O error, one refused before it (an unreadable `sslrootcert`, a server
//! without TLS) as a TLS error: both get the host.

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// `host:port/database` of the options, without credentials.
pub fn database_target(options: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    )
}

/// A failed connection with the server it happened with. The cause is in
/// the message rather than a `source`, because sqlx prints its inner error
/// in its own message too: a source would print it twice in a chain.
#[derive(Debug, thiserror::Error)]
#[error("database host {target} (sslmode={ssl_mode}): {cause}")]
pub struct ConnectFailure {
    target: String,
    ssl_mode: &'static str,
    cause: Box<dyn std::error::Error + Send + Sync + 'static>,
}

/// Adds the host to a TLS or I/O error of a connection attempt (the kind
/// stays the same, so callers that classify errors see no difference);
/// other errors, which come from a server that answered, pass unchanged.
pub fn name_host_on_connect_error(error: sqlx::Error, options: &PgConnectOptions) -> sqlx::Error {
    let failure = |cause| ConnectFailure {
        target: database_target(options),
        ssl_mode: ssl_mode_name(options.get_ssl_mode()),
        cause,
    };
    match error {
        sqlx::Error::Tls(source) => sqlx::Error::Tls(Box::new(failure(source))),
        sqlx::Error::Io(io) => {
            sqlx::Error::Io(std::io::Error::new(io.kind(), failure(Box::new(io))))
        }
        other => other,
    }
}

fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn the_target_names_host_port_and_database_but_no_credentials() {
        let options = PgConnectOptions::from_str(
            "postgres://ledger:hunter2@db.example.com:26257/ledger?sslmode=verify-full",
        )
        .unwrap();
        let error = name_host_on_connect_error(
            sqlx::Error::Tls("invalid peer certificate: UnknownIssuer".into()),
            &options,
        );
        let message = error.to_string();
        assert!(message.contains("db.example.com:26257/ledger"), "{message}");
        assert!(message.contains("sslmode=verify-full"), "{message}");
        assert!(message.contains("UnknownIssuer"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(!message.contains("ledger:"), "{message}");
    }
}
