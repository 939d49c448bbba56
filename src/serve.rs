//! `flowgate serve`: the decision API for proxies and orchestrators.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use runtime::decision_log::{LogConfig, LogSink, WhenFull};
use std::time::Duration;

use runtime::routes::{DagSource, HostSource, Route, RouteAction, RouteTable};
use runtime::server::{
    ConnectionLimits, ForwardAuthConfig, JwksSource, Listeners, OidcConfig, Proxy, ReloadConfig,
    ServerConfig, TlsConfig, TrustedHeaders, serve,
};
use runtime::{EngineOptions, UnlistedEntities};

use crate::exit;
use crate::serve_config::TIMEOUT_SECS;

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Policy directory (default: the config file's `policy_dir`, else `policies/`).
    dir: Option<PathBuf>,
    /// A `flowgate.toml` with every setting; when given, the other options are ignored.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8181")]
    listen: SocketAddr,
    /// Serve TLS with this certificate chain (PEM); with `--tls-key`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued by these roots (PEM): mutual TLS.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Also answer Envoy's `ext_authz` over gRPC on this address.
    #[arg(long, value_name = "ADDR")]
    grpc_listen: Option<SocketAddr>,
    /// Threads answering requests (default: one per CPU). A sidecar sharing its machine
    /// with a busy proxy answers with a steadier tail when each keeps cores of its own.
    #[arg(long, value_name = "N")]
    workers: Option<std::num::NonZeroUsize>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Most requests in one batch.
    #[arg(long, default_value_t = 1_000)]
    max_batch: usize,
    /// Seconds a client has to send a request's head, from its first byte; slower ones
    /// are cut off.
    #[arg(long, default_value_t = 10, value_parser = seconds)]
    header_timeout_secs: u64,
    /// Seconds a keep-alive connection may sit idle between requests before it is closed;
    /// keep it longer than the idle timeout of the proxies' connection pools.
    #[arg(long, default_value_t = 120, value_parser = seconds)]
    idle_timeout_secs: u64,
    /// Largest request head (line and headers) in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    max_header_bytes: usize,
    /// Reload only on SIGHUP, not when files in the policy directory change.
    #[arg(long)]
    no_watch: bool,
    /// Decision log: a file to append JSON lines to, or `-` for standard output.
    #[arg(long, value_name = "PATH", default_value = "-")]
    decision_log: PathBuf,
    /// Lines the decision log may queue before the `--log-when-full` policy applies.
    #[arg(long, default_value_t = 10_000)]
    log_queue: usize,
    /// When the queue is full: wait for room, or deny the request (fail closed).
    #[arg(long, value_enum, default_value_t = WhenFullArg::Block)]
    log_when_full: WhenFullArg,
    /// Rotate the log file past this many bytes, keeping five older files.
    #[arg(long, value_name = "BYTES")]
    log_rotate_bytes: Option<u64>,
    /// A field to mask in the log, such as `principal.id`; repeatable.
    #[arg(long = "log-mask", value_name = "FIELD")]
    log_mask: Vec<String>,
    /// Write the log file around the page cache (O_DIRECT) where the filesystem allows.
    #[arg(long)]
    log_direct_io: bool,
    /// The proxy in front of `/v1/forward-auth`, whose headers carry the original request.
    #[arg(long, value_enum, default_value_t = ProxyArg::Nginx)]
    proxy: ProxyArg,
    /// Where the host of a proxied call comes from: a header …
    #[arg(long, value_name = "HEADER", group = "host_source")]
    host_header: Option<String>,
    /// … a JSON pointer into the body, such as `/conf/target_host` …
    #[arg(long, value_name = "POINTER", group = "host_source")]
    host_pointer: Option<String>,
    /// … or one host for the whole deployment.
    #[arg(long, value_name = "HOST", group = "host_source")]
    fixed_host: Option<String>,
    /// Believe `--trusted-user-header` and `--trusted-groups-header` from these peers only
    /// (for proxies that authenticate callers themselves); repeatable. Off when empty.
    #[arg(long = "trusted-peer", value_name = "IP")]
    trusted_peers: Vec<std::net::IpAddr>,
    /// OIDC issuer (`iss`) of accepted bearer tokens; with `--oidc-audience`.
    #[arg(long, value_name = "URL", requires = "oidc_audience")]
    oidc_issuer: Option<String>,
    /// Audience (`aud`) the tokens must name.
    #[arg(long, value_name = "AUDIENCE")]
    oidc_audience: Option<String>,
    /// The identity provider's signing keys: a JWKS file, or an `https://` URL fetched and
    /// refreshed. Without it, the issuer's OpenID discovery document names them.
    #[arg(long, value_name = "FILE|URL")]
    oidc_jwks: Option<String>,
    /// Trust these PEM roots (instead of the bundled ones) when fetching keys.
    #[arg(long, value_name = "FILE")]
    oidc_ca: Option<PathBuf>,
    /// A token signed by an unknown key fetches the keys again, at most this often.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    oidc_min_refresh_secs: u64,
    /// Fetched keys are fetched again this often.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    oidc_refresh_secs: u64,
    /// The header naming the caller, from a trusted peer.
    #[arg(long, default_value = "X-Remote-User")]
    trusted_user_header: String,
    /// The header listing the caller's groups, comma-separated, from a trusted peer.
    #[arg(long, default_value = "X-Remote-Groups")]
    trusted_groups_header: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ProxyArg {
    Nginx,
    Traefik,
    Envoy,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum WhenFullArg {
    Block,
    Deny,
}

pub(crate) fn run(args: &ServeArgs) -> anyhow::Result<u8> {
    let now = crate::fmt::now(None)?;
    let file = args
        .config
        .as_deref()
        .map(crate::serve_config::read)
        .transpose()?;
    let dir = args
        .dir
        .clone()
        .or_else(|| file.as_ref().and_then(|file| file.policy_dir.clone()))
        .unwrap_or_else(|| PathBuf::from("policies"));
    let engine = match crate::load::engine(Some(&dir), now)? {
        Ok(engine) => engine,
        Err(code) => return Ok(code),
    };
    let options = EngineOptions {
        now,
        unlisted: UnlistedEntities::Judge,
    };
    let mut config = match &file {
        Some(file) => from_file(file, dir, options),
        None => from_args(args, dir, options),
    };
    let grpc_listen = match &file {
        Some(file) => file.grpc_listen,
        None => args.grpc_listen,
    };
    let workers = match &file {
        Some(file) => file.workers,
        None => args.workers,
    };
    let workers = workers.unwrap_or_else(|| {
        std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN)
    });
    // HTTP is answered on threads of its own (see `ServerConfig::http_threads`); this
    // runtime, as wide, serves gRPC, reloads and key refreshes.
    config.http_threads = Some(workers);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.worker_threads(workers.get());
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr().unwrap_or(config.listen);
        let grpc = match grpc_listen {
            Some(grpc_address) => {
                let grpc = tokio::net::TcpListener::bind(grpc_address)
                    .await
                    .with_context(|| format!("cannot listen on {grpc_address}"))?;
                // Printed before the main banner, which scripts read as the last line.
                eprintln!(
                    "flowgate: Envoy ext_authz over gRPC on {}",
                    grpc.local_addr().unwrap_or(grpc_address)
                );
                Some(grpc)
            }
            None => None,
        };
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let workers = workers.get();
        eprintln!(
            "flowgate: serving {} ({} rules, {workers} {}) on {scheme}://{address}",
            engine.version().label(),
            engine.policy_set().rules().len(),
            if workers == 1 { "worker" } else { "workers" }
        );
        let listeners = Listeners {
            http: listener,
            grpc,
        };
        serve(listeners, engine, config, shutdown_signal())
            .await
            .context("the server stopped with an error")
    })?;
    eprintln!("flowgate: stopped");
    Ok(exit::CLEAN)
}

