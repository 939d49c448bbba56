//! Starting the decision API for a test, on ephemeral loopback ports.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use runtime::server::{Listeners, ServerConfig, serve};
use runtime::{Engine, EngineOptions, UnlistedEntities};

/// The addresses a started server answers on.
pub(crate) struct Started {
    pub(crate) http: SocketAddr,
    #[allow(dead_code, reason = "only the gRPC test reads it")]
    pub(crate) grpc: Option<SocketAddr>,
}

/// The options every test server loads with: a fixed clock.
pub(crate) fn options() -> EngineOptions {
    EngineOptions {
        now: 1_800_000_000,
        unlisted: UnlistedEntities::Judge,
    }
}

/// Serves the example policies; the server stops when the process ends.
pub(crate) fn start_server(config: ServerConfig, grpc: bool) -> Started {
    serve_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
        config,
        grpc,
    )
}

/// Serves the policy set in `dir`.
pub(crate) fn serve_dir(dir: &Path, config: ServerConfig, grpc: bool) -> Started {
    let engine = Engine::load(dir, options()).unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let grpc = if grpc {
                Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
            } else {
                None
            };
            sender
                .send(Started {
                    http: http.local_addr().unwrap(),
                    grpc: grpc.as_ref().map(|grpc| grpc.local_addr().unwrap()),
                })
                .unwrap();
            serve(
                Listeners { http, grpc },
                engine,
                config,
                std::future::pending(),
            )
            .await
            .unwrap();
        });
    });
    receiver.recv_timeout(Duration::from_secs(10)).unwrap()
}
