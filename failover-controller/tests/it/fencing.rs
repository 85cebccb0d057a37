//! Lease and fencing: a stale leader's drain-flag write changes nothing.

use std::time::Duration;

use failover_controller::actions::drain_flag::{self, Fence, FlagWrite};
use failover_controller::lease::Lease;

use crate::helpers::test_db;

#[tokio::test]
async fn a_stale_leaders_write_changes_nothing() {
    let db = test_db().await;
    let ttl = Duration::from_millis(400);
    let a = Lease::new(db.pool.clone(), "failover", "controller-a", ttl);
    let b = Lease::new(db.pool.clone(), "failover", "controller-b", ttl);

    let view_a = a.try_acquire().await.unwrap();
    assert!(view_a.held);
    assert_eq!(view_a.epoch, 1);
    assert!(!b.try_acquire().await.unwrap().held, "two holders at once");

    let fence_a = Fence {
        lease_name: "failover",
        holder: "controller-a",
        epoch: view_a.epoch,
    };
    let w = drain_flag::write(&db.pool, &fence_a, "region-1", true, "dead", "automation")
        .await
        .unwrap();
    assert_eq!(w, FlagWrite::Written);

    // A is paused past its lease; B takes over with a new epoch.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let view_b = b.try_acquire().await.unwrap();
    assert!(view_b.held);
    assert_eq!(view_b.epoch, 2);

    // A wakes up and tries to undrain: nothing changes.
    let w = drain_flag::write(&db.pool, &fence_a, "region-1", false, "stale", "automation")
        .await
        .unwrap();
    assert_eq!(w, FlagWrite::Fenced);
    let w = drain_flag::write(&db.pool, &fence_a, "region-2", true, "stale", "automation")
        .await
        .unwrap();
    assert_eq!(w, FlagWrite::Fenced, "a stale leader created a row");
    let flags = drain_flag::read_all(&db.pool).await.unwrap();
    assert!(flags["region-1"].drained);
    assert_eq!(flags["region-1"].fencing_epoch, 1);
    assert!(!flags.contains_key("region-2"));
    assert!(a.verify(1).await.is_err());
    assert!(!a.try_acquire().await.unwrap().held);

    // The new leader writes with its epoch.
    let fence_b = Fence {
        lease_name: "failover",
        holder: "controller-b",
        epoch: 2,
    };
    let w = drain_flag::write(
        &db.pool,
        &fence_b,
        "region-1",
        false,
        "recovered",
        "automation",
    )
    .await
    .unwrap();
    assert_eq!(w, FlagWrite::Written);
    let flags = drain_flag::read_all(&db.pool).await.unwrap();
    assert!(!flags["region-1"].drained);
    assert_eq!(flags["region-1"].fencing_epoch, 2);
}

#[tokio::test]
async fn renewal_keeps_the_epoch_and_expiry_bumps_it() {
    let db = test_db().await;
    let a = Lease::new(
        db.pool.clone(),
        "failover",
        "controller-a",
        Duration::from_millis(400),
    );
    assert_eq!(a.try_acquire().await.unwrap().epoch, 1);
    assert_eq!(a.try_acquire().await.unwrap().epoch, 1);
    a.verify(1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Its own lease expired: the paused holder's old epoch is void.
    let view = a.try_acquire().await.unwrap();
    assert!(view.held);
    assert_eq!(view.epoch, 2);
    assert!(a.verify(1).await.is_err());
    a.release(2).await.unwrap();
    let b = Lease::new(
        db.pool.clone(),
        "failover",
        "controller-b",
        Duration::from_millis(400),
    );
    assert_eq!(
        b.try_acquire().await.unwrap().epoch,
        3,
        "release hands over at once"
    );
}
