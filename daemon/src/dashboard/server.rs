//! The dashboard's HTTP/1 listener: the page, its vendored assets, the login and the JSON endpoints.
//!
//! The page and its assets (uPlot, vendored with its license) are compiled into
//! the binary, so it works with no internet. They carry no data; every data
//! endpoint (`/api/summary`, `/api/status`) answers 401 without a live session.
//! The session cookie is `HttpOnly; SameSite=Strict` (and `Secure` over TLS or
//! with `secure_cookie`); failed logins are rate-limited per client address.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{
    CACHE_CONTROL, CONTENT_TYPE, COOKIE, HeaderName, HeaderValue, RETRY_AFTER, SET_COOKIE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use super::auth::{Credentials, LoginLimiter, Sessions};
use super::{DashboardError, Recorder, unix_now};
use crate::metrics::Metrics;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "tweetpipe_session";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("assets/uPlot.LICENSE");

/// The largest request body read (a login).
const MAX_BODY: usize = 4096;
/// The longest range `/api/summary` answers (the hour window).
const MAX_RANGE: i64 = super::aggregate::HOUR_WINDOW;

/// What every connection shares.
#[derive(Debug)]
pub struct State {
    pub credentials: Credentials,
    pub sessions: Sessions,
    pub limiter: LoginLimiter,
    pub secure_cookie: bool,
    pub recorder: Arc<Recorder>,
    pub metrics: Arc<Metrics>,
}

/// A TLS acceptor for `cert` (PEM chain) and `key` (PEM private key).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, DashboardError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls = |message: String| DashboardError::Tls(message);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|error| tls(format!("cannot read {}: {error}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|error| tls(format!("{}: {error}", cert.display())))?;
    if certs.is_empty() {
        return Err(tls(format!("{} holds no certificate", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|error| {
        tls(format!(
            "cannot read a private key from {}: {error}",
            key.display()
        ))
    })?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| tls(error.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|error| tls(error.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves on `listener` (over TLS with `tls`) until the task is aborted.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                log::warn!("dashboard: accepting a connection failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(tls) => {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), tls.accept(stream)).await;
                    match handshake {
                        Ok(Ok(stream)) => connection(TokioIo::new(stream), peer, state).await,
                        Ok(Err(error)) => log::debug!("dashboard: TLS handshake failed: {error}"),
                        Err(_) => log::debug!("dashboard: TLS handshake timed out"),
                    }
                }
                None => connection(TokioIo::new(stream), peer, state).await,
            }
        });
    }
}

