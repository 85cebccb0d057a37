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

/// The regions of the database, primary first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CockroachLayout {
    pub database: String,
    pub primary_region: String,
    pub other_regions: Vec<String>,
}

/// Staleness of `follower_read_timestamp()`, for the API documentation.
pub const FOLLOWER_READ_STALENESS: &str = "about 4.2 seconds";

/// The `FROM` clause suffix of a stale (follower) read on CockroachDB.
pub const FOLLOWER_READ_CLAUSE: &str = "AS OF SYSTEM TIME follower_read_timestamp()";

impl CockroachLayout {
    /// Checks the rules of `SURVIVE REGION FAILURE`: three distinct regions or more.
    pub fn new(regions: &[String]) -> Result<Self, String> {
        let Some((primary, others)) = regions.split_first() else {
            return Err("lists no region; CockroachDB needs the primary region first".into());
        };
        if regions.len() < 3 {
            return Err(format!(
                "lists {} region(s); SURVIVE REGION FAILURE needs at least 3",
                regions.len()
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(duplicate) = regions.iter().find(|r| !seen.insert(r.as_str())) {
            return Err(format!("lists {duplicate:?} twice"));
        }
        Ok(Self {
            database: "ledger".to_owned(),
            primary_region: primary.clone(),
            other_regions: others.to_vec(),
        })
    }

    pub fn for_database(mut self, database: &str) -> Self {
        self.database = database.to_owned();
        self
    }
}

/// The statements, in order, that make the schema multi-region. Each is
/// idempotent, so `migrate` can run them on every deploy.
pub fn multi_region_ddl(layout: &CockroachLayout) -> Vec<String> {
    let database = quote_identifier(&layout.database);
    let mut statements = vec![format!(
        "ALTER DATABASE {database} SET PRIMARY REGION {}",
        quote_identifier(&layout.primary_region)
    )];
    for region in &layout.other_regions {
        statements.push(format!(
            "ALTER DATABASE {database} ADD REGION IF NOT EXISTS {}",
            quote_identifier(region)
        ));
    }
    statements.push(format!("ALTER DATABASE {database} SURVIVE REGION FAILURE"));

    // Accounts are homed in the region that created them: a computed region
    // column maps the service's `home_region` onto the database regions, so
    // that the region that served the request, not the gateway node, decides.
    let mut case = String::from("CASE home_region");
    for region in std::iter::once(&layout.primary_region).chain(&layout.other_regions) {
        case.push_str(&format!(" WHEN {0} THEN {0}", quote_literal(region)));
    }
    case.push_str(&format!(
        " ELSE {} END",
        quote_literal(&layout.primary_region)
    ));
    statements.push(format!(
        "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS home_crdb_region crdb_internal_region NOT NULL AS ({case}) STORED"
    ));
    statements
        .push("ALTER TABLE accounts SET LOCALITY REGIONAL BY ROW AS home_crdb_region".to_owned());
    statements.push("ALTER TABLE transfers SET LOCALITY REGIONAL BY ROW".to_owned());
    statements.push("ALTER TABLE idempotency_keys SET LOCALITY REGIONAL BY ROW".to_owned());
    statements.push("ALTER TABLE region_state SET LOCALITY GLOBAL".to_owned());
    statements
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
        let layout =
            CockroachLayout::new(&regions(&["us-east-1", "eu-west-1", "ap-southeast-1"])).unwrap();
        golden("cockroach_3_regions.sql", &layout);
    }

    #[test]
    fn five_regions_and_quoting_match_golden() {
        let layout = CockroachLayout::new(&regions(&[
            "eu-central-1",
            "us-east-1",
            "us-west-2",
            "ap-northeast-1",
            "sa-east-1",
        ]))
        .unwrap()
        .for_database("ledger \"prod\"");
        golden("cockroach_5_regions.sql", &layout);
    }

    #[test]
    fn fewer_than_three_regions_are_rejected() {
        let error = CockroachLayout::new(&regions(&["us-east-1", "eu-west-1"])).unwrap_err();
        assert!(error.contains("at least 3"), "{error}");
        assert!(CockroachLayout::new(&[]).is_err());
    }

    #[test]
    fn duplicate_regions_are_rejected() {
        let error = CockroachLayout::new(&regions(&["a-1", "b-1", "a-1"])).unwrap_err();
        assert!(error.contains("twice"), "{error}");
    }

    #[test]
    fn ddl_uses_no_forbidden_constructs() {
        let layout = CockroachLayout::new(&regions(&["a-1", "b-1", "c-1"])).unwrap();
        for statement in multi_region_ddl(&layout) {
            let upper = statement.to_uppercase();
            for forbidden in ["UPSERT", "SERIAL", "SEQUENCE", "SELECT *"] {
                assert!(!upper.contains(forbidden), "{statement}");
            }
        }
    }
}
