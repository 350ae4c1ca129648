//! Building and running the app: connect, migrate, load themes, bind, spawn workers, serve, and
//! stop gracefully (stop accepting, finish requests in flight, then stop the workers).

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::assets::Assets;
use crate::config::Config;
use crate::connectors::registry::{ProcessorDriver, Registry};
use crate::context::{Clock, Ctx, PendingCards, SystemClock};
use crate::db::Db;
use crate::notify::deliver::Deliverer;
use crate::notify::ssrf::UrlPolicy;
use crate::notify::worker::Worker;
use crate::state::AppState;
use crate::supervisor::{CancellationToken, Supervisor};
use crate::themes::Themes;

pub struct App {
    pub addr: SocketAddr,
    pub state: AppState,
    /// How long a graceful stop waits; tests shorten it.
    pub grace: Grace,
    listener: TcpListener,
}

/// The bounds of a graceful stop. Past them the server stops anyway: a request still running
/// is cut off, a background loop is aborted (a notification it was delivering stays leased and
/// goes out again, with the same `webhook-id`, once the lease expires).
#[derive(Clone, Copy, Debug)]
pub struct Grace {
    /// For requests in flight after the listener closes (each request times out at 30 s anyway).
    pub requests: Duration,
    /// For each background loop to finish its unit of work (a delivery times out at 15 s).
    pub workers: Duration,
}

impl Default for Grace {
    fn default() -> Self {
        Grace {
            requests: Duration::from_secs(30),
            workers: Duration::from_secs(20),
        }
    }
}

impl App {
    /// Connects to the configured database, then builds.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let db = Db::connect(&config.database_url).await?;
        Self::build_with_db(config, db).await
    }

    /// Builds on an already connected (and migrated) database; tests use this.
    pub async fn build_with_db(config: Config, db: Db) -> anyhow::Result<App> {
        let mut assets = Assets::default();
        let themes = Themes::load(&config.themes_dir, &mut assets)?;
        let app_css = assets.add_file("app.css", &config.static_dir.join("app.css"))?;
        let favicon = assets.add_file("favicon.ico", &config.static_dir.join("favicon.ico"))?;
        let console_css = assets.add_file("console.css", &config.static_dir.join("console.css"))?;
        let sms = crate::sms::SmsProviders::from_config(&config)?;
        // A malformed master key stops the server here rather than at the first live payment.
        let keys = Arc::new(config.keyring()?);
        let secret = crate::db::server_secret(&db, &keys).await?;
        let listener = TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        let mut registry = Registry::new(&public_url, &secret, keys.clone());
        registry.configure(&config)?;
        registry.register(stripe_driver(&config)?);
        let connectors = Arc::new(registry);
        let state = AppState {
            ctx: Ctx {
                clock: Arc::new(SystemClock),
                db,
                config: Arc::new(config),
                secret: secret.into(),
                public_url: public_url.into(),
                keys,
                connectors,
                pending_cards: Arc::new(PendingCards::default()),
                sms: Arc::new(sms),
                wake: Arc::new(tokio::sync::Notify::new()),
            },
            themes: Arc::new(themes),
            assets: Arc::new(assets),
            app_css: app_css.into(),
            favicon: favicon.into(),
            console_css: console_css.into(),
        };
        Ok(App {
            addr,
            state,
            grace: Grace::default(),
            listener,
        })
    }

    /// Adds a processor driver to this app's connector registry; call before [`App::run`].
    /// Tests register test-double processors this way.
    pub fn register_driver(&mut self, driver: Arc<dyn ProcessorDriver>) {
        Arc::get_mut(&mut self.state.ctx.connectors)
            .expect("drivers are registered before the app runs")
            .register(driver);
    }

    /// Replaces this app's clock; call before [`App::run`]. Tests move a manual clock instead
    /// of sleeping.
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.state.ctx.clock = clock;
    }

    /// Starts the background workers (notification delivery, expiry sweeps) under a supervisor,
    /// which stops them.
    pub fn spawn_workers(&self) -> anyhow::Result<Supervisor> {
        let st = &self.state;
        let policy = if st.config.allow_loopback_callbacks {
            UrlPolicy::AllowLoopback
        } else {
            UrlPolicy::TestMode
        };
        let worker = Arc::new(Worker {
            db: st.db.clone(),
            config: st.config.clone(),
            deliverer: Arc::new(Deliverer::new(policy)?),
            wake: st.wake.clone(),
            owner: crate::util::random_id("wrk", 12),
            keys: st.keys.clone(),
        });
        let mut sup = Supervisor::new();
        sup.spawn("notify", move |stop| worker.clone().run(stop));
        let (db, config, registry) = (st.db.clone(), st.config.clone(), st.connectors.clone());
        sup.spawn("card-sweep", move |stop| {
            sweep(db.clone(), config.clone(), registry.clone(), stop)
        });
        let (db, wake) = (st.db.clone(), st.wake.clone());
        let interval = Duration::from_millis(st.config.sweep_interval_ms.max(1));
        sup.spawn("konbini-sweep", move |stop| {
            crate::flows::konbini::run_sweeper(db.clone(), wake.clone(), interval, stop)
        });
        let (db, registry, wake) = (st.db.clone(), st.connectors.clone(), st.wake.clone());
        sup.spawn("redirect-jobs", move |stop| {
            crate::flows::jobs::run_jobs(db.clone(), registry.clone(), wake.clone(), stop)
        });
        Ok(sup)
    }

    /// Serves until SIGTERM or Ctrl-C, then stops gracefully (see [`App::run_until`]).
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves (starting the workers first when configured) until `shutdown` resolves, then
    /// stops: the listener closes, requests in flight finish, then every background loop
    /// finishes the unit of work it is in and stops; then this returns. Each step is bounded by
    /// [`App::grace`]. Tests stop an app with this instead of a signal.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let workers = if self.state.config.workers {
            Some(self.spawn_workers().map_err(std::io::Error::other)?)
        } else {
            None
        };
        let grace = self.grace;
        let stopping = CancellationToken::new();
        let signal = {
            let stopping = stopping.clone();
            async move {
                shutdown.await;
                tracing::info!("shutting down: listener closed, finishing requests in flight");
                stopping.cancel();
            }
        };
        let router = crate::routes::router(self.state.clone());
        let serve = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .into_future();
        let served = tokio::select! {
            r = serve => r,
            _ = async {
                stopping.cancelled().await;
                tokio::time::sleep(grace.requests).await;
            } => {
                tracing::warn!(
                    grace_ms = grace.requests.as_millis() as u64,
                    "requests still in flight after the grace period; closing them"
                );
                Ok(())
            }
        };
        if let Some(sup) = workers {
            tracing::info!(tasks = ?sup.names(), "stopping background tasks");
            sup.shutdown(grace.workers).await;
        }
        if served.is_ok() {
            tracing::info!("shutdown complete");
        }
        served
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are installed when this is called, not
/// when the future is first polled, so a signal that arrives in between is not missed.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            let (mut term, mut int) = match (term, int) {
                (Ok(t), Ok(i)) => (t, i),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM/SIGINT; serving until killed");
                    return std::future::pending().await;
                }
            };
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "stop signal received");
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            return std::future::pending().await;
        }
        tracing::info!(signal = "Ctrl-C", "stop signal received");
    }
}

