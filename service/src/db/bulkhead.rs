//! The home-region bulkhead: the writes that touch the rows of one home
//! region may hold at most a share of a pool's connections.
//!
//! On CockroachDB every account row lives (has its leaseholder) in its home
//! region. When that region is lost, its rows cannot be written until their
//! leases move to a surviving region (a few seconds): every transfer that
//! touches one of them waits, holding its connection. Without a bound those
//! transfers fill the pool within a second at a few hundred requests a
//! second, and every other request of the instance, reads and transfers
//! between live regions' accounts alike, is shed with 503s although the
//! database could serve it. With the bulkhead they hold at most
//! `limit` connections of the pool; the rest stay for everything else, and
//! the waiting transfers queue for a permit, holding no connection, until
//! their rows can be written again or their request's deadline passes.
//!
//! A write names the home regions of the rows it touches ([`HomeRegions`]
//! knows them: an account's home region is fixed when it is created) and
//! takes one permit of each other than the instance's own region, in name
//! order, so that two writes never wait for each other's permits. The own
//! region's rows need none: an instance serves only while its region lives,
//! and writes between its own accounts must never queue behind another
//! region's (nor pay anything for the bulkhead). A write between two other
//! regions' accounts counts against both, so while one of them is lost its
//! waiting writes hold some of the other's permits too (a part of them, as
//! many as such writes are among the waiting ones).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::{IntGauge, IntGaugeVec};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::ledger::Consistency;
use super::reads::{AccountReader, ReadError};

/// The permits of one pool: at most `limit` writes per home region hold or
/// wait for one of its connections.
#[derive(Debug)]
pub struct Bulkhead {
    limit: usize,
    /// The instance's region, whose rows take no permit.
    own_region: Arc<str>,
    regions: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
    /// Writes waiting for a permit, by home region.
    waiting: IntGaugeVec,
}

/// The permits a write holds until it ends.
#[derive(Debug)]
pub struct Entered {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl Bulkhead {
    /// A bulkhead for a pool of `pool_size` connections whose writes of
    /// any one home region may hold `share` of them (rounded down, at least
    /// one; a share of 1 bounds nothing).
    /// Writes waiting for a permit count in `waiting` (by home region).
    pub fn new(pool_size: usize, share: f64, own_region: &str, waiting: IntGaugeVec) -> Self {
        Self {
            limit: ((pool_size as f64 * share).floor() as usize).clamp(1, pool_size.max(1)),
            own_region: Arc::from(own_region),
            regions: Mutex::default(),
            waiting,
        }
    }

    /// Connections that the writes of one home region may hold.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Waits for a permit of each of `homes` but the own region (name
    /// order, duplicates once).
    pub async fn enter(&self, homes: &[Arc<str>]) -> Entered {
        let mut names: Vec<&Arc<str>> = homes
            .iter()
            .filter(|home| **home != self.own_region)
            .collect();
        if names.is_empty() {
            return Entered {
                _permits: Vec::new(),
            };
        }
        names.sort();
        names.dedup();
        let semaphores: Vec<(&Arc<str>, Arc<Semaphore>)> = {
            let mut regions = self.regions.lock().expect("bulkhead lock");
            names
                .into_iter()
                .map(|name| {
                    let semaphore = regions
                        .entry(Arc::clone(name))
                        .or_insert_with(|| Arc::new(Semaphore::new(self.limit)));
                    (name, Arc::clone(semaphore))
                })
                .collect()
        };
        let mut permits = Vec::with_capacity(semaphores.len());
        for (name, semaphore) in semaphores {
            let permit = match Arc::clone(&semaphore).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    // Counted until the wait ends, however (a cancelled request too).
                    let _counted = Counted::new(self.waiting.with_label_values(&[name.as_ref()]));
                    semaphore
                        .acquire_owned()
                        .await
                        .expect("the bulkhead's semaphores are never closed")
                }
            };
            permits.push(permit);
        }
        Entered { _permits: permits }
    }

    /// Permits of `home` in use now (for tests and metrics).
    pub fn in_use(&self, home: &str) -> usize {
        let regions = self.regions.lock().expect("bulkhead lock");
        regions
            .get(home)
            .map(|semaphore| self.limit - semaphore.available_permits())
            .unwrap_or(0)
    }
}

/// One waiting write in a gauge, until dropped.
struct Counted(IntGauge);

impl Counted {
    fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Accounts' home regions, as far as this process has seen them: filled
/// when it creates an account, and on a miss by a read (a follower read on
/// CockroachDB: a home region never changes, so a stale read is exact, and
/// it does not wait for a lost region's leases). Bounded; an account it
/// forgot is read again.
#[derive(Clone)]
pub struct HomeRegions {
    accounts: moka::sync::Cache<Uuid, Arc<str>>,
    /// One allocation per region name, shared by every entry.
    names: Arc<Mutex<HashMap<String, Arc<str>>>>,
}

impl std::fmt::Debug for HomeRegions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HomeRegions")
            .field("entries", &self.accounts.entry_count())
            .finish()
    }
}

