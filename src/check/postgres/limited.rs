//! A TCP stream that fails once the server has sent more than a fixed number of bytes.
//!
//! tokio-postgres (0.7) buffers each backend message whole, and a message's length field may
//! announce up to 2 GiB. A server that sends such a message, or any service that happens to
//! listen on the port, would make the exporter hold that much memory for every run. The checks'
//! sessions receive a few kilobytes, so a cap far above that costs nothing.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The maximum a check's session may receive: 16 MiB.
pub const MAX_RECEIVED_BYTES: u64 = 16 * 1024 * 1024;

/// The error a [`LimitedStream`] returns once the server has sent more than its limit.
#[derive(Debug, thiserror::Error)]
#[error("the server sent more than {limit} bytes, the most a check's session may receive")]
pub struct ReceiveLimitExceeded {
    /// The limit in bytes.
    pub limit: u64,
}

/// A stream that counts the bytes it reads and fails every read after the one that goes past
/// `limit`.
pub struct LimitedStream<S> {
    inner: S,
    received: u64,
    limit: u64,
}

impl<S> LimitedStream<S> {
    /// Wraps `inner`, allowing `limit` bytes to be read from it.
    pub fn new(inner: S, limit: u64) -> Self {
        LimitedStream {
            inner,
            received: 0,
            limit,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LimitedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.received > self.limit {
            let limit = self.limit;
            return Poll::Ready(Err(io::Error::other(ReceiveLimitExceeded { limit })));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        // The read that crosses the limit still delivers its bytes, because a read that fails
        // must not fill the buffer; the next read fails.
        if let Poll::Ready(Ok(())) = &polled {
            self.received += (buf.filled().len() - before) as u64;
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LimitedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn read_past_limit_fails() {
        let data = vec![7u8; 100];
        let mut stream = LimitedStream::new(data.as_slice(), 64);
        let mut sink = Vec::new();
        let err = stream.read_to_end(&mut sink).await.unwrap_err();
        assert!(
            err.get_ref()
                .is_some_and(|inner| inner.is::<ReceiveLimitExceeded>()),
            "{err}"
        );
        assert!(sink.len() <= 100);
    }

    #[tokio::test]
    async fn read_within_limit_succeeds() {
        let data = vec![7u8; 64];
        let mut stream = LimitedStream::new(data.as_slice(), 64);
        let mut sink = Vec::new();
        stream.read_to_end(&mut sink).await.unwrap();
        assert_eq!(sink.len(), 64);
    }
}