/// The configuration from command-line flags, when there is no `--config` file.
fn from_args(args: &ServeArgs, dir: PathBuf, options: EngineOptions) -> ServerConfig {
    ServerConfig {
        listen: args.listen,
        max_body_bytes: args.max_body_bytes,
        max_batch: args.max_batch,
        reload: Some(ReloadConfig {
            dir,
            options,
            watch: !args.no_watch,
        }),
        log: Some(LogConfig {
            sink: sink(&args.decision_log),
            capacity: args.log_queue,
            when_full: match args.log_when_full {
                WhenFullArg::Block => WhenFull::Block,
                WhenFullArg::Deny => WhenFull::Deny,
            },
            rotate_bytes: args.log_rotate_bytes,
            mask: args.log_mask.clone(),
            direct_io: args.log_direct_io,
        }),
        forward_auth: Some(forward_auth(args)),
        limits: ConnectionLimits {
            header_read_timeout: Duration::from_secs(args.header_timeout_secs),
            idle_timeout: Duration::from_secs(args.idle_timeout_secs),
            max_header_bytes: args.max_header_bytes,
            ..ConnectionLimits::default()
        },
        tls: args
            .tls_cert
            .clone()
            .zip(args.tls_key.clone())
            .map(|(cert, key)| TlsConfig {
                cert,
                key,
                client_ca: args.tls_client_ca.clone(),
            }),
        // Set by `run` from `--workers`.
        http_threads: None,
    }
}

