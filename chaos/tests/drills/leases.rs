//! The lease transfer a region's death costs (chaos/src/deployment/
//! leases.rs) on a real PostgreSQL with the service's schema: while it
//! lasts, writes to the rows homed in the dead region wait, from any
//! connection, and writes to the other regions' rows do not; once the
//! leases have moved, the dead region's rows take writes at once again.

use std::time::{Duration, Instant};

use chaos::deployment::leases::hold_region_rows;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

use super::verifier::ScratchLedger;

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A write to `account` that waits at most `lock_timeout_ms` for its row
/// (0: as long as it takes); `Err` with the SQLSTATE when it gave up.
async fn write(client: &Client, account: Uuid, lock_timeout_ms: u64) -> Result<(), String> {
    client
        .batch_execute(&format!("SET lock_timeout = {lock_timeout_ms}"))
        .await
        .unwrap();
    client
        .execute(
            "UPDATE accounts SET balance = balance + 1 WHERE id = $1::text::uuid",
            &[&account.to_string()],
        )
        .await
        .map(|updated| assert_eq!(updated, 1))
        .map_err(|e| e.code().map(|c| c.code().to_owned()).unwrap_or_default())
}

#[tokio::test]
async fn a_dead_regions_rows_hold_writes_until_the_leases_move_and_no_other_row() {
    let ScratchLedger {
        server,
        url,
        client,
    } = ScratchLedger::create("leases").await;
    let mut homed = Vec::new();
    for (n, region) in ["eu-west-1", "eu-west-1", "us-east-1", "ap-southeast-1"]
        .iter()
        .enumerate()
    {
        let id = Uuid::new_v4();
        client
            .execute(
                "INSERT INTO accounts (id, owner, balance, home_region) \
                 VALUES ($1::text::uuid, $2, 100, $3)",
                &[&id.to_string(), &format!("lease-{n}"), region],
            )
            .await
            .unwrap();
        homed.push(id);
    }
    let [dead_a, dead_b, live_a, live_b] = [homed[0], homed[1], homed[2], homed[3]];

    // eu-west-1 dies: its leases take 2 s to move.
    let hold = Duration::from_secs(2);
    let died = Instant::now();
    let transfer = eu_west_dies(&url, hold).await;
    let other = connect(&url).await;
    // The live regions' rows take writes at once.
    assert_eq!(write(&other, live_a, 300).await, Ok(()));
    assert_eq!(write(&other, live_b, 300).await, Ok(()));
    // The dead region's rows do not: lock_not_available.
    assert_eq!(write(&other, dead_a, 300).await, Err("55P03".to_owned()));
    // A write that waits goes through once the leases have moved.
    assert_eq!(write(&other, dead_b, 0).await, Ok(()));
    let waited = died.elapsed();
    assert!(
        waited >= hold - Duration::from_millis(100),
        "the write went through {waited:?} after the region died, before the leases moved"
    );
    let held = transfer.await.unwrap().unwrap();
    assert_eq!(held.rows, 2);
    assert!(held.for_ >= hold, "{held:?}");
    println!(
        "lease transfer: {} rows held {:?} (locked {:?} after the death); a write waited {waited:?}",
        held.rows, held.for_, held.locked_after
    );

    // The way back: every row takes writes at once.
    for account in homed {
        assert_eq!(write(&other, account, 300).await, Ok(()));
    }
    drop((client, other));
    ScratchLedger::drop_database(&server, &url).await;
}

