//! Building and running the application: bind both listeners, start the
//! region-gate refresher, serve until the shutdown future resolves, then
//! shut down in order.
//!
//! Shutdown: unready at once (`/readyz` and `/healthz/region` answer 503),
//! keep serving for the drain period so that load balancers and DNS move
//! traffic away, stop accepting, let in-flight requests finish within the
//! grace bound, exit.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Settings;
use crate::db::retry::{RetryPolicy, Transactor};
use crate::http::{AppState, AppStateInner};
use crate::metrics::Metrics;
use crate::region_gate::{Refresher, RegionGate};

/// A bound, not yet running, service.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    admin_listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Binds the public and admin listeners (port 0 picks a free port, for
    /// tests) and connects the pool lazily: the service starts, unready,
    /// while the database is unreachable.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = crate::db::connect(&settings).context("invalid database settings")?;
        let health_pool =
            crate::db::connect_for_health(&settings).context("invalid database settings")?;
        if settings.migrate_on_start {
            let mut connection = pool
                .acquire()
                .await
                .context("cannot connect to migrate on start")?;
            crate::db::migrate(&mut connection, &settings)
                .await
                .context("migration on start failed")?;
        }
        let listener = TcpListener::bind(settings.listen_address)
            .await
            .with_context(|| format!("cannot bind listen_address {}", settings.listen_address))?;
        let admin_listener = TcpListener::bind(settings.admin_address)
            .await
            .with_context(|| format!("cannot bind admin_address {}", settings.admin_address))?;
        let metrics = Metrics::new(
            &settings.region,
            &settings.instance_id,
            pool.opened_counter(),
        );
        // A cached gate answer stays valid for one refresh plus one bounded query.
        let validity =
            Duration::from_millis(settings.region_state_refresh_ms + settings.readiness_timeout_ms);
        let dialect = Arc::new(OnceLock::new());
        let reads = crate::db::reads::AccountReader::start(
            pool.clone(),
            Arc::clone(&dialect),
            settings.read_batching(),
            metrics.db_read_batch_size.clone(),
        );
        let state = AppState::new(AppStateInner {
            health_pool,
            reads,
            transactor: Transactor {
                pool,
                policy: RetryPolicy::new(settings.transaction_max_retries),
                metrics: metrics.clone(),
            },
            admission: crate::http::middleware::Admission::new(settings.max_concurrent_requests),
            placement: crate::http::middleware::Placement::new(
                &settings.region,
                &settings.instance_id,
            ),
            metrics,
            region_gate: RegionGate::new(validity),
            dialect,
            shutting_down: Arc::default(),
            settings: Arc::new(settings),
        });
        Ok(Self {
            listener,
            admin_listener,
            state,
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
            state,
        } = self;
        let settings = state.settings.clone();
        let (stop_tx, stop_rx) = watch::channel(false);

        let refresher = Refresher {
            gate: state.region_gate.clone(),
            pool: state.health_pool.clone(),
            region: settings.region.clone(),
            interval: Duration::from_millis(settings.region_state_refresh_ms),
            query_timeout: settings.readiness_timeout(),
            metrics: state.metrics.clone(),
            dialect: state.dialect.clone(),
        };
        let refresher = tokio::spawn(refresher.run(stop_rx.clone()));

        let admin = admin_router(state.clone());
        let mut admin_stop = stop_rx.clone();
        let admin = tokio::spawn(async move {
            axum::serve(admin_listener, admin)
                .with_graceful_shutdown(async move {
                    let _ = admin_stop.changed().await;
                })
                .await
        });

        // The public server stops accepting only after the drain period.
        let (close_tx, mut close_rx) = watch::channel(false);
        // TCP_NODELAY: a response is one write; Nagle would hold a write
        // that follows an unacknowledged one (a pipelined or split answer).
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        let public = axum::serve(listener, crate::http::router(state.clone()))
            .with_graceful_shutdown(async move {
                let _ = close_rx.changed().await;
            });
        let mut public = tokio::spawn(async move { public.await });

        tracing::info!(
            region = %settings.region,
            instance = %settings.instance_id,
            listen = %settings.listen_address,
            admin = %settings.admin_address,
            "service started"
        );

        tokio::select! {
            result = &mut public => {
                let _ = stop_tx.send(true);
                return result.context("public server task failed")?.context("public server failed");
            }
            () = shutdown => {}
        }

        tracing::info!(
            drain_period_ms = settings.drain_period_ms,
            "shutdown signal: unready, draining"
        );
        state.shutting_down.store(true, Ordering::SeqCst);
        state.metrics.shutting_down.set(1);
        tokio::time::sleep(settings.drain_period()).await;

        tracing::info!(
            grace_ms = settings.shutdown_grace_ms,
            "closing the listener; finishing in-flight requests"
        );
        let _ = close_tx.send(true);
        match tokio::time::timeout(settings.shutdown_grace(), &mut public).await {
            Ok(result) => result
                .context("public server task failed")?
                .context("public server failed")?,
            Err(_) => {
                tracing::warn!("in-flight requests exceeded the shutdown grace; abandoning them");
                public.abort();
            }
        }
        let _ = stop_tx.send(true);
        let _ = refresher.await;
        let _ = admin.await;
        state.transactor.pool.close().await;
        state.health_pool.close().await;
        tracing::info!("service stopped");
        Ok(())
    }
}

/// The admin router: metrics only, never on the public port.
fn admin_router(state: AppState) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let state = state.clone();
            async move {
                let pool = state.transactor.pool.state();
                let connections = &state.metrics.db_pool_connections;
                connections
                    .with_label_values(&["idle"])
                    .set(pool.idle as i64);
                connections
                    .with_label_values(&["active"])
                    .set(pool.size.saturating_sub(pool.idle) as i64);
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    state.metrics.render(),
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
