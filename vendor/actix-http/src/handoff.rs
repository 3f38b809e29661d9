//! roomcast: an HTTP/1 connection's socket, handed to the application once a response's head
//! is encoded.
//!
//! A response that carries a [`Handoff`] in its extensions, and whose body is a stream, has
//! its head encoded by the HTTP/1 dispatcher as usual, with `Connection: close` (the
//! connection ends with this response, so no client may pool it). Its body is then never
//! polled: the dispatcher gives the socket and the bytes it has not written yet (the head)
//! to the hand-off's callback and ends, freeing its buffers, timers, request and service
//! state. The callback owns the connection from then on: it writes those bytes first, so one
//! write can carry the head and the first of the body, and then the body itself, framed as
//! [`HandedOff::chunked`] says. This is what a
//! long-lived response that only writes (Server-Sent Events) needs, and what the upgrade
//! path does for a request that asks for a protocol switch.
//!
//! Over HTTP/2, or for a response whose body is not a stream (a `HEAD`, an error), the
//! hand-off is dropped unused and the body is sent as usual.

use std::fmt;

use actix_codec::{AsyncRead, AsyncWrite};
use bytes::BytesMut;

/// The socket of a connection, once handed off.
pub trait HandoffIo: AsyncRead + AsyncWrite + Unpin {}

impl<T: AsyncRead + AsyncWrite + Unpin> HandoffIo for T {}

/// What the callback of a [`Handoff`] receives.
pub struct HandedOff {
    /// The connection's socket.
    pub io: Box<dyn HandoffIo>,
    /// Whether the head announced `Transfer-Encoding: chunked` (else the body runs to the
    /// connection's close, as for an HTTP/1.0 client).
    pub chunked: bool,
    /// Bytes the client sent after the request, already read from the socket.
    pub read_buf: BytesMut,
    /// Bytes of the connection not written yet, to be written before anything else: the
    /// response's head (after the end of an earlier response the socket did not take yet).
    pub unwritten: BytesMut,
}

impl fmt::Debug for HandedOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandedOff")
            .field("chunked", &self.chunked)
            .field("read_buf", &self.read_buf.len())
            .field("unwritten", &self.unwritten.len())
            .finish_non_exhaustive()
    }
}

/// Put in a response's extensions: the dispatcher calls it with the socket once the head is
/// encoded. Dropped without being called when the connection ends first.
pub struct Handoff(Box<dyn FnOnce(HandedOff)>);

impl Handoff {
    /// A hand-off that calls `f`, on the worker thread that served the request.
    pub fn new(f: impl FnOnce(HandedOff) + 'static) -> Self {
        Self(Box::new(f))
    }

    pub(crate) fn call(self, handed: HandedOff) {
        (self.0)(handed)
    }
}

impl fmt::Debug for Handoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Handoff")
    }
}
