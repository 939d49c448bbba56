//! A stream handed to hyper part-way: the bytes already read come first, then the socket.
//!
//! It also keeps the connection's clock, because hyper has only one timeout for both
//! waits a keep-alive connection has: the idle wait for the next request, which proxies
//! expect to be long (they pool connections), and the wait for a head once it has started,
//! which must be short (slowloris). Here an idle connection is closed `idle_timeout` after
//! its last answer, as a clean end of stream, and a head not complete `header_read_timeout`
//! after its first byte fails the read with [`std::io::ErrorKind::TimedOut`].
//! Once the head is complete the clock stops: a handler that reads the body bounds that
//! read itself, and a handler may take its time without the connection timing out.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::listen::ConnectionLimits;

pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    taken: usize,
    inner: S,
    clock: Clock,
    mid_request: Arc<AtomicBool>,
}

impl<S> Prefixed<S> {
    /// `prefix` holds the start of a request (possibly all of it) already read from
    /// `inner`. The returned flag is true while a request is being received or answered,
    /// so a timeout on an idle connection is not taken for a slow client.
    pub(crate) fn new(
        prefix: Vec<u8>,
        inner: S,
        limits: &ConnectionLimits,
    ) -> (Prefixed<S>, Arc<AtomicBool>) {
        let mut clock = Clock::new(limits);
        clock.received(&prefix);
        let mid_request = Arc::new(AtomicBool::new(clock.mid_request()));
        let stream = Prefixed {
            prefix,
            taken: 0,
            inner,
            clock,
            mid_request: mid_request.clone(),
        };
        (stream, mid_request)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Some(rest) = this
            .prefix
            .get(this.taken..)
            .filter(|rest| !rest.is_empty())
        {
            let count = rest.len().min(buffer.remaining());
            buffer.put_slice(rest.get(..count).unwrap_or_default());
            this.taken += count;
            if this.taken == this.prefix.len() {
                this.prefix = Vec::new();
                this.taken = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buffer.filled().len();
        match Pin::new(&mut this.inner).poll_read(context, buffer) {
            Poll::Ready(read) => {
                if let Some(arrived) = buffer.filled().get(before..) {
                    this.clock.received(arrived);
                    this.mid_request
                        .store(this.clock.mid_request(), Ordering::Relaxed);
                }
                Poll::Ready(read)
            }
            Poll::Pending => match this.clock.poll_overdue(context) {
                Poll::Pending => Poll::Pending,
                // Read as the end of the stream, which hyper takes for a client that left.
                Poll::Ready(Overdue::Idle) => Poll::Ready(Ok(())),
                Poll::Ready(Overdue::Head) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request head is overdue",
                ))),
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.clock.answering(bytes);
        this.mid_request
            .store(this.clock.mid_request(), Ordering::Relaxed);
        Pin::new(&mut this.inner).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let first = buffers.iter().find(|buffer| !buffer.is_empty());
        this.clock
            .answering(first.map(|buffer| &**buffer).unwrap_or_default());
        this.mid_request
            .store(this.clock.mid_request(), Ordering::Relaxed);
        Pin::new(&mut this.inner).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(context)
    }
}

/// What a connection was waiting for when its time ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Overdue {
    Idle,
    Head,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's first byte, since the last answer was written.
    Idle,
    /// Reading a head. `line_ends` counts line ends since the last other byte; the head is
    /// complete at the second. Line ends before the request line are skipped, as httparse
    /// skips them, so a client cannot end a "head" with blank lines alone.
    Head { started: bool, line_ends: u8 },
    /// The head is complete; the request is the handler's until it is answered.
    Answering,
}

struct Clock {
    idle_limit: Duration,
    head_limit: Duration,
    phase: Phase,
    due: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Clock {
    fn new(limits: &ConnectionLimits) -> Clock {
        Clock {
            idle_limit: limits.idle_timeout,
            head_limit: limits.header_read_timeout,
            phase: Phase::Idle,
            due: Some(Instant::now() + limits.idle_timeout),
            timer: None,
        }
    }

    fn mid_request(&self) -> bool {
        self.phase != Phase::Idle
    }

    fn received(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.phase == Phase::Idle {
            self.phase = Phase::Head {
                started: false,
                line_ends: 0,
            };
            self.due = Some(Instant::now() + self.head_limit);
        }
        let Phase::Head {
            mut started,
            mut line_ends,
        } = self.phase
        else {
            return;
        };
        for &byte in bytes {
            match byte {
                b'\r' => {}
                b'\n' if started => {
                    line_ends += 1;
                    if line_ends == 2 {
                        self.phase = Phase::Answering;
                        self.due = None;
                        return;
                    }
                }
                b'\n' => {}
                _ => {
                    started = true;
                    line_ends = 0;
                }
            }
        }
        self.phase = Phase::Head { started, line_ends };
    }

    /// An answer is being written: the connection is idle from now on, unless this is an
    /// interim `1xx` answer (`100 Continue`) within the request.
    fn answering(&mut self, bytes: &[u8]) {
        if self.phase == Phase::Idle || (self.phase == Phase::Answering && is_interim(bytes)) {
            return;
        }
        self.phase = Phase::Idle;
        self.due = Some(Instant::now() + self.idle_limit);
    }

    fn poll_overdue(&mut self, context: &mut Context<'_>) -> Poll<Overdue> {
        let Some(due) = self.due else {
            return Poll::Pending;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        match timer.as_mut().poll(context) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) if self.phase == Phase::Idle => Poll::Ready(Overdue::Idle),
            Poll::Ready(()) => Poll::Ready(Overdue::Head),
        }
    }
}

