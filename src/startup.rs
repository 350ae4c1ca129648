//! Building and running the app: connect, migrate, load themes, bind, spawn workers, serve.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use tokio::net::TcpListener;

use crate::assets::Assets;
use crate::config::Config;
use crate::connectors::registry::{ProcessorDriver, Registry};
use crate::db::Db;
use crate::notify::deliver::Deliverer;
use crate::notify::ssrf::UrlPolicy;
use crate::notify::worker::Worker;
use crate::state::AppState;
use crate::themes::Themes;

pub struct App {
    pub addr: SocketAddr,
    pub state: AppState,
    listener: TcpListener,
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
        let secret = crate::db::server_secret(&db).await?;
        // A malformed master key stops the server here rather than at the first live payment.
        let keys = config.keyring()?;
        let listener = TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        let mut registry = Registry::new(&public_url, &secret, Arc::new(keys));
        registry.register(stripe_driver(&config)?);
        let connectors = Arc::new(registry);
        let state = AppState {
            db,
            config: Arc::new(config),
            themes: Arc::new(themes),
            assets: Arc::new(assets),
            app_css: app_css.into(),
            favicon: favicon.into(),
            console_css: console_css.into(),
            secret: secret.into(),
            public_url: public_url.into(),
            connectors,
            pending_cards: Arc::new(crate::flows::card::PendingCards::default()),
            sms: Arc::new(sms),
            wake: Arc::new(tokio::sync::Notify::new()),
        };
        Ok(App {
            addr,
            state,
            listener,
        })
    }

    /// Adds a processor driver to this app's connector registry; call before [`App::run`].
    /// Tests register test-double processors this way.
    pub fn register_driver(&mut self, driver: Arc<dyn ProcessorDriver>) {
        Arc::get_mut(&mut self.state.connectors)
            .expect("drivers are registered before the app runs")
            .register(driver);
    }

    /// Starts the background workers (notification delivery, expiry sweeps).
    pub fn spawn_workers(&self) -> anyhow::Result<()> {
        let st = &self.state;
        let policy = if st.config.allow_loopback_callbacks {
            UrlPolicy::AllowLoopback
        } else {
            UrlPolicy::TestMode
        };
        let worker = Worker {
            db: st.db.clone(),
            config: st.config.clone(),
            deliverer: Arc::new(Deliverer::new(policy)?),
            wake: st.wake.clone(),
            owner: crate::util::random_id("wrk", 12),
        };
        tokio::spawn(worker.run());
        tokio::spawn(sweep(
            st.db.clone(),
            st.config.clone(),
            st.connectors.clone(),
        ));
        tokio::spawn(crate::flows::konbini::run_sweeper(
            st.db.clone(),
            st.wake.clone(),
            std::time::Duration::from_millis(st.config.sweep_interval_ms.max(1)),
        ));
        tokio::spawn(crate::flows::redirect::run_jobs(
            st.db.clone(),
            st.connectors.clone(),
            st.wake.clone(),
        ));
        Ok(())
    }

    /// Serves until the process ends; starts the workers first when configured.
    pub async fn run(self) -> std::io::Result<()> {
        if self.state.config.workers {
            self.spawn_workers().map_err(std::io::Error::other)?;
        }
        let router = crate::routes::router(self.state.clone());
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    }
}

/// The connector registry for commands that run without a server (CLI): the same connectors,
/// keys and derived sandbox secrets as the server on this database.
pub async fn registry(config: &Config, db: &Db) -> anyhow::Result<Arc<Registry>> {
    let secret = crate::db::server_secret(db).await?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.addr));
    let mut registry = Registry::new(
        public_url.trim_end_matches('/'),
        &secret,
        Arc::new(config.keyring()?),
    );
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

/// The tracing span of a request: a request id, the method and the route *template*. The raw
/// path is never logged: it can hold a session token, and query strings hold signatures.
pub fn request_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "-".into());
    tracing::info_span!(
        "request",
        id = %crate::util::random_id("req", 12),
        method = %req.method(),
        route = %route,
    )
}

/// Periodic state sweeps: lapsed card authorizations, abandoned 3-D Secure challenges. Each
/// sweep is a plain function tests call directly.
async fn sweep(db: Db, config: Arc<Config>, registry: Arc<Registry>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(
        config.sweep_interval_ms.max(100),
    ));
    loop {
        tick.tick().await;
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