impl HomeRegions {
    /// Remembers at most `capacity` accounts.
    pub fn new(capacity: u64) -> Self {
        Self {
            accounts: moka::sync::Cache::new(capacity),
            names: Arc::default(),
        }
    }

    /// Records that `account` is homed in `region`.
    pub fn insert(&self, account: Uuid, region: &str) {
        let name = self.intern(region);
        self.accounts.insert(account, name);
    }

    /// The home regions of `accounts` that exist (an unknown account has
    /// none: the write rejects it without touching a row of it).
    pub async fn of(
        &self,
        accounts: &[Uuid],
        reader: &AccountReader,
    ) -> Result<Vec<Arc<str>>, ReadError> {
        let mut homes = Vec::with_capacity(accounts.len());
        for account in accounts {
            if let Some(home) = self.accounts.get(account) {
                homes.push(home);
                continue;
            }
            if let Some(found) = reader.read(*account, Consistency::Stale).await? {
                self.insert(found.id, &found.home_region);
                homes.push(self.intern(&found.home_region));
            }
        }
        Ok(homes)
    }

    fn intern(&self, region: &str) -> Arc<str> {
        let mut names = self.names.lock().expect("home region names lock");
        Arc::clone(
            names
                .entry(region.to_owned())
                .or_insert_with(|| Arc::from(region)),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn waiting() -> IntGaugeVec {
        IntGaugeVec::new(
            prometheus::Opts::new("waiting", "waiting"),
            &["home_region"],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn one_home_regions_writes_leave_the_reserve_to_the_others() {
        let gauge = waiting();
        let bulkhead = Arc::new(Bulkhead::new(8, 0.75, "us-east-1", gauge.clone()));
        let waiting_for = |home: &str| gauge.with_label_values(&[home]).get();
        assert_eq!(bulkhead.limit(), 6);
        let eu: Arc<str> = Arc::from("eu-west-1");
        let ap: Arc<str> = Arc::from("ap-southeast-1");
        let us: Arc<str> = Arc::from("us-east-1");
        let mut held = Vec::new();
        for _ in 0..6 {
            held.push(bulkhead.enter(std::slice::from_ref(&eu)).await);
        }
        assert_eq!(bulkhead.in_use("eu-west-1"), 6);
        // The seventh write to eu-west-1's rows waits...
        let waiting = {
            let bulkhead = Arc::clone(&bulkhead);
            let eu = Arc::clone(&eu);
            tokio::spawn(async move { bulkhead.enter(&[eu]).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        assert_eq!(waiting_for("eu-west-1"), 1);
        // ...while another region's write goes at once, and so does one
        // between the own region's accounts, which takes no permit.
        let other = tokio::time::timeout(Duration::from_secs(1), bulkhead.enter(&[ap]))
            .await
            .expect("a write between live regions' accounts does not wait");
        drop(other);
        let own_pair = [Arc::clone(&us), Arc::clone(&us)];
        for _ in 0..20 {
            let own = tokio::time::timeout(Duration::from_secs(1), bulkhead.enter(&own_pair));
            assert!(own.await.is_ok(), "a write between own accounts waited");
        }
        assert_eq!(bulkhead.in_use("us-east-1"), 0);
        // The way back: one of eu-west-1's writes ends, the waiting one goes.
        held.pop();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the waiting write enters once a permit is free")
            .unwrap();
        assert_eq!(waiting_for("eu-west-1"), 0);
        // A wait that is given up (its request cancelled) stops counting.
        held.push(bulkhead.enter(std::slice::from_ref(&eu)).await);
        let given_up = tokio::time::timeout(Duration::from_millis(20), bulkhead.enter(&[eu])).await;
        assert!(given_up.is_err());
        assert_eq!(waiting_for("eu-west-1"), 0);
    }

    #[tokio::test]
    async fn a_write_takes_each_home_once_in_name_order() {
        let bulkhead = Bulkhead::new(2, 1.0, "c", waiting());
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let first = bulkhead
            .enter(&[Arc::clone(&b), Arc::clone(&a), Arc::clone(&b)])
            .await;
        assert_eq!((bulkhead.in_use("a"), bulkhead.in_use("b")), (1, 1));
        // The same pair the other way round: no deadlock, both fit.
        let second = tokio::time::timeout(
            Duration::from_secs(1),
            bulkhead.enter(&[Arc::clone(&a), Arc::clone(&b)]),
        )
        .await
        .unwrap();
        assert_eq!((bulkhead.in_use("a"), bulkhead.in_use("b")), (2, 2));
        drop((first, second));
        assert_eq!((bulkhead.in_use("a"), bulkhead.in_use("b")), (0, 0));
    }

    #[test]
    fn a_home_region_keeps_at_least_one_connection() {
        assert_eq!(Bulkhead::new(1, 0.75, "a", waiting()).limit(), 1);
        assert_eq!(Bulkhead::new(16, 0.75, "a", waiting()).limit(), 12);
        assert_eq!(Bulkhead::new(16, 1.0, "a", waiting()).limit(), 16);
    }
}
