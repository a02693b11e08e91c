//! What the channels holding a WebSocket to their platform share (Discord's
//! gateway, Slack's Socket Mode): the connection, on tokio-tungstenite with
//! rustls on ring and the webpki roots, and the reconnect backoff.

use std::sync::Arc;
use std::time::Duration;

/// A connected WebSocket (TLS or, for local test servers, plain).
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open a WebSocket to `url`, giving up after `timeout`. The error says
/// what failed, for the channel's status; it never repeats the URL, which
/// may hold a one-time ticket.
pub async fn connect(url: &str, timeout: Duration) -> Result<Socket, String> {
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(tls())),
    );
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(format!("cannot connect: {e}")),
        Err(_) => Err("connecting timed out".into()),
    }
}

/// The wait before reconnecting after `failures` failures in a row: at
/// once after the first, then 1, 2, 4 … seconds up to a minute.
pub fn backoff(failures: u32) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs((1u64 << (n - 2).min(6)).min(60)),
    }
}

fn tls() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_minute() {
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(30), Duration::from_secs(60));
    }

    #[tokio::test]
    async fn a_refused_connection_says_so_without_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("ws://127.0.0.1:{port}/link/?ticket=secret-ticket");
        let e = connect(&url, Duration::from_secs(5)).await.unwrap_err();
        assert!(e.starts_with("cannot connect"), "{e}");
        assert!(!e.contains("secret-ticket"), "{e}");
    }
}
