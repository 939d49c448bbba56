//! Threads that answer HTTP, each on a runtime of its own. The accept loop hands every new
//! connection to the thread serving the fewest, and the connection stays there: answering
//! never wakes another thread and no thread steals another's work. On a VM each such
//! wake-up is a trip through the host, and under load those trips set the tail
//! (benches/README.md, "Tail latency on this VM"). Keep-alive connections are handed over
//! once, so the hand-over itself costs next to nothing.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::drain::Closing;
use super::listen::{Connections, serve_connection};

/// A connection on its way to a thread: the socket leaves the accepting runtime's
/// reactor and joins the thread's.
struct HandedOver {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    closing: Closing,
}

struct Lane {
    sender: mpsc::UnboundedSender<HandedOver>,
    /// Connections the thread is serving now.
    open: Arc<AtomicUsize>,
}

pub(crate) struct HttpThreads {
    lanes: Vec<Lane>,
    threads: Vec<JoinHandle<()>>,
}

impl HttpThreads {
    pub(crate) fn start(
        count: NonZeroUsize,
        connections: &Connections,
    ) -> std::io::Result<HttpThreads> {
        let mut lanes = Vec::with_capacity(count.get());
        let mut threads = Vec::with_capacity(count.get());
        for index in 0..count.get() {
            let (sender, receiver) = mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
            let (serving, serving_open) = (connections.clone(), open.clone());
            // The runtime is built, and so also dropped, on its own thread, outside this
            // one's; the thread says whether it could.
            let (started, start) = std::sync::mpsc::sync_channel(1);
            let thread = std::thread::Builder::new()
                .name(format!("flowgate-http-{index}"))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => {
                            let _ = started.send(Ok(()));
                            run(&runtime, receiver, serving, &serving_open);
                        }
                        Err(error) => {
                            let _ = started.send(Err(error));
                        }
                    }
                })?;
            start
                .recv()
                .map_err(std::io::Error::other)
                .and_then(|started| started)?;
            lanes.push(Lane { sender, open });
            threads.push(thread);
        }
        let _ = connections
            .state
            .metrics
            .http_connections
            .set(lanes.iter().map(|lane| lane.open.clone()).collect());
        Ok(HttpThreads { lanes, threads })
    }

    /// Gives a new connection to the thread serving the fewest.
    pub(crate) fn hand_over(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        closing: Closing,
    ) {
        let Some(lane) = self
            .lanes
            .iter()
            .min_by_key(|lane| lane.open.load(Ordering::Relaxed))
        else {
            return;
        };
        // A socket that cannot leave this reactor is closed: the client sees a reset and
        // retries, which beats serving it somewhere it cannot be read.
        let Ok(stream) = stream.into_std() else {
            return;
        };
        lane.open.fetch_add(1, Ordering::Relaxed);
        if lane
            .sender
            .send(HandedOver {
                stream,
                peer,
                closing,
            })
            .is_err()
        {
            lane.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Lets every thread finish (their connections have already been drained or cut by
    /// the caller) and waits for them, off the calling runtime.
    pub(crate) async fn stop(self) {
        let HttpThreads { lanes, threads } = self;
        drop(lanes);
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

/// One thread's life: serve what is handed over until the accept loop lets go.
fn run(
    runtime: &tokio::runtime::Runtime,
    mut receiver: mpsc::UnboundedReceiver<HandedOver>,
    connections: Connections,
    open: &Arc<AtomicUsize>,
) {
    runtime.block_on(async {
        while let Some(handed) = receiver.recv().await {
            let open = open.clone();
            let Ok(stream) = tokio::net::TcpStream::from_std(handed.stream) else {
                open.fetch_sub(1, Ordering::Relaxed);
                continue;
            };
            let connections = connections.clone();
            tokio::spawn(async move {
                serve_connection(stream, handed.peer, connections, handed.closing).await;
                open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
}
