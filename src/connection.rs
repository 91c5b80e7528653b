//! Facts about the client connection: its peer address and whether it came
//! over TLS. The server inserts a [`ConnectionInfo`] into every request's
//! extensions; the front doors read it (the sidecar for `X-Forwarded-*`,
//! sessions for the client address and the `Secure` cookie checks).
//!
//! A leaf: it imports nothing of the crate.

use std::net::SocketAddr;

/// Facts about the client connection, inserted into request extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether the client connected over TLS.
    pub tls: bool,
}
