//! A PostgreSQL server of the test's own that speaks only TLS, with a
//! certificate for `localhost` signed by a CA the test makes (rcgen), a
//! second CA that signed nothing, and a client certificate for the role
//! that must present one.
//!
//! The failover controller's and the chaos crate's tests include this file
//! by path, so that every database client is tested against the same server.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The password in every URL this server hands out: authentication is
/// `trust`, so it is never checked, and a test can look for it in error
/// messages, where it must never appear.
pub const PASSWORD: &str = "pw-never-printed-7f3a";

/// The role that may connect only with a client certificate signed by the
/// test CA (`clientcert=verify-ca`).
pub const CLIENT_CERT_ROLE: &str = "mtls_client";

pub struct TlsPostgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    /// The CA that signed the server's certificate.
    pub ca_file: PathBuf,
    /// A CA that signed nothing this server presents.
    pub other_ca_file: PathBuf,
    /// A client certificate for [`CLIENT_CERT_ROLE`] and its key.
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
}

impl TlsPostgres {
    pub fn start() -> Self {
        let bin = postgres_bin();
        let dir =
            std::env::temp_dir().join(format!("ledger-tls-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("tls")).unwrap();

        let ca = TestCa::named("ledger test database CA");
        let other_ca = TestCa::named("some other CA");
        let (server_cert, server_key) = ca.sign("localhost", ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert, client_key) =
            ca.sign(CLIENT_CERT_ROLE, ExtendedKeyUsagePurpose::ClientAuth);
        let tls = dir.join("tls");
        write(&tls.join("ca.pem"), &ca.pem, 0o644);
        write(&tls.join("other-ca.pem"), &other_ca.pem, 0o644);
        write(&tls.join("server.pem"), &server_cert, 0o644);
        // PostgreSQL refuses a key that others can read.
        write(&tls.join("server.key"), &server_key, 0o600);
        write(&tls.join("client.pem"), &client_cert, 0o644);
        write(&tls.join("client.key"), &client_key, 0o600);

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        run(Command::new("chown").arg("-R").arg("postgres:").arg(&dir));
        as_postgres(
            Command::new(bin.join("initdb"))
                .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
                .arg(dir.join("data")),
        );
        // TCP only over TLS; the role CLIENT_CERT_ROLE also needs a client
        // certificate the CA signed. The Unix socket stays for set-up.
        let hba = format!(
            "local all all trust\n\
             hostssl all {CLIENT_CERT_ROLE} 127.0.0.1/32 trust clientcert=verify-ca\n\
             hostssl all all 127.0.0.1/32 trust\n"
        );
        std::fs::write(dir.join("data/pg_hba.conf"), hba).unwrap();
        let options = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c ssl=on -c ssl_cert_file={tls}/server.pem -c ssl_key_file={tls}/server.key \
             -c ssl_ca_file={tls}/ca.pem",
            dir = dir.display(),
            tls = tls.display(),
        );
        as_postgres(
            Command::new(bin.join("pg_ctl"))
                .args(["-w", "-t", "60", "-o", &options, "-l"])
                .arg(dir.join("server.log"))
                .arg("-D")
                .arg(dir.join("data"))
                .arg("start"),
        );
        as_postgres(
            Command::new(bin.join("psql"))
                .args(["-h"])
                .arg(&dir)
                .args([
                    "-p",
                    &port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                ])
                .arg(format!("CREATE ROLE {CLIENT_CERT_ROLE} LOGIN")),
        );
        Self {
            bin,
            port,
            ca_file: tls.join("ca.pem"),
            other_ca_file: tls.join("other-ca.pem"),
            client_cert_file: tls.join("client.pem"),
            client_key_file: tls.join("client.key"),
            dir,
        }
    }

    /// A URL for `host` (with the test password) and the query `params`.
    pub fn url(&self, user: &str, host: &str, params: &str) -> String {
        format!(
            "postgres://{user}:{PASSWORD}@{host}:{}/postgres?{params}",
            self.port
        )
    }

    /// `sslmode=verify-full` against `ca`, for the host name in the
    /// server's certificate.
    pub fn verify_full_url(&self, ca: &Path) -> String {
        self.url(
            "postgres",
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        )
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-m", "immediate", "-w", "stop", "-D"])
            .arg(self.dir.join("data"))
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// Two CAs meant to be told apart need two subject names: a verifier
    /// finds the issuer by name.
    fn named(common_name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let certificate = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: certificate.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate (PEM) and its PKCS#8 key (PEM) for `name`, which is
    /// both the subject's common name (PostgreSQL's user for client
    /// certificates) and its DNS name.
    fn sign(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let certificate = params.signed_by(&key, &self.issuer).expect("certificate");
        (certificate.pem(), key.serialize_pem())
    }
}

fn write(path: &Path, contents: &str, mode: u32) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn postgres_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/pg.sh installs it)")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    candidates.sort();
    candidates.pop().expect("a PostgreSQL bin directory")
}

/// Runs a command as the `postgres` user (PostgreSQL refuses root).
fn as_postgres(command: &mut Command) {
    let mut wrapped = Command::new("runuser");
    wrapped
        .args(["-u", "postgres", "--"])
        .arg(command.get_program())
        .args(command.get_args());
    run(&mut wrapped);
}

fn run(command: &mut Command) {
    let output = command.output().expect("run a command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
