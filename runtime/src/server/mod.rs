//! The decision API over HTTP: `POST /v1/decide`, `POST /v1/decide/batch`, `GET /v1/policy`,
//! `GET /healthz`, `GET /readyz`. Every error is a 4xx with a JSON body naming the field.

mod api;
mod audit;
mod authorize;
mod drain;
mod error;
mod ext_authz;
mod forward_auth;
mod jwks;
mod lean;
mod listen;
mod metrics;
mod oidc;
mod openapi;
mod prefixed;
mod reload;
mod threads;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::{any, get, post};
use compiler::time::Timestamp;

pub use forward_auth::{ForwardAuthConfig, Proxy, TrustedHeaders};
pub use jwks::{JwksError, JwksSource};
pub use listen::ConnectionLimits;
pub use oidc::{OidcConfig, OidcError};
pub use tls::{TlsConfig, TlsError};

/// The paths the API serves, as the OpenAPI document lists them.
pub fn documented_paths() -> Vec<(&'static str, &'static [&'static str])> {
    openapi::PATHS.to_vec()
}

use crate::decision_log::{DecisionLog, LogConfig};
use crate::engine::{Engine, EngineOptions};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Most requests in one `/v1/decide/batch` call.
    pub max_batch: usize,
    /// Where to reload the policy from on SIGHUP (and on change, with `watch`).
    pub reload: Option<ReloadConfig>,
    /// The decision log; `None` records nothing.
    pub log: Option<LogConfig>,
    /// `/v1/forward-auth` for proxies; `None` leaves it off.
    pub forward_auth: Option<ForwardAuthConfig>,
    pub limits: ConnectionLimits,
    /// TLS (and mutual TLS) on both listeners; `None` serves plain text.
    pub tls: Option<TlsConfig>,
    /// Threads answering HTTP, each with a runtime of its own, every connection staying on
    /// the one it was handed to. `None` answers on the runtime `serve` is called on.
    pub http_threads: Option<std::num::NonZeroUsize>,
}

#[derive(Clone, Debug)]
pub struct ReloadConfig {
    pub dir: PathBuf,
    pub options: EngineOptions,
    /// Also reload when files below `dir` change.
    pub watch: bool,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8181)),
            max_body_bytes: 1 << 20,
            max_batch: 1_000,
            reload: None,
            log: None,
            forward_auth: None,
            limits: ConnectionLimits::default(),
            tls: None,
            http_threads: None,
        }
    }
}

pub(crate) struct AppState {
    pub(crate) engine: ArcSwap<Engine>,
    pub(crate) config: ServerConfig,
    pub(crate) loaded_at: AtomicI64,
    pub(crate) last_reload_error: Mutex<Option<String>>,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) decisions: AtomicU64,
    pub(crate) log: Option<DecisionLog>,
    /// Bearer-token verification; its keys are fetched again on reload, periodically
    /// when they come from a URL, and when a token names an unknown key.
    pub(crate) verifier: Option<Arc<oidc::Verifier>>,
    /// Distinguishes this process's decision ids from other sidecars'.
    pub(crate) instance: String,
}

/// Writes an operator notice to standard error. A closed or full stderr must never take
/// a request down with it (`eprintln!` panics then), so write errors are ignored.
macro_rules! notice {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use notice;

/// The clock, read here at the edge.
pub(crate) fn now() -> Timestamp {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
}

async fn state(engine: Engine, config: ServerConfig) -> std::io::Result<Arc<AppState>> {
    let instance = format!("{:x}{:04x}", now(), std::process::id() & 0xffff);
    let log = config.log.clone().map(DecisionLog::start).transpose()?;
    let verifier = match config
        .forward_auth
        .as_ref()
        .and_then(|forward| forward.oidc.clone())
    {
        // Loading may fetch keys over the network.
        Some(oidc) => Some(
            tokio::task::spawn_blocking(move || oidc::Verifier::load(oidc))
                .await
                .map_err(std::io::Error::other)?
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    Ok(Arc::new(AppState {
        engine: ArcSwap::from_pointee(engine),
        config,
        loaded_at: AtomicI64::new(now()),
        last_reload_error: Mutex::new(None),
        metrics: metrics::Metrics::default(),
        decisions: AtomicU64::new(0),
        log,
        verifier: verifier.map(Arc::new),
        instance,
    }))
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(api::DECIDE_PATH, post(api::decide))
        .route(api::DECIDE_BATCH_PATH, post(api::decide_batch))
        .route("/v1/policy", get(api::policy))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route(
            "/v1/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .route(forward_auth::PREFIX, any(forward_auth::forward_auth))
        .route(
            &format!("{}/{{*rest}}", forward_auth::PREFIX),
            any(forward_auth::forward_auth),
        )
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state)
}

/// Where the server listens: HTTP always, Envoy's gRPC `ext_authz` when wanted.
pub struct Listeners {
    pub http: tokio::net::TcpListener,
    pub grpc: Option<tokio::net::TcpListener>,
}

impl From<tokio::net::TcpListener> for Listeners {
    fn from(http: tokio::net::TcpListener) -> Listeners {
        Listeners { http, grpc: None }
    }
}

/// Serves until `shutdown` completes, then finishes requests in flight.
pub async fn serve(
    listeners: impl Into<Listeners>,
    engine: Engine,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listeners = listeners.into();
    // Certificates are read before anything listens, so a bad file stops the start.
    let acceptor = config
        .tls
        .as_ref()
        .map(tls::acceptor)
        .transpose()
        .map_err(std::io::Error::other)?;
    let grpc_tls = config
        .tls
        .as_ref()
        .map(tls::grpc)
        .transpose()
        .map_err(std::io::Error::other)?;
    let state = state(engine, config).await?;
    if let Some(reload) = state.config.reload.clone() {
        reload::spawn(state.clone(), reload.dir, reload.options, reload.watch);
    }
    if let Some(verifier) = state.verifier.clone().filter(|verifier| verifier.fetched()) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(verifier.next_refresh()).await;
                let fetching = verifier.clone();
                if let Ok(Err(error)) =
                    tokio::task::spawn_blocking(move || fetching.refresh()).await
                {
                    notice!("flowgate: keeping the previous signing keys: {error}");
                }
            }
        });
    }
    // One signal stops both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let grpc = match listeners.grpc {
        Some(listener) => {
            let mut builder = tonic::transport::Server::builder();
            if let Some(tls) = grpc_tls {
                builder = builder.tls_config(tls).map_err(std::io::Error::other)?;
            }
            Some((listener, builder))
        }
        None => None,
    };
    let grpc = grpc.map(|(listener, builder)| {
        let mut stopped = stopped.clone();
        let service = ext_authz::service(state.clone());
        tokio::spawn(async move {
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            builder
                .serve_with_incoming_shutdown(service, incoming, async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        })
    });
    let mut http_stopped = stopped;
    let connections = listen::Connections {
        router: router(state.clone()),
        state: state.clone(),
        tls: acceptor,
    };
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            _ = http_stopped.wait_for(|stop| *stop) => {}
        }
    };
    let threads = state
        .config
        .http_threads
        .map(|count| threads::HttpThreads::start(count, &connections))
        .transpose()?;
    listen::accept(listeners.http, connections, threads, shutdown).await;
    let _ = stop.send(true);
    if let Some(grpc) = grpc {
        match grpc.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(std::io::Error::other(error)),
            Err(error) => return Err(std::io::Error::other(error)),
        }
    }
    // Requests in flight have finished: write out every queued line before returning.
    if let Some(log) = &state.log {
        log.close();
    }
    Ok(())
}
