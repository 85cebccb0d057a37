//! Integration tests of the service: the real application on port 0, over
//! HTTP, each test with its own database on the real PostgreSQL named by
//! `TEST_DATABASE_URL` (scripts/test.sh starts one).

mod abuse;
mod accounts;
mod auth;
mod bad_inputs;
mod bulkhead;
mod concurrency;
mod database_tls;
mod health;
mod helpers;
mod limits;
mod observability;
mod overload;
mod runtime_role;
mod schema_wait;
mod sessions;
mod shutdown;
mod tls_postgres;
mod transfers;
