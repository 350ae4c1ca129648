//! Building and running the app: connect, migrate, load themes, bind, spawn workers, serve, and
//! stop gracefully (stop accepting, finish requests in flight, then stop the workers).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::assets::Assets;
use crate::config::Config;
use crate::connectors::registry::{ProcessorDriver, Registry};
use crate::context::{Clock, Ctx, SystemClock};
use crate::db::Db;
use crate::notify::deliver::Deliverer;
use crate::notify::worker::Worker;
use crate::ssrf::UrlPolicy;
use crate::state::{AppState, Shared};
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
        let number_js = assets.add_file("number.js", &config.static_dir.join("number.js"))?;
        let card_form_js =
            assets.add_file("card-form.js", &config.static_dir.join("card-form.js"))?;
        let handoff_js = assets.add_file("handoff.js", &config.static_dir.join("handoff.js"))?;
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
        // Held cards are sealed with the master key; a test-mode installation without one
        // derives a key from the server secret, which every instance shares (docs/security.md).
        let card_keys = if keys.has_current() {
            keys.clone()
        } else {
            Arc::new(crate::secrets::Keyring::derived(
                &secret,
                crate::flows::card_hold::DERIVED_KEY_PURPOSE,
            ))
        };
        let mut registry = Registry::new(&public_url, &secret, keys.clone());
        registry.configure(&config)?;
        registry.register(stripe_driver(&config)?);
        let connectors = Arc::new(registry);
        let state = AppState::new(Shared {
            ctx: Ctx {
                clock: Arc::new(SystemClock),
                db,
                config: Arc::new(config),
                secret: secret.into(),
                public_url: public_url.into(),
                keys,
                connectors,
                card_keys,
                sms: Arc::new(sms),
                wake: Arc::new(tokio::sync::Notify::new()),
            },
            themes: Arc::new(themes),
            assets: Arc::new(assets),
            app_css: app_css.into(),
            favicon: favicon.into(),
            console_css: console_css.into(),
            number_js: number_js.into(),
            card_form_js: card_form_js.into(),
            handoff_js: handoff_js.into(),
            draining: Default::default(),
        });
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
        let shared = self
            .state
            .get_mut()
            .expect("drivers are registered before the app runs");
        Arc::get_mut(&mut shared.ctx.connectors)
            .expect("drivers are registered before the app runs")
            .register(driver);
    }

    /// Replaces this app's clock; call before [`App::run`]. Tests move a manual clock instead
    /// of sleeping.
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.state
            .get_mut()
            .expect("the clock is set before the app runs")
            .ctx
            .clock = clock;
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
            clock: st.clock.clone(),
        });
        let mut sup = Supervisor::new();
        sup.spawn("notify", move |stop| worker.clone().run(stop));
        let (db, config, registry) = (st.db.clone(), st.config.clone(), st.connectors.clone());
        let clock = st.clock.clone();
        sup.spawn("card-sweep", move |stop| {
            sweep(
                db.clone(),
                config.clone(),
                registry.clone(),
                clock.clone(),
                stop,
            )
        });
        let (db, wake, clock) = (st.db.clone(), st.wake.clone(), st.clock.clone());
        let interval = Duration::from_millis(st.config.sweep_interval_ms.max(1));
        sup.spawn("konbini-sweep", move |stop| {
            crate::flows::konbini::run_sweeper(
                db.clone(),
                wake.clone(),
                clock.clone(),
                interval,
                stop,
            )
        });
        let (db, registry, wake) = (st.db.clone(), st.connectors.clone(), st.wake.clone());
        let clock = st.clock.clone();
        sup.spawn("redirect-jobs", move |stop| {
            crate::flows::jobs::run_jobs(
                db.clone(),
                registry.clone(),
                wake.clone(),
                clock.clone(),
                stop,
            )
        });
        let (db, wake, clock) = (st.db.clone(), st.wake.clone(), st.clock.clone());
        sup.spawn("settlements", move |stop| {
            crate::flows::settlements::run_cutoff(
                db.clone(),
                wake.clone(),
                clock.clone(),
                interval,
                stop,
            )
        });
        let sender = Arc::new(self.message_sender()?);
        sup.spawn("messages", move |stop| sender.clone().run(stop));
        Ok(sup)
    }

    /// The shopper message sender (docs/messages.md): SMTP from the settings, each merchant's
    /// theme colour and logo for the HTML part.
    fn message_sender(&self) -> anyhow::Result<crate::flows::messages::Sender> {
        let st = &self.state;
        let themes = st.themes.clone();
        Ok(crate::flows::messages::Sender {
            ctx: st.ctx.clone(),
            mailer: crate::mail::Mailer::from_settings(&st.config.mail)?.map(Arc::new),
            branding: Arc::new(move |name: &str| {
                let t = themes.resolve(name);
                crate::messages::compose::Branding {
                    primary: t.primary.clone(),
                    logo_url: t.logo_url.clone(),
                }
            }),
            owner: crate::util::random_id("msw", 12),
        })
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
            let draining = self.state.draining.clone();
            let delay = Duration::from_millis(self.state.config.drain_delay_ms);
            async move {
                shutdown.await;
                // Not ready from now on; still serving for the drain delay, so a balancer
                // that checks `/readyz` stops sending traffic before the listener closes.
                draining.store(true, std::sync::atomic::Ordering::SeqCst);
                if !delay.is_zero() {
                    tracing::info!(
                        drain_delay_ms = delay.as_millis() as u64,
                        "stopping: /readyz answers 503, still serving"
                    );
                    tokio::time::sleep(delay).await;
                }
                tracing::info!("shutting down: listener closed, finishing requests in flight");
                stopping.cancel();
            }
        };
        let router = crate::routes::router(self.state.clone());
        let limits = ConnLimits::from_config(&self.state.config, grace.requests);
        let signal = tokio::spawn(signal);
        let serve = serve(self.listener, router, limits, stopping.clone());
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
        signal.abort();
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

