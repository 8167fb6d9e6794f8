//! Learning a server's `SETTINGS_MAX_CONCURRENT_STREAMS`.
//!
//! hyper does not expose the HTTP/2 settings its peer sent, so the pool reads
//! them off the wire itself: [`Sniff`] wraps a connection's transport (the TCP
//! stream, or the TLS stream above it, where frames are in the clear) and
//! parses the first frame the server sends. RFC 9113 §3.4 makes that frame a
//! `SETTINGS` frame (the server connection preface): a 9-byte header (24-bit
//! length, type `0x4`, flags, stream 0), then 6-byte entries (16-bit
//! identifier, 32-bit value); `SETTINGS_MAX_CONCURRENT_STREAMS` is `0x3`.
//!
//! Only the first frame is parsed; after it every read goes straight through
//! (one branch). Bytes are handed to hyper unchanged. A server that lowers
//! its limit later is handled by the pool's `REFUSED_STREAM` retry.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::sync::Notify;

/// Frame header length.
const HEADER: usize = 9;
/// `SETTINGS` frame type.
const SETTINGS: u8 = 0x4;
/// `SETTINGS_MAX_CONCURRENT_STREAMS`.
const MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// The largest first frame parsed (a server preface is a few entries).
const MAX_PAYLOAD: usize = 6 * 32;

/// What was learned, shared between the transport and the pool.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    /// The server's `SETTINGS_MAX_CONCURRENT_STREAMS`; 0 while unknown,
    /// `usize::MAX` when the server set none (unlimited).
    max_streams: AtomicUsize,
    /// Notified once the first frame was parsed (or parsing gave up).
    done: Notify,
}

impl Learned {
    /// The server's stream limit: `None` while unknown or if the server
    /// sent none.
    pub(crate) fn max_streams(&self) -> Option<usize> {
        match self.max_streams.load(Ordering::Acquire) {
            0 | usize::MAX => None,
            n => Some(n),
        }
    }

    /// Waits until the first frame was parsed (callers bound this with a
    /// timeout).
    pub(crate) async fn wait(&self) {
        let notified = self.done.notified();
        if self.max_streams.load(Ordering::Acquire) != 0 {
            return;
        }
        notified.await;
    }

    /// Records what the first frame said (once).
    pub(crate) fn finish(&self, max_streams: Option<u32>) {
        // A server advertising 0 streams is stored as 1: the pool then opens
        // a connection per request rather than never sending.
        let value = max_streams.map_or(usize::MAX, |n| (n as usize).max(1));
        let _ = self
            .max_streams
            .compare_exchange(0, value, Ordering::AcqRel, Ordering::Acquire);
        self.done.notify_waiters();
    }
}

/// Parses the first frame out of the bytes read so far.
fn parse(buf: &[u8]) -> Parse {
    // Give up as early as the bytes allow: h2 itself stops reading at a
    // frame it rejects (a TLS alert's bytes read as a huge length).
    let &[l0, l1, l2, ..] = buf else {
        return Parse::More;
    };
    let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
    if len > MAX_PAYLOAD || len % 6 != 0 {
        return Parse::Done(None);
    }
    let &[_, _, _, kind, ..] = buf else {
        return Parse::More;
    };
    if kind != SETTINGS {
        return Parse::Done(None);
    }
    if buf.len() < HEADER {
        return Parse::More;
    }
    let Some(payload) = buf.get(HEADER..HEADER + len) else {
        return Parse::More;
    };
    let mut max = None;
    for entry in payload.chunks_exact(6) {
        if let &[i0, i1, v0, v1, v2, v3] = entry
            && u16::from_be_bytes([i0, i1]) == MAX_CONCURRENT_STREAMS
        {
            max = Some(u32::from_be_bytes([v0, v1, v2, v3]));
        }
    }
    Parse::Done(max)
}

#[derive(Debug, PartialEq, Eq)]
enum Parse {
    More,
    Done(Option<u32>),
}

/// A transport that reports the server's first `SETTINGS` frame to
/// [`Learned`].
pub(crate) struct Sniff<T> {
    inner: T,
    /// The first bytes, until the first frame is complete; `None` after.
    seen: Option<Vec<u8>>,
    learned: Arc<Learned>,
}

impl<T> Sniff<T> {
    pub(crate) fn new(inner: T, learned: Arc<Learned>) -> Self {
        Self {
            inner,
            seen: Some(Vec::with_capacity(HEADER + 36)),
            learned,
        }
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Sniff<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(seen) = this.seen.as_mut().filter(|_| buf.remaining() > 0) else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        // Read into a local buffer, look, then hand the bytes on.
        let mut local = [0u8; 512];
        let want = buf.remaining().min(local.len());
        let mut read = hyper::rt::ReadBuf::new(local.get_mut(..want).unwrap_or_default());
        let result = Pin::new(&mut this.inner).poll_read(cx, read.unfilled());
        match &result {
            Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                let filled = read.filled();
                buf.put_slice(filled);
                seen.extend_from_slice(filled);
                if let Parse::Done(max) = parse(seen) {
                    this.seen = None;
                    this.learned.finish(max);
                }
            }
            // EOF or a reset before a whole frame: nothing to learn.
            Poll::Ready(_) => {
                this.seen = None;
                this.learned.finish(None);
            }
            Poll::Pending => {}
        }
        result
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Sniff<T> {
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

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for Sniff<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_max_concurrent_streams_from_a_settings_frame() {
        // SETTINGS, 2 entries: INITIAL_WINDOW_SIZE = 65535, MAX_CONCURRENT_STREAMS = 2.
        let frame = [
            0, 0, 12, 4, 0, 0, 0, 0, 0, 0, 4, 0, 0, 255, 255, 0, 3, 0, 0, 0, 2,
        ];
        assert_eq!(parse(&frame[..5]), Parse::More);
        assert_eq!(parse(&frame[..15]), Parse::More);
        assert_eq!(parse(&frame), Parse::Done(Some(2)));
        // No limit set.
        assert_eq!(parse(&[0, 0, 0, 4, 0, 0, 0, 0, 0]), Parse::Done(None));
        // Not a SETTINGS frame: give up.
        assert_eq!(parse(&[0, 0, 0, 7, 0, 0, 0, 0, 0]), Parse::Done(None));
        // A TLS alert (a plaintext client at a TLS server): give up at once.
        assert_eq!(parse(&[21, 3, 3, 0, 2, 2, 50]), Parse::Done(None));
    }

    #[test]
    fn learned_maps_zero_and_unlimited() {
        let l = Learned::default();
        assert_eq!(l.max_streams(), None);
        l.finish(Some(0));
        assert_eq!(l.max_streams(), Some(1));
        let l = Learned::default();
        l.finish(None);
        assert_eq!(l.max_streams(), None);
    }
}
