//! The reference deployment in deploy/ (issue 20, items 8 and 10): nginx running
//! deploy/nginx.conf terminates TLS (a certificate made for the test) in front of two
//! instances of the real binary, started with deploy/kakehashi.env, on one PostgreSQL database.
//! nginx spreads requests round-robin, so consecutive requests of one shopper reach different
//! instances; its access log (deploy/nginx.conf's format) names the instance that answered each
//! request id. PostgreSQL only: it is the store that several instances share.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::*;

const CHALLENGE_VISA: &str = "4000000000002008";

/// Where a program is: on `PATH`, or in the sbin folders Debian installs nginx into (not on a
/// normal user's `PATH`).
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The program, or `None` after [`skip_or_fail`] when the run allows skipping it.
fn required(name: &str, package: &str) -> Option<PathBuf> {
    let found = program(name);
    if found.is_none() {
        skip_or_fail(
            Service::Nginx,
            &format!("the deployment tests need {name}, which is not installed"),
            &format!("apt-get install -y {package} (Debian)"),
        );
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// Replaces the one occurrence of `from` in `text` (a change to deploy/ that moves it fails
/// here, loudly, instead of testing something else).
fn substitute(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "deploy/ file changed: {from:?}"
    );
    text.replacen(from, to, 1)
}

/// A self-signed certificate for 127.0.0.1 (not a CA: rustls refuses a CA certificate as the
/// server's own), made with openssl.
fn make_certificate(openssl: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (cert, key)
}

/// One instance of the real binary on a fixed port (so nginx's upstream and a restart agree).
/// Its stdout (JSON log lines and the start banner) is collected across restarts.
struct Instance {
    port: u16,
    child: Option<Child>,
    out: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Instance {
    fn new(port: u16) -> Instance {
        Instance {
            port,
            child: None,
            out: Default::default(),
            reader: None,
        }
    }

    fn start(&mut self, env: &[(String, String)]) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kakehashi"))
            .arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("KAKEHASHI_ADDR", format!("127.0.0.1:{}", self.port))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (o, stdout) = (self.out.clone(), child.stdout.take().unwrap());
        self.reader = Some(std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut o = o.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        }));
        self.child = Some(child);
    }

    /// Waits until the instance answers `/readyz` directly (not through nginx).
    async fn ready(&mut self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let t = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(&url).await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("instance exited ({status}):\n{}", self.log());
            }
            assert!(t.elapsed() < Duration::from_secs(30), "{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit status (bounded wait, without blocking the runtime).
    async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM");
        let t = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if t.elapsed() > Duration::from_secs(20) {
                child.kill().unwrap();
                panic!("no exit within 20 s of SIGTERM:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        status
    }

    /// SIGKILL: the instance dies at once, whatever it was doing.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn log(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// The instance's JSON log lines (the start banner is plain text and skipped).
    fn json_lines(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// nginx, as a foreground process with every file it writes in a temporary folder.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops its workers too (SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// The deployment: the database (through `host`, an in-process app that runs no workers and
/// serves nothing the test uses, for creating merchants and reading rows), the instances, and
/// nginx in front.
struct Cluster {
    host: TestApp,
    /// `host`'s helpers speaking to nginx over TLS (`https://127.0.0.1:port`).
    shop: TestApp,
    instances: Vec<Instance>,
    env: Vec<(String, String)>,
    http_port: u16,
    dir: tempfile::TempDir,
    /// Request ids of the responses so far, in order.
    trail: Mutex<Vec<String>>,
    _nginx: Nginx,
}

impl Cluster {
    async fn start(instances: usize) -> Option<Cluster> {
        let nginx = required("nginx", "nginx")?;
        let openssl = required("openssl", "openssl")?;
        let host = spawn_app_with(Backend::Postgres, |c| c.workers = false).await?;
        let schema: String = kakehashi::on_db!(&host.db, c =>
            sqlx::query_scalar("SELECT current_schema()").fetch_one(c).await)
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        // nginx's workers run as an unprivileged user when the test runs as root.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let (cert, key) = make_certificate(&openssl, dir.path());
        let (https_port, http_port) = (free_port(), free_port());
        let ports: Vec<u16> = (0..instances).map(|_| free_port()).collect();
        let base = format!("https://127.0.0.1:{https_port}");

        // The instances' settings: deploy/kakehashi.env with this machine's addresses.
        let mut db_url = url::Url::parse(&pg_url()).unwrap();
        db_url
            .query_pairs_mut()
            .append_pair("options", &format!("-c search_path={schema}"));
        let mut env: Vec<(String, String)> = repo_file("deploy/kakehashi.env")
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (k, v) = l.split_once('=').expect("KEY=value");
                (k.to_owned(), v.to_owned())
            })
            .filter(|(k, _)| k != "KAKEHASHI_MASTER_KEY_FILE")
            .collect();
        for (k, v) in [
            ("DATABASE_URL", db_url.to_string()),
            ("KAKEHASHI_PUBLIC_URL", base.clone()),
            ("KAKEHASHI_TRUSTED_PROXIES", "127.0.0.1/32".into()),
            // Test-only: shorter waits, and the merchant's receiver is on loopback.
            ("KAKEHASHI_DRAIN_DELAY_MS", "300".into()),
            ("KAKEHASHI_NOTIFY_LEASE_MS", "2000".into()),
            ("KAKEHASHI_NOTIFY_RETRY_SCALE", "0.001".into()),
            ("KAKEHASHI_ALLOW_LOOPBACK_CALLBACKS", "1".into()),
            ("NO_COLOR", "1".into()),
        ] {
            let slot = env.iter_mut().find(|(name, _)| name == k);
            match slot {
                Some(slot) => slot.1 = v,
                None => env.push((k.to_owned(), v)),
            }
        }
        assert!(env.contains(&("KAKEHASHI_HSTS".into(), "1".into())));
        assert!(env.contains(&("KAKEHASHI_LOG_FORMAT".into(), "json".into())));

        // deploy/nginx.conf with this machine's addresses, certificate and log.
        let d = dir.path().display();
        let mut site = repo_file("deploy/nginx.conf");
        let upstreams: String = ports
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n"))
            .collect();
        for (from, to) in [
            (
                "    server 10.0.0.11:8080 max_fails=3 fail_timeout=10s;\n    server 10.0.0.12:8080 max_fails=3 fail_timeout=10s;\n".to_owned(),
                upstreams,
            ),
            (
                "    listen 80;\n    listen [::]:80;\n".into(),
                format!("    listen 127.0.0.1:{http_port};\n"),
            ),
            (
                "    listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n".into(),
                format!("    listen 127.0.0.1:{https_port} ssl http2;\n"),
            ),
            (
                "/etc/ssl/pay.example.jp/fullchain.pem".into(),
                cert.display().to_string(),
            ),
            (
                "/etc/ssl/pay.example.jp/privkey.pem".into(),
                key.display().to_string(),
            ),
            (
                "/var/log/nginx/kakehashi.access.log".into(),
                format!("{d}/access.log"),
            ),
        ] {
            site = substitute(&site, &from, &to);
        }
        std::fs::write(dir.path().join("kakehashi.conf"), site).unwrap();
        // The main context a distribution's nginx.conf would have, every path in `dir`.
        let main = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log notice;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             include {d}/kakehashi.conf;\n}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, main).unwrap();

        let mut list: Vec<Instance> = ports.iter().map(|p| Instance::new(*p)).collect();
        for i in list.iter_mut() {
            i.start(&env);
        }
        for i in list.iter_mut() {
            i.ready().await;
        }
        let mut child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", https_port))
            .await
            .is_err()
        {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}):\n{log}");
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "nginx did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pem = std::fs::read(&cert).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Some(Cluster {
            shop: host.through(base, client),
            host,
            instances: list,
            env,
            http_port,
            dir,
            trail: Mutex::new(Vec::new()),
            _nginx: Nginx(child),
        })
    }

    /// Remembers the response's request id (every response through nginx has one).
    fn note(&self, r: &reqwest::Response) -> String {
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        self.trail.lock().unwrap().push(id.clone());
        id
    }

    async fn get(&self, url: &str, ua: &str) -> reqwest::Response {
        let r = self.shop.get(url, ua).await;
        self.note(&r);
        r
    }

    async fn post(&self, url: &str, ua: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let r = self.shop.post_form(url, ua, form).await;
        self.note(&r);
        r
    }

    fn last_request(&self) -> String {
        self.trail.lock().unwrap().last().unwrap().clone()
    }

    /// The port of the instance that answered request `id`, from nginx's access log (the one a
    /// retry ended at, when nginx had to try another).
    async fn served_by(&self, id: &str) -> u16 {
        let log = self.dir.path().join("access.log");
        let needle = format!(" rid={id} ");
        eventually("the request in nginx's access log", || async {
            let text = std::fs::read_to_string(&log).ok()?;
            let line = text.lines().find(|l| l.contains(&needle))?.to_owned();
            let up = line.split(" up=").nth(1)?.split(" ust=").next()?;
            up.rsplit(", ").next()?.rsplit(':').next()?.parse().ok()
        })
        .await
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Waits (bounded by nginx's `fail_timeout` and a margin) until nginx has sent a request to
    /// the instance on `port` again and it answered, in the access log after line `seen`.
    async fn back_in_rotation(&self, port: u16, seen: usize) {
        let needle = format!(" up=127.0.0.1:{port} ust=200 ");
        let t = Instant::now();
        while !self
            .access_log()
            .lines()
            .skip(seen)
            .any(|l| l.contains(&needle))
        {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "instance {port} not back in rotation"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn instance(&self, port: u16) -> usize {
        self.instances.iter().position(|i| i.port == port).unwrap()
    }

    async fn ports_of(&self, ids: &[String]) -> Vec<u16> {
        let mut out = Vec::new();
        for id in ids {
            out.push(self.served_by(id).await);
        }
        out
    }
}

/// TLS at the edge: HSTS and Secure cookies from the instances, plain HTTP redirected, the
/// operations endpoints not served to the public.
async fn the_edge_is_tls_only(c: &Cluster) {
    let r = c.get("/console/login", UA_PC).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age="),
        "HSTS"
    );
    let cookies: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(!cookies.is_empty());
    assert!(
        cookies
            .iter()
            .all(|c| c.contains("Secure") && c.contains("HttpOnly")),
        "{cookies:?}"
    );
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{}/checkout", c.http_port))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 301);
    assert!(location(&plain).starts_with("https://"));
    assert_eq!(c.shop.get("/metrics", UA_PC).await.status(), 404);
    assert_eq!(c.shop.get("/readyz", UA_PC).await.status(), 404);
}

/// A card payment with a 3-D Secure challenge, every request on the other instance than the
/// one before; the challenge is answered on the instance that did not start it. Returns how the
/// answer was received (status, `Location`) and the result page it should lead to.
async fn card_payment_with_a_challenge(
    c: &Cluster,
    m: &TestMerchant,
) -> ((u16, Option<String>), String) {
    let ua = UA_PC;
    let f = c.shop.fields(m, "dep-card", 5400, &[]);
    let r = c.get(&c.shop.link(m, &f), ua).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let r = c
        .post(
            &action(&body),
            ua,
            &[("csrf", &hidden(&body, "csrf")), ("method", "card")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let card = location(&r);
    let base = card.trim_end_matches("/card").to_owned();
    let r = c.get(&card, ua).await;
    assert_eq!(r.status(), 200);
    let csrf = hidden(&r.text().await.unwrap(), "csrf");
    let year = future_exp_year();
    let r = c
        .post(
            &card,
            ua,
            &[
                ("csrf", &csrf),
                ("number", CHALLENGE_VISA),
                ("exp_month", "12"),
                ("exp_year", &year),
                ("cvc", "123"),
                ("option", "lump"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "to the 3-D Secure challenge");
    let started_on = c.served_by(&c.last_request()).await;
    let challenge = format!("{base}/card/challenge");
    let r = c.get(&challenge, ua).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("123456"), "sandbox hint");
    // Round-robin sends the next request to the instance after the last one: make that the
    // instance the challenge did *not* start on.
    for _ in 0..2 {
        if c.served_by(&c.last_request()).await == started_on {
            break;
        }
        assert_eq!(c.get(&challenge, ua).await.status(), 200);
    }
    let answer = c
        .post(&challenge, ua, &[("csrf", &csrf), ("otp", "123456")])
        .await;
    let answered_on = c.served_by(&c.last_request()).await;
    assert_ne!(
        answered_on, started_on,
        "the answer went to the other instance"
    );
    let outcome = (
        answer.status().as_u16(),
        answer
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned()),
    );
    (outcome, format!("{base}/card/result"))
}

/// A full card payment with a 3-D Secure challenge and a konbini payment, through TLS and
/// round-robin over two instances, one of them killed (SIGKILL) in the middle of the konbini
/// payment; the merchant receives every notification, each event under one `webhook-id`.
#[tokio::test]
async fn payments_across_instances_behind_tls_survive_a_killed_instance() {
    let Some(mut c) = Cluster::start(2).await else {
        return;
    };
    let rx = Receiver::start().await;
    let m = c
        .host
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;

    the_edge_is_tls_only(&c).await;
    let (challenge_answer, result_page) = card_payment_with_a_challenge(&c, &m).await;
    let ua = UA_PC;
    let before_kill: Vec<String> = c.trail.lock().unwrap().clone();

    // The konbini payment; one instance dies after the method is chosen.
    let f = c.shop.fields(&m, "dep-konbini", 3200, &[]);
    let r = c.get(&c.shop.link(&m, &f), ua).await;
    let body = r.text().await.unwrap();
    let r = c
        .post(
            &action(&body),
            ua,
            &[("csrf", &hidden(&body, "csrf")), ("method", "konbini")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let konbini = location(&r);
    let killed = c.served_by(&c.last_request()).await;
    let killed_ix = c.instance(killed);
    c.instances[killed_ix].kill();
    let survivor = c.instances[1 - killed_ix].port;
    let mut after_kill = Vec::new();
    let r = c.get(&konbini, ua).await;
    assert_eq!(r.status(), 200, "the survivor serves the page");
    after_kill.push(c.last_request());
    let csrf = hidden(&r.text().await.unwrap(), "csrf");
    let r = c
        .post(
            &konbini,
            ua,
            &[("csrf", &csrf), ("chain", "lawson"), ("confirm", "1")],
        )
        .await;
    assert_eq!(r.status(), 303, "number issued");
    after_kill.push(c.last_request());
    let r = c.get(&konbini, ua).await;
    assert_eq!(r.status(), 200);
    after_kill.push(c.last_request());
    let issued = rx
        .wait_for("konbini.issued", |h| {
            h.iter().any(|h| h.json()["type"] == "konbini.issued")
        })
        .await;
    let payment_id = issued
        .iter()
        .find(|h| h.json()["type"] == "konbini.issued")
        .unwrap()
        .json()["data"]["payment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The shop's "paid" notice through the sandbox control, signed like a merchant would.
    let ts = now_s();
    let path = format!("/sandbox/v1/payments/{payment_id}/paid");
    let sig = kakehashi::signing::sign(&m.secret, &format!("POST\n{path}\n{ts}"));
    let r = c
        .shop
        .client
        .post(format!("{}{path}", c.shop.base))
        .header("x-merchant-id", &m.id)
        .header("x-key-id", &m.key_id)
        .header("x-timestamp", ts.to_string())
        .header("x-signature", sig)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    rx.wait_for("konbini.paid", |h| {
        h.iter().any(|h| h.json()["type"] == "konbini.paid")
    })
    .await;

    // Requests alternated between the instances while both ran; after the kill every one was
    // answered by the survivor (nginx moved on from the dead one).
    let ports = c.ports_of(&before_kill).await;
    assert!(
        ports.windows(2).all(|w| w[0] != w[1]),
        "round-robin: {ports:?}"
    );
    assert_eq!(
        ports.iter().collect::<BTreeSet<_>>().len(),
        2,
        "both instances served"
    );
    assert_eq!(
        c.ports_of(&after_kill).await,
        vec![survivor; after_kill.len()]
    );

    // Request ids: nginx's own (it is a trusted proxy), echoed back, and in the JSON log line
    // of the instance that answered, with the route template (never the path).
    let alive = &c.instances[1 - killed_ix];
    let lines = alive.json_lines();
    for id in &after_kill {
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "nginx's $request_id: {id}"
        );
        let line = lines
            .iter()
            .find(|l| l["span"]["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} in the instance's log:\n{}", alive.log()));
        assert_eq!(line["span"]["route"], "/pay/{token}/konbini", "{line}");
        assert!(line["timestamp"].is_string() && line["level"].is_string());
    }
    let token = konbini
        .split("/pay/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert!(!alive.log().contains(token), "no session token in the logs");

    // Notifications: every konbini event once (by webhook-id), whichever instance sent it.
    let by_id: BTreeMap<String, String> = rx
        .hits()
        .iter()
        .map(|h| {
            (
                h.header("webhook-id"),
                h.json()["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let types: Vec<&str> = by_id.values().map(String::as_str).collect();
    for t in ["konbini.issued", "konbini.paid"] {
        assert_eq!(types.iter().filter(|x| **x == t).count(), 1, "{types:?}");
    }

    // The 3-D Secure challenge answered on the other instance than the one that started it:
    // the held card is in the shared database (`pending_cards`), not in one instance's memory.
    assert_eq!(
        challenge_answer,
        (303, Some(result_page)),
        "challenge answered on another instance"
    );
    let hits = rx
        .wait_for("the card payment's notifications", |h| {
            h.iter().any(|h| h.json()["type"] == "payment.captured")
        })
        .await;
    assert!(hits
        .iter()
        .any(|h| h.json()["type"] == "payment.authorized"));
}

/// A merchant endpoint that takes a moment to acknowledge, so deliveries are in flight when an
/// instance stops. Records each request's `webhook-id` on arrival and when answered.
#[derive(Clone, Default)]
struct SlowReceiver {
    url: String,
    arrived: Arc<Mutex<Vec<String>>>,
    answered: Arc<Mutex<Vec<String>>>,
}

impl SlowReceiver {
    async fn start(delay: Duration) -> SlowReceiver {
        let rx = SlowReceiver::default();
        let (a, b) = (rx.arrived.clone(), rx.answered.clone());
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let (a, b) = (a.clone(), b.clone());
            async move {
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                a.lock().unwrap().push(id.clone());
                tokio::time::sleep(delay).await;
                b.lock().unwrap().push(id);
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        SlowReceiver { url, ..rx }
    }
}

/// Issue 20 item 10: a rolling restart of both instances (SIGTERM, wait, start again; one after
/// the other) while a client keeps loading a checkout page and notifications are pending. No
/// request fails, and every notification is acknowledged exactly once.
#[tokio::test]
async fn a_rolling_restart_fails_no_request_and_loses_no_notification() {
    let Some(mut c) = Cluster::start(2).await else {
        return;
    };
    let rx = SlowReceiver::start(Duration::from_millis(150)).await;
    let m = c
        .host
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let link = c.shop.link(&m, &c.shop.fields(&m, "dep-roll", 2000, &[]));

    // The client: one request after another until told to stop; every answer recorded.
    let stop = tokio_util::sync::CancellationToken::new();
    let client = {
        let (shop, stop) = (
            c.shop.through(c.shop.base.clone(), c.shop.client.clone()),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut answers: Vec<Result<(u16, String), String>> = Vec::new();
            while !stop.is_cancelled() {
                let r = shop
                    .client
                    .get(&link)
                    .header("user-agent", UA_PC)
                    .send()
                    .await;
                answers.push(match r {
                    Ok(r) => {
                        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
                        Ok((r.status().as_u16(), id))
                    }
                    Err(e) => Err(e.to_string()),
                });
            }
            answers
        })
    };
    let mut pings = Vec::new();
    let ping = |db: kakehashi::db::Db, id: String| async move {
        kakehashi::db::outbox::ping(&db, &id, kakehashi::util::now_ms())
            .await
            .unwrap()
    };
    for _ in 0..5 {
        pings.push(ping(c.host.db.clone(), m.id.clone()).await);
    }
    for ix in 0..c.instances.len() {
        // Deliveries in flight when the stop comes.
        for _ in 0..5 {
            pings.push(ping(c.host.db.clone(), m.id.clone()).await);
        }
        let status = c.instances[ix].terminate().await;
        assert!(status.success(), "{status:?}:\n{}", c.instances[ix].log());
        assert!(c.instances[ix].log().contains("shutdown complete"));
        for _ in 0..3 {
            pings.push(ping(c.host.db.clone(), m.id.clone()).await);
        }
        let env = c.env.clone();
        c.instances[ix].start(&env);
        let port = c.instances[ix].port;
        let seen = c.access_log().lines().count();
        c.instances[ix].ready().await;
        // nginx counted the refused connections and skips the instance for `fail_timeout`:
        // the next one restarts only once this one is back in rotation.
        c.back_in_rotation(port, seen).await;
    }
    stop.cancel();
    let answers = client.await.unwrap();

    let failed: Vec<_> = answers
        .iter()
        .filter(|a| !matches!(a, Ok((200, _))))
        .collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(
        answers.len() >= 10,
        "the client kept going: {}",
        answers.len()
    );

    // Every notification delivered and acknowledged once; none left behind.
    eventually("every notification delivered", || async {
        let answered = rx.answered.lock().unwrap().clone();
        pings.iter().all(|p| answered.contains(p)).then_some(())
    })
    .await;
    let pending: i64 = kakehashi::on_db!(&c.host.db, cn => sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE merchant_id = $1 AND status <> 'delivered'",
    )
    .bind(&m.id)
    .fetch_one(cn)
    .await)
    .unwrap();
    assert_eq!(pending, 0);
    let answered = rx.answered.lock().unwrap().clone();
    for p in &pings {
        assert_eq!(
            answered.iter().filter(|a| *a == p).count(),
            1,
            "{p} acknowledged once; arrivals: {:?}",
            rx.arrived.lock().unwrap()
        );
    }
}