fn sink(path: &std::path::Path) -> LogSink {
    if path.as_os_str() == "-" {
        LogSink::Stdout
    } else {
        LogSink::File(path.to_path_buf())
    }
}

/// The configuration from `flowgate.toml`; every key missing there takes its default.
fn from_file(
    file: &crate::serve_config::ConfigFile,
    dir: PathBuf,
    options: EngineOptions,
) -> ServerConfig {
    let defaults = ServerConfig::default();
    let limits = &file.limits;
    let mut routes = match file.forward_auth.preset.as_deref() {
        Some("none") => RouteTable {
            routes: Vec::new(),
            host: HostSource::None,
        },
        _ => RouteTable::airflow(),
    };
    let extra: Vec<Route> = file
        .forward_auth
        .routes
        .iter()
        .map(|route| {
            let dags = match &route.dag {
                Some(crate::serve_config::DagFrom::Path(name)) => DagSource::Path(name.clone()),
                Some(crate::serve_config::DagFrom::Body(pointer)) => {
                    DagSource::Body(pointer.clone())
                }
                None => DagSource::None,
            };
            Route::new(
                &route.method,
                &route.path,
                RouteAction::Named(route.action.clone()),
                dags,
            )
        })
        .collect();
    routes.routes.splice(0..0, extra);
    routes.host = match &file.forward_auth.host {
        Some(crate::serve_config::HostFrom::Header(name)) => {
            HostSource::Header(name.to_ascii_lowercase())
        }
        Some(crate::serve_config::HostFrom::Pointer(pointer)) => {
            HostSource::BodyPointer(pointer.clone())
        }
        Some(crate::serve_config::HostFrom::Fixed(host)) => HostSource::Fixed(host.clone()),
        None => HostSource::None,
    };
    let oidc = file.oidc.as_ref().map(|oidc| {
        let jwks = match (&oidc.jwks_file, &oidc.jwks_url) {
            (Some(file), _) => JwksSource::File(file.clone()),
            (None, Some(url)) => JwksSource::Url(url.clone()),
            (None, None) => JwksSource::Discover,
        };
        let mut config = OidcConfig::new(oidc.issuer.clone(), oidc.audience.clone(), jwks);
        config.ca_file = oidc.ca_file.clone();
        if let Some(seconds) = oidc.refresh_secs {
            config.refresh_every = Duration::from_secs(seconds);
        }
        if let Some(seconds) = oidc.min_refresh_secs {
            config.min_refresh_interval = Duration::from_secs(seconds);
        }
        if let Some(claims) = &oidc.id_claims {
            config.id_claims = claims.clone();
        }
        if let Some(claims) = &oidc.group_claims {
            config.group_claims = claims.clone();
        }
        if oidc.service_claim.is_some() {
            config.service_claim = oidc.service_claim.clone();
        }
        if let Some(leeway) = oidc.leeway_secs {
            config.leeway = leeway;
        }
        config
    });
    ServerConfig {
        listen: file.listen.unwrap_or(defaults.listen),
        max_body_bytes: limits.max_body_bytes.unwrap_or(defaults.max_body_bytes),
        max_batch: limits.max_batch.unwrap_or(defaults.max_batch),
        reload: Some(ReloadConfig {
            dir,
            options,
            watch: file.reload.watch.unwrap_or(true),
        }),
        log: Some(LogConfig {
            sink: sink(
                file.log
                    .path
                    .as_deref()
                    .unwrap_or(std::path::Path::new("-")),
            ),
            capacity: file.log.queue.unwrap_or(10_000),
            when_full: match file.log.when_full {
                Some(crate::serve_config::WhenFull::Deny) => WhenFull::Deny,
                _ => WhenFull::Block,
            },
            rotate_bytes: file.log.rotate_bytes,
            mask: file.log.mask.clone(),
            direct_io: file.log.direct_io,
        }),
        forward_auth: Some(ForwardAuthConfig {
            proxy: match file.forward_auth.proxy {
                Some(crate::serve_config::ProxyKind::Traefik) => Proxy::Traefik,
                Some(crate::serve_config::ProxyKind::Envoy) => Proxy::Envoy {
                    prefix: String::from("/v1/forward-auth"),
                },
                _ => Proxy::Nginx,
            },
            routes,
            oidc,
            trusted_headers: file.trusted_headers.as_ref().map(|trusted| TrustedHeaders {
                user: trusted
                    .user
                    .clone()
                    .unwrap_or_else(|| String::from("x-remote-user"))
                    .to_ascii_lowercase(),
                groups: trusted
                    .groups
                    .clone()
                    .unwrap_or_else(|| String::from("x-remote-groups"))
                    .to_ascii_lowercase(),
                peers: trusted.peers.clone(),
            }),
        }),
        limits: ConnectionLimits {
            header_read_timeout: limits
                .header_timeout_secs
                .map_or(defaults.limits.header_read_timeout, Duration::from_secs),
            idle_timeout: limits
                .idle_timeout_secs
                .map_or(defaults.limits.idle_timeout, Duration::from_secs),
            max_header_bytes: limits
                .max_header_bytes
                .unwrap_or(defaults.limits.max_header_bytes),
            ..ConnectionLimits::default()
        },
        tls: file.tls.as_ref().map(|tls| TlsConfig {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
            client_ca: tls.client_ca.clone(),
        }),
        // Set by `run` from `workers`.
        http_threads: None,
    }
}

