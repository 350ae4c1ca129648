//! Stopping the server: a stop (SIGTERM, Ctrl-C, or the future given to `App::run_until`) closes
//! the listener, answers the requests in flight, lets the notification in flight finish, stops
//! the workers and returns; no notification is lost or delivered twice (by `webhook-id`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kakehashi::config::Config;
use kakehashi::db::outbox;
use kakehashi::startup::App;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::helpers::*;

/// Like `both!`, for tests that start their own app on the database of a host app that runs no
/// workers (so only the app under test delivers).
macro_rules! shared_backends {
    ($name:ident) => {
        mod $name {
            use crate::helpers::*;
            #[tokio::test]
            async fn sqlite() {
                let host = spawn_app_with(Backend::Sqlite, |c| c.workers = false)
                    .await
                    .unwrap();
                super::$name(host).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(host) = spawn_app_with(Backend::Postgres, |c| c.workers = false).await {
                    super::$name(host).await;
                }
            }
        }
    };
}
/// A merchant endpoint that waits before acknowledging: the n-th request waits `delays[n]`
/// (none after the list). Records each request's `webhook-id` when it arrives and again just
/// before it is answered 200 "ok".
#[derive(Clone)]
struct SlowReceiver {
    url: String,
    arrived: Arc<Mutex<Vec<String>>>,
    answered: Arc<Mutex<Vec<String>>>,
}

impl SlowReceiver {
    async fn start(delays: Vec<Duration>) -> SlowReceiver {
        let arrived: Arc<Mutex<Vec<String>>> = Default::default();
        let answered: Arc<Mutex<Vec<String>>> = Default::default();
        let (a, b) = (arrived.clone(), answered.clone());
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let (a, b, delays) = (a.clone(), b.clone(), delays.clone());
            async move {
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                let n = {
                    let mut v = a.lock().unwrap();
                    v.push(id.clone());
                    v.len() - 1
                };
                tokio::time::sleep(delays.get(n).copied().unwrap_or_default()).await;
                b.lock().unwrap().push(id);
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        SlowReceiver {
            url,
            arrived,
            answered,
        }
    }

    fn arrived(&self) -> Vec<String> {
        self.arrived.lock().unwrap().clone()
    }

    fn answered(&self) -> Vec<String> {
        self.answered.lock().unwrap().clone()
    }
}

/// A second server instance on `host`'s database, run with `App::run_until`: returns its
/// address, the sender that stops it and its run task.
async fn stoppable(
    host: &TestApp,
    tweak: impl FnOnce(&mut App),
) -> (
    std::net::SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<std::io::Result<()>>,
) {
    let mut config = Config::for_tests(String::new());
    config.notify_lease_ms = 1500;
    let mut app = App::build_with_db(config, host.db.clone()).await.unwrap();
    tweak(&mut app);
    let addr = app.addr;
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    (addr, stop, run)
}

/// Stops the app and waits (bounded) for its run future; returns how long that took.
async fn stop_and_wait(
    stop: oneshot::Sender<()>,
    run: JoinHandle<std::io::Result<()>>,
) -> Duration {
    let t = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the app stops within 10 s")
        .unwrap()
        .expect("run_until returns Ok");
    t.elapsed()
}

async fn outbox_row(app: &TestApp, id: &str) -> (String, i64, Option<String>) {
    kakehashi::on_db!(&app.db, c => sqlx::query_as::<_, (String, i64, Option<String>)>(
        "SELECT status, attempts, lease_owner FROM outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_one(c)
    .await)
    .unwrap()
}

async fn attempt_codes(app: &TestApp, id: &str) -> Vec<Option<i64>> {
    outbox::attempts(&app.db, id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.status_code)
        .collect()
}

/// The stop comes while the receiver is still answering: the app waits for the answer, records
/// the event delivered, then returns; a later instance has nothing to send again.
async fn a_stop_during_delivery_finishes_it_and_delivers_once(host: TestApp) {
    let rx = SlowReceiver::start(vec![Duration::from_millis(1500)]).await;
    let m = host
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let (addr, stop, run) = stoppable(&host, |_| {}).await;
    let id = outbox::ping(&host.db, &m.id, host.state.now_ms())
        .await
        .unwrap();
    eventually("the delivery in flight", || async {
        (!rx.arrived().is_empty()).then_some(())
    })
    .await;
    assert!(
        rx.answered().is_empty(),
        "stopped before the receiver answers"
    );
    let took = stop_and_wait(stop, run).await;
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    assert_eq!(
        rx.answered(),
        vec![id.clone()],
        "the delivery finished before the app returned"
    );
    let (status, attempts, lease) = outbox_row(&host, &id).await;
    assert_eq!(
        (status.as_str(), attempts, lease),
        ("delivered", 1, None),
        "recorded as delivered before the app returned"
    );
    assert_eq!(attempt_codes(&host, &id).await, vec![Some(200)]);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the stopped app no longer listens"
    );
    // A new instance on the same database finds nothing left to send.
    let _next = spawn_app_sharing(&host, true).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.arrived(), vec![id], "delivered exactly once");
}
shared_backends!(a_stop_during_delivery_finishes_it_and_delivers_once);

