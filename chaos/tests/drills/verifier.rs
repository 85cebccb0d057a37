//! The verifier against ledgers corrupted on purpose: a real PostgreSQL
//! with the service's own schema, a ledger written as the service writes it
//! (transfer row and both balances in one transaction) with a history that
//! matches it, then one corruption per test. The clean ledger passes every
//! check; each corruption fails the check that guards against it.

use std::collections::BTreeMap;
use std::path::Path;

use chaos::load::{Operation, Outcome, TransferSent};
use chaos::model::Totals;
use chaos::verify::{self, checks::ledger_checks, Reconciliation};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

const OPENING: i64 = 1_000;

/// A ledger of four accounts and the history that produced it: three
/// acknowledged transfers, an unknown one that was applied and one that was
/// not, a failed one (absent) and two reads.
struct Fixture {
    /// The server, to drop the database at the end.
    server: String,
    url: String,
    client: Client,
    accounts: Vec<Uuid>,
    history: Vec<Operation>,
}

/// A database of its own on the test server (`TEST_DATABASE_URL`), with
/// the service's schema (its migrations, in order).
pub struct ScratchLedger {
    /// The server, to drop the database at the end.
    pub server: String,
    pub url: String,
    pub client: Client,
}

impl ScratchLedger {
    /// A database named `<prefix>_<random>`.
    pub async fn create(prefix: &str) -> Self {
        let server = std::env::var("TEST_DATABASE_URL")
            .or_else(|_| std::env::var("DATABASE_URL"))
            .expect(
                "TEST_DATABASE_URL must point at a PostgreSQL server (scripts/test.sh sets it)",
            );
        let name = format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..12]);
        let (admin, connection) = tokio_postgres::connect(&server, NoTls).await.unwrap();
        tokio::spawn(connection);
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        let url = chaos::deployment::replace_database(&server, &name);
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../service/migrations");
        let mut files: Vec<_> = std::fs::read_dir(migrations)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        for file in files {
            client
                .batch_execute(&std::fs::read_to_string(file).unwrap())
                .await
                .unwrap();
        }
        Self {
            server,
            url,
            client,
        }
    }

    /// Drops the database at `url` on `server` (shared with other tests).
    pub async fn drop_database(server: &str, url: &str) {
        let name = url.rsplit('/').next().unwrap().to_owned();
        let (admin, connection) = tokio_postgres::connect(server, NoTls).await.unwrap();
        tokio::spawn(connection);
        admin
            .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
            .await
            .unwrap();
    }
}

impl Fixture {
    async fn new() -> Self {
        let ScratchLedger {
            server,
            url,
            client,
        } = ScratchLedger::create("verify").await;
        let accounts: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        for (n, account) in accounts.iter().enumerate() {
            client
                .batch_execute(&format!(
                    "INSERT INTO accounts (id, owner, balance, home_region) \
                     VALUES ('{account}', 'verify-{n}', {OPENING}, 'us-east-1')"
                ))
                .await
                .unwrap();
        }
        let mut fixture = Self {
            server: server.clone(),
            url,
            client,
            accounts,
            history: Vec::new(),
        };
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| fixture.accounts[i]);
        for (key, from, to) in [("ack-1", a, b), ("ack-2", b, c), ("ack-3", c, d)] {
            let id = fixture.apply(key, from, to, 1).await;
            fixture.write(key, from, to, Outcome::Ok, Some(id));
        }
        let _ = fixture.apply("unknown-applied", d, a, 1).await;
        fixture.write("unknown-applied", d, a, Outcome::Unknown, None);
        fixture.write("unknown-absent", a, c, Outcome::Unknown, None);
        fixture.write("failed", b, d, Outcome::Fail, None);
        fixture.read(a, OPENING);
        fixture.read(c, OPENING + 1);
        fixture
    }

    /// Writes a transfer as the service does; returns its id.
    async fn apply(&self, key: &str, from: Uuid, to: Uuid, amount: i64) -> Uuid {
        let id = Uuid::new_v4();
        self.client
            .batch_execute(&format!(
                "BEGIN; \
                 INSERT INTO transfers (id, from_account, to_account, amount, idempotency_key, served_by_region) \
                 VALUES ('{id}', '{from}', '{to}', {amount}, '{key}', 'us-east-1'); \
                 UPDATE accounts SET balance = balance - {amount} WHERE id = '{from}'; \
                 UPDATE accounts SET balance = balance + {amount} WHERE id = '{to}'; \
                 COMMIT;"
            ))
            .await
            .unwrap();
        id
    }

    fn write(&mut self, key: &str, from: Uuid, to: Uuid, outcome: Outcome, id: Option<Uuid>) {
        self.history.push(Operation {
            kind: "write".to_owned(),
            key: Some(key.to_owned()),
            outcome,
            transfer: Some(TransferSent {
                from,
                to,
                amount: 1,
            }),
            transfer_id: id,
            ..operation()
        });
    }

    fn read(&mut self, account: Uuid, balance: i64) {
        self.history.push(Operation {
            account: Some(account),
            balance: Some(balance),
            ..operation()
        });
    }

    /// Drops the fixture's database (the server is shared).
    async fn finish(self) {
        drop(self.client);
        ScratchLedger::drop_database(&self.server, &self.url).await;
    }

    async fn sql(&self, statements: &str) {
        self.client.batch_execute(statements).await.unwrap();
    }

    /// Runs the verifier; returns its counts, findings and the names of
    /// the checks that failed.
    async fn verify(&self) -> (Totals, Reconciliation, Vec<String>) {
        let opening: BTreeMap<Uuid, i64> = self.accounts.iter().map(|a| (*a, OPENING)).collect();
        let mut totals = Totals {
            total_balance_before: OPENING * opening.len() as i64,
            ..Totals::default()
        };
        let reconciliation = verify::check_ledger(&self.url, &self.history, &opening, &mut totals)
            .await
            .unwrap();
        let failed = ledger_checks(&totals, 0)
            .into_iter()
            .filter(|check| !check.passed)
            .map(|check| check.name)
            .collect();
        (totals, reconciliation, failed)
    }
}