/// eu-west-1 dies: its rows are held for `hold` (the lease transfer, on
/// its own connection), and the test goes on 300 ms later, once the
/// transfer has asked for its locks.
async fn eu_west_dies(
    url: &str,
    hold: Duration,
) -> tokio::task::JoinHandle<anyhow::Result<chaos::deployment::leases::Held>> {
    let url = url.to_owned();
    let lease = tokio::spawn(async move { hold_region_rows(&url, "eu-west-1", hold).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    lease
}

/// Whether [`dead_region_pair`] puts the higher id first in the table.
enum HigherFirst {
    Yes,
    No,
}

/// Two accounts homed in eu-west-1, as (lower id, higher id), inserted in
/// the order given (the table's order is the order a scan locks them in).
async fn dead_region_pair(client: &Client, order: HigherFirst) -> (Uuid, Uuid) {
    let (mut low, mut high) = (Uuid::new_v4(), Uuid::new_v4());
    if low > high {
        std::mem::swap(&mut low, &mut high);
    }
    let inserted = match order {
        HigherFirst::Yes => [high, low],
        HigherFirst::No => [low, high],
    };
    for (n, id) in inserted.iter().enumerate() {
        client
            .execute(
                "INSERT INTO accounts (id, owner, balance, home_region) \
                 VALUES ($1::text::uuid, $2, 100, 'eu-west-1')",
                &[&id.to_string(), &format!("pair-{n}")],
            )
            .await
            .unwrap();
    }
    (low, high)
}

/// A transfer locks its two rows in id order; so must the lease transfer,
/// or a transfer that holds the lower of two rows homed in the dead region
/// and then asks for the higher one, which the lease transfer took first
/// (in the table's order), closes a cycle: the server's deadlock detector
/// then ends one of them after a second, and at the game day's rate it
/// ended the lease transfer, which was then not modelled at all.
#[tokio::test]
async fn the_lease_transfer_locks_in_the_order_transfers_do() {
    let ScratchLedger {
        server,
        url,
        client,
    } = ScratchLedger::create("lease-order").await;
    let (low, high) = dead_region_pair(&client, HigherFirst::Yes).await;
    // A transfer between them has locked the lower row...
    let mut payer = connect(&url).await;
    let transfer = payer.transaction().await.unwrap();
    let lock = "SELECT id FROM accounts WHERE id = $1::text::uuid FOR UPDATE";
    transfer.execute(lock, &[&low.to_string()]).await.unwrap();
    // ...when the region dies.
    let hold = Duration::from_secs(2);
    let lease = eu_west_dies(&url, hold).await;
    // The transfer takes its second row and commits: the lease transfer
    // waits behind it for the lower row and has not taken the higher one.
    let asked = Instant::now();
    transfer.execute(lock, &[&high.to_string()]).await.unwrap();
    transfer.commit().await.unwrap();
    let took = asked.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "the transfer's second row waited {took:?} behind the lease transfer"
    );
    // Then the lease transfer holds both until the leases have moved.
    let held = lease
        .await
        .unwrap()
        .expect("the lease transfer was not ended by a deadlock");
    assert_eq!(held.rows, 2);
    assert!(held.for_ >= hold, "{held:?}");
    // The way back: both rows take writes at once.
    let other = connect(&url).await;
    for account in [low, high] {
        assert_eq!(write(&other, account, 300).await, Ok(()));
    }
    drop((client, payer, other));
    ScratchLedger::drop_database(&server, &url).await;
}

/// A locker that takes the dead region's rows in the other order (none of
/// the ledger's does) can still close a cycle; the server then ends the
/// lease transfer, which locks again while its hold lasts instead of
/// leaving the transfer unmodelled.
#[tokio::test]
async fn a_lease_transfer_ended_by_a_deadlock_locks_again() {
    let ScratchLedger {
        server,
        url,
        client,
    } = ScratchLedger::create("lease-deadlock").await;
    let (low, high) = dead_region_pair(&client, HigherFirst::No).await;
    // A locker holds the higher row...
    let mut other = connect(&url).await;
    let reverse = other.transaction().await.unwrap();
    let lock = "SELECT id FROM accounts WHERE id = $1::text::uuid FOR UPDATE";
    reverse.execute(lock, &[&high.to_string()]).await.unwrap();
    // ...the lease transfer takes the lower one and waits for it...
    let hold = Duration::from_secs(3);
    let lease = eu_west_dies(&url, hold).await;
    // ...and the locker asks for the lower one: a cycle. The server ends
    // the first waiter's attempt (the lease transfer's) after its
    // deadlock_timeout, and the locker goes on.
    reverse.execute(lock, &[&low.to_string()]).await.unwrap();
    reverse.commit().await.unwrap();
    let held = lease
        .await
        .unwrap()
        .expect("the lease transfer locked again after the deadlock");
    assert_eq!(held.rows, 2);
    assert!(held.attempts >= 2, "no deadlock happened: {held:?}");
    assert!(held.for_ >= hold, "{held:?}");
    // The way back: both rows take writes at once.
    for account in [low, high] {
        assert_eq!(write(&other, account, 300).await, Ok(()));
    }
    drop((client, other));
    ScratchLedger::drop_database(&server, &url).await;
}

/// The drill applies a lease transfer by [`chaos::deployment::leases::start`]:
/// it returns once the dead region's rows are locked (writes to them then
/// wait), or with why they could not be locked, so that the drill aborts
/// instead of judging an outage it did not model.
#[tokio::test]
async fn a_lease_transfer_starts_once_its_rows_are_locked_or_says_why_not() {
    let ScratchLedger {
        server,
        url,
        client,
    } = ScratchLedger::create("lease-start").await;
    let (low, high) = dead_region_pair(&client, HigherFirst::No).await;
    let hold = Duration::from_secs(1);
    chaos::deployment::leases::start(url.clone(), "eu-west-1".into(), hold)
        .await
        .expect("the rows are locked");
    let other = connect(&url).await;
    assert_eq!(write(&other, low, 100).await, Err("55P03".to_owned()));
    // The way back: once the hold is over, the rows take writes again.
    tokio::time::sleep(hold).await;
    for account in [low, high] {
        assert_eq!(write(&other, account, 1000).await, Ok(()));
    }
    // A database without the ledger's accounts: the transfer cannot lock.
    let error = chaos::deployment::leases::start(server.clone(), "eu-west-1".into(), hold)
        .await
        .expect_err("nothing to lock");
    let error = format!("{error:#}");
    assert!(
        error.contains("locking the accounts homed in eu-west-1") && error.contains("accounts"),
        "{error}"
    );
    drop((client, other));
    ScratchLedger::drop_database(&server, &url).await;
}
