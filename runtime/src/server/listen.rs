//! The accept loop and each connection's life: plain decision requests on the
//! connection's own path ([`super::lean`]), then hyper from the first other request on.
//! Both give a request head a deadline, so a client that trickles headers (slowloris)
//! cannot hold a connection open, and cap its size against header floods; with TLS, the
//! handshake has the same deadline. Shutdown stops accepting, closes idle connections and
//! lets requests in flight finish.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tower::Service as _;

use super::api::refused;
use super::drain::{Closing, Drain};
use super::error::ApiError;
use super::lean::Left;
use super::prefixed::Prefixed;

/// Limits on each connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's line and headers, from their first byte
    /// (from the connection's start for its first request).
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may sit idle between an answer and the next request.
    /// Proxies pool connections and expect this to be longer than their own idle timeout.
    pub idle_timeout: Duration,
    /// Largest request head (line and headers), in bytes.
    pub max_header_bytes: usize,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_header_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// A request head that did not arrive in time.
pub(crate) fn slow_head(limit: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "slow-request-head",
        format!(
            "the request head did not arrive within {} s; connection closed",
            limit.as_secs_f64()
        ),
    )
}

/// What a connection-level error means to an operator; `None` for a client that simply
/// went away, or a keep-alive connection closed after sitting idle (`mid_request` false).
fn refusal(error: &hyper::Error, limits: &ConnectionLimits, mid_request: bool) -> Option<ApiError> {
    if error.is_timeout() || is_overdue(error) {
        mid_request.then(|| slow_head(limits.header_read_timeout))
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

/// The connection's own clock ([`Prefixed`]) failed the read of an overdue head.
fn is_overdue(error: &hyper::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
}

/// What every connection is served with.
#[derive(Clone)]
pub(crate) struct Connections {
    pub(crate) router: Router,
    pub(crate) state: std::sync::Arc<super::AppState>,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
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
    let drain = Drain::new();
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
        let closing = drain.closing();
        match &threads {
            Some(threads) => threads.hand_over(stream, peer, closing),
            None => {
                tokio::spawn(serve_connection(stream, peer, connections.clone(), closing));
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = drain.close() => {}
        () = tokio::time::sleep(connections.state.config.limits.drain_timeout) => {}
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
    closing: Closing,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = connections.tls.clone() else {
        return serve_stream(stream, peer, &connections, closing).await;
    };
    // The handshake gets the same deadline as a request head, against clients that open
    // connections and say nothing.
    let state = &connections.state;
    let limit = state.config.limits.header_read_timeout;
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_stream(stream, peer, &connections, closing).await,
        Ok(Err(error)) => {
            refused(
                state,
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "tls-handshake",
                    format!("TLS handshake with {peer} failed: {error}"),
                ),
            );
        }
        Err(_) => {
            refused(
                state,
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "tls-handshake",
                    format!("TLS handshake with {peer} did not finish in time"),
                ),
            );
        }
    }
}

/// Plain decision requests are answered on the connection's own path
/// ([`super::lean`]); from the first other request on, hyper serves the connection.
async fn serve_stream<S>(
    mut stream: S,
    peer: SocketAddr,
    connections: &Connections,
    mut closing: Closing,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Connections { router, state, .. } = connections;
    let limits = &state.config.limits;
    let read = match super::lean::serve(&mut stream, state, &mut closing).await {
        Left::Closed => return,
        Left::ToHyper(read) => read,
    };
    let (stream, mid_request) = Prefixed::new(read, stream, limits);
    let router = router.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request
            .extensions_mut()
            .insert(ConnectInfo::<SocketAddr>(peer));
        router.clone().call(request)
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        // `Prefixed` keeps the idle and head timeouts apart; hyper's one timer, which
        // counts both together, stays as a backstop.
        .header_read_timeout(
            limits
                .idle_timeout
                .saturating_add(limits.header_read_timeout),
        )
        .max_buf_size(limits.max_header_bytes.max(8 * 1024));
    let connection = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = closing.requested() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = served
        && let Some(refusal) = refusal(&error, limits, mid_request.load(Ordering::Relaxed))
    {
        refused(state, refusal);
    }
}