/// The receiver outlasts the workers' grace: the worker is cut off, the event stays leased and
/// unrecorded, and after the lease expires another instance sends it again with the same
/// `webhook-id`, so the receiver acknowledges one event once.
async fn a_delivery_cut_off_by_the_grace_goes_out_again_with_the_same_id(host: TestApp) {
    let rx = SlowReceiver::start(vec![Duration::from_secs(600)]).await;
    let m = host
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let (_, stop, run) = stoppable(&host, |app| {
        app.grace.workers = Duration::from_millis(300);
    })
    .await;
    let id = outbox::ping(&host.db, &m.id, host.state.now_ms())
        .await
        .unwrap();
    eventually("the delivery in flight", || async {
        (!rx.arrived().is_empty()).then_some(())
    })
    .await;
    let took = stop_and_wait(stop, run).await;
    assert!(took < Duration::from_secs(3), "stopped in {took:?}");
    let (status, attempts, lease) = outbox_row(&host, &id).await;
    assert_eq!((status.as_str(), attempts), ("pending", 0));
    assert!(lease.is_some(), "still leased to the stopped worker");
    assert!(attempt_codes(&host, &id).await.is_empty());
    let next = spawn_app_sharing(&host, true).await;
    // The lease runs out on the new instance's clock, without waiting for it.
    next.clock.advance(Duration::from_secs(2));
    eventually("redelivery after the lease expires", || async {
        (!rx.answered().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        rx.arrived(),
        vec![id.clone(), id.clone()],
        "same webhook-id"
    );
    assert_eq!(rx.answered(), vec![id.clone()], "acknowledged once");
    let (status, attempts, _) = outbox_row(&host, &id).await;
    assert_eq!((status.as_str(), attempts), ("delivered", 1));
}
shared_backends!(a_delivery_cut_off_by_the_grace_goes_out_again_with_the_same_id);

/// A request whose body is still arriving when the stop comes is answered; new connections are
/// refused meanwhile, and the app returns only after the answer.
async fn requests_in_flight_are_answered_before_the_server_stops(host: TestApp) {
    let (addr, stop, run) = stoppable(&host, |_| {}).await;
    let body = "merchant_id=m_none&order_id=o-1&amount=1000";
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /checkout HTTP/1.1\r\nhost: {addr}\r\nuser-agent: {UA_PC}\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!run.is_finished(), "waits for the request in flight");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections once stopping"
    );
    conn.write_all(&body.as_bytes()[10..]).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut response))
        .await
        .expect("answered, then the connection closes")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 "), "{response}");
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("returns after the answer")
        .unwrap()
        .unwrap();
}
shared_backends!(requests_in_flight_are_answered_before_the_server_stops);

