//! Graceful shutdown for HTTP connections: one signal tells every connection to finish
//! the request it is reading or answering and close, and the accept loop waits until all
//! have. hyper-util has the same for hyper's own connection types only; a connection here
//! starts on the decision routes' own path ([`super::lean`]) and may move to hyper.

use tokio::sync::watch;

/// Held by the accept loop.
pub(crate) struct Drain {
    signal: watch::Sender<bool>,
}

/// Held by each connection for as long as it is open.
pub(crate) struct Closing {
    signal: watch::Receiver<bool>,
}

impl Drain {
    pub(crate) fn new() -> Drain {
        Drain {
            signal: watch::Sender::new(false),
        }
    }

    pub(crate) fn closing(&self) -> Closing {
        Closing {
            signal: self.signal.subscribe(),
        }
    }

    /// Asks every connection to close, and returns once all of them have.
    pub(crate) async fn close(self) {
        self.signal.send_replace(true);
        self.signal.closed().await;
    }
}

impl Closing {
    /// Completes once shutdown has begun (at once, if it already has).
    pub(crate) async fn requested(&mut self) {
        // An error means the accept loop is gone, which is shutdown too.
        let _ = self.signal.wait_for(|closing| *closing).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests fail loudly by design"
    )]

    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn close_waits_for_every_connection_and_tells_each_one() {
        let drain = Drain::new();
        let mut first = drain.closing();
        let mut second = drain.closing();
        let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
        for mut closing in [drain.closing(), drain.closing()] {
            let done = done.clone();
            tokio::spawn(async move {
                closing.requested().await;
                let _ = done.send(());
            });
        }
        let closed = tokio::spawn(drain.close());
        // Told, but still open: close has not returned.
        first.requested().await;
        second.requested().await;
        finished.recv().await.unwrap();
        finished.recv().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!closed.is_finished());
        drop(first);
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .expect("close returns once the last connection has gone")
            .unwrap();
    }
}