/// A URL is fetched; anything else is a file.
fn jwks_source(jwks: Option<&str>) -> JwksSource {
    match jwks {
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            JwksSource::Url(url.to_owned())
        }
        Some(file) => JwksSource::File(PathBuf::from(file)),
        None => JwksSource::Discover,
    }
}

fn forward_auth(args: &ServeArgs) -> ForwardAuthConfig {
    let mut routes = RouteTable::airflow();
    routes.host = match (&args.host_header, &args.host_pointer, &args.fixed_host) {
        (Some(header), _, _) => HostSource::Header(header.clone()),
        (_, Some(pointer), _) => HostSource::BodyPointer(pointer.clone()),
        (_, _, Some(host)) => HostSource::Fixed(host.clone()),
        _ => HostSource::None,
    };
    ForwardAuthConfig {
        proxy: match args.proxy {
            ProxyArg::Nginx => Proxy::Nginx,
            ProxyArg::Traefik => Proxy::Traefik,
            ProxyArg::Envoy => Proxy::Envoy {
                prefix: String::from("/v1/forward-auth"),
            },
        },
        routes,
        oidc: match (&args.oidc_issuer, &args.oidc_audience) {
            (Some(issuer), Some(audience)) => {
                let mut config = OidcConfig::new(
                    issuer.clone(),
                    audience.clone(),
                    jwks_source(args.oidc_jwks.as_deref()),
                );
                config.ca_file = args.oidc_ca.clone();
                config.min_refresh_interval = Duration::from_secs(args.oidc_min_refresh_secs);
                config.refresh_every = Duration::from_secs(args.oidc_refresh_secs);
                Some(config)
            }
            _ => None,
        },
        trusted_headers: (!args.trusted_peers.is_empty()).then(|| TrustedHeaders {
            user: args.trusted_user_header.to_ascii_lowercase(),
            groups: args.trusted_groups_header.to_ascii_lowercase(),
            peers: args.trusted_peers.clone(),
        }),
    }
}

/// Ctrl-C, or SIGTERM as service managers send it.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Parses a timeout flag, in whole seconds within [`TIMEOUT_SECS`].
fn seconds(text: &str) -> Result<u64, String> {
    let seconds: u64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number of seconds"))?;
    if TIMEOUT_SECS.contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!(
            "must be from {} to {} seconds",
            TIMEOUT_SECS.start(),
            TIMEOUT_SECS.end()
        ))
    }
}