/// Limits on client connections, from the settings.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Time to send a request's headers (and to start the next one on a kept-alive connection).
    pub header_timeout: Duration,
    /// A connection with no traffic this long is closed (gracefully: a request in flight is
    /// answered first).
    pub idle_timeout: Duration,
    /// Open connections at most; the accept loop waits for a free place.
    pub max_connections: usize,
    /// How long a connection being closed (idle, or the server stopping) may take to finish
    /// before it is dropped.
    pub close_grace: Duration,
}

impl ConnLimits {
    pub fn from_config(config: &Config, close_grace: Duration) -> Self {
        ConnLimits {
            header_timeout: Duration::from_millis(config.header_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms.max(1)),
            // The semaphore's own ceiling is far above any sensible setting.
            max_connections: config.max_connections.clamp(1, 1 << 24),
            close_grace,
        }
    }
}

/// The first and the longest wait after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `stopping` is cancelled, then stops accepting, lets every
/// connection finish the request it is answering and returns once all are closed.
///
/// Each connection holds one of `max_connections` places; past that the loop stops accepting
/// (clients wait in the kernel's backlog). A failed accept is retried after a doubling pause.
/// HTTP/1 header reads are bounded by hyper's header-read timeout; a connection that sends
/// nothing at all within that time, or has no traffic for the idle timeout, is closed.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnLimits,
    stopping: CancellationToken,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    let places = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let place = tokio::select! {
            biased;
            _ = stopping.cancelled() => break,
            p = places.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
        };
        let (stream, peer) = tokio::select! {
            biased;
            _ = stopping.cancelled() => break,
            r = listener.accept() => match r {
                Ok(conn) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    conn
                }
                Err(e) => {
                    tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed");
                    tokio::select! {
                        _ = stopping.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (builder, router, stopping) = (builder.clone(), router.clone(), stopping.clone());
        tokio::spawn(async move {
            serve_connection(&builder, stream, peer, router, limits, stopping).await;
            drop(place);
        });
    }
    drop(listener);
    // Every connection holds a place until it has closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = places.acquire_many(all).await;
    Ok(())
}

/// One connection: served until it closes, the client is idle too long, or the server stops.
async fn serve_connection(
    builder: &hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    limits: ConnLimits,
    stopping: CancellationToken,
) {
    use tower::ServiceExt;
    let activity = Arc::new(Activity::new());
    let io = hyper_util::rt::TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            router.clone().oneshot(req)
        });
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut closing: Option<tokio::time::Instant> = None;
    loop {
        let deadline = match closing {
            Some(at) => at + limits.close_grace,
            None => activity.deadline(limits),
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            _ = stopping.cancelled(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(tokio::time::Instant::now());
            }
            _ = tokio::time::sleep_until(deadline) => {
                if closing.is_some() {
                    tracing::debug!(%peer, "connection did not close in time; dropped");
                    return;
                }
                if activity.deadline(limits) <= tokio::time::Instant::now() {
                    tracing::debug!(%peer, "idle connection closed");
                    conn.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now());
                }
            }
        }
    }
}

/// When a connection last read or wrote a byte, and whether it has read any.
struct Activity {
    start: tokio::time::Instant,
    last_ms: std::sync::atomic::AtomicU64,
    read_any: std::sync::atomic::AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: tokio::time::Instant::now(),
            last_ms: 0.into(),
            read_any: false.into(),
        }
    }

    fn touch(&self, read: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Relaxed);
        if read {
            self.read_any.store(true, Relaxed);
        }
    }

    /// A connection that has sent nothing gets the header timeout; else the idle timeout runs
    /// from its last traffic (hyper's own header timer bounds a request's headers).
    fn deadline(&self, limits: ConnLimits) -> tokio::time::Instant {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.read_any.load(Relaxed) {
            return self.start + limits.header_timeout;
        }
        self.start + Duration::from_millis(self.last_ms.load(Relaxed)) + limits.idle_timeout
    }
}

/// A stream that records its traffic in an [`Activity`].
struct Tracked {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch(true);
        }
        r
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch(false);
        }
        r
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch(false);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
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

/// Periodic state sweeps: lapsed card authorizations, abandoned 3-D Secure challenges and their
/// expired held cards. Each sweep is a plain function tests call directly. Stops between sweeps
/// once `stop` is cancelled.
async fn sweep(
    db: Db,
    config: Arc<Config>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(config.sweep_interval_ms.max(100)));
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = clock.now_ms();
        if let Err(e) = crate::flows::card::lapse_due(&db, now, config.card_auth_lapse_days).await {
            tracing::warn!(error = %e, "card lapse sweep");
        }
        if let Err(e) = crate::flows::card::reconcile_stale(&db, &registry, now).await {
            tracing::warn!(error = %e, "card reconciliation sweep");
        }
        if let Err(e) = crate::flows::card_hold::purge_expired(&db, now).await {
            tracing::warn!(error = %e, "held card sweep");
        }
        if let Err(e) = crate::flows::card::resume_operations(&db, &registry, now).await {
            tracing::warn!(error = %e, "card operation sweep");
        }
        if let Err(e) = crate::flows::client_card::reconcile(&db, &registry, now).await {
            tracing::warn!(error = %e, "browser card reconciliation sweep");
        }
    }
}
