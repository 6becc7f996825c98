//! The metrics listener: `/metrics` (OpenMetrics text), `/healthz` and `/readyz` over HTTP/1.
//!
//! It runs beside the pipeline on the same runtime, one task per connection, and
//! stops when the shutdown future passed to [`serve`] completes.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::Metrics;

/// The content type of the OpenMetrics text `prometheus-client` writes.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "metrics: cannot listen on {addr}: {source} (change [metrics] listen, or set enabled = false)"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr` (port 0 picks a free port); the caller logs the bound address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Serves `metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                log::warn!("metrics: accepting a connection failed: {error}");
                // Out of file descriptors and the like: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&metrics, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                log::debug!("metrics: connection ended with an error: {error}");
            }
        });
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Answers one request.
pub fn respond(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".to_owned());
    }
    match request.uri().path() {
        "/metrics" => match metrics.encode() {
            Ok(body) => {
                let mut response = text(StatusCode::OK, body);
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
                response
            }
            Err(error) => {
                log::error!("metrics: encoding failed: {error}");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("encoding the metrics failed: {error}\n"),
                )
            }
        },
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
        "/readyz" => {
            let readiness = metrics.readiness();
            let (status, head) = if readiness.ready {
                (StatusCode::OK, "ready")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "not ready")
            };
            let mut body = format!("{head}\n");
            for check in readiness.checks {
                body.push_str(&check);
                body.push('\n');
            }
            text(status, body)
        }
        "/" => text(
            StatusCode::OK,
            "tweetpipe metrics: /metrics, /healthz, /readyz\n".to_owned(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz or /readyz\n".to_owned(),
        ),
    }
}

/// Serves `metrics` on `listener` in a task, after logging the bound address
/// (`metrics: serving http://127.0.0.1:9464/metrics …`); abort the task to stop.
pub fn spawn(listener: TcpListener, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    match listener.local_addr() {
        Ok(addr) => log::info!("metrics: serving http://{addr}/metrics, /healthz and /readyz"),
        Err(error) => log::warn!("metrics: serving, but the bound address is unknown: {error}"),
    }
    tokio::spawn(serve(listener, metrics, std::future::pending()))
}
