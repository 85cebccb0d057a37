//! The controller's database client over TLS (`sslmode=verify-full` with
//! `sslrootcert`, client certificates optional), against the service
//! tests' PostgreSQL that accepts only TLS, with a CA the test makes.

use std::time::Duration;

use failover_controller::db;

#[path = "../../../service/tests/api/tls_postgres.rs"]
mod tls_postgres;

use tls_postgres::{TlsPostgres, CLIENT_CERT_ROLE, PASSWORD};

/// The replica's start-up path: a lazy pool, then the schema check that
/// the start-up wait repeats.
async fn schema_check_error(url: &str) -> db::DbError {
    let pool = db::connect_lazy(url, 1, Duration::from_secs(5)).expect("a valid URL");
    db::check_schema(&pool)
        .await
        .expect_err("the connection must be refused")
}

#[tokio::test]
async fn verify_full_with_the_right_ca_migrates_and_passes_the_schema_check() {
    let server = TlsPostgres::start();
    let url = server.verify_full_url(&server.ca_file);
    // `failover-controller migrate`'s path.
    let pool = db::connect(&url, 1).await.expect("connect over TLS");
    db::migrate(&pool).await.expect("migrations over TLS");
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ssl, "the session must be encrypted");
    db::check_schema(&pool)
        .await
        .expect("schema check over TLS");
}

#[tokio::test]
async fn another_ca_or_another_host_name_is_refused_naming_the_host_not_the_password() {
    let server = TlsPostgres::start();

    let error = schema_check_error(&server.verify_full_url(&server.other_ca_file)).await;
    let message = error.to_string();
    eprintln!("refused as expected: {message}");
    assert!(
        message.contains(&format!("localhost:{}", server.port)),
        "{message}"
    );
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");
    assert_eq!(error.problem(), "database unreachable");

    let by_address = server.url(
        "postgres",
        "127.0.0.1",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            server.ca_file.display()
        ),
    );
    let error = schema_check_error(&by_address).await;
    let message = error.to_string();
    eprintln!("refused as expected: {message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port)),
        "{message}"
    );
    assert!(message.contains("not valid for name"), "{message}");
    assert!(!message.contains(PASSWORD), "{message}");

    // `failover-controller migrate` says the same.
    let message = db::connect(&by_address, 1).await.unwrap_err().to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port)),
        "{message}"
    );
    assert!(!message.contains(PASSWORD), "{message}");
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_the_url_names_one() {
    let server = TlsPostgres::start();
    let without = server.url(
        CLIENT_CERT_ROLE,
        "localhost",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            server.ca_file.display()
        ),
    );
    assert!(db::connect(&without, 1).await.is_err());
    let with = format!(
        "{without}&sslcert={}&sslkey={}",
        server.client_cert_file.display(),
        server.client_key_file.display()
    );
    let pool = db::connect(&with, 1)
        .await
        .expect("connect with a client certificate");
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(user, CLIENT_CERT_ROLE);
}
