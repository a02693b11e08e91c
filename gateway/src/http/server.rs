//! The HTTP port's accept loop: plain or TLS (rustls, the certificate
//! reloaded when its files change), a cap on open connections, and a time
//! limit on a request's headers, so that slow or piled-up clients are
//! refused with a clear status instead of holding the gateway.
//!
//! It knows nothing of routes: it serves the router it is given, with the
//! peer's address as `ConnectInfo<SocketAddr>`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// What a connection may take.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Connections open at once; one more is answered `503` and closed.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (also the
    /// first request's, and a TLS handshake); then the connection is closed.
    pub header_timeout: Duration,
}

/// The TLS certificate and key of the port, read again when either file
/// changes.
#[derive(Debug)]
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    config: Arc<rustls::ServerConfig>,
    stamp: (Option<SystemTime>, Option<SystemTime>),
}

fn stamp(cert: &Path, key: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(cert), m(key))
}

/// A rustls server config from PEM files, speaking HTTP/2 and HTTP/1.1.
fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("gateway.tls.cert: cannot read {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "gateway.tls.cert: {} is not PEM certificates: {e}",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "gateway.tls.cert: {} holds no certificate (expected -----BEGIN CERTIFICATE-----)",
            cert.display()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "gateway.tls.key: cannot read a private key from {}: {e} (expected a PEM PKCS#8, PKCS#1 or SEC1 key)",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            format!(
                "gateway.tls: the key {} does not fit the certificate {}: {e}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

impl Tls {
    /// Read `cert` and `key` (PEM); an error says which file is wrong.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, String> {
        let config = server_config(cert, key)?;
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Loaded {
                config: Arc::new(config),
                stamp: stamp(cert, key),
            }),
        })
    }

    /// The config in force.
    fn config(&self) -> Arc<rustls::ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .config
            .clone()
    }

    /// Read the files again if they changed since they were read. A
    /// change that does not load (a key written before its certificate)
    /// keeps the old pair and returns why; it is tried again next time.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = stamp(&self.cert, &self.key);
        if self.current.read().unwrap_or_else(|e| e.into_inner()).stamp == now {
            return Ok(false);
        }
        let config = server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Loaded {
            config: Arc::new(config),
            stamp: now,
        };
        Ok(true)
    }

    /// Check the files every `every` until `stop`, reloading on change.
    pub async fn watch(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match self.reload_if_changed() {
                Ok(true) => {
                    last_error = None;
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                }
                Ok(false) => {}
                Err(e) => {
                    if last_error.as_deref() != Some(e.as_str()) {
                        tracing::warn!(error = %e, "the changed TLS files do not load; still serving the previous certificate");
                    }
                    last_error = Some(e);
                }
            }
        }
    }
}

/// The answer to a connection over the cap.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 70\r\n\r\ntoo many open connections to this gateway; try again in a moment.\r\n";

/// Serve `app` on `listener` until `stop`, then let open requests finish
/// (the caller bounds how long it waits).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<Arc<Tls>>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, limit = limits.max_connections, "a connection over the cap was refused");
            tokio::spawn(async move {
                let mut stream = stream;
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), stream.write_all(TOO_MANY)).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut req: axum::extract::Request| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let watcher = graceful.watcher();
        let tls = tls.as_ref().map(|t| t.config());
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => connection(stream, service, limits, watcher).await,
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls_stream)) => {
                            connection(tls_stream, service, limits, watcher).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One connection, HTTP/1.1 or HTTP/2 (with upgrades, for WebSockets).
async fn connection<I, S>(
    io: I,
    service: S,
    limits: ConnLimits,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let service =
        TowerToHyperService::new(service.map_request(
            |req: hyper::Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
        ));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