async fn connection<IO>(io: IO, peer: SocketAddr, state: Arc<State>)
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(respond(&state, peer.ip(), request).await) }
    });
    if let Err(error) = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(io, service)
        .await
    {
        log::debug!("dashboard: connection ended with an error: {error}");
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

fn json(status: StatusCode, value: &impl Serialize) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = reply(status, "application/json", body);
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

fn error_reply(status: StatusCode, message: &str) -> Reply {
    let mut response = reply(
        status,
        "application/json",
        serde_json::to_vec(&ErrorBody { error: message }).unwrap_or_default(),
    );
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Reply {
    let mut response = reply(StatusCode::OK, content_type, body);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The session token of the request's cookie, if any.
fn session_token(request: &Request<Incoming>) -> Option<String> {
    request
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
}

fn authorised(state: &State, request: &Request<Incoming>) -> bool {
    session_token(request).is_some_and(|token| state.sessions.check(&token))
}

/// Answers one request.
async fn respond(state: &State, client: IpAddr, request: Request<Incoming>) -> Reply {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match (method, path.as_str()) {
        (Method::GET | Method::HEAD, "/") => asset("text/html; charset=utf-8", INDEX_HTML),
        (Method::GET | Method::HEAD, "/assets/app.js") => {
            asset("text/javascript; charset=utf-8", APP_JS)
        }
        (Method::GET | Method::HEAD, "/assets/uPlot.iife.min.js") => {
            asset("text/javascript; charset=utf-8", UPLOT_JS)
        }
        (Method::GET | Method::HEAD, "/assets/uPlot.min.css") => {
            asset("text/css; charset=utf-8", UPLOT_CSS)
        }
        (Method::GET | Method::HEAD, "/assets/uPlot.LICENSE") => {
            asset("text/plain; charset=utf-8", UPLOT_LICENSE)
        }
        (Method::POST, "/api/login") => login(state, client, request).await,
        (Method::POST, "/api/logout") => {
            if let Some(token) = session_token(&request) {
                state.sessions.close(&token);
            }
            let mut response = reply(StatusCode::NO_CONTENT, "text/plain", Bytes::new());
            set_cookie(&mut response, state, "", 0);
            response
        }
        (Method::GET, "/api/summary" | "/api/status" | "/api/session") => {
            if !authorised(state, &request) {
                return error_reply(StatusCode::UNAUTHORIZED, "log in first (POST /api/login)");
            }
            match path.as_str() {
                "/api/summary" => summary(state, request.uri().query().unwrap_or("")),
                "/api/status" => json(StatusCode::OK, &status(state)),
                _ => json(StatusCode::OK, &serde_json::json!({ "user": "ok" })),
            }
        }
        (_, "/" | "/api/login" | "/api/logout" | "/api/summary" | "/api/status") => {
            error_reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error_reply(StatusCode::NOT_FOUND, "not found"),
    }
}

fn set_cookie(response: &mut Reply, state: &State, token: &str, max_age: u64) {
    let secure = if state.secure_cookie { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE_NAME}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
}

#[derive(Deserialize)]
struct LoginBody {
    user: String,
    password: String,
}

async fn login(state: &State, client: IpAddr, request: Request<Incoming>) -> Reply {
    if let Some(wait) = state.limiter.wait(client) {
        let mut response = error_reply(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins; wait and try again",
        );
        if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        return response;
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return error_reply(StatusCode::PAYLOAD_TOO_LARGE, "the login is too large"),
    };
    let Ok(LoginBody { user, password }) = serde_json::from_slice::<LoginBody>(&body) else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "expected JSON {\"user\": …, \"password\": …}",
        );
    };
    let credentials = state.credentials.clone();
    let verified = tokio::task::spawn_blocking(move || credentials.verify(&user, &password))
        .await
        .unwrap_or(false);
    if !verified {
        state.limiter.failed(client);
        log::warn!("dashboard: failed login from {client}");
        return error_reply(StatusCode::UNAUTHORIZED, "wrong user or password");
    }
    state.limiter.succeeded(client);
    let token = state.sessions.open();
    let mut response = reply(StatusCode::NO_CONTENT, "text/plain", Bytes::new());
    set_cookie(&mut response, state, &token, state.sessions.ttl().as_secs());
    response
}

/// A query's `from` / `to`: Unix seconds or RFC 3339.
fn parse_time(value: &str) -> Option<i64> {
    let value = percent_decode(value);
    if let Ok(seconds) = value.parse::<i64>() {
        return Some(seconds);
    }
    chrono::DateTime::parse_from_rfc3339(&value)
        .ok()
        .map(|at| at.timestamp())
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        index += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `from` and `to` of a query string; `to` defaults to now, `from` to an hour before `to`.
pub fn range(query: &str, now: i64) -> Result<(i64, i64), String> {
    let mut from = None;
    let mut to = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "from" => &mut from,
            "to" => &mut to,
            _ => continue,
        };
        *slot =
            Some(parse_time(value).ok_or_else(|| {
                format!("{key}={value}: expected Unix seconds or an RFC 3339 time")
            })?);
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - 3600);
    if from >= to {
        return Err("from must be before to".to_owned());
    }
    if to - from > MAX_RANGE {
        return Err(format!(
            "the range is longer than the {} days kept",
            MAX_RANGE / 86_400
        ));
    }
    Ok((from, to))
}

fn summary(state: &State, query: &str) -> Reply {
    let now = unix_now();
    match range(query, now) {
        Ok((from, to)) => {
            let view = state
                .recorder
                .with(|aggregates| aggregates.query(from, to, now));
            json(StatusCode::OK, &view)
        }
        Err(message) => error_reply(StatusCode::BAD_REQUEST, &message),
    }
}

/// `/api/status`: the sink's and the sources' state now.
#[derive(Debug, Serialize)]
pub struct Status {
    pub ready: bool,
    /// One `check: state` line per check (as `/readyz`).
    pub checks: Vec<String>,
    pub now: i64,
}

fn status(state: &State) -> Status {
    let readiness = state.metrics.readiness();
    Status {
        ready: readiness.ready,
        checks: readiness.checks,
        now: unix_now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_defaults_to_the_last_hour_and_takes_seconds_or_rfc3339() {
        assert_eq!(range("", 10_000), Ok((6_400, 10_000)));
        assert_eq!(range("from=100&to=200", 10_000), Ok((100, 200)));
        assert_eq!(
            range(
                "from=1970-01-01T00%3A01%3A40Z&to=1970-01-01T00:03:20%2B00:00",
                0
            ),
            Ok((100, 200))
        );
        assert!(range("from=200&to=100", 0).is_err());
        assert!(range("from=yesterday", 0).is_err());
        assert!(range(&format!("from=0&to={}", MAX_RANGE + 1), 0).is_err());
    }
}
