//! Request ids: every request gets one, taken from a trusted proxy's `X-Request-Id` when it is
//! well formed, else generated; it is echoed in the response and carried by the request's
//! tracing span, so every log line written while serving the request names it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// The header carrying the id, in and out.
pub const HEADER: &str = "x-request-id";

/// A request's id, in the request's extensions for the span and handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Whether an incoming id may be used as is: 1 to 64 characters of `A-Z a-z 0-9 . _ -`, so it
/// cannot break a log line or a header, nor grow a log without bound. nginx's `$request_id`
/// (32 hex digits) and common UUIDs qualify.
pub fn valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The id for a request: the incoming header only when the TCP peer is a trusted proxy
/// (`KAKEHASHI_TRUSTED_PROXIES`) and the value is [`valid`]; anyone else could forge ids to
/// confuse the logs, so theirs is ignored and a fresh one generated.
pub fn choose(peer: Option<SocketAddr>, incoming: Option<&str>, state: &AppState) -> String {
    let from_proxy =
        peer.is_some_and(|p| crate::client_addr::trusted(&state.config.trusted_proxies, p.ip()));
    match incoming {
        Some(id) if from_proxy && valid(id) => id.to_owned(),
        _ => crate::util::random_id("req", 16),
    }
}

/// Middleware (outside the tracing layer, so the span sees the id): assigns the id and echoes
/// it in the response's `X-Request-Id`.
pub async fn assign(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let incoming = req.headers().get(HEADER).and_then(|v| v.to_str().ok());
    let id = choose(peer, incoming, &state);
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(HEADER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn only_short_plain_ids_are_taken() {
        assert!(valid("0f8e3b1c2d4a5e6f7a8b9c0d1e2f3a4b"));
        assert!(valid("req_abc-1.2"));
        assert!(!valid(""));
        assert!(!valid(&"a".repeat(65)));
        assert!(!valid("id with space"));
        assert!(!valid("id\"quote"));
        assert!(!valid("ид"));
    }
}
