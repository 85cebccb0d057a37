//! CockroachDB-only SQL, in one gated place: the multi-region DDL and the
//! follower-read clause. Everything here is generated from the configured
//! regions and pinned by golden tests (`service/tests/golden/`).
//!
//! The topology: the first region is the database's primary region; the
//! database survives the loss of a whole region (`SURVIVE REGION FAILURE`,
//! RPO 0, at least three regions); `accounts` rows live in the region that
//! created them (`REGIONAL BY ROW`, homed by the `home_region` column the
//! service writes); transfers and idempotency keys are homed at the gateway
//! that wrote them; `region_state`, read on every health check everywhere and
//! written only on failover, is `GLOBAL`.

/// One region of the deployment: the name the service and the controller
/// use (`us-east-1`, the `region` setting and `home_region` values) and the
/// CockroachDB region that serves it (`aws-us-east-1` on CockroachDB Cloud;
/// the same name on a self-hosted cluster started with
/// `--locality=region=us-east-1`). The two are configured together, never
/// derived from each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionMapping {
    pub service: String,
    pub database: String,
}

impl RegionMapping {
    /// Parses `service-region=database-region`.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let Some((service, database)) = entry.split_once('=') else {
            return Err(format!(
                "{entry:?} is not service-region=database-region (e.g. us-east-1=aws-us-east-1)"
            ));
        };
        for name in [service, database] {
            if !is_region_name(name) {
                return Err(format!("{entry:?}: {name:?} is not a region name"));
            }
        }
        Ok(Self {
            service: service.to_owned(),
            database: database.to_owned(),
        })
    }
}

/// Lower-case letters, digits and dashes, as AWS and CockroachDB name
/// regions.
pub fn is_region_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The regions of the database, primary first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CockroachLayout {
    pub database: String,
    /// Primary first; at least three.
    pub regions: Vec<RegionMapping>,
}

/// Staleness of `follower_read_timestamp()`, for the API documentation.
pub const FOLLOWER_READ_STALENESS: &str = "about 4.2 seconds";

/// The `FROM` clause suffix of a stale (follower) read on CockroachDB.
pub const FOLLOWER_READ_CLAUSE: &str = "AS OF SYSTEM TIME follower_read_timestamp()";

impl CockroachLayout {
    /// Parses the `database_regions` entries and checks the rules of
    /// `SURVIVE REGION FAILURE`: three distinct regions or more.
    pub fn new(entries: &[String]) -> Result<Self, String> {
        if entries.is_empty() {
            return Err(
                "lists no region; CockroachDB needs the regions, primary first, \
                 each as service-region=database-region (e.g. us-east-1=aws-us-east-1)"
                    .into(),
            );
        }
        let regions = entries
            .iter()
            .map(|entry| RegionMapping::parse(entry))
            .collect::<Result<Vec<_>, _>>()?;
        if regions.len() < 3 {
            return Err(format!(
                "lists {} region(s); SURVIVE REGION FAILURE needs at least 3",
                regions.len()
            ));
        }
        let mut services = std::collections::BTreeSet::new();
        let mut databases = std::collections::BTreeSet::new();
        for region in &regions {
            if !services.insert(region.service.as_str()) {
                return Err(format!("lists service region {:?} twice", region.service));
            }
            if !databases.insert(region.database.as_str()) {
                return Err(format!("lists database region {:?} twice", region.database));
            }
        }
        Ok(Self {
            database: "ledger".to_owned(),
            regions,
        })
    }

    pub fn for_database(mut self, database: &str) -> Self {
        self.database = database.to_owned();
        self
    }

    pub fn primary(&self) -> &RegionMapping {
        &self.regions[0]
    }
}

/// What a database already has of the multi-region layout, read by
/// [`read_state`] (or assumed empty for the DDL of a fresh database).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiRegionState {
    /// Regions of the cluster's nodes (`SHOW REGIONS FROM CLUSTER`).
    pub cluster_regions: Vec<String>,
    /// Regions added to the database.
    pub database_regions: Vec<String>,
    pub primary_region: Option<String>,
    /// `zone` or `region`.
    pub survival_goal: Option<String>,
    pub has_home_column: bool,
    /// Table name to its locality as `SHOW TABLES` spells it.
    pub table_localities: std::collections::BTreeMap<String, String>,
}