fn operation() -> Operation {
    Operation {
        client_region: "us-east-1".to_owned(),
        kind: "read".to_owned(),
        key: None,
        intended_s: 1.0,
        latency_ms: 5.0,
        outcome: Outcome::Ok,
        served_by: Some("us-east-1".to_owned()),
        connection: chaos::load::Connection::Pooled,
        attempts: 1,
        first_error: None,
        transfer: None,
        account: None,
        transfer_id: None,
        balance: None,
    }
}

fn run<F: std::future::Future>(test: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(test)
}

/// Asserts that exactly the checks named by `expected` (substrings) failed.
fn assert_failed(failed: &[String], expected: &[&str], reconciliation: &Reconciliation) {
    for name in expected {
        assert!(
            failed.iter().any(|f| f.contains(name)),
            "check {name:?} did not fail; failed: {failed:?}; findings: {:?}",
            reconciliation.findings
        );
    }
    assert_eq!(
        failed.len(),
        expected.len(),
        "other checks failed too: {failed:?}; findings: {:?}",
        reconciliation.findings
    );
}

const UNRECONCILED: &str = "accounts that do not reconcile";

#[test]
fn a_clean_ledger_reconciles_every_account() {
    run(async {
        let fixture = Fixture::new().await;
        let (totals, reconciliation, failed) = fixture.verify().await;
        assert!(
            failed.is_empty(),
            "{failed:?}: {:?}",
            reconciliation.findings
        );
        assert!(reconciliation.findings.is_empty());
        assert_eq!(totals.accounts_checked, 4);
        assert_eq!(totals.writes_acknowledged, 3);
        assert_eq!(
            (
                totals.unknown_resolved_committed,
                totals.unknown_resolved_absent
            ),
            (1, 1)
        );
        assert!(reconciliation.applied.contains("unknown-applied"));
        assert!(!reconciliation.applied.contains("unknown-absent"));
        assert_eq!(totals.total_balance_after, 4 * OPENING);
        fixture.finish().await;
    });
}

#[test]
fn a_transfer_applied_twice_behind_one_row_breaks_its_accounts() {
    run(async {
        let fixture = Fixture::new().await;
        let [a, b] = [fixture.accounts[0], fixture.accounts[1]];
        // The balances move a second time; the unique key has nothing to say.
        fixture
            .sql(&format!(
                "UPDATE accounts SET balance = balance - 1 WHERE id = '{a}'; \
                 UPDATE accounts SET balance = balance + 1 WHERE id = '{b}';"
            ))
            .await;
        let (totals, reconciliation, failed) = fixture.verify().await;
        assert_eq!(totals.accounts_unreconciled, 2);
        assert_eq!(
            totals.total_balance_after,
            4 * OPENING,
            "money is conserved"
        );
        assert_failed(&failed, &[UNRECONCILED], &reconciliation);
        fixture.finish().await;
    });
}

#[test]
fn an_unknown_write_counts_only_when_found_applied() {
    run(async {
        let fixture = Fixture::new().await;
        // Its row goes, its effect on the balances stays: the verifier now
        // resolves it absent, so the effect is unexplained.
        fixture
            .sql("DELETE FROM transfers WHERE idempotency_key = 'unknown-applied'")
            .await;
        let (totals, reconciliation, failed) = fixture.verify().await;
        assert_eq!(totals.unknown_resolved_absent, 2);
        assert_eq!(totals.accounts_unreconciled, 2);
        // The two accounts it touched, not any two.
        for account in [fixture.accounts[3], fixture.accounts[0]] {
            assert!(
                reconciliation
                    .findings
                    .iter()
                    .any(|f| f.starts_with(&format!("account {account}"))),
                "{account} not reported: {:?}",
                reconciliation.findings
            );
        }
        assert_failed(&failed, &[UNRECONCILED], &reconciliation);
        fixture.finish().await;
    });
}