/// The connector registry for commands that run without a server (CLI): the same connectors,
/// keys and derived sandbox secrets as the server on this database.
pub async fn registry(config: &Config, db: &Db) -> anyhow::Result<Arc<Registry>> {
    let keys = Arc::new(config.keyring()?);
    let secret = crate::db::server_secret(db, &keys).await?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.addr));
    let mut registry = Registry::new(public_url.trim_end_matches('/'), &secret, keys);
    registry.configure(config)?;
    registry.register(stripe_driver(config)?);
    Ok(Arc::new(registry))
}

/// The Stripe driver, its URLs checked here so a bad setting stops the server at startup.
fn stripe_driver(config: &Config) -> anyhow::Result<Arc<dyn ProcessorDriver>> {
    Ok(Arc::new(crate::connectors::stripe::StripeDriver::new(
        &config.stripe,
        config.allow_loopback_callbacks,
    )?))
}

/// Periodic state sweeps: lapsed card authorizations, abandoned 3-D Secure challenges. Each
/// sweep is a plain function tests call directly. Stops between sweeps once `stop` is cancelled.
async fn sweep(db: Db, config: Arc<Config>, registry: Arc<Registry>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(config.sweep_interval_ms.max(100)));
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = crate::util::now_ms();
        if let Err(e) = crate::flows::card::lapse_due(&db, now, config.card_auth_lapse_days).await {
            tracing::warn!(error = %e, "card lapse sweep");
        }
        if let Err(e) = crate::flows::card::reconcile_stale(&db, &registry, now).await {
            tracing::warn!(error = %e, "card reconciliation sweep");
        }
        if let Err(e) = crate::flows::card::resume_operations(&db, &registry, now).await {
            tracing::warn!(error = %e, "card operation sweep");
        }
        if let Err(e) = crate::flows::client_card::reconcile(&db, &registry, now).await {
            tracing::warn!(error = %e, "browser card reconciliation sweep");
        }
    }
}
