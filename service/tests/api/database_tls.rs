//! The service's database client over TLS, as CockroachDB Cloud requires
//! (`sslmode=verify-full` with `sslrootcert`, client certificates optional),
//! against a PostgreSQL of the test's own that accepts only TLS.

use crate::helpers::test_settings;
use crate::tls_postgres::{TlsPostgres, CLIENT_CERT_ROLE, PASSWORD};
use service::db;

/// Connects through the service's own pool and says whether the session
/// is encrypted, as the server sees it.
async fn session_uses_tls(url: &str) -> Result<bool, String> {
    let settings = test_settings("us-east-1", url);
    let pool = db::connect(&settings, 1, db::pool::opened_counter()).map_err(|e| e.to_string())?;
    let mut connection = pool.acquire().await.map_err(|e| format!("{e:#}"))?;
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut **connection)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ssl)
}

/// `service migrate`'s path: the error an operator reads.
async fn migrate_error(url: &str) -> String {
    let settings = test_settings("us-east-1", url);
    let error = db::migrate_database(&settings)
        .await
        .expect_err("the connection must be refused");
    let message = format!("{error:#}");
    eprintln!("refused as expected: {message}");
    message
}

#[tokio::test]
async fn verify_full_with_the_right_ca_connects_over_tls_and_migrates() {
    let server = TlsPostgres::start();
    let url = server.verify_full_url(&server.ca_file);
    assert_eq!(session_uses_tls(&url).await, Ok(true));
    let settings = test_settings("us-east-1", &url);
    db::migrate_database(&settings)
        .await
        .expect("migrations over TLS");
}

#[tokio::test]
async fn verify_full_with_another_ca_fails_naming_the_host_but_not_the_password() {
    let server = TlsPostgres::start();
    let message = migrate_error(&server.verify_full_url(&server.other_ca_file)).await;
    assert!(
        message.contains(&format!("localhost:{}", server.port)),
        "{message}"
    );
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
}

#[tokio::test]
async fn verify_full_with_a_host_the_certificate_does_not_name_fails_naming_the_host() {
    let server = TlsPostgres::start();
    // The certificate names `localhost`; the same server by its address
    // is not that name.
    let url = server.url(
        "postgres",
        "127.0.0.1",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            server.ca_file.display()
        ),
    );
    let message = migrate_error(&url).await;
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port)),
        "{message}"
    );
    assert!(message.contains("not valid for name"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
}

#[tokio::test]
async fn a_role_that_needs_a_client_certificate_connects_with_sslcert_and_sslkey_only() {
    let server = TlsPostgres::start();
    let without = server.url(
        CLIENT_CERT_ROLE,
        "localhost",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            server.ca_file.display()
        ),
    );
    let refused = session_uses_tls(&without)
        .await
        .expect_err("no client certificate");
    assert!(refused.contains("certificate"), "{refused}");
    assert!(!refused.contains(PASSWORD), "{refused}");

    let with = format!(
        "{without}&sslcert={}&sslkey={}",
        server.client_cert_file.display(),
        server.client_key_file.display()
    );
    assert_eq!(session_uses_tls(&with).await, Ok(true));
}
