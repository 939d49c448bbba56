//! The accept loop: HTTP/1.1 connections with a deadline for the request head, so a client
//! that trickles headers (slowloris) cannot hold a connection open, and a cap on head size
//! against header floods; with TLS, the handshake has the same deadline. Shutdown stops
//! accepting and lets requests in flight finish.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tower::Service as _;

use super::error::ApiError;

/// Limits on each connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's line and headers.
    pub header_read_timeout: Duration,
    /// Largest request head (line and headers), in bytes.
    pub max_header_bytes: usize,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Called for a connection cut off before a request could be answered (a slow or
/// oversized request head, malformed HTTP, a failed TLS handshake), so the decision log
/// shows those too.
pub(crate) type Refused = std::sync::Arc<dyn Fn(ApiError) + Send + Sync>;

/// What a connection-level error means to an operator; `None` for a client that simply
/// went away.
fn refusal(error: &hyper::Error, limits: &ConnectionLimits) -> Option<ApiError> {
    if error.is_timeout() {
        Some(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "slow-request-head",
            format!(
                "the request head did not arrive within {} s; connection closed",
                limits.header_read_timeout.as_secs()
            ),
        ))
    } else if error.is_parse_too_large() {
        Some(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request-head-too-large",
            format!(
                "the request head is larger than {} bytes; connection closed",
                limits.max_header_bytes
            ),
        ))
    } else if error.is_parse() {
        Some(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-http",
            format!("not an HTTP/1.1 request: {error}"),
        ))
    } else {
        None
    }
}

/// What every connection is served with.
#[derive(Clone)]
pub(crate) struct Connections {
    pub(crate) router: Router,
    pub(crate) state: std::sync::Arc<super::AppState>,
    pub(crate) limits: ConnectionLimits,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) refused: Refused,
}

/// Accepts until `shutdown`, then lets requests in flight finish (up to the drain
/// timeout). Each connection is served on this runtime, or, given `threads`, handed to
/// one of those threads ([`super::threads`]).
pub(crate) async fn accept(
    listener: tokio::net::TcpListener,
    connections: Connections,
    threads: Option<super::threads::HttpThreads>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // Out of file descriptors and the like: pause rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let watcher = graceful.watcher();
        match &threads {
            Some(threads) => threads.hand_over(stream, peer, watcher),
            None => {
                tokio::spawn(serve_connection(stream, peer, connections.clone(), watcher));
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(connections.limits.drain_timeout) => {}
    }
    if let Some(threads) = threads {
        threads.stop().await;
    }
}

/// Serves one connection until the client leaves or shutdown closes it.
pub(crate) async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    connections: Connections,
    watcher: Watcher,
) {
    let Connections {
        router,
        state,
        limits,
        tls,
        refused,
    } = connections;
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // The decision routes, nearly all the traffic, skip the router's matching and
        // boxing; everything else, including other methods on those paths, goes
        // through it.
        let hot = super::api::hot_route(request.method(), request.uri().path());
        let state = state.clone();
        let mut router = router.clone();
        async move {
            match hot {
                Some(route) => Ok(super::api::answer_hot(route, state, request).await),
                None => {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(peer));
                    router.call(request).await
                }
            }
        }
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8 * 1024));
    let _ = stream.set_nodelay(true);
    let served = match tls {
        None => {
            watcher
                .watch(http.serve_connection(TokioIo::new(stream), service))
                .await
        }
        Some(acceptor) => {
            // The handshake gets the same deadline as a request head, against clients
            // that open connections and say nothing.
            let handshake =
                tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
            match handshake.await {
                Ok(Ok(stream)) => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Ok(Err(error)) => {
                    refused(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "tls-handshake",
                        format!("TLS handshake with {peer} failed: {error}"),
                    ));
                    return;
                }
                Err(_) => {
                    refused(ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "tls-handshake",
                        format!("TLS handshake with {peer} did not finish in time"),
                    ));
                    return;
                }
            }
        }
    };
    if let Err(error) = served
        && let Some(refusal) = refusal(&error, &limits)
    {
        refused(refusal);
    }
}
