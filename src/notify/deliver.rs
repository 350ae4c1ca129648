//! One webhook delivery attempt: SSRF-checked POST with no redirects, a timeout,
//! and classification of the receiver's answer into deliver / retry / disable.
//!
//! Design: connection pinning uses a custom `reqwest::dns::Resolve` on a shared
//! `reqwest::Client`, not a fresh client per delivery with `resolve_to_addrs`.
//! The resolver runs the SSRF address check every time reqwest opens a new
//! connection, so the checked address is by construction the one connected to
//! (no gap between "check" and "connect" for DNS rebinding to exploit), while we
//! keep one TLS config and a keep-alive pool instead of rebuilding them per
//! event. Pooled connections were checked when they were opened. IP-literal
//! hosts never reach a resolver, which is why `check_url` (run before every
//! attempt) vets literals itself. Proxies are disabled so the resolver sees the
//! real destination rather than a proxy's name.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::notify::sign;
use crate::ssrf::{self, SsrfError, UrlPolicy};

/// Default per-attempt budget (connect + send + response body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes of the response kept for the delivery log.
pub const SNIPPET_BYTES: usize = 256;
/// We read at most this much of a response: enough for logs and a compat ack,
/// small enough that a hostile receiver cannot make us buffer megabytes.
const MAX_READ_BYTES: usize = 1024;
const USER_AGENT: &str = "kakehashi-webhooks/1.0";

/// One request to send. Build with [`Delivery::standard`] / [`Delivery::compat`]
/// or fill the fields directly.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub url: String,
    /// Extra headers (the `webhook-*` signature headers live here).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub content_type: String,
    /// Compatibility mode: a 2xx must also carry a `result=0` / `OK` body.
    pub compat: bool,
    /// Whole-attempt timeout; [`DEFAULT_TIMEOUT`] unless a test shortens it.
    pub timeout: Duration,
}

fn standard_headers(secrets: &[&str], msg_id: &str, ts: i64, body: &[u8]) -> Vec<(String, String)> {
    vec![
        (sign::HEADER_ID.to_string(), msg_id.to_string()),
        (sign::HEADER_TIMESTAMP.to_string(), ts.to_string()),
        (
            sign::HEADER_SIGNATURE.to_string(),
            sign::sign(secrets, msg_id, ts, body),
        ),
    ]
}

