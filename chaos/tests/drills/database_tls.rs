//! The drill engine's database client (tokio-postgres over rustls) against
//! the service tests' PostgreSQL that accepts only TLS, with a CA the test
//! makes: `sslmode=verify-full` with `sslrootcert`, client certificates.

#[path = "../../../service/tests/api/tls_postgres.rs"]
mod tls_postgres;

use tls_postgres::{TlsPostgres, CLIENT_CERT_ROLE, PASSWORD};

async fn session_uses_tls(url: &str) -> anyhow::Result<bool> {
    let client = chaos::database::connect(url).await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

async fn refusal(url: &str) -> String {
    let error = session_uses_tls(url)
        .await
        .expect_err("the connection must be refused");
    let message = format!("{error:#}");
    eprintln!("refused as expected: {message}");
    assert!(!message.contains(PASSWORD), "{message}");
    message
}

#[tokio::test]
async fn verify_full_connects_with_the_right_ca_only_and_names_the_host_when_refused() {
    let server = TlsPostgres::start();
    assert!(session_uses_tls(&server.verify_full_url(&server.ca_file))
        .await
        .expect("connect over TLS"));

    let message = refusal(&server.verify_full_url(&server.other_ca_file)).await;
    assert!(
        message.contains(&format!("localhost:{}", server.port)),
        "{message}"
    );
    assert!(message.contains("UnknownIssuer"), "{message}");

    let by_address = server.url(
        "postgres",
        "127.0.0.1",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            server.ca_file.display()
        ),
    );
    let message = refusal(&by_address).await;
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port)),
        "{message}"
    );
    assert!(message.contains("not valid for name"), "{message}");
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
    refusal(&without).await;
    let with = format!(
        "{without}&sslcert={}&sslkey={}",
        server.client_cert_file.display(),
        server.client_key_file.display()
    );
    assert!(session_uses_tls(&with).await.expect("client certificate"));
}
