//! Building and running the application: bind both listeners, start the
//! region-gate refresher and the serving threads ([`crate::server`]), serve
//! until the shutdown future resolves, then shut down in order.
//!
//! Shutdown: unready at once (`/readyz`, `/healthz/region` and
//! `/healthz/instance` answer 503),
//! keep serving for the drain period so that load balancers and DNS move
//! traffic away, stop accepting, let in-flight requests finish within the
//! grace bound, exit.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Settings;
use crate::db::Pool;
use crate::http::SharedState;
use crate::metrics::Metrics;
use crate::region_gate::{Refresher, RegionGate};
use crate::server::Threads;

/// Accounts whose home region a process remembers (about 100 bytes each);
/// a forgotten one costs a read on its next transfer.
const HOME_REGIONS_REMEMBERED: u64 = 1 << 20;

/// A bound, not yet running, service.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    admin_listener: TcpListener,
    shared: SharedState,
    /// One request pool per serving thread ([`crate::server`]).
    pools: Vec<Pool>,
}

impl Application {
    /// Binds the public and admin listeners (port 0 picks a free port, for
    /// tests) and makes the pools, which connect lazily: the service
    /// starts, unready, while the database is unreachable.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let opened = crate::db::pool::opened_counter();
        let pools = settings
            .pool_shares()
            .into_iter()
            .map(|size| crate::db::connect(&settings, size, opened.clone()))
            .collect::<Result<Vec<_>, _>>()
            .context("invalid database settings")?;
        let health_pool =
            crate::db::connect_for_health(&settings).context("invalid database settings")?;
        if settings.migrate_on_start {
            crate::db::migrate_database(&settings)
                .await
                .context("migration on start failed")?;
        }
        let listener = TcpListener::bind(settings.listen_address)
            .await
            .with_context(|| format!("cannot bind listen_address {}", settings.listen_address))?;
        let admin_listener = TcpListener::bind(settings.admin_address)
            .await
            .with_context(|| format!("cannot bind admin_address {}", settings.admin_address))?;
        let metrics = Metrics::new(&settings.region, &settings.instance_id, opened);
        // A cached gate answer stays valid for one refresh plus one bounded query.
        let validity =
            Duration::from_millis(settings.region_state_refresh_ms + settings.readiness_timeout_ms);
        let shared = SharedState {
            health_pool,
            admission: Arc::new(crate::http::middleware::Admission::new(
                settings.max_concurrent_requests,
            )),
            placement: crate::http::middleware::Placement::new(
                &settings.region,
                &settings.instance_id,
            ),
            metrics,
            region_gate: RegionGate::new(validity),
            dialect: Arc::new(OnceLock::new()),
            shutting_down: Arc::default(),
            auth: crate::auth::Authenticator {
                keys: crate::auth::api_keys::KeyStore::default(),
                jwt: crate::auth::jwt::JwtVerifier::from_settings(&settings),
            },
            rate_limit: crate::auth::rate_limit::RateLimit::from_settings(&settings),
            readiness: Arc::new(crate::http::health::ReadinessCheck::new(
                Duration::from_millis(settings.readiness_cache_ms),
            )),
            cold_pools: Arc::new(std::sync::atomic::AtomicUsize::new(
                if settings.database_pool_warm {
                    pools.len()
                } else {
                    0
                },
            )),
            homes: crate::db::bulkhead::HomeRegions::new(HOME_REGIONS_REMEMBERED),
            settings: Arc::new(settings),
        };
        Ok(Self {
            listener,
            admin_listener,
            shared,
            pools,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().expect("bound listener").port()
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_listener
            .local_addr()
            .expect("bound listener")
            .port()
    }

    /// Serves until `shutdown` resolves, then drains and stops.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            admin_listener,
            shared,
            pools,
        } = self;
        let settings = shared.settings.clone();
        // First, so that a failure to start one leaves no refresher or admin
        // server behind.
        let mut threads = Threads::start(&shared, &pools).await?;
        let (stop_tx, stop_rx) = watch::channel(false);

