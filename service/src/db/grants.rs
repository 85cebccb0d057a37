//! The runtime role's privileges: what `service migrate` (run as the
//! migration role, which owns the schema) grants the role the service
//! pods connect as, and nothing more.
//!
//! The runtime role reads and writes rows; it cannot change the schema,
//! delete a row, or write the drain flags (the controller's): a
//! compromised or buggy service pod cannot drop a table or rewrite
//! history. Portable SQL (PostgreSQL and CockroachDB), pinned by a golden
//! file; on CockroachDB [`super::cockroach::revoke_admin`] also takes the
//! role out of `admin`, which CockroachDB Cloud gives every SQL user it
//! creates.

/// A role name this code will quote into SQL: a lower-case identifier.
pub fn is_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The statements, in order; each is idempotent.
pub fn runtime_grants(role: &str) -> Vec<String> {
    let role = format!("\"{role}\"");
    vec![
        // Transfers lock and update balances (SELECT ... FOR UPDATE needs
        // UPDATE).
        format!("GRANT SELECT, INSERT, UPDATE ON TABLE accounts TO {role}"),
        // Written once, never changed.
        format!("GRANT SELECT, INSERT ON TABLE transfers, idempotency_keys TO {role}"),
        // The drain flags are the controller's; the service only reads them.
        format!("GRANT SELECT ON TABLE region_state TO {role}"),
        // API keys are created and revoked by operators (`service api-key`,
        // as the migration role): a service pod can read them, never mint
        // or un-revoke one.
        format!("GRANT SELECT ON TABLE api_keys TO {role}"),
        // `service wait-for-schema` reads which migrations are applied.
        format!("GRANT SELECT ON TABLE _sqlx_migrations TO {role}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_match_golden() {
        let path = format!(
            "{}/tests/golden/runtime_grants.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        let actual: String = runtime_grants("service")
            .iter()
            .map(|s| format!("{s};\n"))
            .collect();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &actual).unwrap();
        }
        assert_eq!(actual, std::fs::read_to_string(&path).unwrap());
    }

    #[test]
    fn no_grant_allows_deleting_or_changing_the_schema() {
        for statement in runtime_grants("service") {
            for forbidden in [
                "DELETE",
                "ALL",
                "CREATE",
                "TRUNCATE",
                "REFERENCES",
                "TRIGGER",
            ] {
                assert!(!statement.contains(forbidden), "{statement}");
            }
        }
    }

    #[test]
    fn role_names_are_plain_identifiers() {
        assert!(is_role_name("service"));
        assert!(is_role_name("service_migrate"));
        assert!(!is_role_name("Service"));
        assert!(!is_role_name("a\"b"));
        assert!(!is_role_name("1abc"));
        assert!(!is_role_name(""));
    }
}
