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
    /// Connects, migrates nothing (see `migrate`), binds HTTP and DNS.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, None).await
    }

    /// As `build`, with static Route53 credentials (tests).
    pub async fn build_with(
        settings: Settings,
        route53_credentials: Option<aws_sdk_route53::config::Credentials>,
    ) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let pool = db::connect(settings.database_url.expose(), 8)
            .await
            .context("cannot connect to the database")?;
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
        let mut tasks = JoinSet::new();
        tasks.spawn(reconcile::probe_loop(
            Arc::clone(&ctx),
            prober,
            stop_tx.subscribe(),
        ));
        tasks.spawn(reconcile::lease_loop(Arc::clone(&ctx), stop_tx.subscribe()));
        tasks.spawn(decide::decide_loop(Arc::clone(&ctx), stop_tx.subscribe()));
        if let Some(records) = ctx.route53.clone() {
            tasks.spawn(route53_sync::route53_loop(
                Arc::clone(&ctx),
                records,
                stop_tx.subscribe(),
            ));
        }
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
        ctx.state.set_ready(true);
        shutdown.await;
        tracing::info!("shutting down");
        ctx.state.set_ready(false);
        tokio::time::sleep(Duration::from_secs(ctx.settings.shutdown_drain_seconds)).await;
        let _ = stop_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        let _ = servers_stop.send(());
        if let Some(task) = dns_task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), http_task).await;
        Ok(())
    }
}