fn is_interim(bytes: &[u8]) -> bool {
    bytes.starts_with(b"HTTP/1.1 1") || bytes.starts_with(b"HTTP/1.0 1")
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
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

    const SHORT: Duration = Duration::from_millis(100);

    fn limits(idle: Duration, head: Duration) -> ConnectionLimits {
        ConnectionLimits {
            idle_timeout: idle,
            header_read_timeout: head,
            ..ConnectionLimits::default()
        }
    }

    fn wrap(
        prefix: &[u8],
        limits: &ConnectionLimits,
    ) -> (DuplexStream, Prefixed<DuplexStream>, Arc<AtomicBool>) {
        let (client, server) = tokio::io::duplex(1024);
        let (stream, mid_request) = Prefixed::new(prefix.to_vec(), server, limits);
        (client, stream, mid_request)
    }

    #[tokio::test]
    async fn the_prefix_comes_first_then_the_stream() {
        let limits = ConnectionLimits::default();
        let (mut client, mut stream, mid_request) = wrap(b"GET / HT", &limits);
        assert!(mid_request.load(Ordering::Relaxed));
        client.write_all(b"TP/1.1\r\n\r\n").await.unwrap();
        let mut read = vec![0; 18];
        stream.read_exact(&mut read).await.unwrap();
        assert_eq!(read, b"GET / HTTP/1.1\r\n\r\n");

        // An answer ends the request; the next byte starts another.
        stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert!(!mid_request.load(Ordering::Relaxed));
        client.write_all(b"G").await.unwrap();
        let mut next = [0; 1];
        stream.read_exact(&mut next).await.unwrap();
        assert!(mid_request.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn an_idle_connection_ends_after_the_idle_limit_not_the_head_limit() {
        let limits = limits(SHORT * 4, SHORT);
        let (mut client, mut stream, mid_request) = wrap(b"GET / HTTP/1.1\r\n\r\n", &limits);
        let mut head = vec![0; 18];
        stream.read_exact(&mut head).await.unwrap();
        stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();

        // Idle for twice the head limit, then a request: it is read.
        tokio::time::sleep(SHORT * 2).await;
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        stream.read_exact(&mut head).await.unwrap();
        assert!(mid_request.load(Ordering::Relaxed));
        stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();

        // Idle past the idle limit: the stream ends cleanly.
        let started = Instant::now();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert!(started.elapsed() >= SHORT * 4);
        assert!(!mid_request.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_head_not_complete_in_time_fails_the_read() {
        let limits = limits(SHORT * 10, SHORT);
        let (mut client, mut stream, _) = wrap(b"", &limits);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
            .await
            .unwrap();
        let mut head = vec![0; 25];
        stream.read_exact(&mut head).await.unwrap();
        let started = Instant::now();
        let error = stream.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < SHORT * 5);
    }

    #[tokio::test]
    async fn blank_lines_alone_are_not_a_head() {
        let limits = limits(SHORT * 10, SHORT);
        let (mut client, mut stream, _) = wrap(b"", &limits);
        client.write_all(b"\r\n\r\n\n\n").await.unwrap();
        let mut blank = vec![0; 6];
        stream.read_exact(&mut blank).await.unwrap();
        let error = stream.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_complete_head_stops_the_clock_until_the_answer() {
        let limits = limits(SHORT, SHORT);
        // The head ends across two reads, with bare line feeds.
        let (mut client, mut stream, mid_request) =
            wrap(b"POST / HTTP/1.1\nContent-Length: 2\n", &limits);
        client.write_all(b"\n").await.unwrap();
        let mut head = vec![0; 35];
        stream.read_exact(&mut head).await.unwrap();

        // An interim answer leaves the request open; the handler may wait on its body.
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .unwrap();
        assert!(mid_request.load(Ordering::Relaxed));
        let reader = tokio::spawn(async move {
            let mut body = [0; 2];
            stream.read_exact(&mut body).await.map(|_| body)
        });
        tokio::time::sleep(SHORT * 3).await;
        client.write_all(b"{}").await.unwrap();
        assert_eq!(&reader.await.unwrap().unwrap(), b"{}");
    }
}
