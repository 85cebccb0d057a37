//! Builds the controller from its settings, binds its ports, and runs the
//! loops and servers until stopped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{broadcast, Notify};
use tokio::task::JoinSet;

use crate::actions::route53::Route53Records;
use crate::config::Settings;
use crate::dns::server::{DnsServer, ZoneHandler};
use crate::dns::{DnsView, ZoneConfig};
use crate::lease::Lease;
use crate::metrics::Metrics;
use crate::probe::Prober;
use crate::reconcile::{self, decide, route53_sync, Context};
use crate::state::State;
use crate::{db, http};

/// A built controller: ports bound, loops not started yet.
pub struct Application {
    ctx: Arc<Context>,
    http_listener: tokio::net::TcpListener,
    http_addr: SocketAddr,
    dns: Option<DnsServer>,
    prober: Prober,
}

impl Application {
    /// Binds HTTP and DNS; connects to the database only when running (a
    /// database that is down does not stop the start), migrates nothing
    /// (see `migrate`).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, None).await
    }

    /// As `build`, with static Route53 credentials (tests).
    pub async fn build_with(
        settings: Settings,
        route53_credentials: Option<aws_sdk_route53::config::Credentials>,
    ) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        // Half a lease TTL: a round (bounded by the TTL) then reports the
        // database unreachable rather than merely slow.
        let acquire_timeout = Duration::from_millis(settings.lease.ttl_ms / 2);
        let pool = db::connect_lazy(settings.database_url.expose(), 8, acquire_timeout)
            .context("database_url: not a usable PostgreSQL URL")?;
        let metrics = Metrics::new();
        let zone = Arc::new(ZoneConfig::from_settings(&settings)?);
        let state = State::new(metrics.clone(), DnsView::all_serving(&zone));
        let controller_id = settings.effective_controller_id();
        let lease = Lease::new(
            pool.clone(),
            settings.lease.name.clone(),
            controller_id.clone(),
            Duration::from_millis(settings.lease.ttl_ms),
        );
        let route53 = if settings.route53.enabled {
            Some(Arc::new(
                Route53Records::new(&settings, metrics.clone(), route53_credentials).await,
            ))
        } else {
            None
        };
        let prober = Prober::new(&settings, metrics.clone())?;
        let timeouts: Vec<String> = prober
            .timeouts()
            .iter()
            .map(|(region, timeout)| format!("{region} {} ms", timeout.as_millis()))
            .collect();
        tracing::info!(timeouts = %timeouts.join(", "), "probe timeouts");
        let http_listener = tokio::net::TcpListener::bind(settings.http_listen)
            .await
            .with_context(|| format!("cannot bind http_listen {}", settings.http_listen))?;
        let http_addr = http_listener.local_addr()?;
        let dns = if settings.dns.enabled {
            let handler = ZoneHandler::new(Arc::clone(&zone), Arc::clone(&state.dns_view));
            Some(DnsServer::bind(settings.dns_listen, handler).await?)
        } else {
            None
        };
        let ctx = Arc::new(Context {
            settings,
            pool,
            state,
            lease,
            controller_id,
            route53,
            route53_wake: Notify::new(),
            lease_deadline: std::sync::Mutex::new(None),
        });
        Ok(Self {
            ctx,
            http_listener,
            http_addr,
            dns,
            prober,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns.as_ref().map(|d| d.local_addr())
    }

    pub fn state(&self) -> Arc<State> {
        Arc::clone(&self.ctx.state)
    }

    /// Runs until `shutdown` resolves: then unready, drain period, stop the
    /// loops (the lease is released), close the listeners.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            ctx,
            http_listener,
            dns,
            prober,
            ..
        } = self;
        let (stop_tx, _) = broadcast::channel::<()>(1);
        let router = http::router(http::HttpContext {
            state: Arc::clone(&ctx.state),
            pool: ctx.pool.clone(),
            admin_token: ctx.settings.admin_token.clone(),
            regions: ctx.settings.region_names(),
            controller_id: ctx.controller_id.clone(),
            min_healthy_regions: ctx.settings.decision.min_healthy_regions,
        });
        let (servers_stop, _) = broadcast::channel::<()>(1);
        let mut http_stop = servers_stop.subscribe();
        let http_task = tokio::spawn(async move {
            axum::serve(http_listener, router)
                .with_graceful_shutdown(async move {
                    let _ = http_stop.recv().await;
                })
                .await
        });
        let dns_task = dns.map(|server| {
            let mut dns_stop = servers_stop.subscribe();
            tokio::spawn(server.run_until(async move {
                let _ = dns_stop.recv().await;
            }))
        });
        // The loops start once the database answers; until then /healthz
        // answers, /readyz says why not, and DNS answers SERVFAIL.
        let loops = tokio::spawn(run_loops(Arc::clone(&ctx), prober, &stop_tx));
        ctx.state.set_ready(true);
        shutdown.await;
        tracing::info!("shutting down");
        ctx.state.set_ready(false);
        tokio::time::sleep(Duration::from_secs(ctx.settings.shutdown_drain_seconds)).await;
        let _ = stop_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), loops).await;
        let _ = servers_stop.send(());
        if let Some(task) = dns_task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), http_task).await;
        Ok(())
    }
}

/// Waits for the database, then runs the probe, lease, decision and Route53
/// loops until stopped. The receivers are taken before the wait, so that a
/// stop during it is not missed.
fn run_loops(
    ctx: Arc<Context>,
    prober: Prober,
    stop_tx: &broadcast::Sender<()>,
) -> impl Future<Output = ()> + Send + 'static {
    let mut wait_stop = stop_tx.subscribe();
    let probe_stop = stop_tx.subscribe();
    let lease_stop = stop_tx.subscribe();
    let decide_stop = stop_tx.subscribe();
    let route53_stop = stop_tx.subscribe();
    async move {
        if !reconcile::wait_for_database(&ctx, &mut wait_stop).await {
            return;
        }
        let mut loops = JoinSet::new();
        loops.spawn(reconcile::probe_loop(Arc::clone(&ctx), prober, probe_stop));
        loops.spawn(reconcile::lease_loop(Arc::clone(&ctx), lease_stop));
        loops.spawn(decide::decide_loop(Arc::clone(&ctx), decide_stop));
        if let Some(records) = ctx.route53.clone() {
            loops.spawn(route53_sync::route53_loop(
                Arc::clone(&ctx),
                records,
                route53_stop,
            ));
        }
        while loops.join_next().await.is_some() {}
    }
}