#[test]
fn a_lost_acknowledged_write_is_found() {
    run(async {
        let fixture = Fixture::new().await;
        let [a, b] = [fixture.accounts[0], fixture.accounts[1]];
        // Lost whole: row and effect.
        fixture
            .sql(&format!(
                "BEGIN; DELETE FROM transfers WHERE idempotency_key = 'ack-1'; \
                 UPDATE accounts SET balance = balance + 1 WHERE id = '{a}'; \
                 UPDATE accounts SET balance = balance - 1 WHERE id = '{b}'; COMMIT;"
            ))
            .await;
        let (totals, reconciliation, failed) = fixture.verify().await;
        assert_eq!(totals.writes_lost, 1);
        assert_failed(
            &failed,
            &["acknowledged writes lost", UNRECONCILED],
            &reconciliation,
        );
        fixture.finish().await;
    });
}

#[test]
fn a_duplicate_under_one_key_is_found_once_the_unique_key_is_gone() {
    run(async {
        let fixture = Fixture::new().await;
        let [b, c] = [fixture.accounts[1], fixture.accounts[2]];
        fixture
            .sql(
                "ALTER TABLE transfers DROP CONSTRAINT IF EXISTS transfers_idempotency_key_key; \
                 DROP INDEX transfers_principal_idempotency_key;",
            )
            .await;
        fixture.apply("ack-2", b, c, 1).await;
        let (totals, reconciliation, failed) = fixture.verify().await;
        assert_eq!(totals.writes_duplicated, 1);
        assert_failed(
            &failed,
            &["more than once or not as sent", UNRECONCILED],
            &reconciliation,
        );
        fixture.finish().await;
    });
}

#[test]
fn a_write_held_otherwise_than_sent_or_acknowledged_is_found() {
    run(async {
        let fixture = Fixture::new().await;
        // One amount changed (balances kept), one row re-keyed to another id.
        fixture
            .sql(
                "UPDATE transfers SET amount = 2 WHERE idempotency_key = 'ack-1'; \
                 UPDATE transfers SET id = gen_random_uuid() WHERE idempotency_key = 'ack-3';",
            )
            .await;
        let (totals, reconciliation, failed) = fixture.verify().await;
        assert_eq!(totals.writes_altered, 2);
        assert_failed(&failed, &["more than once or not as sent"], &reconciliation);
        fixture.finish().await;
    });
}

#[test]
fn a_failed_write_in_the_ledger_is_found() {
    run(async {
        let fixture = Fixture::new().await;
        let [b, d] = [fixture.accounts[1], fixture.accounts[3]];
        fixture.apply("failed", b, d, 1).await;
        let (totals, reconciliation, failed) = fixture.verify().await;
        assert_eq!(totals.failed_writes_present, 1);
        assert_failed(
            &failed,
            &["failed writes present", UNRECONCILED],
            &reconciliation,
        );
        fixture.finish().await;
    });
}

#[test]
fn a_transfer_no_client_sent_is_found() {
    run(async {
        let fixture = Fixture::new().await;
        let [a, c] = [fixture.accounts[0], fixture.accounts[2]];
        // As a retry would look if the service re-applied it under a key of
        // its own.
        fixture.apply("ack-1-again", a, c, 1).await;
        let (totals, reconciliation, failed) = fixture.verify().await;
        assert_eq!(totals.transfers_not_sent, 1);
        assert_failed(&failed, &["no client sent", UNRECONCILED], &reconciliation);
        fixture.finish().await;
    });
}

#[test]
fn a_negative_balance_in_the_ledger_or_in_a_read_is_found() {
    run(async {
        let fixture = Fixture::new().await;
        let [a, b] = [fixture.accounts[0], fixture.accounts[1]];
        // Money moved past zero: only possible without the CHECK constraint.
        fixture
            .sql(&format!(
                "ALTER TABLE accounts DROP CONSTRAINT accounts_balance_check; \
                 UPDATE accounts SET balance = balance - {OPENING} - 5 WHERE id = '{a}'; \
                 UPDATE accounts SET balance = balance + {OPENING} + 5 WHERE id = '{b}';"
            ))
            .await;
        let (totals, reconciliation, failed) = fixture.verify().await;
        assert_eq!(totals.min_balance_after, -5);
        assert_failed(
            &failed,
            &["no negative balance", UNRECONCILED],
            &reconciliation,
        );

        fixture.finish().await;

        // A clean ledger, but a client was answered a negative balance.
        let mut fixture = Fixture::new().await;
        let a = fixture.accounts[0];
        fixture.read(a, -1);
        let (totals, reconciliation, failed) = fixture.verify().await;
        assert_eq!(totals.negative_balances_read, 1);
        assert_failed(&failed, &["no negative balance"], &reconciliation);
        fixture.finish().await;
    });
}