/// The statements, in order, that make a fresh database multi-region
/// (`service print-cockroach-ddl`, the golden files).
pub fn multi_region_ddl(layout: &CockroachLayout) -> Vec<String> {
    let fresh = MultiRegionState {
        cluster_regions: layout.regions.iter().map(|r| r.database.clone()).collect(),
        ..MultiRegionState::default()
    };
    plan(layout, &fresh).expect("a fresh database on a cluster with every region")
}

/// The statements a database in `state` still needs to reach `layout`, in
/// order: nothing for a database that has it all, so `migrate` can run on
/// every release. Fails when the cluster lacks one of the configured
/// database regions (a wrong mapping), naming the regions it has.
pub fn plan(layout: &CockroachLayout, state: &MultiRegionState) -> Result<Vec<String>, String> {
    let missing: Vec<&str> = layout
        .regions
        .iter()
        .map(|r| r.database.as_str())
        .filter(|r| !state.cluster_regions.iter().any(|c| c == r))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the cluster has no region {missing:?} (database_regions maps service regions to \
             these); its regions are {:?}",
            state.cluster_regions
        ));
    }
    let database = quote_identifier(&layout.database);
    let primary = &layout.primary().database;
    let mut statements = Vec::new();
    let set_primary = format!(
        "ALTER DATABASE {database} SET PRIMARY REGION {}",
        quote_identifier(primary)
    );
    // A database without a primary region is not multi-region yet, and
    // setting the primary adds it; one with another primary moves it only
    // after the new primary was added (CockroachDB refuses a region the
    // database does not have).
    let fresh = state.primary_region.is_none();
    if fresh {
        statements.push(set_primary.clone());
    }
    for region in &layout.regions {
        let added_by_set_primary = fresh && region.database == *primary;
        if !added_by_set_primary && !state.database_regions.contains(&region.database) {
            statements.push(format!(
                "ALTER DATABASE {database} ADD REGION IF NOT EXISTS {}",
                quote_identifier(&region.database)
            ));
        }
    }
    if state.primary_region.as_ref().is_some_and(|p| p != primary) {
        statements.push(set_primary);
    }
    if state.survival_goal.as_deref() != Some("region") {
        statements.push(format!("ALTER DATABASE {database} SURVIVE REGION FAILURE"));
    }

    // Accounts are homed in the region that created them: a computed region
    // column maps the service's `home_region` onto the database regions, so
    // that the region that served the request, not the gateway node, decides.
    if !state.has_home_column {
        let mut case = String::from("CASE home_region");
        for region in &layout.regions {
            case.push_str(&format!(
                " WHEN {} THEN {}",
                quote_literal(&region.service),
                quote_literal(&region.database)
            ));
        }
        case.push_str(&format!(" ELSE {} END", quote_literal(primary)));
        statements.push(format!(
            "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS home_crdb_region crdb_internal_region NOT NULL AS ({case}) STORED"
        ));
    }
    for (table, locality, statement) in TABLE_LOCALITIES {
        let current = state.table_localities.get(*table).map(|l| l.to_uppercase());
        if current.as_deref() != Some(*locality) {
            statements.push((*statement).to_owned());
        }
    }
    Ok(statements)
}

/// Table, its locality as `SHOW TABLES` spells it (upper case), and the
/// statement that sets it.
const TABLE_LOCALITIES: &[(&str, &str, &str)] = &[
    (
        "accounts",
        "REGIONAL BY ROW AS HOME_CRDB_REGION",
        "ALTER TABLE accounts SET LOCALITY REGIONAL BY ROW AS home_crdb_region",
    ),
    (
        "transfers",
        "REGIONAL BY ROW",
        "ALTER TABLE transfers SET LOCALITY REGIONAL BY ROW",
    ),
    (
        "idempotency_keys",
        "REGIONAL BY ROW",
        "ALTER TABLE idempotency_keys SET LOCALITY REGIONAL BY ROW",
    ),
    (
        "region_state",
        "GLOBAL",
        "ALTER TABLE region_state SET LOCALITY GLOBAL",
    ),
    // Read by every instance of every region (the key snapshot), written
    // only when an operator creates or revokes a key.
    (
        "api_keys",
        "GLOBAL",
        "ALTER TABLE api_keys SET LOCALITY GLOBAL",
    ),
];

/// Drops the global uniqueness of `transfers.idempotency_key` (created
/// with the table; keys are now unique per principal): CockroachDB drops a
/// `UNIQUE` constraint made by `CREATE TABLE` only through its index.
pub const DROP_GLOBAL_TRANSFER_KEY: &str =
    "DROP INDEX IF EXISTS transfers@transfers_idempotency_key_key CASCADE";