/// The real binary gets SIGTERM while a notification is in flight: it finishes the delivery,
/// logs a clean stop and exits 0; restarted, it sends nothing again.
#[tokio::test]
async fn sigterm_during_delivery_exits_cleanly_and_delivers_once() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("term.db").display());
    let db = kakehashi::db::Db::connect(&url).await.unwrap();
    let rx = SlowReceiver::start(vec![Duration::from_millis(1500)]).await;
    let m = kakehashi::db::merchants::NewMerchant {
        id: Some("m_term".into()),
        name: "term".into(),
        mode: kakehashi::domain::Mode::Test,
        methods: vec![kakehashi::domain::Method::Card],
        konbini_chains: vec![],
        return_origins: vec![SHOP.into()],
        callback_url: Some(rx.url.clone()),
        notify_format: "standard".into(),
        theme: "default".into(),
        konbini_days: 7,
        capture_mode: "auto".into(),
        card_options: "lump".into(),
    };
    kakehashi::db::merchants::create(
        &db,
        &kakehashi::secrets::Keyring::default(),
        &m,
        kakehashi::util::now_ms(),
    )
    .await
    .unwrap();
    let id = outbox::ping(&db, "m_term", kakehashi::util::now_ms())
        .await
        .unwrap();

    // Starts the server; its stdout (banner and logs) is collected line by line.
    let spawn = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kakehashi"))
            .arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("DATABASE_URL", &url)
            .env("KAKEHASHI_ADDR", "127.0.0.1:0")
            .env("KAKEHASHI_ALLOW_LOOPBACK_CALLBACKS", "1")
            .env("RUST_LOG", "info,sqlx=warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let (o, stdout) = (out.clone(), child.stdout.take().unwrap());
        // The reader ends when the process closes its stdout (at exit): join it before reading
        // the last lines, or they may still be in the pipe.
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut o = o.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
        (child, out, reader)
    };
    // SIGTERM, then the exit status and how long the server took to exit. Waits without
    // blocking: the receiver runs on this test's runtime.
    async fn terminate(child: &mut std::process::Child) -> (std::process::ExitStatus, Duration) {
        let t = Instant::now();
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, t.elapsed());
            }
            if t.elapsed() > Duration::from_secs(15) {
                child.kill().unwrap();
                panic!("the server did not exit within 15 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let (mut first, out, reader) = spawn();
    eventually("the delivery in flight", || async {
        (!rx.arrived().is_empty()).then_some(())
    })
    .await;
    // The workers start with the listener: the delivery can reach the receiver before the
    // reader thread has copied the server's "listening" line.
    eventually("the server's listening line", || async {
        out.lock()
            .unwrap()
            .contains("listening on http://127.0.0.1:")
            .then_some(())
    })
    .await;
    assert!(
        rx.answered().is_empty(),
        "SIGTERM before the receiver answers"
    );
    let (status, took) = terminate(&mut first).await;
    reader.join().unwrap();
    let log = out.lock().unwrap().clone();
    assert!(status.success(), "exit status {status:?}; output:\n{log}");
    assert!(took < Duration::from_secs(5), "exited in {took:?}");
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("shutdown complete"), "{log}");
    assert_eq!(rx.answered(), vec![id.clone()], "finished before exiting");
    let delivered = kakehashi::on_db!(&db, c => sqlx::query_as::<_, (String, i64)>(
        "SELECT status, attempts FROM outbox WHERE id = $1",
    )
    .bind(&id)
    .fetch_one(c)
    .await)
    .unwrap();
    assert_eq!(delivered, ("delivered".to_owned(), 1));

    // Restarted, the server has nothing to send again; an idle server stops the same way.
    let (mut second, out, reader) = spawn();
    eventually("the restarted server listening", || async {
        out.lock()
            .unwrap()
            .contains("listening on http://")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, took) = terminate(&mut second).await;
    reader.join().unwrap();
    let log = out.lock().unwrap().clone();
    assert!(status.success(), "exit status {status:?}; output:\n{log}");
    assert!(took < Duration::from_secs(5), "exited in {took:?}");
    assert!(log.contains("shutdown complete"), "{log}");
    assert_eq!(rx.arrived(), vec![id], "delivered exactly once");
}

/// With a drain delay, a stop first turns `/readyz` to 503 "draining" while the instance keeps
/// serving (liveness and pages still answer), so a balancer's readiness check takes it out of
/// rotation; only then does the listener close.
async fn readiness_turns_false_while_draining(host: TestApp) {
    let (addr, stop, run) = stoppable(&host, |app| {
        let shared = app
            .state
            .get_mut()
            .expect("state not shared before the app runs");
        std::sync::Arc::get_mut(&mut shared.ctx.config)
            .expect("config not shared before the app runs")
            .drain_delay_ms = 1500;
    })
    .await;
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            let r = client.get(format!("http://{addr}{path}")).send().await?;
            Ok::<_, reqwest::Error>((r.status().as_u16(), r.text().await?))
        }
    };
    assert_eq!(get("/readyz").await.unwrap(), (200, "ready".into()));
    stop.send(()).unwrap();
    eventually("readiness false once stopping", || async {
        (get("/readyz").await.ok()? == (503, "draining".into())).then_some(())
    })
    .await;
    assert_eq!(get("/healthz").await.unwrap().0, 200, "still live");
    assert_eq!(
        get("/assets/no-such-file").await.unwrap().0,
        404,
        "still answering requests"
    );
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops after the drain delay")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener closed after draining"
    );
}
shared_backends!(readiness_turns_false_while_draining);
