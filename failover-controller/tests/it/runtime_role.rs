//! Least privilege: `migrate` grants `database_runtime_role` the rows the
//! controller works with, the audit log append-only, and no DDL or DELETE.

use std::str::FromStr;
use std::time::Duration;

use failover_controller::actions::drain_flag::{self, Fence, FlagWrite};
use failover_controller::db;
use failover_controller::lease::Lease;
use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions;

use crate::helpers::test_db;

#[tokio::test]
async fn the_runtime_role_leads_and_drains_but_cannot_rewrite_the_audit_log_or_the_schema() {
    let db = test_db().await;
    let role = format!("fc_rt_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    sqlx::query(&format!("CREATE ROLE {role} LOGIN"))
        .execute(&db.pool)
        .await
        .unwrap();
    db::grant_runtime_role(&db.pool, &role)
        .await
        .expect("grant");
    db::grant_runtime_role(&db.pool, &role)
        .await
        .expect("grant again (idempotent)");

    let url = PgConnectOptions::from_str(&db.url)
        .unwrap()
        .username(&role)
        .to_url_lossy()
        .to_string();
    let runtime = db::connect(&url, 2)
        .await
        .expect("connect as the runtime role");
    db::check_schema(&runtime)
        .await
        .expect("reads the applied migrations");
    let lease = Lease::new(
        runtime.clone(),
        "failover",
        "controller-a",
        Duration::from_secs(3),
    );
    let view = lease.try_acquire().await.expect("the lease");
    assert!(view.held);
    let fence = Fence {
        lease_name: "failover",
        holder: "controller-a",
        epoch: view.epoch,
    };
    let written = drain_flag::write(&runtime, &fence, "region-1", true, "test", "automation")
        .await
        .expect("a drain flag");
    assert_eq!(written, FlagWrite::Written);
    sqlx::query(
        "INSERT INTO failover_audit (controller_id, kind, region, name, actor, outcome) \
         VALUES ('controller-a', 'action', 'region-1', 'test', 'automation', 'ok')",
    )
    .execute(&runtime)
    .await
    .expect("append to the audit log");

    for forbidden in [
        "UPDATE failover_audit SET kind = 'forged'",
        "DELETE FROM failover_audit",
        "DELETE FROM failover_votes",
        "DELETE FROM region_state",
        "DROP TABLE failover_lease",
        "CREATE TABLE intruder (id INT)",
    ] {
        let error = sqlx::query(forbidden)
            .execute(&runtime)
            .await
            .expect_err(forbidden)
            .to_string();
        assert!(
            error.contains("permission denied") || error.contains("must be owner"),
            "{forbidden}: {error}"
        );
    }
}