impl Delivery {
    /// JSON event signed per Standard Webhooks with every secret in `secrets`
    /// (newest first during rotation). `msg_id` is the event id, stable across retries.
    pub fn standard(
        url: &str,
        secrets: &[&str],
        msg_id: &str,
        timestamp_s: i64,
        json_body: Vec<u8>,
    ) -> Self {
        Delivery {
            url: url.to_string(),
            headers: standard_headers(secrets, msg_id, timestamp_s, &json_body),
            body: json_body,
            content_type: "application/json".to_string(),
            compat: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Compatibility-mode form POST. The `hash` field uses `secrets[0]` (the
    /// current secret); the Standard Webhooks headers are sent as well, signed
    /// with every secret, so a receiver can use either scheme.
    pub fn compat(
        url: &str,
        secrets: &[&str],
        msg_id: &str,
        timestamp_s: i64,
        fields: &[(&str, String)],
    ) -> Self {
        let body =
            sign::compat_form(fields, secrets.first().copied().unwrap_or_default()).into_bytes();
        Delivery {
            url: url.to_string(),
            headers: standard_headers(secrets, msg_id, timestamp_s, &body),
            body,
            content_type: "application/x-www-form-urlencoded; charset=UTF-8".to_string(),
            compat: true,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Receiver acknowledged; stop.
    Delivered,
    /// Failed; schedule the next attempt (see `schedule::next_attempt_ms`).
    Retry,
    /// 410 Gone: the receiver asked us to stop; disable the endpoint.
    Disable,
    /// Destination refused by the SSRF policy; do not send, do not retry blindly.
    Refused,
}

#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub latency_ms: i64,
    /// First 256 bytes of the response body, lossy UTF-8.
    pub response_snippet: String,
    pub retry_after: Option<Duration>,
    /// Machine-readable reason when not delivered: an `SsrfError::code()`, or
    /// `timeout`, `connect_error`, `redirect_not_followed`, `http_status`, `compat_ack_missing`.
    pub error: Option<String>,
}

/// Resolver that applies the SSRF address policy to every name reqwest connects to.
struct CheckedResolver {
    policy: UrlPolicy,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Port 0: reqwest substitutes the URL's port.
            let addrs = ssrf::resolve_host_checked(&host, 0, policy).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

fn build_client(policy: UrlPolicy) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver { policy }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(4)
        .build()
}

/// Shared, long-lived delivery client. Create once at startup with the server's
/// policy ceiling and share it (it is cheap to clone via `Arc`).
pub struct Deliverer {
    /// Public-only address rules (Production and TestMode).
    strict: reqwest::Client,
    /// Only built when the server runs with `AllowLoopback` (dev / test suite).
    loopback: Option<reqwest::Client>,
}

impl Deliverer {
    /// `server_policy` is a ceiling: unless it is `AllowLoopback`, a per-call
    /// `AllowLoopback` is downgraded to `TestMode`, so a wrong per-merchant value
    /// can never open loopback on a production server.
    pub fn new(server_policy: UrlPolicy) -> Result<Self, reqwest::Error> {
        let loopback = match server_policy {
            UrlPolicy::AllowLoopback => Some(build_client(UrlPolicy::AllowLoopback)?),
            _ => None,
        };
        Ok(Deliverer {
            strict: build_client(UrlPolicy::Production)?,
            loopback,
        })
    }

    fn effective(&self, policy: UrlPolicy) -> (UrlPolicy, &reqwest::Client) {
        match (policy, &self.loopback) {
            (UrlPolicy::AllowLoopback, Some(c)) => (policy, c),
            (UrlPolicy::AllowLoopback, None) => (UrlPolicy::TestMode, &self.strict),
            (p, _) => (p, &self.strict),
        }
    }

    /// See [`deliver`].
    pub async fn deliver(&self, d: &Delivery, policy: UrlPolicy) -> AttemptResult {
        deliver(self, d, policy).await
    }
}

/// Make one attempt. Never follows redirects; never panics on receiver input.
pub async fn deliver(deliverer: &Deliverer, d: &Delivery, policy: UrlPolicy) -> AttemptResult {
    let start = Instant::now();
    let (policy, client) = deliverer.effective(policy);
    // Re-checked on every attempt: the URL or the policy may have changed since
    // registration, and literals bypass the resolver.
    let url = match ssrf::check_url(&d.url, policy) {
        Ok(u) => u,
        Err(e) => return failed(start, Outcome::Refused, e.code(), e.to_string()),
    };
    send_checked(client, url, d, start).await
}

async fn send_checked(
    client: &reqwest::Client,
    url: url::Url,
    d: &Delivery,
    start: Instant,
) -> AttemptResult {
    let mut req = client
        .post(url)
        .timeout(d.timeout)
        .header(reqwest::header::CONTENT_TYPE, &d.content_type)
        .body(d.body.clone());
    for (k, v) in &d.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return classify_send_error(start, &e),
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, unix_now_s()));
    let (body, truncated, read_err) = read_limited(resp, MAX_READ_BYTES).await;
    let snippet = String::from_utf8_lossy(&body[..body.len().min(SNIPPET_BYTES)]).into_owned();

    let (outcome, error) = match status {
        200..=299 if read_err.is_some() => (Outcome::Retry, read_err),
        200..=299 if d.compat => {
            let acked = !truncated && sign::compat_ack_ok(&String::from_utf8_lossy(&body));
            if acked {
                (Outcome::Delivered, None)
            } else {
                (Outcome::Retry, Some("compat_ack_missing".to_string()))
            }
        }
        200..=299 => (Outcome::Delivered, None),
        // Following a redirect would let a public URL bounce us to an internal one.
        300..=399 => (Outcome::Retry, Some("redirect_not_followed".to_string())),
        410 => (Outcome::Disable, Some("http_status".to_string())),
        _ => (Outcome::Retry, Some("http_status".to_string())),
    };
    AttemptResult {
        outcome,
        status: Some(status),
        latency_ms: elapsed_ms(start),
        response_snippet: snippet,
        retry_after,
        error,
    }
}

/// Read at most `limit` bytes; report whether more was available and any read error
/// (a timeout mid-body counts as a failed attempt: the receiver did not finish answering).
async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> (Vec<u8>, bool, Option<String>) {
    let mut buf = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - buf.len();
                if chunk.len() > room {
                    buf.extend_from_slice(&chunk[..room]);
                    return (buf, true, None);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return (buf, false, None),
            Err(e) => {
                let code = if e.is_timeout() {
                    "timeout"
                } else {
                    "connect_error"
                };
                return (buf, false, Some(code.to_string()));
            }
        }
    }
}

fn classify_send_error(start: Instant, e: &reqwest::Error) -> AttemptResult {
    // The resolver's SsrfError travels up reqwest's error source chain.
    let mut src: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(s) = src {
        if let Some(ssrf_err) = s.downcast_ref::<SsrfError>() {
            // An unresolvable name may be a transient DNS problem: retry it.
            let outcome = match ssrf_err {
                SsrfError::Unresolvable(_) => Outcome::Retry,
                _ => Outcome::Refused,
            };
            return failed(start, outcome, ssrf_err.code(), ssrf_err.to_string());
        }
        src = s.source();
    }
    let code = if e.is_timeout() {
        "timeout"
    } else {
        "connect_error"
    };
    failed(start, Outcome::Retry, code, e.to_string())
}

fn failed(start: Instant, outcome: Outcome, code: &str, detail: String) -> AttemptResult {
    let mut snippet = detail;
    if snippet.len() > SNIPPET_BYTES {
        let mut cut = SNIPPET_BYTES;
        while !snippet.is_char_boundary(cut) {
            cut -= 1;
        }
        snippet.truncate(cut);
    }
    AttemptResult {
        outcome,
        status: None,
        latency_ms: elapsed_ms(start),
        response_snippet: snippet,
        retry_after: None,
        error: Some(code.to_string()),
    }
}

fn elapsed_ms(start: Instant) -> i64 {
    i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// The wall clock, not the app's: an HTTP-date in `Retry-After` is the receiver's wall-clock
/// time, so the delay it asks for is measured against ours.
fn unix_now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `Retry-After` as delay-seconds (`120`) or IMF-fixdate
/// (`Wed, 21 Oct 2015 07:28:00 GMT`). Dates in the past give zero; anything
/// unparseable gives `None` (the normal schedule applies).
pub fn parse_retry_after(value: &str, now_s: i64) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = parse_imf_fixdate(v)?;
    Some(Duration::from_secs(u64::try_from(at - now_s).unwrap_or(0)))
}

fn parse_imf_fixdate(s: &str) -> Option<i64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    let [dow, day, mon, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    if !dow.ends_with(',') {
        return None;
    }
    let day: u32 = day.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == mon)? as u32 + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u32> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + i64::from(*h) * 3600 + i64::from(*m) * 60 + i64::from(*sec))
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use axum::Router;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[derive(Clone, Default)]
    struct Hits {
        target: Arc<AtomicUsize>,
    }

    async fn verify_standard(headers: HeaderMap, body: axum::body::Bytes) -> Response {
        let wh = standardwebhooks::Webhook::new(SECRET).unwrap();
        match wh.verify(&body, &headers) {
            Ok(()) => (StatusCode::OK, "thanks").into_response(),
            Err(_) => StatusCode::UNAUTHORIZED.into_response(),
        }
    }

    async fn compat_ok(body: String) -> Response {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let (last, rest) = pairs.split_last().unwrap();
        let fields: Vec<(&str, String)> =
            rest.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        if last.0 == "hash" && last.1 == sign::compat_hash(&fields, SECRET) {
            "result=0\n".into_response()
        } else {
            (StatusCode::OK, "result=1").into_response()
        }
    }

    async fn target(State(h): State<Hits>) -> &'static str {
        h.target.fetch_add(1, Ordering::SeqCst);
        "target"
    }

    async fn start_receiver() -> (String, Hits) {
        let hits = Hits::default();
        let app = Router::new()
            .route("/ok", post(verify_standard))
            .route(
                "/fail",
                post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            )
            .route(
                "/redirect",
                post(|| async { (StatusCode::FOUND, [("location", "/target")]) }),
            )
            .route("/target", get(target).post(target))
            .route("/gone", post(|| async { StatusCode::GONE }))
            .route(
                "/busy",
                post(|| async { (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "120")]) }),
            )
            .route(
                "/busy-date",
                post(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "Fri, 01 Jan 2100 00:00:00 GMT")],
                    )
                }),
            )
            .route("/compat-ok", post(compat_ok))
            .route("/compat-html", post(|| async { "<html>thanks</html>" }))
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    "late"
                }),
            )
            .route("/big", post(|| async { "x".repeat(10_000) }))
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), hits)
    }

    fn now() -> i64 {
        unix_now_s()
    }

    fn json_delivery(url: String) -> Delivery {
        Delivery::standard(
            &url,
            &[SECRET],
            "evt_test_1",
            now(),
            br#"{"id":"evt_test_1","type":"ping"}"#.to_vec(),
        )
    }

    fn loopback() -> Deliverer {
        Deliverer::new(UrlPolicy::AllowLoopback).unwrap()
    }

    #[tokio::test]
    async fn ok_200_is_delivered_and_signature_verifies() {
        let (base, _) = start_receiver().await;
        let r = loopback()
            .deliver(
                &json_delivery(format!("{base}/ok")),
                UrlPolicy::AllowLoopback,
            )
            .await;
        assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
        assert_eq!(r.status, Some(200));
        assert_eq!(r.response_snippet, "thanks");
        assert_eq!(r.error, None);
        assert!(r.latency_ms >= 0);
        // Two-secret (rotation) header also verifies at the receiver.
        let d = Delivery::standard(
            &format!("{base}/ok"),
            &[&sign::new_secret(), SECRET],
            "evt_2",
            now(),
            b"{}".to_vec(),
        );
        let r = loopback().deliver(&d, UrlPolicy::AllowLoopback).await;
        assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
        // Wrong secret -> 401 -> retry.
        let d = Delivery::standard(
            &format!("{base}/ok"),
            &[&sign::new_secret()],
            "evt_3",
            now(),
            b"{}".to_vec(),
        );
        let r = loopback().deliver(&d, UrlPolicy::AllowLoopback).await;
        assert_eq!((r.outcome, r.status), (Outcome::Retry, Some(401)));
    }

    #[tokio::test]
    async fn status_500_retries() {
        let (base, _) = start_receiver().await;
        let r = loopback()
            .deliver(
                &json_delivery(format!("{base}/fail")),
                UrlPolicy::AllowLoopback,
            )
            .await;
        assert_eq!((r.outcome, r.status), (Outcome::Retry, Some(500)));
        assert_eq!(r.response_snippet, "boom");
        assert_eq!(r.retry_after, None);
    }

    #[tokio::test]
    async fn redirect_is_not_followed() {
        let (base, hits) = start_receiver().await;
        let r = loopback()
            .deliver(
                &json_delivery(format!("{base}/redirect")),
                UrlPolicy::AllowLoopback,
            )
            .await;
        assert_eq!((r.outcome, r.status), (Outcome::Retry, Some(302)));
        assert_eq!(r.error.as_deref(), Some("redirect_not_followed"));
        assert_eq!(hits.target.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn gone_disables() {
        let (base, _) = start_receiver().await;
        let r = loopback()
            .deliver(
                &json_delivery(format!("{base}/gone")),
                UrlPolicy::AllowLoopback,
            )
            .await;
        assert_eq!((r.outcome, r.status), (Outcome::Disable, Some(410)));
    }

    #[tokio::test]
    async fn retry_after_is_parsed_and_honoured() {
        let (base, _) = start_receiver().await;
        let dl = loopback();
        let r = dl
            .deliver(
                &json_delivery(format!("{base}/busy")),
                UrlPolicy::AllowLoopback,
            )
            .await;
        assert_eq!((r.outcome, r.status), (Outcome::Retry, Some(429)));
        assert_eq!(r.retry_after, Some(Duration::from_secs(120)));
        // After attempt 1 the schedule says 5 s; the receiver's 120 s wins.
        let next = crate::notify::schedule::next_attempt_ms(1_000, 1, r.retry_after, 0.5);
        assert_eq!(next, Some(121_000));

        let r = dl
            .deliver(
                &json_delivery(format!("{base}/busy-date")),
                UrlPolicy::AllowLoopback,
            )
            .await;
        assert_eq!((r.outcome, r.status), (Outcome::Retry, Some(503)));
        assert!(r.retry_after.unwrap() > Duration::from_secs(365 * 86_400));
        // ...but capped at 24 h by the scheduler.
        let next = crate::notify::schedule::next_attempt_ms(0, 1, r.retry_after, 0.5);
        assert_eq!(next, Some(86_400_000));
    }

    #[tokio::test]
    async fn compat_mode_requires_ack_body() {
        let (base, _) = start_receiver().await;
        let fields = vec![
            ("event_id", "evt_1".to_string()),
            ("order_id", "注文-1".to_string()),
            ("amount", "1200".to_string()),
        ];
        let dl = loopback();
        let d = Delivery::compat(
            &format!("{base}/compat-ok"),
            &[SECRET],
            "evt_1",
            now(),
            &fields,
        );
        let r = dl.deliver(&d, UrlPolicy::AllowLoopback).await;
        assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
        // Wrong hash secret -> receiver answers result=1 -> retry.
        let other = sign::new_secret();
        let d = Delivery::compat(
            &format!("{base}/compat-ok"),
            &[&other],
            "evt_1",
            now(),
            &fields,
        );
        let r = dl.deliver(&d, UrlPolicy::AllowLoopback).await;
        assert_eq!(
            (r.outcome, r.error.as_deref()),
            (Outcome::Retry, Some("compat_ack_missing"))
        );
        // A 200 with an HTML page is not an ack.
        let d = Delivery::compat(
            &format!("{base}/compat-html"),
            &[SECRET],
            "evt_1",
            now(),
            &fields,
        );
        let r = dl.deliver(&d, UrlPolicy::AllowLoopback).await;
        assert_eq!((r.outcome, r.status), (Outcome::Retry, Some(200)));
        // The same 200 without compat is delivered.
        let r = dl
            .deliver(
                &json_delivery(format!("{base}/compat-html")),
                UrlPolicy::AllowLoopback,
            )
            .await;
        assert_eq!(r.outcome, Outcome::Delivered);
    }

    #[tokio::test]
    async fn timeout_retries() {
        let (base, _) = start_receiver().await;
        let mut d = json_delivery(format!("{base}/slow"));
        assert_eq!(d.timeout, DEFAULT_TIMEOUT);
        d.timeout = Duration::from_millis(200);
        let r = loopback().deliver(&d, UrlPolicy::AllowLoopback).await;
        assert_eq!((r.outcome, r.status), (Outcome::Retry, None));
        assert_eq!(r.error.as_deref(), Some("timeout"));
        assert!(r.latency_ms < 2_000, "{}", r.latency_ms);
    }

    #[tokio::test]
    async fn snippet_is_truncated() {
        let (base, _) = start_receiver().await;
        let r = loopback()
            .deliver(
                &json_delivery(format!("{base}/big")),
                UrlPolicy::AllowLoopback,
            )
            .await;
        assert_eq!(r.outcome, Outcome::Delivered);
        assert_eq!(r.response_snippet.len(), SNIPPET_BYTES);
    }

    #[tokio::test]
    async fn connection_refused_retries() {
        // Bind then drop to get a port with (very likely) nothing listening.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let r = loopback()
            .deliver(
                &json_delivery(format!("http://{addr}/")),
                UrlPolicy::AllowLoopback,
            )
            .await;
        assert_eq!(
            (r.outcome, r.error.as_deref()),
            (Outcome::Retry, Some("connect_error"))
        );
    }

    #[tokio::test]
    async fn ssrf_refusals() {
        let (base, hits) = start_receiver().await;
        let port = base.rsplit(':').next().unwrap().to_string();
        // Production server: loopback refused even if the caller asks for AllowLoopback.
        let prod = Deliverer::new(UrlPolicy::Production).unwrap();
        let r = prod
            .deliver(
                &json_delivery(format!("{base}/target")),
                UrlPolicy::AllowLoopback,
            )
            .await;
        assert_eq!(
            (r.outcome, r.error.as_deref()),
            (Outcome::Refused, Some("forbidden_address"))
        );
        let r = prod
            .deliver(
                &json_delivery(format!("{base}/target")),
                UrlPolicy::Production,
            )
            .await;
        assert_eq!(
            (r.outcome, r.error.as_deref()),
            (Outcome::Refused, Some("scheme_not_allowed"))
        );
        let r = prod
            .deliver(
                &json_delivery("https://10.0.0.1/x".into()),
                UrlPolicy::Production,
            )
            .await;
        assert_eq!(
            (r.outcome, r.error.as_deref()),
            (Outcome::Refused, Some("forbidden_address"))
        );
        // Connect-time check: a name that passes check_url but resolves to
        // loopback is refused by the resolver (bypass check_url to prove it).
        let url = url::Url::parse(&format!("http://localhost:{port}/target")).unwrap();
        let r = send_checked(
            &prod.strict,
            url,
            &json_delivery(String::new()),
            Instant::now(),
        )
        .await;
        assert_eq!(
            (r.outcome, r.error.as_deref()),
            (Outcome::Refused, Some("forbidden_address")),
            "{r:?}"
        );
        assert_eq!(hits.target.load(Ordering::SeqCst), 0);
        // Same name through the loopback client reaches the receiver.
        let dl = loopback();
        let r = dl
            .deliver(
                &json_delivery(format!("http://localhost:{port}/target")),
                UrlPolicy::AllowLoopback,
            )
            .await;
        assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
        assert_eq!(hits.target.load(Ordering::SeqCst), 1);
        // Unresolvable names are retried, not refused.
        let r = dl
            .deliver(
                &json_delivery("http://no-such-host.invalid/".into()),
                UrlPolicy::AllowLoopback,
            )
            .await;
        assert_eq!(
            (r.outcome, r.error.as_deref()),
            (Outcome::Retry, Some("unresolvable")),
            "{r:?}"
        );
    }

    #[test]
    fn retry_after_parsing() {
        let now = 1_445_412_480; // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:30 GMT", now),
            Some(Duration::from_secs(150))
        );
        assert_eq!(
            parse_retry_after("Tue, 20 Oct 2015 07:28:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_777),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_770),
            Some(Duration::from_secs(7))
        );
        for bad in [
            "",
            "-5",
            "1.5",
            "soon",
            "Wed, 21 Foo 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 25:28:00 GMT",
            "Wed 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