/// The queries that read a database's [`MultiRegionState`], `{database}`
/// standing for the quoted database name (pinned by a golden file).
pub const STATE_QUERIES: &[&str] = &[
    "SELECT region FROM [SHOW REGIONS FROM CLUSTER]",
    "SELECT region, \"primary\" FROM [SHOW REGIONS FROM DATABASE {database}]",
    "SELECT survival_goal FROM [SHOW SURVIVAL GOAL FROM DATABASE {database}]",
    "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'accounts' AND column_name = 'home_crdb_region'",
    "SELECT table_name, locality FROM [SHOW TABLES] WHERE schema_name = 'public' AND locality IS NOT NULL",
];

/// Reads what the database already has (CockroachDB only).
pub async fn read_state(
    connection: &mut sqlx::PgConnection,
    database: &str,
) -> Result<MultiRegionState, sqlx::Error> {
    let query =
        |index: usize| STATE_QUERIES[index].replace("{database}", &quote_identifier(database));
    let cluster_regions: Vec<String> = sqlx::query_scalar(&query(0))
        .fetch_all(&mut *connection)
        .await?;
    let regions: Vec<(String, bool)> = sqlx::query_as(&query(1))
        .fetch_all(&mut *connection)
        .await?;
    let survival_goal: Option<String> = sqlx::query_scalar(&query(2))
        .fetch_optional(&mut *connection)
        .await?;
    let home_columns: i64 = sqlx::query_scalar(&query(3))
        .fetch_one(&mut *connection)
        .await?;
    let localities: Vec<(String, String)> = sqlx::query_as(&query(4))
        .fetch_all(&mut *connection)
        .await?;
    Ok(MultiRegionState {
        cluster_regions,
        primary_region: regions.iter().find(|(_, p)| *p).map(|(r, _)| r.clone()),
        database_regions: regions.into_iter().map(|(r, _)| r).collect(),
        // A database without regions reports the zone goal or nothing.
        survival_goal,
        has_home_column: home_columns > 0,
        table_localities: localities.into_iter().collect(),
    })
}

