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

/// A server on HTTP threads of its own (as `flowgate serve` runs), stopped by the test.
#[allow(dead_code, reason = "not every test file stops its servers")]
pub(crate) struct Stoppable {
    pub(crate) http: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: std::thread::JoinHandle<std::io::Result<()>>,
}

#[allow(dead_code, reason = "not every test file stops its servers")]
impl Stoppable {
    /// Serves the example policies with `config` until [`Stoppable::stop`].
    pub(crate) fn start(config: ServerConfig) -> Stoppable {
        let engine = Engine::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
            options(),
        )
        .unwrap();
        let (address_sender, address) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                address_sender.send(listener.local_addr().unwrap()).unwrap();
                serve(listener, engine, config, async move {
                    let _ = stopped.await;
                })
                .await
            })
        });
        Stoppable {
            http: address.recv_timeout(Duration::from_secs(10)).unwrap(),
            stop,
            server,
        }
    }

    /// Asks the server to stop and waits until `serve` has returned.
    pub(crate) fn stop(self) {
        self.stop.send(()).unwrap();
        self.server.join().unwrap().unwrap();
    }
}

/// Polls `check` for up to ten seconds.
#[allow(dead_code, reason = "not every test file waits")]
pub(crate) fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
