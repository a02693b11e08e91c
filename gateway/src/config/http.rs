//! `[gateway.tls]` and `[gateway.limits]`: how the HTTP port is served.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[gateway.tls]`: serve HTTPS with this certificate. Both files are PEM
/// and read again when they change (a renewed certificate needs no
/// restart).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first. Required.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1). Required.
    pub key: PathBuf,
}

/// `[gateway.limits]`: what one client may take of the HTTP port.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// Connections open at once; one more is answered `503`. Default 1024.
    pub max_connections: usize,
    /// Seconds a client may take to send a request's headers (and a TLS
    /// handshake) before the connection is closed. Default 10.
    pub header_timeout_secs: u64,
    /// Largest body of a web chat request (`/v1/chat/completions`, the
    /// control API). Default 1 MiB.
    pub chat_body_bytes: usize,
    /// Largest body of a channel's webhook (`/hooks/<channel>/<account>`).
    /// Default 1 MiB.
    pub webhook_body_bytes: usize,
    /// Largest config saved from the UI or the API. Default 256 KiB.
    pub config_body_bytes: usize,
    /// Largest WebSocket message (and frame) a client may send. Default
    /// 1 MiB.
    pub ws_message_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout_secs: 10,
            chat_body_bytes: 1 << 20,
            webhook_body_bytes: 1 << 20,
            config_body_bytes: 256 << 10,
            ws_message_bytes: 1 << 20,
        }
    }
}