        let refresher = Refresher {
            gate: shared.region_gate.clone(),
            pool: shared.health_pool.clone(),
            region: settings.region.clone(),
            interval: Duration::from_millis(settings.region_state_refresh_ms),
            query_timeout: settings.readiness_timeout(),
            metrics: shared.metrics.clone(),
            dialect: shared.dialect.clone(),
        };
        let refresher = tokio::spawn(refresher.run(stop_rx.clone()));

        let admin = admin_router(shared.metrics.clone(), pools.clone());
        let mut admin_stop = stop_rx.clone();
        let admin = tokio::spawn(async move {
            axum::serve(admin_listener, admin)
                .with_graceful_shutdown(async move {
                    let _ = admin_stop.changed().await;
                })
                .await
        });

        let auth_refresher = crate::auth::Refresher {
            auth: shared.auth.clone(),
            rate_limit: shared.rate_limit.clone(),
            pool: shared.health_pool.clone(),
            key_interval: Duration::from_millis(settings.auth_api_key_refresh_ms),
            query_timeout: settings.readiness_timeout(),
        };
        let auth_refresher = tokio::spawn(auth_refresher.run(stop_rx.clone()));
        let limits = crate::server::AcceptLimits {
            max_connections: settings.max_connections,
            refused: shared.metrics.connections_refused.clone(),
        };

        // The public listener stops accepting only after the drain period.
        let (close_tx, mut close_rx) = watch::channel(false);
        let mut public = tokio::spawn(async move {
            let accepted = crate::server::accept(listener, &mut threads, limits, async move {
                let _ = close_rx.changed().await;
            })
            .await;
            (threads, accepted)
        });

        tracing::info!(
            region = %settings.region,
            instance = %settings.instance_id,
            listen = %settings.listen_address,
            admin = %settings.admin_address,
            serving_threads = pools.len(),
            "service started"
        );

        tokio::select! {
            ended = &mut public => {
                // The acceptor only ends early when a serving thread died.
                let _ = stop_tx.send(true);
                let (threads, accepted) = ended.context("public server task failed")?;
                threads.finish(Duration::ZERO).await;
                accepted.context("public server failed")?;
                anyhow::bail!("public server stopped");
            }
            () = shutdown => {}
        }

        tracing::info!(
            drain_period_ms = settings.drain_period_ms,
            "shutdown signal: unready, draining"
        );
        shared.shutting_down.store(true, Ordering::SeqCst);
        shared.metrics.shutting_down.set(1);
        tokio::time::sleep(settings.drain_period()).await;

        tracing::info!(
            grace_ms = settings.shutdown_grace_ms,
            "closing the listener; finishing in-flight requests"
        );
        let _ = close_tx.send(true);
        let (threads, accepted) = public.await.context("public server task failed")?;
        if !threads.finish(settings.shutdown_grace()).await {
            tracing::warn!("in-flight requests exceeded the shutdown grace; abandoning them");
        }
        let _ = stop_tx.send(true);
        let _ = refresher.await;
        let _ = auth_refresher.await;
        let _ = admin.await;
        shared.health_pool.close().await;
        accepted.context("public server failed")?;
        tracing::info!("service stopped");
        Ok(())
    }
}

/// The admin router: metrics only, never on the public port.
fn admin_router(metrics: Metrics, pools: Vec<Pool>) -> Router {
    let pools: Arc<[Pool]> = pools.into();
    Router::new().route(
        "/metrics",
        get(move || {
            let (metrics, pools) = (metrics.clone(), Arc::clone(&pools));
            async move {
                let (size, idle) = pools
                    .iter()
                    .map(Pool::state)
                    .fold((0, 0), |(size, idle), state| {
                        (size + state.size, idle + state.idle)
                    });
                let connections = &metrics.db_pool_connections;
                connections.with_label_values(&["idle"]).set(idle as i64);
                connections
                    .with_label_values(&["active"])
                    .set(size.saturating_sub(idle) as i64);
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    metrics.render(),
                )
            }
        }),
    )
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = async {
        tokio::signal::ctrl_c()
            .await
            .expect("install SIGINT handler");
    };
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler")
            .recv()
            .await;
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
