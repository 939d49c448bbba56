//! A stream handed to hyper part-way: the bytes already read come first, then the socket.
//! It also notes whether any byte of a request has arrived since the last answer was
//! written, so a header timeout on an idle keep-alive connection is not logged as a
//! slow client.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    taken: usize,
    inner: S,
    mid_request: Arc<AtomicBool>,
}

impl<S> Prefixed<S> {
    /// `mid_request` starts true when the prefix holds part of a request.
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> (Prefixed<S>, Arc<AtomicBool>) {
        let mid_request = Arc::new(AtomicBool::new(!prefix.is_empty()));
        let stream = Prefixed {
            prefix,
            taken: 0,
            inner,
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
        let read = Pin::new(&mut this.inner).poll_read(context, buffer);
        if buffer.filled().len() > before {
            this.mid_request.store(true, Ordering::Relaxed);
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.mid_request.store(false, Ordering::Relaxed);
        Pin::new(&mut this.inner).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.mid_request.store(false, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests fail loudly by design"
    )]

    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn the_prefix_comes_first_then_the_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        let (mut stream, mid_request) = Prefixed::new(b"GET / HT".to_vec(), server);
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
    async fn an_empty_prefix_reads_straight_from_the_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        let (mut stream, mid_request) = Prefixed::new(Vec::new(), server);
        assert!(!mid_request.load(Ordering::Relaxed));
        client.write_all(b"abc").await.unwrap();
        drop(client);
        let mut read = Vec::new();
        stream.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, b"abc");
    }
}