/// Takes `role` out of `admin`: CockroachDB Cloud makes every SQL user it
/// creates (the Terraform provider's too) a member of `admin`, which would
/// void the runtime role's grants (`db::grants`). A no-op when it is not a
/// member.
pub fn revoke_admin(role: &str) -> String {
    format!("REVOKE admin FROM {}", quote_identifier(role))
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Service regions mapped to CockroachDB Cloud's names.
    fn cloud(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| format!("{s}=aws-{s}")).collect()
    }

    fn three() -> CockroachLayout {
        CockroachLayout::new(&cloud(&["us-east-1", "eu-west-1", "ap-southeast-1"])).unwrap()
    }

    fn fully_migrated() -> MultiRegionState {
        MultiRegionState {
            cluster_regions: regions(&["aws-ap-southeast-1", "aws-eu-west-1", "aws-us-east-1"]),
            database_regions: regions(&["aws-ap-southeast-1", "aws-eu-west-1", "aws-us-east-1"]),
            primary_region: Some("aws-us-east-1".into()),
            survival_goal: Some("region".into()),
            has_home_column: true,
            table_localities: [
                ("accounts", "REGIONAL BY ROW AS home_crdb_region"),
                ("transfers", "REGIONAL BY ROW"),
                ("idempotency_keys", "REGIONAL BY ROW"),
                ("region_state", "GLOBAL"),
                ("api_keys", "GLOBAL"),
            ]
            .into_iter()
            .map(|(t, l)| (t.to_owned(), l.to_owned()))
            .collect(),
        }
    }

    fn golden(name: &str, layout: &CockroachLayout) {
        let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
        let actual: String = multi_region_ddl(layout)
            .iter()
            .map(|s| format!("{s};\n"))
            .collect();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (run with UPDATE_GOLDEN=1 to create it)"));
        assert_eq!(actual, expected, "generated DDL differs from {path}");
    }

    #[test]
    fn three_regions_match_golden() {
        golden("cockroach_3_regions.sql", &three());
    }

    #[test]
    fn five_regions_and_quoting_match_golden() {
        // Self-hosted names: each service region is its own database region.
        let layout = CockroachLayout::new(&regions(&[
            "eu-central-1=eu-central-1",
            "us-east-1=us-east-1",
            "us-west-2=us-west-2",
            "ap-northeast-1=ap-northeast-1",
            "sa-east-1=sa-east-1",
        ]))
        .unwrap()
        .for_database("ledger \"prod\"");
        golden("cockroach_5_regions.sql", &layout);
    }

    #[test]
    fn state_queries_match_golden() {
        let path = format!(
            "{}/tests/golden/cockroach_state_queries.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        let actual: String = STATE_QUERIES.iter().map(|q| format!("{q};\n")).collect();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &actual).unwrap();
        }
        assert_eq!(actual, std::fs::read_to_string(&path).unwrap());
    }

    #[test]
    fn fewer_than_three_regions_are_rejected() {
        let error = CockroachLayout::new(&cloud(&["us-east-1", "eu-west-1"])).unwrap_err();
        assert!(error.contains("at least 3"), "{error}");
        assert!(CockroachLayout::new(&[]).is_err());
    }

    #[test]
    fn duplicate_regions_are_rejected() {
        let error = CockroachLayout::new(&cloud(&["a-1", "b-1", "a-1"])).unwrap_err();
        assert!(error.contains("twice"), "{error}");
        let error = CockroachLayout::new(&regions(&["a-1=x-1", "b-1=x-1", "c-1=y-1"])).unwrap_err();
        assert!(error.contains("database region \"x-1\" twice"), "{error}");
    }

    #[test]
    fn an_entry_without_its_database_region_is_rejected_with_an_example() {
        let error = CockroachLayout::new(&regions(&["us-east-1", "eu-west-1", "ap-southeast-1"]))
            .unwrap_err();
        assert!(error.contains("us-east-1=aws-us-east-1"), "{error}");
    }

    #[test]
    fn the_home_column_maps_service_regions_to_database_regions() {
        let ddl = multi_region_ddl(&three()).join("\n");
        assert!(
            ddl.contains("SET PRIMARY REGION \"aws-us-east-1\""),
            "{ddl}"
        );
        assert!(
            ddl.contains("WHEN 'eu-west-1' THEN 'aws-eu-west-1'"),
            "{ddl}"
        );
        assert!(ddl.contains("ELSE 'aws-us-east-1' END"), "{ddl}");
    }

    #[test]
    fn a_fully_migrated_database_needs_nothing() {
        assert_eq!(plan(&three(), &fully_migrated()), Ok(vec![]));
    }

    #[test]
    fn only_what_is_missing_is_planned() {
        let mut state = fully_migrated();
        state.database_regions.retain(|r| r != "aws-ap-southeast-1");
        state.survival_goal = Some("zone".into());
        state.table_localities.remove("region_state");
        assert_eq!(
            plan(&three(), &state).unwrap(),
            vec![
                "ALTER DATABASE \"ledger\" ADD REGION IF NOT EXISTS \"aws-ap-southeast-1\"",
                "ALTER DATABASE \"ledger\" SURVIVE REGION FAILURE",
                "ALTER TABLE region_state SET LOCALITY GLOBAL",
            ]
        );
    }

    #[test]
    fn a_new_primary_is_set_after_it_is_added() {
        let mut state = fully_migrated();
        state.primary_region = Some("aws-eu-west-1".into());
        state.database_regions.retain(|r| r != "aws-us-east-1");
        let layout = three();
        assert_eq!(
            plan(&layout, &state).unwrap(),
            vec![
                "ALTER DATABASE \"ledger\" ADD REGION IF NOT EXISTS \"aws-us-east-1\"",
                "ALTER DATABASE \"ledger\" SET PRIMARY REGION \"aws-us-east-1\"",
            ]
        );
    }

    #[test]
    fn a_database_region_the_cluster_lacks_is_an_error_naming_the_cluster_regions() {
        let mut state = fully_migrated();
        state.cluster_regions = regions(&["us-east-1", "eu-west-1", "ap-southeast-1"]);
        let error = plan(&three(), &state).unwrap_err();
        assert!(error.contains("aws-us-east-1"), "{error}");
        assert!(error.contains("its regions are"), "{error}");
    }

    #[test]
    fn ddl_uses_no_forbidden_constructs() {
        let layout = three();
        for statement in multi_region_ddl(&layout) {
            let upper = statement.to_uppercase();
            for forbidden in ["UPSERT", "SERIAL", "SEQUENCE", "SELECT *"] {
                assert!(!upper.contains(forbidden), "{statement}");
            }
        }
    }
}
